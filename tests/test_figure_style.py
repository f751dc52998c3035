"""Every study figure is journal-ready (issue 32): rendered as the notebooks render it, each one must

* be 3.5 in (one column) or 7.2 in (two columns) wide, and be saved at that size (PNG and PDF);
* have no text below 6 pt at that size, and no text outside the figure (nothing cropped);
* have no two texts whose rendered bounding boxes overlap (rule below);
* embed TrueType (Type 42) fonts in its PDF, never Type 3;
* use no rainbow colour map (jet, rainbow, hsv, turbo, ...).

Inputs: the committed run records under ``results/runs`` (the ``cpu`` profile, loaded read-only: no post-hoc
analysis is computed and no oracle ceiling is read from the images), exactly the calls the notebooks make. The
audit figures (``01_data_audit``) and, where the datasets are absent, the lesion-map / Grad-CAM example grids are
drawn from small synthetic images instead (their figure code is the same; only the pixels differ).

Overlap rule: every text drawn (titles, axis labels, tick labels, legend entries and titles, annotations,
colour-bar labels, figure headers) is recorded with its rendered window extent. Two different texts may touch,
but they overlap when their boxes intersect by more than 0.5 pt in both directions; that fails, with no
exceptions (a text never overlaps "its own parent": a legend's title and entries, a panel's letter and title,
are all separate texts and must keep apart like any other). A multi-line text is one text, so its own lines never
count. Rotated texts would be judged by their axis-aligned boxes, which is why the figures avoid rotated labels.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from lanet_core import reporting  # noqa: E402
from lanet_core.paths import project_root  # noqa: E402

WIDTHS = (reporting.ONE_COLUMN, reporting.TWO_COLUMNS)
TOLERANCE_PT = 0.5
DPI = 72  # PNG resolution in the test (the study saves at 200 dpi; sizes in inches do not depend on it)

# ---------------------------------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def committed():
    """``load(name) -> ExperimentResults`` of the committed ``cpu`` records, read-only and cached."""
    from lanet_core.study import records
    from lanet_core.study.profiles import load_profile

    root = project_root() / "results"
    if not (root / "runs").is_dir():
        pytest.skip("no committed run records")
    mp = pytest.MonkeyPatch()
    mp.setenv("LANET_RESULTS_DIR", str(root))
    mp.setattr(records, "_ensure_posthoc", lambda *a, **k: None)  # never compute (and write) anything
    mp.setattr(records, "_ceiling", lambda *a, **k: np.nan)  # the oracle ceiling reads every mask: not needed
    mp.setattr(records, "run_dir_of", _run_dir_without_data(records.run_dir_of))
    profile = load_profile("cpu")
    cache: dict = {}

    def load(name: str):
        if name not in cache:
            cache[name] = records.run_experiment(name, profile, train=False, progress=False)
        return cache[name]

    load.profile = profile
    load.runs_root = root / "runs"
    yield load
    mp.undo()


def _run_dir_without_data(run_dir_of):
    """``records.run_dir_of`` that also works where the datasets are absent: a run's identity needs only its
    resolved config and the committed manifest's checksum, not the images (the manifest loader wants both)."""
    from lanet_core.paths import DataRootNotFound

    def find(spec, profile):
        try:
            return run_dir_of(spec, profile)
        except DataRootNotFound:
            from lanet_core.config import resolve_config
            from lanet_core.io import file_sha256
            from lanet_core.runs import run_dir_for

            cfg = resolve_config(spec.config) if "data" not in spec.config or "eval" not in spec.config else dict(
                spec.config)
            manifest = project_root() / cfg["data"]["manifest"]
            return run_dir_for(cfg, file_sha256(manifest), profile.output / "runs")
    return find


def _bars(exp: str, metrics, title, suffix="+LA-Net", filt=None):
    def build(load):
        from lanet_core.study.figures import run_conditions
        from lanet_core.study.notebook import reference_method

        runs = load(exp).runs()
        if filt is not None:
            runs = filt(runs)
        return reporting.bars_figure(runs, metrics, reference_method(runs, suffix), title=title,
                                     conditions=run_conditions(runs, load.runs_root))
    return build


