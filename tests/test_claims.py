"""Claims as data: the declarations parse and are checked, names fill typed values, the verdict rule."""

import numpy as np
import pytest

from lanet_core.errors import ConfigError
from lanet_core.study.claims import KINDS, fill_names, declared_claims, judge


def test_declared_claims_parse_with_uniquefill_namesed_keys():
    entries = declared_claims()
    assert len(entries) >= 30 and {e.get("kind", "seeds") for e in entries} == set(KINDS)
    names = {"lanet": "R18+LA-Net", "vanilla": "R18", "rmtl": "R18+RMTL", "vit": "ViT-T", "lanet_fine": "R18+LA-Net-fine",
             "bb_short": "R18", "bb2_short": "R50", "lanet2": "R50+LA-Net", "vanilla2": "R50", "bb_ab": "resnet18",
             "lanet_lr": "R18+LA-Net", "lanet_pl": "R18+LA-Net", "ratio_lo": 0.25, "ratio_hi": 1.0,
             "size_small": 128, "size_large": 256, "pt_lanet": "MNV2+LA-Net (ImageNet)",
             "pt_vanilla": "MNV2 (ImageNet)", "pt_lanet_fine": "MNV2+LA-Net-fine (ImageNet)", "fine_stride": 8,
             "pcv_lanet": "MNV2+LA-Net", "pcv_fine": "MNV2+LA-Net-fine", "pcv_rmtl": "MNV2+RMTL", "pcv_vanilla": "MNV2",
             "pcv_unet": "U-Net"}
    keys = [fill_names(e["key"], names) for e in entries]
    assert len(set(keys)) == len(keys)
    pcv = [e for e in entries if e.get("experiment") == "partial_labels_cv"]  # issue 28: Tables 3, 4, 9, 10
    assert {e["subset"]["boxed"] for e in pcv} == {20, 5}
    assert {e["where"] for e in pcv} == {"Table 3", "Table 4", "Table 9", "Table 10"}
    assert {fill_names(e["b"], names) for e in pcv if e["where"] == "Table 4"} == {"U-Net-F", "MNV2+RMTL-s-SSL"}
    assert fill_names(pcv[0]["a"], names) == "MNV2+LA-Net-s-SSL" and fill_names(pcv[0]["b"], names) == "MNV2+LA-Net-F"
    ratio = next(e for e in entries if e["key"] == "ratio_iou")
    assert fill_names(ratio["a"], names) == {"method": "R18+LA-Net", "ratio": 1.0}  # "$name": the typed value
    assert fill_names(ratio["paper"], names) == "More location labels improve LA-Net (iou, 0.25 -> 1)"
    fine = next(e for e in entries if e["key"] == "no_mam_cls_fine")
    assert fill_names(fine["a"], names)["fusion_stride"] == 8  # typed: filters the runs' integer fusion_stride


@pytest.mark.parametrize("text, match", [
    ("- {key: x, paper: p, where: w, experiment: e, metric: iou, a: A}", "missing"),
    ("- {key: x, paper: p, where: w, experiment: e, metric: iou, a: A, b: B, kind: vote}", "kind"),
    ("- {key: x, paper: p, where: w, experiment: e, metric: iou, a: A, b: B, when: always}", "when"),
    ("- {key: x, paper: p, where: w, experiment: e, metric: iou, a: A, b: B}\n"
     "- {key: x, paper: q, where: w, experiment: e, metric: iou, a: A, b: B}", "duplicate"),
])
def test_bad_declarations_are_named(text, match):
    with pytest.raises(ConfigError, match=match):
        declared_claims(text)


def test_verdict_rule():
    hi, lo = np.array([0.90, 0.91, 0.92]), np.array([0.70, 0.71, 0.72])
    assert judge(hi, lo, "accuracy", "A", "B")[1] == "reproduced"
    assert judge(lo, hi, "accuracy", "A", "B")[1] == "contradicted"
    assert judge(lo, hi, "accuracy", "A", "B", expect="less")[1] == "reproduced"
    text, verdict = judge(np.array([0.80, 0.90, 0.70]), np.array([0.81, 0.79, 0.80]), "accuracy", "A", "B")
    assert verdict.startswith("inconclusive") and "rules out an effect above" in verdict and text.startswith("A ")
    assert judge(np.array([]), lo, "accuracy", "A", "B") == ("runs missing", "not run")
    assert judge(np.array([0.8]), lo, "accuracy", "A", "B")[1] == "inconclusive (n < 2)"
    base = np.array([0.80, 0.81, 0.79])
    assert judge(base + 0.001, base, "accuracy", "A", "B", expect="not_greater")[1].startswith("reproduced (CI below")
    wide = judge(base + np.array([0.0, 0.2, -0.1]), base, "accuracy", "A", "B", expect="not_greater")[1]
    assert wide.startswith("inconclusive (the CI reaches above the declared margin +3): rules out an effect above +")


