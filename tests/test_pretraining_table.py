"""The pretraining table (issue 13): regimes side by side, the paper's rows, Welch differences."""

from __future__ import annotations

import pandas as pd
import pytest

from lanet_core.study import pretraining
from lanet_core.study.notebook import paper_numbers


def _runs(method: str, init: str | None, accs, size: int = 128) -> list[dict]:
    return [{"method": method, "seed": i, "accuracy": a, "auc": a, "iou": 0.2 if "LA-Net" in method else None,
             "image_size": size, **({"init": init} if init else {})} for i, a in enumerate(accs)]


def test_regimes_table_and_differences() -> None:
    full = pd.DataFrame(_runs("R18", None, [0.70, 0.72, 0.71]) + _runs("R18+LA-Net", None, [0.72, 0.73, 0.74])
                        + _runs("R50", None, [0.6, 0.6, 0.6]))
    pre = pd.DataFrame(_runs("MNV2", "scratch", [0.58, 0.59, 0.57]) + _runs("MNV2", "ImageNet", [0.76, 0.75, 0.77])
                       + _runs("MNV2", "ImageNet, BN rebuilt", [0.85, 0.86, 0.84], size=224))
    labels = {"R18": "R18, scratch", "scratch": "MNV2, scratch", "ImageNet": "MNV2, ImageNet, BN folded+frozen, lr 1e-4",
              "ImageNet, BN rebuilt": "MNV2, ImageNet, BN rebuilt, lr 1e-3"}
    runs = pretraining.regime_runs(full, pre, labels)
    assert "R50" not in set(runs["method"])
    assert set(runs["kind"]) == {"vanilla", "LA-Net"}
    table = pretraining.regimes_table(runs, paper_numbers())
    paper = table[table["source"] == "paper"].set_index("kind")
    assert paper.loc["vanilla", "accuracy"] == "88.6 ± 1.7" and paper.loc["LA-Net", "iou"] == "0.429 ± 0.024"
    rebuilt = table[table["regime"] == "MNV2, ImageNet, BN rebuilt, lr 1e-3"].iloc[0]
    assert rebuilt["input (px)"] == 224 and rebuilt["seeds"] == 3 and rebuilt["accuracy"].startswith("85.0")
    d = pretraining.regime_differences(runs, [("MNV2, ImageNet, BN rebuilt, lr 1e-3", "MNV2, scratch")], table)
    ours = d[d["comparison"].str.startswith("MNV2, ImageNet, BN rebuilt")].iloc[0]
    assert ours["accuracy_diff"] == pytest.approx(0.27) and ours["accuracy_p"] < 0.001
    theirs = d[d["comparison"] == f"{pretraining.PAPER_REGIME}  minus  MNV2, scratch"]
    assert theirs["accuracy_diff"].iloc[0] == pytest.approx(0.886 - 0.58)


def test_method_kind() -> None:
    assert [pretraining.method_kind(m) for m in ("R18", "MNV2+LA-Net", "R18+LA-Net-fine")] == \
        ["vanilla", "LA-Net", "LA-Net-fine"]


def test_regime_labels_come_from_the_configs(monkeypatch) -> None:
    import lanet_core.study.experiments as ex
    from lanet_core.study.profiles import load_profile

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    labels = pretraining.regime_labels(load_profile("cpu"))
    assert labels == {"R18": "R18, scratch, 8+24 epochs", "scratch": "MNV2, scratch, 8+24 epochs",
                      "ImageNet": "MNV2, ImageNet, BN folded+frozen, lr 1e-4, 8+24 epochs",
                      "ImageNet, BN rebuilt": "MNV2, ImageNet, BN rebuilt, lr 1e-3, 4+12 epochs",
                      "ImageNet, BN rebuilt, fex lr x0.1":
                          "MNV2, ImageNet, BN rebuilt, lr 1e-3 (feature extractor 1e-4), 4+12 epochs",
                      "ImageNet, BN rebuilt, fex lr x0.1 long":
                          "MNV2, ImageNet, BN rebuilt, lr 1e-3 (feature extractor 1e-4), 8+24 epochs"}
    assert len(set(labels.values())) == len(labels)  # regimes that differ only in schedule stay apart
    paper = pretraining.regime_labels(load_profile("paper"))
    assert paper["R18"] == "R18, ImageNet, 100+100 epochs"  # the paper profile's R18 is ImageNet-pretrained