def _lines(exp: str, x: str, metrics, title, filt=None):
    def build(load):
        from lanet_core.study.figures import run_conditions

        runs = load(exp).runs()
        if filt is not None:
            runs = filt(runs)
        return reporting.lines_figure(runs, x, metrics, title=title, conditions=run_conditions(runs, load.runs_root))
    return build


def _regimes(load):
    from lanet_core.study import pretraining

    runs = load("pretraining").runs()
    full = load("fully_labelled").runs()
    return pretraining.regime_runs(full, runs, pretraining.regime_labels(load.profile))


def _pretraining(load):
    from lanet_core.study import pretraining
    from lanet_core.study.figures import run_conditions

    regimes = _regimes(load)
    return pretraining.regimes_figure(regimes, conditions=run_conditions(regimes, load.runs_root))


def _learning_curves(load):
    from lanet_core.study import pretraining
    from lanet_core.study.experiments import pretrained_source, short

    regimes = _regimes(load)
    hist = pretraining.regime_history(pd.concat([load("pretraining").history(), load("fully_labelled").history()],
                                                ignore_index=True), regimes)
    mnv2 = hist[hist["regime"].str.startswith(short(pretrained_source(load.profile)[0]))]
    return pretraining.learning_curves_figure(mnv2)


def _gradcam_scores(load):
    from lanet_core.study import figures

    res = load("fully_labelled")
    order = ["R18+LA-Net", "R18"]
    scores = figures.gradcam_per_image(res.gradcam(), order)
    return figures.gradcam_score_figure(scores, order, reference="R18+LA-Net",
                                        conditions=figures.experiment_conditions(res, order))


def _sweep(load):
    from lanet_core.study import figures

    res = load("fully_labelled")
    sweep = figures.iou_threshold_sweep(res.per_image())
    first = ["R18+LA-Net", "U-Net", "R18+RMTL"]
    order = first + sorted(set(sweep["method"]) - set(first))
    return figures.sweep_figure(sweep, order, threshold=0.5,
                                conditions=figures.experiment_conditions(res, list(sweep["method"].unique())))


def _cv_forest(load):
    from lanet_core.study import crossval, figures
    from lanet_core.study.experiments import FINE, imagenet_cv_method, method_name

    res = load("cross_validation")
    bb = load.profile.main_backbone
    lanet, vanilla, rmtl = method_name("lanet", bb), method_name("classifier", bb), method_name("rmtl", bb)
    fine, agn, unet = lanet + FINE, method_name("agn", bb), method_name("unet", bb)
    pt_lanet, pt_vanilla, pt_fine = (imagenet_cv_method(load.profile, k) for k in ("lanet", "classifier", "lanet_fine"))
    cv = crossval.cv_records(res)
    present = set(cv.oof["method"])
    pairs = [(a, b) for a, b in [(lanet, vanilla), (lanet, rmtl), (fine, lanet), (fine, vanilla), (fine, rmtl),
                                 (fine, agn), (fine, unet), (lanet, agn), (lanet, unet),
                                 (pt_lanet, pt_vanilla), (pt_fine, pt_vanilla), (pt_fine, pt_lanet), (pt_lanet, lanet),
                                 (pt_vanilla, vanilla), (pt_fine, rmtl)] if a in present and b in present]
    return figures.cv_forest_figure(crossval.paired_table(cv, pairs), conditions=figures.experiment_conditions(res))