def test_readme_index_names_tables_and_figures_the_notebooks_write():
    """The README's table index (a curated order) may only name tables and figures that a notebook writes: a table
    renamed in a notebook fails here instead of turning into "(not produced yet)" in the README."""
    from pathlib import Path

    from lanet_core.study.summary import PARTIAL_CV_INDEX, TABLE_INDEX

    notebooks = {p.name: p.read_text() for p in (Path(__file__).parents[1] / "notebooks").glob("*.py")}
    for title, table, figure in TABLE_INDEX:
        for name in filter(None, (table, figure)):
            assert any(f'"{name}"' in text for text in notebooks.values()), f"{title}: no notebook writes {name!r}"
    # the per-fraction entries of the partly-labelled CV: notebook 04 writes them with an f-string over the fractions
    for title, table, figure in PARTIAL_CV_INDEX:
        for name in filter(None, (table, figure)):
            assert f'f"{name}"' in notebooks["04_partial_labels.py"], f"{title}: notebook 04 does not write {name!r}"


def test_readme_index_lists_each_box_fraction_after_tables_9_10(monkeypatch):
    from types import SimpleNamespace

    from lanet_core.study.summary import TABLE_INDEX, table_index

    index = table_index(SimpleNamespace(partial_labels_cv={"box_fractions": [20, 5]}))
    names = [t for _, t, _ in index]
    at = names.index("table9_10_ssl_minus_f")
    assert names[at + 1: at + 7] == ["busbra_cv_box20_summary", "busbra_cv_box20_ssl_minus_f",
                                     "busbra_cv_box20_precision", "busbra_cv_box5_summary",
                                     "busbra_cv_box5_ssl_minus_f", "busbra_cv_box5_precision"]
    assert index[at + 2][2] == "fig_busbra_cv_box20_paired_differences" and "5 %" in index[at + 4][0]
    assert table_index(SimpleNamespace(partial_labels_cv={})) == TABLE_INDEX


def test_run_fields_come_from_the_recorded_config_and_provenance(tmp_path):
    import json

    from lanet_core.config import resolve_config
    from lanet_core.study.records import run_fields

    cfg = resolve_config({"model": {"arch": "lanet", "use_cam": False, "fusion_stride": 8}, "data": {"image_size": 96}})
    (tmp_path / "provenance.json").write_text(json.dumps({"amp": True}))  # an older record: no "precision" key
    f = run_fields(cfg, tmp_path)
    assert f["attention"] == "SAM+MAM" and f["fusion_stride"] == 8 and f["image_size"] == 96
    assert f["precision"] == "bf16-autocast" and f["arch"] == "lanet" and f["selected_on"] == "val"
    seg = run_fields(resolve_config({"model": {"arch": "unet"}}), tmp_path / "absent")
    assert seg["attention"] == "" and np.isnan(seg["fusion_stride"]) and seg["precision"] == ""


def test_cv_claims_are_judged_with_retraining_and_show_the_per_image_test():
    """A cv_ claim's verdict comes from the corrected repeated k-fold t-test over the (fold, seed) runs; the per-image
    test ("given these trained models") is in the evidence beside it, with its own verdict."""
    import pandas as pd

    from lanet_core.study import crossval
    from lanet_core.study.claims import judge_cv

    n = 400
    y = np.arange(n) % 2
    pa = np.where(y == 1, 0.9, 0.1)
    pb = pa.copy()
    pb[:40] = 1 - pb[:40]  # B wrong where A is right on 40 images: per image, A is clearly better
    oof = pd.DataFrame({"method": ["A"] * n + ["B"] * n, "image_id": list(range(n)) * 2, "y_true": list(y) * 2,
                        "p_malignant": np.r_[pa, pb]})
    oof["correct"] = ((oof["p_malignant"] > 0.5).astype(int) == oof["y_true"]).astype(float)
    runs = pd.DataFrame({"method": ["A"] * 6 + ["B"] * 6, "fold": [1, 1, 2, 2, 3, 3] * 2, "seed": [0, 1] * 6,
                         "accuracy": [0.9, 0.7, 0.8, 0.95, 0.75, 0.85, 0.8, 0.8, 0.85, 0.8, 0.8, 0.8]})
    sizes = pd.DataFrame({"fold": [1, 2, 3], "n_train": 200, "n_val": 50, "n_test": 125})
    text, verdict = judge_cv(crossval.CVRecords(oof, runs, sizes), "A", "B", "accuracy")
    assert verdict.startswith("inconclusive (same direction, CI includes 0): rules out an effect above +")
    assert "with retraining" in text and "6 (fold, seed) pairs over 3 folds" in text
    assert "given these trained models" in text and "exact McNemar" in text and text.endswith("(reproduced)")
    assert judge_cv(crossval.CVRecords(oof, runs, sizes), "A", "C", "accuracy") == ("runs missing", "not run")
    one = runs[(runs["fold"] == 1) & (runs["seed"] == 0)]  # one run per arm: no test, and the text says so
    text, verdict = judge_cv(crossval.CVRecords(oof, one, sizes), "A", "B", "accuracy")
    assert verdict.startswith("not run (one run per arm")  # outside the tally, not "inconclusive"
    assert "+10.0 [no CI] points, no corrected repeated k-fold t (one run each), 1 (fold, seed) pair over 1 fold;" in text