def test_fine_tuning_variants_need_their_own_names(monkeypatch) -> None:
    import dataclasses

    import lanet_core.study.experiments as ex
    from lanet_core.errors import ConfigError
    from lanet_core.study.profiles import load_profile

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    prof = load_profile("cpu")
    entry = {"image_size": 224, "methods": ["classifier"], "seeds": [0]}
    bad = dataclasses.replace(prof, pretrained={**prof.pretrained, "fine_tuning": [entry, dict(entry)]})
    with pytest.raises(ConfigError, match="variant"):
        ex.EXPERIMENTS["pretraining"](bad)
    assert pretraining._lr(2.5e-4) == "2.5e-4" and pretraining._lr(1e-4) == "1e-4"
    # compare_to: each variant's difference is taken against the named regime (the main one by default)
    assert ex.fine_tuning_comparisons(prof) == [
        ("ImageNet, BN rebuilt, fex lr x0.1", "ImageNet, BN rebuilt"),
        ("ImageNet, BN rebuilt, fex lr x0.1 long", "ImageNet, BN rebuilt, fex lr x0.1")]
    for target in ("no such regime", "x"):
        typo = dataclasses.replace(prof, pretrained={**prof.pretrained, "fine_tuning": [
            entry, {**entry, "variant": "x", "compare_to": target}]})
        with pytest.raises(ConfigError, match="compare_to"):
            ex.fine_tuning_comparisons(typo)


def _history(run: str, stage2_acc, stage1: int = 2) -> pd.DataFrame:
    rows = [{"stage": "stage1", "epoch": e, "train_loss": 1.0, "val_accuracy": 0.3, "val_auc": 0.5, "selected": 1}
            for e in range(1, stage1 + 1)]
    best = -1.0
    for e, a in enumerate(stage2_acc, 1):
        rows.append({"stage": "stage2", "epoch": e, "train_loss": 1.0 / e, "val_accuracy": a, "val_auc": a + 0.05,
                     "selected": int(a > best)})
        best = max(best, a)
    return pd.DataFrame(rows).assign(run=run)


def test_validation_summary_reads_stage2_validation_records_only() -> None:
    """What limits a regime, from validation histories: best validation accuracy/AUC over stage-2 epochs, the
    selected epoch (last improvement), runs still improving at the end; stage-1 rows never count."""
    hist = pd.concat([_history("a0", [0.5, 0.7, 0.6, 0.65]), _history("a1", [0.6, 0.6, 0.7, 0.8]),
                      _history("b0", [0.9, 0.8, 0.85, 0.7], stage1=0)], ignore_index=True)
    runs = pd.DataFrame({"run": ["a0", "a1", "b0", "unused"], "regime": ["lr 1e-3", "lr 1e-3", "lr 1e-4", "x"],
                         "kind": ["LA-Net", "LA-Net", "vanilla", "vanilla"]})
    h = pretraining.regime_history(hist, runs)
    assert set(h["stage"]) == {"stage2"} and set(h["run"]) == {"a0", "a1", "b0"}
    s = pretraining.validation_summary(h).set_index("regime")
    assert s.loc["lr 1e-3", "best val accuracy_mean"] == pytest.approx(0.75)  # mean of 0.7 and 0.8
    assert s.loc["lr 1e-3", "selected epoch (mean)"] == 3.0  # epochs 2 and 4
    assert s.loc["lr 1e-3", "selected in last 2 epochs"] == "1/2"
    assert s.loc["lr 1e-4", "best val auc_mean"] == pytest.approx(0.95) and s.loc["lr 1e-4", "seeds"] == 1
    assert s.loc["lr 1e-3", "last train loss"] == 0.25
    from lanet_core.reporting import display_columns
    assert "best val accuracy" in display_columns(s) and "best val accuracy_mean" not in display_columns(s)
    fig = pretraining.learning_curves_figure(h)
    assert len(fig.axes) == 6  # kinds (vanilla, LA-Net) x (training loss, validation accuracy, AUC)


def test_experiment_history_has_run_keys_and_a_step_across_stages(tmp_path) -> None:
    from types import SimpleNamespace

    from lanet_core.study.experiments import RunSpec
    from lanet_core.study.records import ExperimentResults

    d = tmp_path / "run-a"
    d.mkdir()
    _history("run-a", [0.5, 0.6]).drop(columns="run").to_csv(d / "history.csv", index=False)
    spec = RunSpec("pretraining", "MNV2", 1, {}, {"init": "scratch"})
    res = ExperimentResults("pretraining", [spec, spec], [SimpleNamespace(run_dir=d), None], profile=None)
    h = res.history()
    assert list(h["step"]) == [1, 2, 3, 4] and set(h["run"]) == {"run-a"} and set(h["init"]) == {"scratch"}
    assert list(h["epoch"]) == [1, 2, 1, 2] and (h["method"] == "MNV2").all() and (h["seed"] == 1).all()


