"""Qualitative lesion-map and Grad-CAM figures (paper Figs. 5 and 12) and the scores behind them, built from
run records alone (``lesion_maps.npz``, ``gradcam.csv``, ``gradcam_examples.npz``, ``per_image.csv``), so they
re-render without checkpoints.

Pieces, bottom up:

* :func:`finished_runs` / :func:`first_run`: the finished runs of an experiment with their directories;
* :func:`load_maps` (+ :func:`lesion_maps`, :func:`gradcam_cams`): stored ``uint8`` maps as ``{image_id: (h, w)
  float in [0, 1]}``;
* :class:`ImageView`: the test images and masks as a run saw them (its size and resize policy) and the
  bilinear upsampling of a map to that size;
* :func:`pick_examples` (defined in :mod:`lanet_core.study.posthoc`): a deterministic, class-balanced choice of example images;
* :func:`overlay`, :func:`example_grid`: image / map overlays with the true (and predicted) lesion contours;
* Grad-CAM scores (:func:`gradcam_per_image`, :func:`gradcam_localisation_table`,
  :func:`gradcam_paired_table`, :func:`gradcam_score_figure`) and the IoU threshold sweep
  (:func:`iou_threshold_sweep`, :func:`sweep_table`, :func:`sweep_figure`).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from lanet_core import reporting
from lanet_core.data.images import read_image, read_mask_union, resize_array
from lanet_core.data.manifest import mask_paths
from lanet_core.data.sources import load_manifest
from lanet_core.errors import ConfigError, DataError
from lanet_core.metrics import upsample_maps
from lanet_core.stats import require_columns, require_numeric, require_unique_rows
from lanet_core.study.crossval import GIVEN_MODELS, PAIRED_TESTS, WITH_RETRAINING
from lanet_core.study.posthoc import pick_examples  # noqa: F401 (also the public name here)
from lanet_core.study.records import ExperimentResults

GRADCAM_SCORES: tuple[str, str] = ("cam_energy_in_lesion", "pointing_hit")
SCORE_LABELS = {"cam_energy_in_lesion": "CAM energy in lesion", "pointing_hit": "Pointing-game hit rate"}
GT_COLOR = "#ffffff"  # true lesion outline on the plain image (white on a black halo)
GT_OVERLAY_COLOR = "#ffffff"  # true lesion outline (dashed) on map overlays
PRED_COLOR = "#ff00ff"  # predicted lesion outline (map > threshold): magenta is in neither viridis nor magma
_SWEEP_COL = re.compile(r"^iou_t(\d+(?:\.\d+)?)$")

# ---------------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunRecord:
    """A finished run: display method name, seed, run directory and resolved config."""

    method: str
    seed: int
    run_dir: Path
    config: dict = field(repr=False)


def finished_runs(res: ExperimentResults) -> list[RunRecord]:
    """The finished runs of an experiment, in registry order (missing runs are left out)."""
    return [RunRecord(s.method, int(s.seed), r.run_dir, r.config) for s, r in zip(res.specs, res.results)
            if r is not None]


def first_run(runs: Sequence[RunRecord], method: str) -> RunRecord | None:
    """The run of ``method`` with the smallest seed, or ``None`` if the method has no finished run."""
    mine = [r for r in runs if r.method == method]
    return min(mine, key=lambda r: r.seed) if mine else None


# ---------------------------------------------------------------------------------------------------- stored maps


def load_maps(path: str | Path, key: str) -> dict[str, np.ndarray]:
    """``{image_id: (h, w) float32 in [0, 1]}`` from an ``.npz`` with ``image_id`` (N,) and ``key`` (N, h, w) uint8.

    Raises :class:`DataError` naming the file when it is missing, unreadable or inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"map archive not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("image_id", key) if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; has {list(z.files)}")
            ids, maps = z["image_id"], z[key]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as an .npz archive ({exc})") from exc
    if maps.ndim != 3 or len(ids) != len(maps):
        raise DataError(f"{path}: {key!r} must be (N, h, w) with one entry per image_id; "
                        f"got {maps.shape} for {len(ids)} ids")
    if len(set(ids.tolist())) != len(ids):
        raise DataError(f"{path}: duplicate image ids")
    scale = 255.0 if maps.dtype == np.uint8 else 1.0
    return {str(i): (m.astype(np.float32) / scale) for i, m in zip(ids.tolist(), maps)}


def lesion_maps(run: RunRecord) -> dict[str, np.ndarray]:
    """The run's test lesion-probability maps ``{image_id: (h, w) in [0, 1]}`` at the stored resolution."""
    return load_maps(run.run_dir / "lesion_maps.npz", "maps")


def gradcam_cams(run: RunRecord) -> dict[str, np.ndarray]:
    """The run's stored Grad-CAM examples ``{image_id: (64, 64) in [0, 1]}`` (input space, pooled to 64 px)."""
    return load_maps(run.run_dir / "gradcam_examples.npz", "cams")


# ---------------------------------------------------------------------------------------------------- images


