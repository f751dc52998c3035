"""The per-image explorer (lanet_core.explorer, notebooks/00_explorer) on the committed cpu records.

The records are committed, so selection, sorting and the claim links always run; only the image views skip when the
data root is absent (they are then checked to say so and to show the lesion map alone).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from lanet_core import explorer as ex
from lanet_core.paths import project_root

ROOT = project_root()
RUN = ("fully_labelled", "R18+LA-Net", 0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """The cpu profile's committed records (read where they are committed, whatever $LANET_RESULTS_DIR says)."""
    import dataclasses

    from lanet_core.study.profiles import load_profile

    prof = dataclasses.replace(load_profile("cpu"), output=ROOT / "results")
    if not (prof.output / "runs").is_dir():
        pytest.skip("no committed run records here")
    return ex.Records(prof)


@pytest.fixture(scope="module")
def run(records):
    return records.record(*RUN)


def _data_present(records, rec) -> bool:
    return records.data_root(rec.manifest()) is not None


def test_records_find_the_committed_runs_without_the_data(records, monkeypatch):
    from lanet_core import paths

    def no_data(*_a, **_k):
        raise paths.DataRootNotFound("no data here")

    from lanet_core.data import sources

    monkeypatch.setattr(paths, "find_data_root", no_data)
    monkeypatch.setattr(sources, "find_data_root", no_data)
    fresh = ex.Records(records.profile)
    assert "fully_labelled" in fresh.experiments() and "cross_validation" in fresh.experiments()
    choices = fresh.choices("fully_labelled")
    assert {"R18+LA-Net", "R18", "U-Net", "R18+RMTL"} <= set(choices)
    assert fresh.seeds("fully_labelled", "R18+LA-Net") == [0, 1, 2]
    assert any(c.startswith("R18+LA-Net · ratio=") for c in fresh.choices("label_ratio"))  # variants apart
    runs = fresh.runs("fully_labelled")
    assert all((fresh.runs_root / r / "metrics.json").is_file() for r in runs["run"])


def test_run_folders_are_the_studys(records):
    """The explorer's data-free run lookup names the folder the study itself uses (needs the data to compare)."""
    from lanet_core.errors import LanetError
    from lanet_core.study.experiments import experiment_runs
    from lanet_core.study.records import run_dir_of

    specs = experiment_runs("fully_labelled", records.profile)[:6] + experiment_runs("label_ratio", records.profile)[:6]
    try:
        study = [run_dir_of(s, records.profile) for s in specs]
    except LanetError as exc:
        pytest.skip(f"data root absent: the study's own lookup needs it ({exc})")
    assert [ex.run_dir_without_data(s, records.profile) for s in specs] == study


def test_images_carry_the_per_image_records(run):
    raw = pd.read_csv(run.run_dir / "per_image.csv", dtype={"image_id": str})
    df = run.images()
    assert len(df) == len(raw) == 82 and list(df["image_id"]) == list(raw["image_id"])
    assert (df["error"] == (raw["y_pred"] != raw["y_true"])).all()
    p = raw["p_malignant"]
    assert np.allclose(df["confidence"], np.where(raw["y_pred"] == 1, p, 1 - p))
    assert np.allclose(df["p_true"], np.where(raw["y_true"] == 1, p, 1 - p))
    assert run.splits() == ["test", "external:busbra"]
    assert len(run.images("external:busbra")) > 0