def test_experiment_gradcam_keeps_regimes_apart(tmp_path) -> None:
    """Two runs of one method and seed in two regimes: the Grad-CAM records carry each run's group (``init``), so
    per-regime tables do not average them together (the pretraining Grad-CAM table once did)."""
    from types import SimpleNamespace

    from lanet_core.study.experiments import RunSpec
    from lanet_core.study.records import ExperimentResults

    specs, results = [], []
    for init in ("ImageNet, BN rebuilt", "ImageNet, BN rebuilt, fex lr x0.1"):
        d = tmp_path / init.replace(" ", "_").replace(",", "")
        d.mkdir()
        pd.DataFrame({"image_id": ["a", "b"], "has_mask": [1, 1], "cam_energy_in_lesion": [0.1, 0.2],
                      "pointing_hit": [0.0, 1.0]}).to_csv(d / "gradcam.csv", index=False)
        specs.append(RunSpec("pretraining", "MNV2+LA-Net", 0, {}, {"init": init}, posthoc=("gradcam",)))
        results.append(SimpleNamespace(run_dir=d))
    cams = ExperimentResults("pretraining", specs, results, profile=None).gradcam()
    assert len(cams) == 4 and cams.groupby("init")["run"].nunique().to_dict() == {
        "ImageNet, BN rebuilt": 1, "ImageNet, BN rebuilt, fex lr x0.1": 1}
    assert (cams["method"] == "MNV2+LA-Net").all() and (cams["seed"] == 0).all()


def test_gradcam_by_regime_scores_each_regime_on_its_own() -> None:
    """One block per BN-rebuilt regime, stars within the regime, images every method of that regime scored;
    a regime with a single method is left out."""
    rows = []
    for init, (a, b) in {"ImageNet, BN rebuilt": (0.2, 0.1), "ImageNet, BN rebuilt, fex lr x0.1": (0.5, 0.3),
                         "ImageNet, BN rebuilt, lonely": (0.9, None)}.items():
        for seed in range(3):
            for i in range(4):
                for method, energy in (("MNV2+LA-Net", a), ("MNV2", b)):
                    if energy is None or (method == "MNV2" and i == 3):  # MNV2 did not score image 3
                        continue
                    rows.append({"init": init, "method": method, "seed": seed, "image_id": f"im{i}", "has_mask": 1,
                                 "cam_energy_in_lesion": energy + 0.01 * seed, "pointing_hit": float(i % 2)})
    cams = pd.DataFrame(rows)
    labels = {"ImageNet, BN rebuilt": "lr 1e-3", "ImageNet, BN rebuilt, fex lr x0.1": "fex 1e-4"}
    tab = pretraining.gradcam_by_regime(cams, ["MNV2+LA-Net", "MNV2+LA-Net-fine", "MNV2"], labels, [*labels,
                                        "ImageNet, BN rebuilt, lonely"])
    assert list(zip(tab["regime"], tab["method"])) == [("lr 1e-3", "MNV2+LA-Net"), ("lr 1e-3", "MNV2"),
                                                        ("fex 1e-4", "MNV2+LA-Net"), ("fex 1e-4", "MNV2")]
    assert set(tab["images_per_run"]) == {3}  # only the images both methods scored
    t = tab.set_index(["regime", "method"])
    assert t.loc[("fex 1e-4", "MNV2+LA-Net"), "cam_energy_in_lesion_mean"] == pytest.approx(0.51)
    assert t.loc[("lr 1e-3", "MNV2"), "cam_energy_in_lesion_mean"] == pytest.approx(0.11)
    assert t.loc[("lr 1e-3", "MNV2+LA-Net"), "cam_energy_in_lesion_sig"] == "reference"
    assert pretraining.gradcam_by_regime(cams, ["MNV2+LA-Net", "MNV2"], labels, ["ImageNet, BN rebuilt, lonely"]).empty
    assert pretraining.gradcam_by_regime(cams.drop(columns="init"), ["MNV2+LA-Net", "MNV2"], labels, list(labels)).empty


def test_regime_choice_reads_validation_only() -> None:
    """Issue 29 item 10: the regime is ranked on validation accuracy (the numeric companions of the validation
    summary), never on test; the sentence says how many images the margin is."""
    import pandas as pd

    from lanet_core.study.pretraining import regime_choice_by_validation

    val = pd.DataFrame({"regime": ["A", "A", "B", "B", "C"], "kind": ["vanilla", "LA-Net"] * 2 + ["vanilla"],
                        "best val accuracy_mean": [0.88, 0.90, 0.90, 0.92, 0.99]})
    best, text = regime_choice_by_validation(val, n_val=80)
    assert best == "B"  # C has no LA-Net run: not a complete regime
    assert "B 91.0; A 89.0" in text and "differ by 2.0 points" in text and "1.2 points" in text