class _FakeEvidence:
    """The parts of claims._Evidence that _judge_one reads, over a hand-made runs frame."""

    def __init__(self, runs, collapsed=()):
        self._runs, self._collapsed = runs, set(collapsed)

    def runs(self, experiment):
        return self._runs

    def collapsed(self, experiment):
        return self._collapsed


def _runs(devices_b):
    import pandas as pd

    return pd.DataFrame({"method": ["A"] * 3 + ["B"] * 3, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.9, 0.91, 0.92, 0.7, 0.71, 0.72],
                         "device": ["cpu"] * 3 + list(devices_b)})


def test_mixed_device_and_collapsed_verdicts_stay_outside_the_tally():
    """Issue 29 items 2 and 6: no verdict rests on a cross-device comparison or a collapsed comparator."""
    import pandas as pd

    from lanet_core.study.claims import _judge_one, claims_tally

    e = {"key": "k", "paper": "A beats B", "where": "T", "experiment": "x", "metric": "accuracy",
         "a": {"method": "A"}, "b": {"method": "B"}, "collapsed_arm": "b"}
    same = _judge_one(_FakeEvidence(_runs(["cpu"] * 3)), e, {})
    assert same.verdict.startswith("reproduced")
    mixed = _judge_one(_FakeEvidence(_runs(["gpu"] * 3)), e, {})
    assert mixed.verdict.startswith("not judged: mixed devices") and "cpu and gpu" in mixed.evidence
    collapsed = _judge_one(_FakeEvidence(_runs(["cpu"] * 3), collapsed={"B"}), e, {})
    assert collapsed.verdict.startswith("not judged: collapsed baseline")
    tally = claims_tally(pd.DataFrame({"verdict": [same.verdict, mixed.verdict, collapsed.verdict]}))
    assert tally == "1 reproduced · 0 contradicted · 0 inconclusive (+ 2 not judged: collapsed comparator or mixed devices)"



def test_partial_labels_cv_claims_judge_each_boxed_fraction_on_its_own_runs():
    """Issue 28: a paired_cv claim with a subset reads only that boxed fraction's runs of its experiment, and is not
    judged where its arms' runs in that fraction were trained on different kinds of device."""
    import pandas as pd

    from lanet_core.study.claims import _judge_one
    from lanet_core.study.crossval import CVRecords

    seen = []

    class Ev:
        def __init__(self, devices):
            self.devices = devices

        def cv(self, experiment, subset):
            seen.append((experiment, subset))
            return CVRecords(pd.DataFrame(columns=["method", "image_id"]), pd.DataFrame(columns=["method", "fold", "seed"]),
                             pd.DataFrame(columns=["fold", "n_train", "n_val", "n_test"]))

        def runs(self, experiment):
            return pd.DataFrame({"method": ["A-s-SSL", "A-F", "A-F"], "boxed": [5, 5, 20], "device": self.devices})

    e = {"key": "k", "paper": "p", "where": "Table 9", "experiment": "partial_labels_cv", "subset": {"boxed": 5},
         "kind": "paired_cv", "metric": "accuracy", "a": "A-s-SSL", "b": "A-F"}
    claim = _judge_one(Ev(["cpu", "cpu", "gpu"]), e, {})  # the gpu run is in the other fraction: no matter
    assert seen == [("partial_labels_cv", {"boxed": 5})] and claim.verdict == "not run"
    mixed = _judge_one(Ev(["cpu", "gpu", "cpu"]), e, {})
    assert mixed.verdict.startswith("not judged: mixed devices") and "cpu and gpu" in mixed.evidence