def _busbra_cv_forest(boxed: int):
    """Notebook 04's forest plot of the BUS-BRA CV at one box fraction: s-SSL - F per family and LA-Net s-SSL
    against the other arms (the pairs without records are left out by ``paired_table``)."""
    def build(load):
        from lanet_core.study import crossval, figures

        part = load("partial_labels_cv").subset(boxed=boxed)
        if part.runs().empty:
            pytest.skip(f"no committed BUS-BRA CV run at {boxed} %")
        families = sorted({s.group["family"] for s in part.specs if s.group.get("regime") in ("s-SSL", "F")})
        lanet = next((f for f in families if f.endswith("+LA-Net")), None)
        if lanet is None:  # a checkout without the converted MobileNetV2 weights plans only the scratch U-Net arm
            pytest.skip(f"no LA-Net arm planned at {boxed} % here (the ImageNet MobileNetV2 weights are absent)")
        pairs = list(dict.fromkeys([(f"{f}-s-SSL", f"{f}-F") for f in families] + [
            (f"{lanet}-s-SSL", b) for b in sorted({s.method for s in part.specs}) if b != f"{lanet}-s-SSL"]))
        paired = crossval.paired_table(crossval.cv_records(part), pairs, metrics=("accuracy", "auc", "iou_box"))
        return figures.cv_forest_figure(paired, conditions=figures.experiment_conditions(part))
    return build


# ---- the example grids: committed maps over the real test images, or synthetic images where the data is absent


def _examples(columns: Callable[[str], dict], contour: Callable[[str], list]):
    def build(load):
        from lanet_core.paths import DataRootNotFound
        from lanet_core.study import figures

        lanet = "R18+LA-Net"
        try:
            fig, _ = figures.examples_figure(load("fully_labelled"), columns(lanet), n=4, contour_columns=contour(lanet))
            return fig
        except DataRootNotFound:
            return _synthetic_grid(columns(lanet), contour(lanet))
    return build


def _synthetic_grid(columns: dict, contour: list):
    from lanet_core.study import figures

    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(["benign", "malignant", "benign", "malignant"]):
        image = np.repeat(rng.integers(0, 255, (64, 64, 1), dtype=np.uint8), 3, axis=2)
        mask = np.zeros((64, 64), bool)
        mask[16 + i:40, 20:44 - i] = True
        yy, xx = np.mgrid[0:64, 0:64]
        heat = np.exp(-((yy - 30) ** 2 + (xx - 32) ** 2) / (2 * (8 + 2 * i) ** 2)).astype(np.float32)
        rows.append(figures.ExampleRow(f"{label} ({100 + i})", label, image, mask, {c: heat for c in columns}))
    return figures.example_grid(rows, contour_columns=contour,
                                quantities={c: figures.MAP_QUANTITIES[k] for c, (_, k) in columns.items()},
                                conditions="synthetic images (the datasets are absent here)")


FIG5_COLUMNS = lambda lanet: {m: (m, "lesion") for m in (lanet, lanet + "-fine", "U-Net", "R18+RMTL")}  # noqa: E731
FIG12_COLUMNS = lambda lanet: {f"{lanet} lesion map": (lanet, "lesion"), f"{lanet} Grad-CAM": (lanet, "gradcam"),  # noqa: E731
                               "R18 Grad-CAM": ("R18", "gradcam")}


# ---- the data-audit figures on a small synthetic data set (the real ones read every image)


@pytest.fixture(scope="module")
def audit_inputs(tmp_path_factory):
    from scipy import ndimage

    from lanet_core import audit
    from lanet_core.data.manifest import REQUIRED_COLUMNS, read_manifest, write_manifest

    root = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(16):
        label = ("benign", "malignant")[k % 2]
        split = "test" if k < 8 else "train"
        img = ndimage.gaussian_filter(rng.normal(size=(90, 120)), 4)
        img = ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)
        (root / "img").mkdir(exist_ok=True)
        (root / "msk").mkdir(exist_ok=True)
        Image.fromarray(img).save(root / "img" / f"{label} ({k}).png")
        m = np.zeros_like(img)
        m[20 + k:50, 30:70 + k] = 255
        Image.fromarray(m).save(root / "msk" / f"{label} ({k}).png")
        rows.append({"image_id": f"{label} ({k})", "dataset": "busi", "image_path": f"img/{label} ({k}).png",
                     "mask_path": f"msk/{label} ({k}).png", "bbox": "", "location_label": "mask", "label": label,
                     "patient_id": f"p{k}", "split": split})
    write_manifest(pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS)), root / "toy.csv")
    ds = audit.AuditSet("busi", read_manifest(root / "toy.csv"), root)
    test = ds.rows[ds.rows["split"] == "test"]
    near = pd.DataFrame({"test_id": list(test["image_id"]), "test_label": list(test["label"]),
                         "match_id": list(ds.rows[ds.rows["split"] == "train"]["image_id"]),
                         "match_label": ["benign", "benign", "benign", "malignant"] * 2, "match_split": "train",
                         "distance": [0, 2, 4, 6, 10, 12, 14, 20], "suspected_leak": ["True"] * 4 + ["False"] * 4,
                         "label_conflict": ["False", "True", "False", "False"] + ["False"] * 4,
                         "n_within_threshold": 1})
    return ds, near