def test_filters(run, records):
    df = run.images()
    errors = ex.select_images(df, "errors")
    assert len(errors) == int(df["error"].sum()) > 0 and errors["error"].all()
    assert len(ex.select_images(df, "correct")) == len(df) - len(errors)
    for cls in ("benign", "malignant"):
        sel = ex.select_images(df, cls)
        assert len(sel) == int((df["label"] == cls).sum()) and (sel["label"] == cls).all()
    twins = ex.select_images(df, "near-duplicate twins")
    table = pd.read_csv(records.profile.tables_dir / ex.NEAR_DUPLICATES, dtype=str)
    suspects = set(table.loc[table["suspected_leak"] == "True", "test_id"]) & set(df["image_id"])
    assert set(twins["image_id"]) == suspects and len(suspects) > 0
    assert (twins["twin"] != "").all() and set(twins["twin_split"]) <= {"train", "val"}
    assert len(ex.select_images(df, "no twin")) == len(df) - len(twins)
    with pytest.raises(ValueError, match="show"):
        ex.select_images(df, "everything")
    with pytest.raises(ValueError, match="sort"):
        ex.select_images(df, "all", "random")


def test_orders(run):
    df = run.images()
    ids = list(ex.select_images(df)["image_id"])
    assert sorted(ids) == sorted(df["image_id"])
    for cls in ("benign", "malignant"):  # natural order: benign (9) before benign (10)
        nums = [int(re.search(r"\d+", i).group()) for i in ids if i.startswith(cls)]
        assert nums == sorted(nums)
    mistakes = ex.select_images(df, "all", "most confident mistakes")
    n_err = int(df["error"].sum())
    assert mistakes["error"].iloc[:n_err].all() and not mistakes["error"].iloc[n_err:].any()
    conf = mistakes["confidence"].to_numpy()
    assert np.all(np.diff(conf[:n_err]) <= 0)  # the most confident mistake first
    assert np.all(np.diff(conf[n_err:]) >= 0)  # then the correct ones, nearest misses first
    worst = df[df["error"]].sort_values("confidence", ascending=False)["image_id"].iloc[0]
    assert mistakes["image_id"].iloc[0] == worst
    low = ex.select_images(df, "all", "lowest IoU")["iou"].to_numpy(float)
    assert np.all(np.diff(low[~np.isnan(low)]) >= 0)
    high = ex.select_images(df, "all", "highest IoU")["iou"].to_numpy(float)
    assert np.all(np.diff(high[~np.isnan(high)]) <= 0)
    pm = ex.select_images(df, "all", "p(malignant)")["p_malignant"].to_numpy(float)
    assert np.all(np.diff(pm) <= 0)


def test_select_images_on_a_small_table():
    df = pd.DataFrame({
        "image_id": ["b (10)", "b (2)", "m (1)", "m (3)"], "label": ["benign", "benign", "malignant", "malignant"],
        "y_true": [0, 0, 1, 1], "y_pred": [1, 0, 0, 1], "p_malignant": [0.6, 0.1, 0.05, 0.7],
        "iou": [0.5, np.nan, 0.1, 0.9], "twin": ["", "b (7)", "", ""],
    })
    df["error"] = df["y_pred"] != df["y_true"]
    df["confidence"] = np.where(df["y_pred"] == 1, df["p_malignant"], 1 - df["p_malignant"])
    assert list(ex.select_images(df)["image_id"]) == ["b (2)", "b (10)", "m (1)", "m (3)"]
    assert list(ex.select_images(df, "all", "most confident mistakes")["image_id"]) == ["m (1)", "b (10)", "m (3)", "b (2)"]
    assert list(ex.select_images(df, "all", "lowest IoU")["image_id"]) == ["m (1)", "b (10)", "m (3)", "b (2)"]
    assert list(ex.select_images(df, "near-duplicate twins")["image_id"]) == ["b (2)"]
    assert ex.image_label(df.iloc[0]).startswith("b (10) | benign -> malignant WRONG | p=0.60 | IoU 0.50")