def test_partial_labels_cv_condition_holds_with_both_fractions_recorded():
    """The experiment as a whole is two CVs (one per boxed fraction; an image is tested once in each), so its
    condition asks for runs, never for one CV over both fractions (that raised "an image is tested twice")."""
    import pandas as pd

    from lanet_core.study.claims import _Evidence

    class Res:
        def runs(self):
            return pd.DataFrame({"method": ["A-F", "A-F"], "boxed": [20, 5], "fold": [1, 1], "seed": [0, 0]})

    class Study:
        profile = type("P", (), {"partial_labels_cv": {"folds": 5}})()

        def experiment(self, name):
            assert name == "partial_labels_cv"
            return Res()

    assert _Evidence(Study()).holds("partial_labels_cv", {})


def test_changed_verdicts_lists_cv_claims_whose_verdict_moved():
    """Issue 27 item 5: the results README lists the cv_ verdicts the training-variance test changed."""
    import pandas as pd

    from lanet_core.study.summary import changed_verdicts

    claims = pd.DataFrame({"paper": ["a", "b", "c"], "verdict": ["inconclusive (CI includes 0): rules out > +9", "reproduced", "reproduced"],
                           "verdict_given_models": ["reproduced +3.1 [+0.7, +5.4]", "reproduced +2 [+1, +3]", ""]})
    out = changed_verdicts(claims)
    assert list(out["claim"]) == ["a"] and out.iloc[0]["given these trained models (per image)"].startswith("reproduced")


def test_tally_given_models_counts_cv_claims_by_their_per_image_verdict():
    """The README states the tally the per-image tests alone would give beside the verdict tally (issue 27)."""
    import pandas as pd

    from lanet_core.study.claims import claims_tally

    claims = pd.DataFrame({"verdict": ["inconclusive (CI includes 0): rules out > +9", "reproduced", "contradicted",
                                       "not run"],
                           "verdict_given_models": ["reproduced +3.1 [+0.7, +5.4]", "", "contradicted -1 [-2, -0.5]", ""]})
    assert claims_tally(claims) == claims_tally(pd.DataFrame({"verdict": ["inconclusive", "reproduced", "contradicted"]}))
    given = claims_tally(claims, given_models=True)
    assert given == claims_tally(pd.DataFrame({"verdict": ["reproduced", "reproduced", "contradicted"]}))
    assert given != claims_tally(claims)


def test_verdict_kind_reads_every_verdict_text_and_rejects_others() -> None:
    from lanet_core.errors import ConfigError
    from lanet_core.study.claims import NOT_JUDGED, verdict_kind

    assert verdict_kind("reproduced") == "reproduced"
    assert verdict_kind("inconclusive (same direction, CI includes 0): rules out an effect above +7.7 points") == "inconclusive"
    assert verdict_kind("contradicted +0.4 [+0.1, +0.7]") == "contradicted"  # a per-image verdict with its interval
    assert verdict_kind(f"{NOT_JUDGED}: collapsed baseline (predicts one class)") == NOT_JUDGED
    assert verdict_kind("not run") == "not run"
    for bad in ("reproducedly", "", "maybe"):
        with pytest.raises(ConfigError):
            verdict_kind(bad)


def test_a_claim_not_judged_stays_outside_both_tallies_and_the_changed_list():
    """A cv_ claim set to "not judged" (arms on different devices) keeps its per-image verdict in the evidence but
    is neither counted by the per-image tally nor listed as changed by the training-variance test."""
    import pandas as pd

    from lanet_core.study.claims import NOT_JUDGED, claims_tally
    from lanet_core.study.summary import changed_verdicts

    claims = pd.DataFrame({"paper": ["a", "b"], "verdict": [f"{NOT_JUDGED}: arms trained on CPU and GPU", "reproduced"],
                           "verdict_given_models": ["reproduced +3.1 [+0.7, +5.4]", "", ]})
    assert claims_tally(claims, given_models=True) == claims_tally(claims)
    assert "1 not judged" in claims_tally(claims, given_models=True)
    assert changed_verdicts(claims).empty
    claims.loc[1, "verdict_given_models"] = float("nan")  # a CSV read back: NaN, not ""
    assert changed_verdicts(claims).empty


def test_a_cv_claim_with_one_run_per_arm_stays_outside_both_tallies():
    """One fold trained so far: no test with retraining, so the claim reads "not run (...)" and its per-image verdict
    (shown in the evidence) is not counted by the per-image tally nor listed as changed."""
    import pandas as pd

    from lanet_core.study.claims import claims_tally
    from lanet_core.study.summary import changed_verdicts

    claims = pd.DataFrame({"paper": ["a", "b"],
                           "verdict": ["not run (one run per arm so far: no test with retraining)", "reproduced"],
                           "verdict_given_models": ["reproduced +11.2 [+6.2, +15.4]", ""]})
    assert claims_tally(claims, given_models=True) == claims_tally(claims) == claims_tally(
        pd.DataFrame({"verdict": ["reproduced"]}))
    assert changed_verdicts(claims).empty