AUDIT_FIGURES = {
    "fig_busi_geometry": lambda ds, near: __import__("lanet_core.audit").audit.plot_geometry(
        __import__("lanet_core.audit").audit.image_geometry(ds), f"BUSI: image and lesion geometry ({len(ds.rows)} images)"),
    "fig4_examples": lambda ds, near: __import__("lanet_core.audit").audit.plot_examples([ds, ds], per_class=4, seed=0),
    "fig_near_duplicate_distances": lambda ds, near: __import__("lanet_core.audit").audit.plot_distance_histograms(
        {"busi": near, "busbra": near}, 6),
    "fig_busi_near_duplicate_pairs": lambda ds, near: __import__("lanet_core.audit").audit.plot_pairs(
        ds, near, 6, n_below=12, n_above=6),
}

#: Every figure of results/figures that comes from run records, built as its notebook builds it.
RECORD_FIGURES: dict[str, Callable] = {
    "fig_busi_fully_labelled": _bars("fully_labelled", ["accuracy", "auc", "iou"],
                                     "BUSI, fully labelled (mean, 95 % CI, seeds as dots)"),
    "fig_pretraining": _pretraining,
    "fig_pretraining_learning_curves": _learning_curves,
    "fig_busbra_partial_labels": _bars("partial_labels", ["accuracy", "auc", "iou_box"],
                                       "BUS-BRA, boxes on 20 % of training images", suffix="LA-Net-s-SSL"),
    "fig_sensitivity_tau": _lines("sensitivity", "tau", ["accuracy", "iou_box"],
                                  "s-SSL on BUS-BRA (boxes on 20 %), alpha = 0.1", lambda r: r[r["alpha"] == 0.1]),
    "fig_sensitivity_alpha": _lines("sensitivity", "alpha", ["accuracy", "iou_box"],
                                    "s-SSL on BUS-BRA (boxes on 20 %), tau = 0.8", lambda r: r[r["tau"] == 0.8]),
    "fig_attention_ablation": _bars("attention_ablation", ["accuracy", "auc", "iou", "dice"],
                                    "Attention ablation on BUSI"),
    "fig8_label_ratio_classification": _lines("label_ratio", "ratio", ["accuracy", "auc"],
                                              "Classification vs share of location labels"),
    "fig9_label_ratio_localisation": _lines("label_ratio", "ratio", ["iou", "dice"],
                                            "Localisation vs share of location labels"),
    "fig10_input_size_classification": _lines("input_size", "image_size", ["accuracy", "auc"],
                                              "Classification vs input size"),
    "fig11_input_size_localisation": _lines("input_size", "image_size", ["iou", "dice"],
                                            "Localisation vs input size"),
    "fig6_depth_classification": _bars("depth", ["accuracy", "auc"], "Classification by depth"),
    "fig7_depth_localisation": _bars("depth", ["iou", "dice"], "Localisation by depth",
                                     filt=lambda r: r[r["family"] != "Vanilla"]),
    "fig12_gradcam_scores": _gradcam_scores,
    "fig_iou_threshold_sweep": _sweep,
    "fig_cv_paired_differences": _cv_forest,
    "fig_busbra_cv_box20_paired_differences": _busbra_cv_forest(20),
    "fig_busbra_cv_box5_paired_differences": _busbra_cv_forest(5),
    "fig5_lesion_masks": _examples(FIG5_COLUMNS, lambda lanet: list(FIG5_COLUMNS(lanet))),
    "fig12_gradcam": _examples(FIG12_COLUMNS, lambda lanet: [f"{lanet} lesion map"]),
}