def test_view_numbers_are_the_records(run, records, monkeypatch):
    monkeypatch.setattr(records, "data_root", lambda manifest: None)  # the data absent: lesion map alone
    raw = pd.read_csv(run.run_dir / "per_image.csv", dtype={"image_id": str}).set_index("image_id")
    for image_id in ("benign (25)", "malignant (111)"):
        v = ex.image_view(run, image_id)
        r = raw.loc[image_id]
        assert v.numbers["p_malignant"] == round(float(r["p_malignant"]), 4)
        assert v.numbers["true label"] == r["label"] and v.numbers["decision"] == ex.LABELS[int(r["y_pred"])]
        assert v.numbers["IoU @0.5"] == round(float(r["iou"]), 4)
        assert v.image is None and any("data is not here" in n for n in v.notes)
        assert v.lesion_map.shape == (4, 4) and v.lesion_prob.shape == (run.image_size, run.image_size)
        with np.load(run.run_dir / "lesion_maps.npz") as z:
            stored = dict(zip(z["image_id"], z["maps"]))
        assert np.allclose(v.lesion_map * 255, stored[image_id])
    assert run.tuned_threshold is None and v.numbers["threshold (validation-tuned)"] == "not recorded"
    png = ex.figure_png(ex.draw_views([v]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradcam_where_recorded_and_a_checkpoint_note_elsewhere(run, records, monkeypatch):
    monkeypatch.setattr(records, "data_root", lambda manifest: None)
    recorded = sorted(run.gradcam_examples)
    assert len(recorded) == 8
    v = ex.image_view(run, recorded[0])
    assert v.gradcam is not None and v.gradcam.shape == (run.image_size, run.image_size)
    other = next(i for i in run.images()["image_id"] if i not in recorded)
    v = ex.image_view(run, other)
    assert v.gradcam is None and any("checkpoint" in n for n in v.notes)
    assert "CAM energy in lesion" in v.numbers  # the per-image Grad-CAM scores are recorded for every image
    cls = records.record("fully_labelled", "U-Net", 0)
    v = ex.image_view(cls, other)
    assert "p_malignant" not in v.numbers and v.lesion_map.shape == (64, 64) and "no class output" in v.gradcam_note


def test_tuned_threshold_from_the_run(records, monkeypatch):
    monkeypatch.setattr(records, "data_root", lambda manifest: None)
    rec = records.record("lesion_target", "R18+LA-Net-fine · target=area", 0)
    thr = json.loads((rec.run_dir / "metrics.json").read_text())["lesion_threshold"]["threshold"]
    v = ex.image_view(rec, rec.images()["image_id"].iloc[0])
    assert v.thresholds == {"0.5": 0.5, "validation-tuned": thr}


def test_image_and_outlines_match_the_recorded_iou(records):
    """With the data: the image and the true outline come from the manifest, and the stored lesion map, drawn at
    the network's input size exactly as the evaluation does, gives back the IoU the run recorded."""
    from lanet_core.data.images import resize_array

    rec = records.record("lesion_target", "R18+LA-Net-fine · target=area", 0)
    if not _data_present(records, rec):
        pytest.skip("data root absent: the image views need ../shared/data (selection tests ran)")
    rows = records.manifest_rows(rec.manifest())
    df = rec.images()
    size, align = rec.image_size, bool(rec.config["eval"]["align_corners"])
    diffs = []
    for image_id in df["image_id"].iloc[:20]:
        v = ex.image_view(rec, image_id)
        h, w = int(rows.loc[image_id, "height"]), int(rows.loc[image_id, "width"])
        assert v.image.shape == (h, w, 3) and v.true_mask.shape == (h, w) and v.lesion_prob.shape == (h, w)
        pred = ex._upsample(v.lesion_map, size, align) > 0.5
        gt = resize_array(v.true_mask, size, rec.config["data"].get("resize", "squash")) >= 128
        union = (pred | gt).sum()
        iou = (pred & gt).sum() / union if union else 0.0
        diffs.append(abs(iou - float(df.set_index("image_id").loc[image_id, "iou"])))
    assert np.mean(diffs) < 0.01 and max(diffs) < 0.05


def test_claim_links_and_the_images_behind_a_claim(records):
    links = {c.key: c for c in ex.claim_links(records)}
    claims = pd.read_csv(records.profile.tables_dir / ex.CLAIMS, dtype=str)
    assert set(links) <= set(claims["key"]) and len(links) >= 0.8 * len(claims)
    loc = links["loc_vs_rmtl"]
    assert (loc.experiment, loc.metric, loc.linkable) == ("fully_labelled", "iou", True)
    imgs = ex.claim_images(records, loc)
    assert len(imgs) == 82 and np.all(np.diff(imgs["diff"].abs().to_numpy()) <= 1e-12)
    # each side is the mean over its arm's seeds, and its mean over images is the arm's mean test IoU
    for side, method in (("a", "R18+LA-Net"), ("b", "R18+RMTL")):
        metrics = [json.loads((records.runs_root / r / "metrics.json").read_text())["test"]["iou"]
                   for r in records.runs("fully_labelled").query("method == @method")["run"]]
        assert imgs[side].mean() == pytest.approx(np.mean(metrics), abs=1e-6)  # per_image.csv: 6 digits
    first = imgs.iloc[0]
    per = [records.record("fully_labelled", "R18+LA-Net", s).images().set_index("image_id").loc[first["image_id"], "iou"]
           for s in (0, 1, 2)]
    assert first["a"] == pytest.approx(np.mean(per))
    drop = [c for c in links.values() if c.kind == "seed_drop"]
    assert drop and not any(c.linkable for c in drop) and all(c.why_not for c in drop)
    ablation = links["no_cam_loc"]  # arms chosen by recorded fields, not by method names
    assert set(ex.arm_runs(records, ablation, ablation.arm_b)["method"]) == {"R18+LA-Net (no CAM)"}


def test_cross_validated_claim_finds_the_fold_that_tested_each_image(records):
    links = {c.key: c for c in ex.claim_links(records)}
    cv = next(c for k, c in links.items() if k.startswith("cv_accuracy_R18+LA-Net_vs_R18"))
    imgs = ex.claim_images(records, cv)
    assert len(imgs) > 500 and imgs["a"].between(0, 1).all()  # share of seeds that classified the image right
    image_id = imgs["image_id"].iloc[0]
    rec = ex.run_holding(records, "cross_validation", "R18+LA-Net · fold=1", 0, image_id)
    assert rec is not None and image_id in set(rec.images()["image_id"])
    assert re.search(r"fold=\d", rec.variant)


def test_widget_changes_follow_the_records(records, monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(records, "data_root", lambda manifest: None)
    app = ex.Explorer(records, experiment="fully_labelled")
    assert app.method_a.value == "R18+LA-Net" and app.seed.value == 0 and app.split.value == "test"
    raw = pd.read_csv(records.record(*RUN).run_dir / "per_image.csv", dtype={"image_id": str}).set_index("image_id")
    first = app.image.value
    assert f'data-key="p_malignant">{round(raw.loc[first, "p_malignant"], 4):.4g}<' in app.numbers.value
    fig1 = app.figure.value
    app.image.value = "malignant (111)"
    assert "malignant (111)" in app.figure.value and app.figure.value != fig1
    app.method_b.value = "U-Net"
    assert "U-Net seed 0 / malignant (111)" in app.figure.value
    app.show.value = "errors"
    assert set(app.image.options) and all("WRONG" in label for label, _ in app.image.options)
    app.claim.value = "loc_vs_rmtl"
    assert (app.method_a.value, app.method_b.value) == ("R18+LA-Net", "R18+RMTL")
    assert app.image.options[0][1] == ex.claim_images(records, app.claims["loc_vs_rmtl"])["image_id"].iloc[0]
    assert "loc_vs_rmtl" in app.status.value
    app.show.value = "malignant"  # choosing the images again leaves the claim's list
    assert app.claim.value == ex.NONE and all(" | malignant -> " in label for label, _ in app.image.options)
    app.claim.value = "ratio_drop_U-Net"  # no per-image reading: said so, the run's own list stays
    assert "no per-image view" in app.status.value and app.experiment.value == "label_ratio"
