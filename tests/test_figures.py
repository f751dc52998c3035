"""Lesion-map / Grad-CAM figure helpers (lanet_core.study.figures) on small synthetic arrays and run folders."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from lanet_core import reporting  # noqa: E402
from lanet_core.data.manifest import REQUIRED_COLUMNS  # noqa: E402
from lanet_core.errors import ConfigError, DataError  # noqa: E402
from lanet_core.runs import RunResult  # noqa: E402
from lanet_core.study import figures  # noqa: E402
from lanet_core.study.experiments import RunSpec  # noqa: E402
from lanet_core.study.records import ExperimentResults  # noqa: E402

LANET, VANILLA = "R18+LA-Net", "R18"


# ---------------------------------------------------------------------------------------------------- fixtures


def _save_npz(path: Path, ids: list[str], key: str, maps: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, image_id=np.asarray(ids), **{key: maps})
    path.write_bytes(buf.getvalue())
    return path


def _manifest_row(i: int, label: str, split: str = "test", mask: str | None = "m") -> dict:
    row = {c: "" for c in REQUIRED_COLUMNS}
    row.update(image_id=f"img{i}", dataset="toy", image_path=f"images/img{i}.png",
               mask_path="" if mask is None else f"masks/img{i}_a.png|masks/img{i}_b.png",
               location_label="mask" if mask else "none", label=label, patient_id=f"p{i}", split=split)
    return row


@pytest.fixture()
def toy_data(tmp_path: Path) -> tuple[Path, Path]:
    """Six 40x30 (w x h) images, two masks each (left and right halves of a box), one image without a mask."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = []
    labels = ["benign", "benign", "benign", "malignant", "malignant", "benign"]
    for i, label in enumerate(labels):
        img = np.full((30, 40), 60 + 20 * i, np.uint8)
        Image.fromarray(img).save(tmp_path / "images" / f"img{i}.png")
        a, b = np.zeros((30, 40), np.uint8), np.zeros((30, 40), np.uint8)
        a[10:20, 10:20], b[10:20, 20:30] = 255, 255
        Image.fromarray(a).save(tmp_path / "masks" / f"img{i}_a.png")
        Image.fromarray(b).save(tmp_path / "masks" / f"img{i}_b.png")
        rows.append(_manifest_row(i, label, mask=None if i == 5 else "m"))
    rows.append(_manifest_row(9, "benign", split="train"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, tmp_path


def _config(manifest: Path, root: Path, size: int = 16) -> dict:
    return {"name": "toy", "data": {"manifest": str(manifest), "root": str(root), "image_size": size,
                                    "resize": "squash"}, "eval": {"align_corners": True}}


def _results(tmp_path: Path, manifest: Path, root: Path, runs: list[tuple[str, int, dict[str, np.ndarray]]]):
    """ExperimentResults over fake run folders: (method, seed, {npz name: maps}) with ids img0..img4."""
    ids = [f"img{i}" for i in range(5)]
    specs, results = [], []
    for method, seed, files in runs:
        cfg = _config(manifest, root)
        run_dir = tmp_path / "runs" / f"{method.replace('+', '-')}-s{seed}"
        run_dir.mkdir(parents=True)
        for name, maps in files.items():
            _save_npz(run_dir / name, ids, "maps" if name == "lesion_maps.npz" else "cams", maps)
        specs.append(RunSpec("fully_labelled", method, seed, cfg))
        results.append(RunResult(run_dir, cfg, {"test": {}}))
    specs.append(RunSpec("fully_labelled", "Missing", 0, {}))
    results.append(None)
    return ExperimentResults("fully_labelled", specs, results, profile=None)


# ---------------------------------------------------------------------------------------------------- maps


def test_load_maps_scales_uint8_and_keys_by_id(tmp_path: Path) -> None:
    maps = np.stack([np.full((4, 4), 255, np.uint8), np.zeros((4, 4), np.uint8)])
    maps[1, 0, 0] = 51
    out = figures.load_maps(_save_npz(tmp_path / "m.npz", ["a", "b"], "maps", maps), "maps")
    assert list(out) == ["a", "b"]
    assert out["a"].dtype == np.float32 and np.allclose(out["a"], 1.0)
    assert out["b"][0, 0] == pytest.approx(0.2) and out["b"][1, 1] == 0.0


def test_load_maps_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        figures.load_maps(tmp_path / "absent.npz", "maps")
    bad = _save_npz(tmp_path / "bad.npz", ["a"], "cams", np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"bad\.npz.*missing array.*maps"):
        figures.load_maps(bad, "maps")
    dup = _save_npz(tmp_path / "dup.npz", ["a", "a"], "maps", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="duplicate"):
        figures.load_maps(dup, "maps")
    short = _save_npz(tmp_path / "short.npz", ["a", "b"], "maps", np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match="one entry per image_id"):
        figures.load_maps(short, "maps")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        figures.load_maps(tmp_path / "junk.npz", "maps")


# ---------------------------------------------------------------------------------------------------- examples


def test_pick_examples_balanced_deterministic_and_restricted() -> None:
    labels = pd.Series({f"b{i}": "benign" for i in range(6)} | {f"m{i}": "malignant" for i in range(3)})
    first = figures.pick_examples(labels, 4, seed=3)
    assert first == figures.pick_examples(labels, 4, seed=3)
    assert [labels[i] for i in first] == ["benign", "malignant", "benign", "malignant"]
    # only ids every source has; fewer candidates than asked -> all of them, still alternating
    got = figures.pick_examples(labels, 10, available=[["b0", "b1", "m2", "x"], ["b1", "m2", "b0"]])
    assert sorted(got) == ["b0", "b1", "m2"] and labels[got[1]] == "malignant"
    assert figures.pick_examples(labels, 2, available=[[]]) == []
    # a class running out leaves the other class to fill
    assert len(figures.pick_examples(labels, 8, seed=0)) == 8
    with pytest.raises(ConfigError):
        figures.pick_examples(labels, 0)


def test_image_view_loads_resized_image_and_mask_union(toy_data) -> None:
    manifest, root = toy_data
    view = figures.ImageView.from_config(_config(manifest, root))
    image, mask = view.load("img3")
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert int(image[0, 0, 0]) == 120
    # union of the two halves: x 10..30 of 40 -> 4..12 of 16, y 10..20 of 30 -> ~5..11 of 16
    assert mask.dtype == bool and mask[8, 5] and mask[8, 10] and not mask[8, 14] and not mask[1, 8]
    assert view.load("img5")[1] is None
    assert view.label("img3") == "malignant"
    assert list(view.labels().index) == ["img0", "img1", "img2", "img3", "img4"]  # test split, with masks
    with pytest.raises(DataError, match="nope"):
        view.load("nope")
    (root / "images" / "img2.png").unlink()
    with pytest.raises(DataError, match="img2"):
        view.load("img2")


def test_image_view_rejects_duplicate_ids(toy_data) -> None:
    manifest, root = toy_data
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    pd.concat([df, df.iloc[:1]]).to_csv(manifest, index=False)
    with pytest.raises(DataError, match=r"manifest.*duplicate image_id.*img0"):
        figures.ImageView.from_config(_config(manifest, root))


def test_image_view_upsample_bilinear_corners_and_range(toy_data) -> None:
    view = figures.ImageView(pd.DataFrame(), toy_data[1], size=16, align_corners=True)
    small = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    up = view.upsample(small)
    assert up.shape == (16, 16)
    assert up[0, 0] == pytest.approx(0.0) and up[0, 15] == pytest.approx(1.0) and up[15, 0] == pytest.approx(1.0)
    assert 0.4 < up[8, 8] < 0.6 and up.min() >= 0 and up.max() <= 1
    with pytest.raises(DataError, match="2-D"):
        view.upsample(np.zeros((1, 2, 2)))


def test_overlay_and_contours() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    heat = np.zeros((8, 8), np.float32)
    flat = figures.overlay(image, heat)  # an all-zero CAM must not crash
    assert flat.shape == (8, 8, 3) and flat.dtype == np.uint8
    heat[2:4, 2:4] = 1.0
    hot = figures.overlay(image, heat)
    assert hot[3, 3, 0] > hot[6, 6, 0] and hot[3, 3, 1] > hot[6, 6, 1]  # viridis: high values are yellow
    with pytest.raises(DataError):
        figures.overlay(image, np.zeros((4, 4)))
    with pytest.raises(ConfigError):
        figures.overlay(image, heat, alpha=0.0)
    assert figures.contours(np.zeros((8, 8), bool)) == []
    mask = np.zeros((8, 8), bool)
    mask[2:6, 3:5] = True
    (c,) = figures.contours(mask)
    assert c[:, 0].min() >= 1 and c[:, 0].max() <= 6 and c[:, 1].min() >= 2 and c[:, 1].max() <= 5


def test_example_grid_handles_missing_and_zero_maps() -> None:
    image = np.full((8, 8, 3), 90, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    heat = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    rows = [figures.ExampleRow("a", "benign", image, mask, {"map": heat, "cam": np.zeros((8, 8)), "other": None}),
            figures.ExampleRow("b", "malignant", image, None, {"map": heat, "cam": heat, "other": heat})]
    fig = figures.example_grid(rows, contour_columns=["map"], title="t")
    try:
        axes = np.array(fig.axes[:8]).reshape(2, 4)
        assert fig.axes[8].get_xlabel() == "map value"  # the colour bar (0-1) below the grid
        assert fig.get_size_inches()[0] == pytest.approx(7.2)  # two columns of a journal page
        assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "predicted lesion (map > 0.5)"
        texts = [t.get_text() for ax in axes.ravel() for t in ax.texts]
        assert texts.count("n/a") == 1 and texts.count("all zero") == 1
        assert axes[0, 0].get_title() == "Image + true lesion" and axes[0, 1].get_title() == "map"
        assert "malignant" in axes[1, 0].get_ylabel()
        assert len(axes[0, 0].lines) == 1 and len(axes[1, 0].lines) == 0  # true contour only where a mask exists
        assert len(axes[0, 1].lines) == 2  # true (dashed) + predicted contour
    finally:
        plt.close(fig)
    with pytest.raises(DataError):
        figures.example_grid([])


def test_examples_figure_from_run_records(tmp_path: Path, toy_data) -> None:
    manifest, root = toy_data
    rng = np.random.default_rng(0)
    lesion = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    cams = rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)
    res = _results(tmp_path, manifest, root, [
        (LANET, 1, {"lesion_maps.npz": lesion, "gradcam_examples.npz": cams}),
        (LANET, 0, {"lesion_maps.npz": lesion, "gradcam_examples.npz": cams}),
        (VANILLA, 0, {"gradcam_examples.npz": np.zeros((5, 64, 64), np.uint8)}),
    ])
    runs = figures.finished_runs(res)
    assert [(r.method, r.seed) for r in runs] == [(LANET, 1), (LANET, 0), (VANILLA, 0)]
    assert figures.first_run(runs, LANET).seed == 0 and figures.first_run(runs, "Missing") is None
    cols = {"map": (LANET, "lesion"), "cam": (LANET, "gradcam"), "vanilla cam": (VANILLA, "gradcam"),
            "vanilla map": (VANILLA, "lesion"), "absent": ("Missing", "lesion")}
    fig, ids = figures.examples_figure(res, cols, n=3, contour_columns=["map"])
    try:
        assert len(ids) == 3 and {"img3", "img4"} & set(ids)  # both classes
        assert [ax.get_title() for ax in fig.axes[:4]] == ["Image + true lesion", "map", "cam", "vanilla cam"]
        assert len(fig.axes) == 3 * 4 + 2  # columns without maps are left out; + one colour bar per quantity
        bars = {ax.get_xlabel(): ax for ax in fig.axes[12:]}
        assert set(bars) == {"Lesion probability", "Grad-CAM (normalised to 0-1)"}
        assert bars["Lesion probability"]._colorbar.mappable.get_cmap().name == "viridis"
        assert bars["Grad-CAM (normalised to 0-1)"]._colorbar.mappable.get_cmap().name == "magma"
    finally:
        plt.close(fig)
    assert figures.examples_figure(res, {"x": ("Missing", "lesion")}) == (None, [])
    with pytest.raises(ConfigError):
        figures.map_sources(runs, {"x": (LANET, "bogus")})


# ---------------------------------------------------------------------------------------------------- Grad-CAM scores


def _gradcam_records() -> pd.DataFrame:
    """LA-Net: 0.8 energy, always hits; vanilla: 0.3, hits on images 0-1; vanilla seed 1 has a zero CAM."""
    rows = []
    for method, energy, hits in ((LANET, 0.8, 6), (VANILLA, 0.3, 2)):
        for seed in (0, 1):
            for i in range(6):
                e = energy + 0.01 * i + 0.02 * seed
                if method == VANILLA and seed == 1 and i == 5:
                    e = np.nan
                rows.append({"method": method, "seed": seed, "image_id": f"img{i}", "has_mask": 1,
                             "cam_energy_in_lesion": e, "pointing_hit": int(i < hits) if not np.isnan(e) else 0})
    rows.append({"method": LANET, "seed": 0, "image_id": "only_lanet", "has_mask": 1, "cam_energy_in_lesion": 0.9,
                 "pointing_hit": 1})
    rows.append({"method": VANILLA, "seed": 0, "image_id": "nomask", "has_mask": 0,
                 "cam_energy_in_lesion": np.nan, "pointing_hit": np.nan})
    return pd.DataFrame(rows)


def test_gradcam_per_image_common_images_and_zero_cams() -> None:
    per = figures.gradcam_per_image(_gradcam_records(), [LANET, VANILLA])
    assert set(per["image_id"]) == {f"img{i}" for i in range(6)}
    assert per["zero_cam"].sum() == 1
    runs = figures.gradcam_runs(per).set_index(["method", "seed"])
    assert runs.loc[(LANET, 0), "cam_energy_in_lesion"] == pytest.approx(0.825)
    assert runs.loc[(VANILLA, 1), "cam_energy_in_lesion"] == pytest.approx(0.34)  # mean of 5 finite values
    assert runs.loc[(VANILLA, 1), "n_zero_cam"] == 1 and runs.loc[(VANILLA, 1), "n_images"] == 6
    assert runs.loc[(VANILLA, 0), "pointing_hit"] == pytest.approx(2 / 6)
    with pytest.raises(DataError, match="pointing_hit"):
        figures.gradcam_per_image(_gradcam_records().drop(columns="pointing_hit"), [LANET])
    twice = pd.concat([_gradcam_records(), _gradcam_records()], ignore_index=True)  # one method+seed, two regimes
    with pytest.raises(DataError, match="repeat the same"):
        figures.gradcam_per_image(twice, [LANET, VANILLA])


def test_gradcam_tables() -> None:
    per = figures.gradcam_per_image(_gradcam_records(), [LANET, VANILLA])
    loc = figures.gradcam_localisation_table(per, LANET, [LANET, VANILLA]).set_index("method")
    assert loc.loc[LANET, "cam_energy_in_lesion_mean"] == pytest.approx(0.835)
    assert loc.loc[VANILLA, "zero_energy_cams"] == 1 and loc.loc[LANET, "zero_energy_cams"] == 0
    assert loc.loc[VANILLA, "pointing_hit_mean"] == pytest.approx(2 / 6)
    assert loc.loc[LANET, "cam_energy_in_lesion_sig"] == "reference"
    paired = figures.gradcam_paired_table(per, LANET, VANILLA, n_resamples=200)
    assert list(paired["comparison"].unique()) == [f"{LANET} − {VANILLA}"]
    energy = paired.set_index("metric").loc["cam_energy_in_lesion"]
    assert energy["diff"] == pytest.approx(0.5, abs=0.01) and energy["low"] > 0.4
    hit = paired.set_index("metric").loc["pointing_hit"]
    assert hit["diff"] == pytest.approx(4 / 6) and hit["n_images"] == 6
    assert figures.gradcam_paired_table(per[per["method"] == LANET], LANET, VANILLA).empty


def test_gradcam_scores_without_any_cam_energy_do_not_crash() -> None:
    rec = _gradcam_records()
    rec.loc[rec["method"] == LANET, ["cam_energy_in_lesion", "pointing_hit"]] = [np.nan, 0]
    per = figures.gradcam_per_image(rec, [LANET, VANILLA])
    loc = figures.gradcam_localisation_table(per, LANET, [LANET, VANILLA]).set_index("method")
    assert loc.loc[LANET, "zero_energy_cams"] == 12 and loc.loc[LANET, "cam_energy_in_lesion"] == ""
    paired = figures.gradcam_paired_table(per, LANET, VANILLA, n_resamples=100).set_index("metric")
    assert paired.loc["cam_energy_in_lesion", "note"].startswith("not applicable")
    fig = figures.gradcam_score_figure(per, [LANET, VANILLA], reference=LANET)
    try:
        assert len(fig.axes) == 3
        assert "no CAM energy" in [t.get_text() for t in fig.axes[0].texts]
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------- IoU sweep


def _per_image_with_sweep() -> pd.DataFrame:
    rows = []
    for method, base in ((LANET, 0.6), ("U-Net", 0.4)):
        for seed in (0, 1):
            for i in range(3):
                rows.append({"method": method, "seed": seed, "image_id": f"img{i}", "iou": base,
                             "iou_t0.3": base - 0.1 + 0.1 * seed, "iou_t0.5": base + 0.1 * seed,
                             "iou_t0.7": np.nan if i == 2 else base - 0.2, "iou_box_t0.5": 0.99})
    rows += [{"method": VANILLA, "seed": 0, "image_id": "img0"}]  # a classifier: no sweep values
    return pd.DataFrame(rows)


def test_iou_threshold_sweep_long_table() -> None:
    sweep = figures.iou_threshold_sweep(_per_image_with_sweep())
    assert list(sweep.columns) == ["method", "seed", "threshold", "iou"]
    assert set(sweep["method"]) == {LANET, "U-Net"}  # the classifier is dropped
    assert list(sweep["threshold"][:3]) == [0.3, 0.5, 0.7] and len(sweep) == 2 * 2 * 3
    row = sweep[(sweep["method"] == LANET) & (sweep["seed"] == 1) & (sweep["threshold"] == 0.5)]
    assert row["iou"].item() == pytest.approx(0.7)
    assert figures.iou_threshold_sweep(pd.DataFrame({"method": ["a"], "seed": [0]})).empty


def test_sweep_table_and_figure() -> None:
    sweep = figures.iou_threshold_sweep(_per_image_with_sweep())
    tab = figures.sweep_table(sweep, order=["U-Net", LANET]).set_index("threshold")
    assert list(tab.columns[:2]) == ["U-Net", LANET]  # a column per method, in the order asked for
    assert list(tab.index) == [figures.SWEEP_SEEDS_ROW, "0.3", "0.5", "0.7", figures.SWEEP_BEST_ROW]
    assert tab.loc["0.5", f"{LANET}_mean"] == pytest.approx(0.65) and tab.loc[figures.SWEEP_BEST_ROW, LANET] == "0.5"
    assert tab.loc["0.7", LANET] == "0.400 ± 0.000" and tab.loc[figures.SWEEP_SEEDS_ROW, LANET] == "2"
    assert tab.loc["0.3", "U-Net"] == "0.350 [0.000, 0.985]"  # 0.3 and 0.4 over 2 seeds: the t-CI clipped at 0
    assert figures.sweep_table(sweep.iloc[:0]).empty
    tie = pd.DataFrame({"method": "m", "seed": 0, "threshold": [0.3, 0.5, 0.7], "iou": [0.4, 0.6, 0.6]})
    assert figures.sweep_table(tie).set_index("threshold").loc[figures.SWEEP_BEST_ROW, "m"] == "0.5"  # lowest of a tie
    fig = figures.sweep_figure(sweep, [LANET, "U-Net"])
    try:
        low, high = fig.axes[0].get_ylim()
        assert low >= 0 and high <= 1
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [LANET, "U-Net", "evaluation threshold (0.5)"]
    finally:
        plt.close(fig)
    with pytest.raises(DataError):
        figures.sweep_figure(sweep.iloc[:0])


# ---------------------------------------------------------------------------------------------------- real data


@pytest.mark.integration
def test_image_view_on_busi_test_images() -> None:
    from lanet_core.paths import DataRootNotFound

    cfg = {"data": {"manifest": "data_manifests/busi.csv", "root": "auto", "image_size": 64, "resize": "squash"}}
    try:
        view = figures.ImageView.from_config(cfg)
    except DataRootNotFound as exc:
        pytest.skip(f"real data absent: {str(exc).splitlines()[0]}")
    ids = figures.pick_examples(view.labels(), 4, seed=0)
    assert len(ids) == 4 and {view.label(i) for i in ids} == {"benign", "malignant"}
    for i in ids:
        image, mask = view.load(i)
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and 0 < mask.mean() < 0.9


def test_selection_table_one_row_per_method_and_metric() -> None:
    runs = pd.DataFrame({"method": [LANET] * 3 + ["U-Net"], "seed": [0, 1, 2, 0],
                         "selected_by": ["accuracy"] * 3 + ["iou"],  # U-Net: not selected by accuracy, left out
                         "accuracy": [0.80, 0.82, 0.84, np.nan], "accuracy@auc+iou": [0.78, 0.80, 0.82, 0.5],
                         "auc": [0.90, 0.91, 0.92, 0.5], "auc@auc+iou": [0.90, 0.91, 0.91999, 0.5],
                         "iou": [0.40, 0.42, np.nan, 0.6], "iou@auc+iou": [0.45, np.nan, 0.49, 0.6],
                         "iou_tuned": np.nan, "iou_tuned@auc+iou": np.nan})  # never recorded: no row
    tab = figures.selection_table(runs)
    by_acc, by_alt = "selected by val accuracy", "selected by mean(val AUC, val IoU)"
    assert list(tab.columns) == ["method", "n_seeds", "metric", by_acc, by_alt, "difference", "difference_mean"]
    assert list(tab["metric"]) == ["accuracy", "auc", "iou"] and set(tab["method"]) == {LANET}
    acc, auc, iou = tab.iloc[0], tab.iloc[1], tab.iloc[2]
    assert acc[by_acc].startswith("82.0 ± ") and acc["difference"] == "-2.0"  # points
    assert acc["difference_mean"] == pytest.approx(-2.0) and acc["n_seeds"] == 3
    assert auc["difference"] == "0.0"  # a difference that rounds to zero has no sign
    # IoU: only seed 0 recorded both; the difference is paired over that run (+0.05), not 0.47 - 0.41
    assert iou["n_seeds"] == 1 and iou["difference"] == "+0.050" and iou[by_alt] == "0.450"
    shown = reporting.display_table(tab).cells
    assert list(shown.columns) == ["method", "n_seeds", "metric", by_acc, by_alt, "difference"]
    assert list(shown["metric"]) == ["Accuracy (%)", "AUC (%)", "IoU"]  # the unit stated once, in the metric cell
    assert figures.selection_table(runs.drop(columns=["accuracy@auc+iou"])).empty


def test_format_signed_never_shows_a_negative_zero() -> None:
    assert reporting.format_signed("accuracy", -0.0001) == "0.0"
    assert reporting.format_signed("accuracy", 0.024) == "+2.4" and reporting.format_signed("iou", -0.0134) == "-0.013"
    assert reporting.format_signed("iou", float("nan")) == ""
    assert reporting.format_diff_ci("accuracy", 0.02, -0.00001, 0.04) == "+2.0 [-0.0, +4.0]"  # bounds keep signs