# ---------------------------------------------------------------------------------------------------- checks


def _drawn_texts(fig) -> list[tuple[Text, object]]:
    """Draw ``fig`` (in the study's style, as save_fig does) and return every text actually drawn, with its
    rendered window extent."""
    drawn: dict[int, tuple[Text, object]] = {}
    original = Text.draw

    def recording_draw(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip() and self.get_alpha() != 0:
            drawn[id(self)] = (self, self.get_window_extent(renderer))

    Text.draw = recording_draw
    try:
        with reporting.plot_context():
            fig.canvas.draw()
    finally:
        Text.draw = original
    return list(drawn.values())


def _describe(t: Text) -> str:
    return f"{t.get_text()!r} ({type(t).__name__}, {t.get_fontsize():.1f} pt)"


def check_figure(fig, stem: str, out: Path) -> list[str]:
    """Problems of one figure (empty when it is journal-ready)."""
    problems = []
    w, h = fig.get_size_inches()
    if min(abs(w - x) for x in WIDTHS) > 0.05:
        problems.append(f"width {w:.2f} in is neither {reporting.ONE_COLUMN} nor {reporting.TWO_COLUMNS}")
    if h > 9.5:
        problems.append(f"height {h:.2f} in exceeds a page")
    png, pdf = reporting.save_fig(fig, stem, out, dpi=DPI)
    pw, ph = Image.open(png).size
    if abs(pw - w * DPI) > 1 or abs(ph - h * DPI) > 1:
        problems.append(f"the PNG is {pw}x{ph} px at {DPI} dpi, not the figure's {w:.2f}x{h:.2f} in (cropped?)")
    data = pdf.read_bytes()
    if b"/Type3" in data:
        problems.append("the PDF embeds a Type 3 font")
    if b"/FontFile2" not in data:
        problems.append("the PDF embeds no TrueType font program")
    texts = _drawn_texts(fig)
    scale = fig.dpi / 72.0
    tol = TOLERANCE_PT * scale
    frame = fig.bbox
    for t, box in texts:
        if t.get_fontsize() < reporting.MIN_FONT_PT:
            problems.append(f"text below {reporting.MIN_FONT_PT:g} pt: {_describe(t)}")
        if (box.x0 < frame.x0 - tol or box.y0 < frame.y0 - tol or box.x1 > frame.x1 + tol
                or box.y1 > frame.y1 + tol):
            problems.append(f"text outside the figure (cropped): {_describe(t)}")
    for (a, ba), (b, bb) in itertools.combinations(texts, 2):
        dx = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        dy = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if dx > tol and dy > tol:
            problems.append(f"overlapping texts: {_describe(a)} and {_describe(b)} "
                            f"({dx / scale:.1f} x {dy / scale:.1f} pt)")
    for ax in fig.axes:
        mappables = [*ax.images, *ax.collections]
        if getattr(ax, "_colorbar", None) is not None:
            mappables.append(ax._colorbar.mappable)
        for m in mappables:
            cmap = m.get_cmap() if hasattr(m, "get_cmap") else None
            if cmap is not None and m.get_array() is not None and cmap.name in reporting.FORBIDDEN_CMAPS:
                problems.append(f"rainbow colour map {cmap.name!r}")
    return problems


def _render_and_check(fig, stem: str, out: Path) -> None:
    assert fig is not None, f"{stem}: the builder made no figure"
    try:
        problems = check_figure(fig, stem, out)
    finally:
        plt.close(fig)
    assert not problems, f"{stem}:\n  " + "\n  ".join(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("stem", list(RECORD_FIGURES))
def test_study_figure_is_journal_ready(stem, committed, tmp_path):
    _render_and_check(RECORD_FIGURES[stem](committed), stem, tmp_path)


@pytest.mark.parametrize("stem", list(AUDIT_FIGURES))
def test_audit_figure_is_journal_ready(stem, audit_inputs, tmp_path):
    _render_and_check(AUDIT_FIGURES[stem](*audit_inputs), stem, tmp_path)


def test_every_committed_figure_is_covered():
    """Each figure under results/figures has a builder here (BUS-BRA's audit figures share BUSI's code)."""
    shown = {p.stem for p in (project_root() / "results" / "figures").glob("*.png")}
    covered = set(RECORD_FIGURES) | set(AUDIT_FIGURES) | {"fig_busbra_geometry", "fig_busbra_near_duplicate_pairs"}
    assert shown <= covered, f"figures without a style check: {sorted(shown - covered)}"


def test_style_file_sets_journal_fonts_and_sizes():
    """The shipped style: TrueType in PDF/PS, body text 7-9 pt, no rainbow default map; it is package data."""
    import matplotlib as mpl
    import tomllib

    assert reporting.STYLE_PATH.is_file()
    with reporting.plot_context():
        rc = mpl.rcParams
        assert rc["pdf.fonttype"] == 42 and rc["ps.fonttype"] == 42
        for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                    "legend.fontsize", "figure.titlesize"):
            assert 7 <= float(rc[key]) <= 9, key
        assert rc["image.cmap"] not in reporting.FORBIDDEN_CMAPS
    package_data = tomllib.loads((project_root() / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lanet_core"]
    assert "reporting/*.mplstyle" in package_data


def test_palette_is_colour_blind_safe_with_markers_and_hatches():
    """The main methods use Okabe-Ito colours (Tol's indigo, olive and grey beyond them), each a distinct colour
    and marker; variants that share a hue (ablations, ResNet50, "-F") have distinct hatches."""
    from lanet_core.reporting import palette

    main = ["R18", "R18+RMTL", "R18+LA-Net", "R18+LA-Net-fine", "U-Net", "DeepLabV3", "AGN", "EB0", "ViT"]
    assert len({palette.method_marker(m) for m in main}) == len(main)
    assert len({palette.method_color(m) for m in main}) == len(main)
    allowed = set(palette.OKABE_ITO.values()) | set(palette._TOL.values())
    assert {palette.method_color(m).upper() for m in main} <= allowed
    family = ["R18+LA-Net", "R18+LA-Net (no CAM)", "R18+LA-Net (no SAM)", "R18+LA-Net (no MAM)", "R50+LA-Net"]
    assert len({palette.method_hatch(m) for m in family}) == len(family)
    assert palette.method_hatch("R18+LA-Net-F") != palette.method_hatch("R18+LA-Net-s-SSL")


def test_overlay_refuses_rainbow_maps_and_uses_viridis():
    from lanet_core.errors import ConfigError
    from lanet_core.study import figures

    image = np.full((4, 4, 3), 128, np.uint8)
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(ConfigError, match="rainbow"):
        figures.overlay(image, heat, cmap="jet")
    out = figures.overlay(image, heat, alpha=1.0)
    viridis = (np.asarray(matplotlib.colormaps["viridis"](heat)[..., :3]) * 255).round()
    assert np.abs(out.astype(float) - viridis).max() <= 1


def test_save_fig_is_deterministic_at_the_figure_size(tmp_path):
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("single", 2.0)
        axes[0, 0].plot([0, 1], [0, 1], label="a")
        axes[0, 0].set_title("t")
    one = reporting.save_fig(fig, "f", tmp_path / "one")
    two = reporting.save_fig(fig, "f", tmp_path / "two")
    plt.close(fig)
    assert one[0].read_bytes() == two[0].read_bytes() and one[1].read_bytes() == two[1].read_bytes()
    assert Image.open(one[0]).size == (700, 400)  # 3.5 x 2.0 in at 200 dpi, no tight crop
    assert b"/Type3" not in one[1].read_bytes()