@dataclass(frozen=True, eq=False)
class ImageView:
    """The images and lesion masks of a manifest as a run saw them: ``size`` x ``size`` px, resize ``policy``.

    ``align_corners`` is the run's evaluation setting, used when maps are upsampled (as the IoU was scored).
    """

    rows: pd.DataFrame  # manifest rows indexed by image_id
    data_root: Path
    size: int
    policy: str = "squash"
    align_corners: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping) -> "ImageView":
        """The view of a run's resolved config (``data.manifest/root/image_size/resize``, ``eval.align_corners``)."""
        try:
            d, e = cfg["data"], cfg.get("eval", {})
            spec, root, size = d["manifest"], d.get("root", "auto"), int(d["image_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"run config {cfg.get('name', '?')!r} lacks data.manifest/image_size ({exc})") from exc
        rows, path, data_root = load_manifest(spec, root)
        dup = rows["image_id"][rows["image_id"].duplicated()]
        if len(dup):
            raise DataError(f"manifest {path}: duplicate image_id(s) {sorted(set(dup))[:5]}")
        return cls(rows.set_index("image_id", drop=False), data_root, size, d.get("resize", "squash"),
                   bool(e.get("align_corners", True)))

    def _row(self, image_id: str) -> pd.Series:
        if image_id not in self.rows.index:
            raise DataError(f"image_id {image_id!r} is not in the manifest {self.rows.attrs.get('path', '')}")
        return self.rows.loc[image_id]

    def labels(self, split: str = "test", masked_only: bool = True) -> pd.Series:
        """``image_id -> label`` of the ``split`` images (only those with a lesion mask if ``masked_only``)."""
        rows = self.rows[self.rows["split"] == split]
        if masked_only:
            rows = rows[rows["mask_path"].str.strip() != ""]
        return rows["label"]

    def label(self, image_id: str) -> str:
        """The class label (``benign`` / ``malignant``) of an image."""
        return str(self._row(image_id)["label"])

    def load(self, image_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(image (S, S, 3) uint8, mask (S, S) bool or None)``; the mask is the resized union ``>= 0.5``."""
        row = self._row(image_id)
        try:
            image = read_image(self.data_root / row["image_path"])
            paths = mask_paths(row)
            h, w = image.shape[:2]
            mask = read_mask_union([self.data_root / p for p in paths], size=(w, h)) if paths else None
        except DataError as exc:
            raise DataError(f"image_id {image_id!r}: {exc}") from None
        image = resize_array(image, self.size, self.policy)
        return image, (None if mask is None else resize_array(mask, self.size, self.policy) >= 128)

    def upsample(self, prob: np.ndarray) -> np.ndarray:
        """A ``(h, w)`` map in [0, 1] resized bilinearly to ``(S, S)`` float32 (as the evaluation upsamples)."""
        prob = np.asarray(prob, dtype=np.float32)
        if prob.ndim != 2:
            raise DataError(f"a map must be 2-D (h, w), got shape {prob.shape}")
        t = upsample_maps(torch.from_numpy(prob)[None, None], self.size, self.align_corners)
        return np.clip(t[0, 0].numpy(), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- overlays


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = reporting.PROBABILITY_CMAP
            ) -> np.ndarray:
    """Heat map ``(S, S)`` in [0, 1], coloured by the perceptually uniform ``cmap`` (viridis for lesion
    probabilities, magma for Grad-CAMs; never jet), blended over the grey version of ``image`` ``(S, S, 3)
    uint8`` with weight ``alpha`` everywhere (a map's floor shows as its colour, as the colour bar reads).
    Returns ``(S, S, 3) uint8``."""
    from matplotlib import colormaps

    if image.ndim != 3 or image.shape[2] != 3 or heat.shape != image.shape[:2]:
        raise DataError(f"overlay: image must be (S, S, 3) and heat (S, S); got {image.shape} and {heat.shape}")
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(f"overlay: alpha must be in (0, 1], got {alpha}")
    if cmap in reporting.FORBIDDEN_CMAPS:
        raise ConfigError(f"overlay: {cmap!r} is a rainbow colour map; use viridis, magma or another uniform map")
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) / 255.0
    colour = colormaps[cmap](heat)[..., :3].astype(np.float32)
    out = (1.0 - alpha) * grey + alpha * colour
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def contours(field_: np.ndarray, level: float = 0.5) -> list[np.ndarray]:
    """Iso-contours of a 2-D map at ``level`` as ``(K, 2)`` (row, col) arrays (none for a constant map)."""
    from skimage.measure import find_contours

    arr = np.asarray(field_, dtype=np.float32)
    if arr.min() == arr.max():
        return []
    return find_contours(arr, level)


@dataclass
class ExampleRow:
    """One figure row: an image (``(S, S, 3) uint8``), its true mask (``(S, S) bool`` or None) and the maps to show
    (column title -> ``(S, S)`` in [0, 1], or None where the run or the map is missing)."""

    image_id: str
    label: str
    image: np.ndarray
    mask: np.ndarray | None
    panels: dict[str, np.ndarray | None]


def example_rows(view: ImageView, ids: Sequence[str],
                 sources: Mapping[str, Mapping[str, np.ndarray] | None]) -> list[ExampleRow]:
    """Rows for :func:`example_grid`: each id's image and mask from ``view`` and, per column, its map from
    ``sources`` (``{column: {image_id: (h, w) map}}``; a None source = run missing) upsampled to the image size."""
    out = []
    for i in ids:
        image, mask = view.load(i)
        panels = {col: (view.upsample(src[i]) if src is not None and i in src else None)
                  for col, src in sources.items()}
        out.append(ExampleRow(i, view.label(i), image, mask, panels))
    return out


def _halo(width: float = 1.6):
    from matplotlib import patheffects

    return [patheffects.Stroke(linewidth=width, foreground="black"), patheffects.Normal()]


def _contour_style(color: str, style: str = "-") -> dict:
    """Line style of a lesion outline: ``color`` on a thin black halo (visible on bright and dark pixels alike;
    the legend swatch gets the same halo)."""
    return dict(color=color, linestyle=style, linewidth=0.9, path_effects=_halo(2.0))


def _draw(ax, lines: list[np.ndarray], color: str, style: str = "-") -> None:
    for c in lines:
        ax.plot(c[:, 1], c[:, 0], **_contour_style(color, style))


#: What a map column shows: ``(colour map, colour-bar label)``; one colour bar per quantity.
MAP_QUANTITIES: dict[str, tuple[str, str]] = {
    "lesion": (reporting.PROBABILITY_CMAP, "Lesion probability"),
    "gradcam": (reporting.CAM_CMAP, "Grad-CAM (normalised to 0-1)"),
}


def example_grid(rows: Sequence[ExampleRow], *, contour_columns: Sequence[str] = (), threshold: float = 0.5,
                 alpha: float = 0.55, title: str | None = None, colorbar_label: str = "map value",
                 quantities: Mapping[str, tuple[str, str]] | None = None, conditions: str | None = None):
    """A 7.2 in wide figure: one row per example; column 1 the image with its true lesion outline (white,
    solid), then one overlay per map column with the true outline (white, dashed) and, for ``contour_columns``,
    the outline of ``map > threshold`` (magenta). ``quantities`` maps a column to ``(colour map, label)``
    (default: every column viridis, labelled ``colorbar_label``); each quantity gets one colour bar (0-1) below
    its columns. Missing maps show "n/a", all-zero maps "all zero". Returns the figure.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    if not rows:
        raise DataError("example_grid: no example rows")
    columns = list(rows[0].panels)
    quantities = {c: (quantities or {}).get(c, (reporting.PROBABILITY_CMAP, colorbar_label)) for c in columns}
    bad = [q[0] for q in quantities.values() if q[0] in reporting.FORBIDDEN_CMAPS]
    if bad:
        raise ConfigError(f"example_grid: rainbow colour map(s) {bad}; use viridis or magma")
    ncols = 1 + len(columns)
    cell = min(1.55, (reporting.TWO_COLUMNS - 0.45) / ncols)
    header = 0.55 if (title or conditions) else 0.25
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", cell * len(rows) + header + 0.75, len(rows), ncols)
        for r, row in enumerate(rows):
            truth = contours(row.mask) if row.mask is not None else []
            ax = axes[r, 0]
            ax.imshow(row.image, interpolation="nearest")
            _draw(ax, truth, GT_COLOR)
            ax.set_ylabel(f"{row.image_id}\ntrue: {row.label}")
            for c, col in enumerate(columns, start=1):
                ax, heat = axes[r, c], row.panels.get(col)
                if heat is None:
                    ax.imshow(np.full_like(row.image, 235), interpolation="nearest")
                    ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.4")
                else:
                    ax.imshow(overlay(row.image, heat, alpha, quantities[col][0]), interpolation="nearest")
                    _draw(ax, truth, GT_OVERLAY_COLOR, "--")
                    if col in contour_columns:
                        _draw(ax, contours(heat, threshold), PRED_COLOR)
                    if not heat.max() > 0:
                        ax.text(0.04, 0.96, "all zero", ha="left", va="top", transform=ax.transAxes, color="white",
                                path_effects=_halo(1.5))
        for c, col in enumerate(["Image + true lesion"] + columns):
            axes[0, c].set_title(reporting.plots.wrap(col, cell - 0.05, reporting.plots.FONT_PT), loc="center",
                                 fontsize=reporting.plots.FONT_PT)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_xlim(-0.5, rows[0].image.shape[1] - 0.5)
            ax.set_ylim(rows[0].image.shape[0] - 0.5, -0.5)
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_linewidth(0.4)
        groups: dict[tuple[str, str], list[int]] = {}
        for c, col in enumerate(columns, start=1):
            groups.setdefault(quantities[col], []).append(c)
        for (cmap, label), cols in groups.items():
            fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap=cmap), ax=list(axes[:, cols].ravel()),
                         location="bottom", label=label, fraction=0.04, aspect=12 * len(cols), pad=0.02,
                         shrink=0.9)
        handles = [Line2D([], [], **_contour_style(GT_COLOR), label="true lesion"),
                   Line2D([], [], **_contour_style(GT_OVERLAY_COLOR, "--"), label="true lesion (on maps)")]
        if contour_columns:
            handles.append(Line2D([], [], **_contour_style(PRED_COLOR), label=f"predicted lesion (map > {threshold:g})"))
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
        reporting.figure_header(fig, title, [conditions])
    return fig


def map_sources(runs: Sequence[RunRecord], columns: Mapping[str, tuple[str, str]]) -> dict[str, dict | None]:
    """``{column: maps of the first-seed run}`` for ``columns = {title: (method, "lesion" | "gradcam")}``;
    None where the method has no finished run or no stored maps."""
    loaders = {"lesion": ("lesion_maps.npz", lesion_maps), "gradcam": ("gradcam_examples.npz", gradcam_cams)}
    out: dict[str, dict | None] = {}
    for title, (method, kind) in columns.items():
        if kind not in loaders:
            raise ConfigError(f"map_sources: kind {kind!r} for {title!r} must be 'lesion' or 'gradcam'")
        run = first_run(runs, method)
        fname, load = loaders[kind]
        out[title] = load(run) if run is not None and (run.run_dir / fname).is_file() else None
    return out


def examples_figure(res: ExperimentResults, columns: Mapping[str, tuple[str, str]], *, n: int = 4, seed: int = 0,
                    contour_columns: Sequence[str] = (), title: str | None = None):
    """Fig. 5 / Fig. 12 style grid for an experiment: ``n`` class-balanced test images with masks that every
    map column covers (first seed of each method). ``columns = {title: (method, kind)}``; lesion maps in viridis,
    Grad-CAMs in magma, one colour bar per kind; columns whose method has no finished run with stored maps are
    left out. The header names the dataset, image size and initialisation. Returns ``(figure, ids)``, or
    ``(None, [])`` when no column has maps.
    """
    runs = finished_runs(res)
    sources = {k: v for k, v in map_sources(runs, columns).items() if v is not None}
    if not sources:
        return None, []
    view = ImageView.from_config(first_run(runs, columns[next(iter(sources))][0]).config)
    present = list(sources.values())
    ids = pick_examples(view.labels(), n, available=[m.keys() for m in present], seed=seed)
    if not ids:
        return None, []
    shown = [r for r in (first_run(runs, columns[k][0]) for k in sources) if r is not None]
    cond = describe_conditions([_entry(r.method, r.seed, r.config, None) for r in shown], seeds=False)
    fig = example_grid(example_rows(view, ids, sources), contour_columns=contour_columns, title=title,
                       quantities={k: MAP_QUANTITIES[columns[k][1]] for k in sources},
                       conditions=f"{len(ids)} test images with a mask, first seed of each method; maps upsampled "
                                  f"bilinearly to the input size" + (f" · {cond}" if cond else ""))
    return fig, ids


# ---------------------------------------------------------------------------------------------------- conditions

DATASET_NAMES = {"busi": "BUSI", "busbra": "BUS-BRA"}


def _entry(method: str, seed: int, config: Mapping | None, metrics: Mapping | None, **extra) -> dict:
    """What :func:`describe_conditions` reads from one run: manifest, test images, input size, weights."""
    d = (config or {}).get("data", {}) if isinstance(config, Mapping) else {}
    m = (config or {}).get("model", {}) if isinstance(config, Mapping) else {}
    test = (metrics or {}).get("test", {}) if isinstance(metrics, Mapping) else {}
    return {"method": method, "seed": seed, "manifest": d.get("manifest"), "image_size": d.get("image_size"),
            "weights": m.get("weights"), "n_test": test.get("n_images"), **extra}


def _dataset_text(manifests: Iterable) -> str:
    names = []
    for spec in manifests:
        if not isinstance(spec, str) or not spec:
            continue
        stem = Path(spec).stem.lower()
        base = DATASET_NAMES.get(stem.split("_")[0], stem.split("_")[0])
        cv = re.search(r"_cv(\d+)_", stem + "_")
        names.append(f"{base}, {cv.group(1)}-fold CV" if cv else f"{base}, fixed split")
    return " and ".join(dict.fromkeys(names))


def _range_text(values: Iterable, unit: str = "", span: bool = True) -> str:
    """``"3"``, ``"1-3"`` (``span``: counts) or ``"128, 256"`` (distinct settings), with ``unit``."""
    vals = sorted({int(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))})
    if not vals:
        return ""
    text = str(vals[0]) if len(vals) == 1 else (f"{vals[0]}-{vals[-1]}" if span else ", ".join(map(str, vals)))
    return f"{text}{unit}"


def describe_conditions(entries: Sequence[Mapping], *, seeds: bool = True) -> str:
    """One line of a figure's conditions from its runs (``entries``: dicts with method, seed, manifest, n_test,
    image_size, weights; None where unknown): ``"BUSI, fixed split, 130 test images · 3 seeds per method · 128 px
    · from scratch"``. Parts that are unknown are left out."""
    if not entries:
        return ""
    df = pd.DataFrame(list(entries))
    parts = []
    data = _dataset_text(pd.unique(df["manifest"].dropna())) if "manifest" in df else ""
    n_test = _range_text(df["n_test"]) if "n_test" in df else ""
    if data or n_test:
        parts.append(", ".join(p for p in (data, f"{n_test} test images" if n_test else "") if p))
    if seeds and {"method", "seed"} <= set(df):
        per = df.groupby("method")["seed"].nunique()
        n = _range_text(per)
        parts.append(f"{n} seed{'s' if n != '1' else ''} per method")
    size = _range_text(df["image_size"], " px", span=False) if "image_size" in df else ""
    if size:
        parts.append(size)
    if "weights" in df and df["weights"].notna().any():
        inits = ["from scratch" if str(w) == "none" else "ImageNet-pretrained" for w in pd.unique(df["weights"].dropna())]
        parts.append(" and ".join(dict.fromkeys(inits)))
    return " \u00b7 ".join(parts)


def experiment_conditions(res: ExperimentResults, methods: Sequence[str] | None = None) -> str:
    """:func:`describe_conditions` of an experiment's finished runs (only ``methods`` when given)."""
    entries = [_entry(r.method, r.seed, r.config, _metrics_of(r.run_dir)) for r in finished_runs(res)
               if methods is None or r.method in methods]
    return describe_conditions(entries)


def run_conditions(runs: pd.DataFrame, runs_root: str | Path | None) -> str:
    """:func:`describe_conditions` of a runs table (``res.runs()``, possibly filtered): size, weights and seeds
    from its columns; manifest and number of test images from each run's ``provenance.json`` /
    ``metrics.json`` under ``runs_root`` where they exist."""
    import json

    if runs is None or runs.empty or "method" not in runs:
        return ""
    entries = []
    for row in runs.to_dict("records"):
        manifest, n_test = None, None
        run_dir = Path(runs_root) / str(row["run"]) if runs_root is not None and "run" in row else None
        if run_dir is not None and (run_dir / "provenance.json").is_file():
            try:
                manifest = json.loads((run_dir / "provenance.json").read_text()).get("manifest")
            except (OSError, ValueError):
                manifest = None
        if run_dir is not None:
            n_test = (_metrics_of(run_dir) or {}).get("test", {}).get("n_images")
        entries.append({"method": row["method"], "seed": row.get("seed"), "manifest": manifest, "n_test": n_test,
                        "image_size": row.get("image_size"), "weights": row.get("weights")})
    return describe_conditions(entries)


def _metrics_of(run_dir: Path) -> dict | None:
    import json

    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------- Grad-CAM scores


def gradcam_per_image(gradcam: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Per-image Grad-CAM scores of ``methods`` on the test images with a mask that every method scored
    (``res.gradcam()`` rows: method, seed, image_id, has_mask, cam_energy_in_lesion, pointing_hit).

    ``cam_energy_in_lesion`` is NaN where the CAM is all zero (no energy); such images count as misses in
    ``pointing_hit``. Adds ``zero_cam`` (1 where the energy is NaN).
    """
    require_columns(gradcam, ["method", "seed", "image_id", "has_mask", *GRADCAM_SCORES], "gradcam_per_image")
    require_numeric(gradcam, ["has_mask", *GRADCAM_SCORES], "gradcam_per_image")
    df = gradcam[gradcam["method"].isin(methods) & (gradcam["has_mask"] == 1)].copy()
    # e.g. one method and seed in two regimes: select one group first (pretraining.gradcam_by_regime)
    require_unique_rows(df, ["method", "seed", "image_id"], "gradcam_per_image",
                        hint="filter the runs to one group first")
    common = None
    for m in methods:
        ids = set(df.loc[df["method"] == m, "image_id"])
        common = ids if common is None else common & ids
    df = df[df["image_id"].isin(common or set())].reset_index(drop=True)
    df["zero_cam"] = df["cam_energy_in_lesion"].isna().astype(int)
    return df


def gradcam_runs(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed): ``n_images``, ``n_zero_cam`` and the mean of each score (NaN energies skipped)."""
    require_columns(per_image, ["method", "seed", "zero_cam", *GRADCAM_SCORES], "gradcam_runs")
    g = per_image.groupby(["method", "seed"], sort=False)
    out = g[list(GRADCAM_SCORES)].mean()
    out.insert(0, "n_images", g.size())
    out.insert(1, "n_zero_cam", g["zero_cam"].sum())
    return out.reset_index()


def gradcam_localisation_table(per_image: pd.DataFrame, reference: str, order: Sequence[str] | None = None,
                               ) -> pd.DataFrame:
    """Per method: mean ± 95 % CI over seeds of the run-mean CAM energy in the lesion and pointing hit rate
    (two-sided Welch t-test against ``reference``, :func:`lanet_core.reporting.comparison_table`), plus the number of
    scored images per run and the total number of zero-energy CAMs (excluded from the energy mean)."""
    runs = gradcam_runs(per_image)
    if runs.empty:
        return pd.DataFrame()
    tab = reporting.comparison_table(runs, list(GRADCAM_SCORES), reference, order=order)
    counts = runs.groupby("method", sort=False).agg(images_per_run=("n_images", "max"),
                                                    zero_energy_cams=("n_zero_cam", "sum"))
    tab.insert(2, "images_per_run", tab["method"].map(counts["images_per_run"]))
    tab.insert(3, "zero_energy_cams", tab["method"].map(counts["zero_energy_cams"]))
    return tab


def gradcam_paired_table(per_image: pd.DataFrame, method: str, baseline: str, *, n_resamples: int = 2000,
                         seed: int = 0) -> pd.DataFrame:
    """Paired per-image bootstrap CI of ``method`` minus ``baseline`` for each Grad-CAM score (per-image values
    averaged over seeds first; images where either score is NaN dropped and counted in ``n_dropped``)."""
    df = per_image[per_image["method"].isin([method, baseline])]
    if df.empty or not {method, baseline} <= set(df["method"]):
        return pd.DataFrame()
    tab = reporting.paired_bootstrap_table(df, baseline, metric_cols=list(GRADCAM_SCORES), n_resamples=n_resamples,
                                           seed=seed)
    tab.insert(1, "comparison", f"{method} − {baseline}")
    return tab.reset_index(drop=True)


def gradcam_score_figure(per_image: pd.DataFrame, order: Sequence[str], reference: str | None = None,
                         conditions: str | None = None):
    """Three panels sharing one row per method: (a) violin of the per-image CAM energy in the lesion (averaged
    over seeds), (b, c) bars (mean, 95 % CI over seeds, seeds as dots) of the run-mean energy and pointing-game
    hit rate. 7.2 in wide; the reading key and ``conditions`` in the header. Returns the figure."""
    import seaborn as sns

    palette = reporting.method_palette(order)
    runs = gradcam_runs(per_image)
    img = per_image.groupby(["method", "image_id"], sort=False)["cam_energy_in_lesion"].mean().reset_index()
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", 1.45 + 0.32 * len(order), 1, 3, sharey=True)
        axes = axes[0]
        finite = img.dropna(subset=["cam_energy_in_lesion"])
        if len(finite):
            sns.violinplot(data=finite, y="method", x="cam_energy_in_lesion", hue="method", order=list(order),
                           hue_order=list(order), palette=palette, cut=0, inner="quartile", legend=False,
                           orient="h", linewidth=0.6, ax=axes[0])
        for i, m in enumerate(order):
            if not (finite["method"] == m).any():
                axes[0].text(0.5, i, "no CAM energy", ha="center", va="center", color="0.4",
                             fontsize=reporting.plots.FONT_PT)
        axes[0].set_yticks(range(len(order)), list(order))
        axes[0].set_ylim(len(order) - 0.5, -0.5)
        axes[0].set_xlim(0, 1)
        axes[0].set_ylabel("")
        axes[0].set_xlabel("Share of CAM energy inside the lesion")
        axes[0].set_title("CAM energy in lesion, per image")
        xlabels = {"cam_energy_in_lesion": "Share of CAM energy inside the lesion", "pointing_hit": "Hit rate"}
        titles = {"cam_energy_in_lesion": "CAM energy in lesion, per run", "pointing_hit": "Pointing game, per run"}
        for ax, metric in zip(axes[1:], GRADCAM_SCORES):
            reporting.bar_ci_plot(runs, metric, ax, order=list(order), palette=palette, reference=reference,
                                  orient="h")
            ax.set_xlabel(xlabels[metric])
            ax.set_title(titles[metric])
            ax.xaxis.set_major_locator(reporting.plots._max_ticks(4))
            ax.tick_params(axis="y", length=0)
        for tick, m in zip(axes[0].get_yticklabels(), order):
            if m == reference:
                tick.set_fontweight("bold")
        reporting.label_panels(axes)
        n_img = per_image.groupby("method")["image_id"].nunique().max() if len(per_image) else 0
        key = (f"(a) violins: per-image values (mean over seeds) on {n_img} test images with a mask, lines at the "
               "quartiles; (b, c) " + reporting.plots.bars_key(runs, reference).replace("Bars:", "bars:"))
        reporting.figure_header(fig, None, [key, conditions])
    return fig


# ---------------------------------------------------------------------------------------------------- IoU sweep


def iou_threshold_sweep(per_image: pd.DataFrame, group_cols: Sequence[str] = ("method", "seed")) -> pd.DataFrame:
    """Long table of the lesion-map threshold sweep: one row per run (``group_cols``) and threshold with the mean
    per-image IoU over the images with a mask (per_image columns ``iou_t<thr>``). Runs without values (e.g.
    classifiers) are dropped. Columns: group cols, ``threshold`` (float), ``iou``."""
    cols = {c: float(m.group(1)) for c in per_image.columns if (m := _SWEEP_COL.match(str(c)))}
    if per_image.empty or not cols:
        return pd.DataFrame(columns=[*group_cols, "threshold", "iou"])
    require_columns(per_image, group_cols, "iou_threshold_sweep")
    require_numeric(per_image, list(cols), "iou_threshold_sweep")
    means = per_image.groupby(list(group_cols), sort=False)[list(cols)].mean().reset_index()  # NaN (no mask) skipped
    means["_run"] = np.arange(len(means))  # keep the runs in order of appearance
    long = means.melt(id_vars=[*group_cols, "_run"], var_name="column", value_name="iou")
    long["threshold"] = long["column"].map(cols)
    long = long.dropna(subset=["iou"]).sort_values(["_run", "threshold"], kind="stable")
    return long[[*group_cols, "threshold", "iou"]].reset_index(drop=True)


#: Row labels of :func:`sweep_table` besides the thresholds.
SWEEP_SEEDS_ROW = "n seeds"
SWEEP_BEST_ROW = "best threshold (test)"


def sweep_table(sweep: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """The threshold sweep as a reader compares it: one row per lesion-map threshold, one column per method
    holding the mean ± 95 % CI over seeds of the IoU (text), with its numeric companion ``<method>_mean``.

    Column ``threshold`` holds the threshold (``"0.5"``); a first row ``"n seeds"`` gives each method's number of
    seeds and a last row ``"best threshold (test)"`` the threshold with the highest mean IoU, the lowest on a tie
    (descriptive: the argmax of test means is never used to select anything). Long by threshold so that it stays
    narrow: 9 thresholds x "IoU ± CI" side by side did not fit a notebook's output area."""
    from lanet_core.stats import mean_ci

    if sweep.empty:
        return pd.DataFrame()
    require_columns(sweep, ["method", "seed", "threshold", "iou"], "sweep_table")
    methods = list(pd.unique(sweep["method"]))
    if order is not None:
        methods = [m for m in order if m in methods] + [m for m in methods if m not in order]
    thresholds = sorted(pd.unique(sweep["threshold"]))
    text: dict[str, list[str]] = {m: [] for m in methods}
    means: dict[str, list[float]] = {m: [] for m in methods}
    seeds, best = {}, {}
    for m in methods:
        sub = sweep[sweep["method"] == m]
        seeds[m] = str(int(sub["seed"].nunique()))
        for t in thresholds:
            ci = mean_ci(sub.loc[sub["threshold"] == t, "iou"])
            text[m].append(reporting.format_metric_ci("iou", ci.mean, ci.half_width))
            means[m].append(ci.mean)
        finite = [(v, t) for v, t in zip(means[m], thresholds) if np.isfinite(v)]
        best[m] = f"{max(finite, key=lambda vt: vt[0])[1]:g}" if finite else ""  # a tie: the lowest threshold
    rows = [{"threshold": SWEEP_SEEDS_ROW, **seeds}]
    for i, t in enumerate(thresholds):
        rows.append({"threshold": f"{t:g}", **{m: text[m][i] for m in methods},
                     **{f"{m}_mean": means[m][i] for m in methods}})
    rows.append({"threshold": SWEEP_BEST_ROW, **best})
    return pd.DataFrame(rows, columns=["threshold", *methods, *[f"{m}_mean" for m in methods]])


def sweep_figure(sweep: pd.DataFrame, order: Sequence[str] | None = None, threshold: float | None = 0.5,
                 conditions: str | None = None):
    """Mean IoU vs lesion-map threshold per method (95 % CI over seeds as whiskers, methods shifted sideways;
    one marker per method); a dotted line at the evaluation ``threshold``. 7.2 in wide, the legend on the right.
    Returns the figure."""
    if sweep.empty:
        raise DataError("sweep_figure: no threshold-sweep values (no run stores iou_t<thr> columns)")
    levels = list(pd.unique(sweep["method"]))
    if order is not None:
        levels = [m for m in order if m in levels] + [m for m in levels if m not in order]
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", 3.4)
        ax = axes[0, 0]
        reporting.line_ci_plot(sweep, "threshold", "iou", "method", ax, order=levels, legend=False, dodge_pt=2.5)
        if threshold is not None:
            ax.axvline(threshold, color="0.5", linestyle=":", linewidth=1, label=f"evaluation threshold ({threshold:g})")
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.0))  # IoU lives in [0, 1]; CI whiskers of few seeds may not
        ax.set_xlabel("Lesion-map threshold")
        ax.set_ylabel("Test IoU (mean over images)")
        n = sweep.groupby("method")["seed"].nunique().max() if "seed" in sweep else None
        key = (f"Mean over runs; whiskers: 95 % t-CI over {n} seeds" if n and n > 1 else "One run per method")
        reporting.figure_header(fig, "Test IoU vs lesion-map threshold", [key, conditions])
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", ncol=1, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------------- lesion map design


def _ci_cells(values: pd.Series, metric: str) -> dict[str, object]:
    from lanet_core.stats import mean_ci

    ci = mean_ci(values.dropna())
    fmt_metric = "iou" if metric.startswith(("val_iou", "iou")) else metric.split("@")[0]
    return {metric: reporting.format_metric_ci(fmt_metric, ci.mean, ci.half_width), f"{metric}_mean": ci.mean,
            f"{metric}_half_width": ci.half_width}


def target_table(runs: pd.DataFrame, metrics: Sequence[str], by: str = "target") -> pd.DataFrame:
    """One row per training target: seeds, mean ± 95 % CI over seeds of ``metrics`` (validation IoU first),
    and ``chosen`` = the target with the highest mean validation IoU at the tuned threshold (``val_iou_tuned``;
    test columns never enter the choice)."""
    if runs.empty or by not in runs:
        return pd.DataFrame()
    rows = []
    for key, grp in runs.groupby(by, sort=False):
        row: dict[str, object] = {by: key, "n_seeds": int(grp["seed"].nunique())}
        for m in metrics:
            if m in grp:
                row.update(_ci_cells(grp[m], m))
        rows.append(row)
    out = pd.DataFrame(rows)
    crit = "val_iou_tuned_mean" if "val_iou_tuned_mean" in out else "val_iou_mean"
    out["chosen"] = out[crit] == out[crit].max()
    return out


#: How :func:`selection_table` names a selection criterion in its headers.
CRITERION_NAMES = {"accuracy": "val accuracy", "auc+iou": "mean(val AUC, val IoU)"}


def selection_table(runs: pd.DataFrame, criterion: str = "auc+iou") -> pd.DataFrame:
    """Per joint method and metric (test accuracy, AUC, IoU, IoU at the tuned threshold): the value of the epoch
    selected by validation accuracy (the run's result, column ``selected by val accuracy``) and of the epoch
    selected by ``criterion`` (recorded beside it, e.g. ``selected by mean(val AUC, val IoU)``), mean ± 95 % CI
    over the runs that recorded both, and ``difference`` = second minus first (paired: the same runs), in the
    metric's units (points for %, fraction for IoU). One row per (method, metric) with a value, the unit in the
    ``metric`` cell, so that the table stays narrow; ``n_seeds`` counts the runs behind the row. Numeric
    ``difference_mean``."""
    metrics = ("accuracy", "auc", "iou", "iou_tuned")
    first = f"{metrics[0]}@{criterion}"
    if runs.empty or first not in runs:
        return pd.DataFrame()
    sub = runs[runs[first].notna() & (runs.get("selected_by", "accuracy") == "accuracy")]
    by_acc = f"selected by {CRITERION_NAMES['accuracy']}"
    by_alt = f"selected by {CRITERION_NAMES.get(criterion, 'val ' + criterion)}"
    rows = []
    for method, grp in sub.groupby("method", sort=False):
        for m in metrics:
            alt = f"{m}@{criterion}"
            if m not in grp or alt not in grp:
                continue
            both = grp[[m, alt, "seed"]].astype({m: float, alt: float}).dropna(subset=[m, alt])
            if both.empty:  # the metric was not recorded (a classifier's IoU, older runs)
                continue
            a, b = both[m], both[alt]
            diff = float((b - a).mean())  # a fraction, shown and stored in the metric's display units
            rows.append({"method": method, "n_seeds": int(both["seed"].nunique()), "metric": m,
                         by_acc: _ci_cells(a, m)[m], by_alt: _ci_cells(b, m)[m],
                         "difference": reporting.format_signed(m, diff),
                         "difference_mean": diff * reporting.metric_format(m).scale})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- cross-validation


def _pair_label(a: str, b: str) -> str:
    """Two-line row label of a comparison ``a - b``."""
    return f"{a}\n\u2212 {b}"


def cv_forest_figure(paired: pd.DataFrame, conditions: str | None = None):
    """Forest plot of cross-validated paired differences ``a - b`` (:func:`lanet_core.study.crossval.paired_table`):
    one panel per metric (a), (b), ... sharing one label column and the same rows (every comparison; "n/a" where a
    metric cannot be compared), each with its own x axis in the metric's units. Per row: the difference with its
    95 % CI **with retraining** (black circle, the verdict) and **given these trained models** (grey square, the
    per-image test), zero dashed. 7.2 in wide. Returns the figure."""
    from matplotlib.lines import Line2D


    require_columns(paired, ["a", "b", "metric"], "cv_forest_figure")
    metrics = list(dict.fromkeys(paired["metric"]))
    pairs = list(dict.fromkeys(zip(paired["a"], paired["b"])))
    rows = [_pair_label(a, b) for a, b in pairs]
    series = ((WITH_RETRAINING, "with retraining", "black", "o"),
              (GIVEN_MODELS, "given these trained models", "0.55", "s"))
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", 1.55 + 0.3 * len(pairs), 1, len(metrics), sharey=True)
        for ax, m in zip(axes[0], metrics):
            sub = paired[paired["metric"] == m].set_index(["a", "b"]).reindex(pairs)
            cols = [(c, lab, color, mk) for c, lab, color, mk in series if f"{c}_diff" in sub]
            reporting.dot_ci_panel(ax, rows, [
                {"label": lab, "color": color, "marker": mk, "mean": sub[f"{c}_diff"], "low": sub[f"{c}_low"],
                 "high": sub[f"{c}_high"]} for c, lab, color, mk in cols])
            ax.axvline(0, color="0.3", linewidth=0.7, linestyle="--", zorder=1)
            values = np.concatenate([sub[f"{c}_{k}"].to_numpy(dtype=float) for c, *_ in cols
                                     for k in ("diff", "low", "high")]  # a hollow estimate has no interval
                                    + [np.zeros(1)])
            values = values[np.isfinite(values)]
            lo, hi = float(values.min()), float(values.max())
            pad = 0.1 * (hi - lo if hi > lo else 1.0)
            ax.set_xlim(lo - pad, hi + pad)  # zero always inside, never on the frame
            ax.xaxis.set_major_locator(reporting.plots._max_ticks(4))
            have = (sub[[f"{c}_diff" for c, *_ in cols]].notna().any(axis=1).to_numpy() if cols
                    else np.zeros(len(pairs), dtype=bool))
            for i in np.flatnonzero(~have):  # the row stays, so every panel lists the same comparisons
                ax.text(0.98, i, "n/a", transform=ax.get_yaxis_transform(), ha="right", va="center", color="0.45",
                        fontsize=reporting.plots.FONT_PT)
            fmt = reporting.metric_format(m)
            unit = "points" if fmt.scale == 100 else "fraction"
            name = reporting.metric_title(m)
            ax.set_xlabel(f"{name} difference ({unit})")
            ax.set_title(name)
        for ax in axes[0][1:]:
            ax.tick_params(axis="y", length=0)
        reporting.label_panels(axes[0])
        n_img = (reporting.count_range(paired["n_images"].dropna())
                 if "n_images" in paired and paired["n_images"].notna().any() else None)
        n_runs = paired["runs (fold x seed)"] if "runs (fold x seed)" in paired else pd.Series(dtype=float)
        runs_text = (f" over {reporting.count_range(n_runs.dropna())} (fold, seed) runs" if n_runs.notna().any()
                     else "")
        tests = ", ".join(f"{PAIRED_TESTS[m]} for {reporting.metric_title(m)}" for m in metrics
                          if m in PAIRED_TESTS)
        one_run = bool((n_runs < 2).any())  # one (fold, seed) pair: an estimate without a CI, drawn hollow
        key = ("Difference first minus second, 95 % CI, two-sided. Black circles: with retraining (the verdict; "
               f"corrected repeated k-fold t{runs_text}"
               + ("; hollow: one (fold, seed) pair, no CI, no verdict" if one_run else "")
               + "); grey squares: given these trained models (per-image tests "
               "on the out-of-fold predictions" + (f" of {n_img} images" if n_img else "") + f": {tests})")
        reporting.figure_header(fig, "Cross-validated paired differences", [key, conditions])
        handles = [Line2D([], [], color=color, marker=mk, linestyle="-", markersize=4, label=lab)
                   for _, lab, color, mk in series]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig
