"""Tables and figures for the study: "mean ± CI" text, comparison tables with the paper's t-test, paired
bootstrap tables, deterministic CSV/Markdown/LaTeX/PNG/PDF writers, a fixed colour per method, and the bar /
line plots shared by the notebooks.

Metric values arrive as fractions in [0, 1]; :data:`METRIC_FORMATS` says how each is shown (classification
metrics ×100 with one decimal, IoU/Dice as fractions with three). Everything written is byte-identical when
re-run on the same input with the same library versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from lanet_core.io import atomic_write_bytes, atomic_write_text
from lanet_core.errors import ConfigError, DataError
from lanet_core.stats import (
    IDENTICAL_REPEATS,
    TTest,
    mean_ci,
    welch_ttest,
    paired_bootstrap_diff,
    require_columns,
    require_numeric,
    significance_stars,
)

# --------------------------------------------------------------------------------------------------------------
# how metrics are shown


@dataclass(frozen=True)
class MetricFormat:
    """Display of one metric: axis/column ``label``, multiply by ``scale``, round to ``digits`` decimals."""

    label: str
    scale: float = 1.0
    digits: int = 3


_PCT = dict(scale=100.0, digits=1)
METRIC_FORMATS: dict[str, MetricFormat] = {
    "accuracy": MetricFormat("Accuracy (%)", **_PCT),
    "correct": MetricFormat("Accuracy (%)", **_PCT),
    "balanced_accuracy": MetricFormat("Balanced accuracy (%)", **_PCT),
    "precision_macro": MetricFormat("Precision, macro (%)", **_PCT),
    "recall_macro": MetricFormat("Recall, macro (%)", **_PCT),
    "specificity_macro": MetricFormat("Specificity, macro (%)", **_PCT),
    "f1_macro": MetricFormat("F1, macro (%)", **_PCT),
    "auc": MetricFormat("AUC (%)", **_PCT),
    "precision_malignant": MetricFormat("Precision, malignant (%)", **_PCT),
    "recall_malignant": MetricFormat("Sensitivity, malignant (%)", **_PCT),
    "specificity_malignant": MetricFormat("Specificity, malignant (%)", **_PCT),
    "f1_malignant": MetricFormat("F1, malignant (%)", **_PCT),
    "iou": MetricFormat("IoU", 1.0, 3),
    "dice": MetricFormat("Dice", 1.0, 3),
    "iou_tuned": MetricFormat("IoU at the validation-tuned threshold", 1.0, 3),
    "dice_tuned": MetricFormat("Dice at the validation-tuned threshold", 1.0, 3),
    "iou_box": MetricFormat("IoU (box)", 1.0, 3),
    "dice_box": MetricFormat("Dice (box)", 1.0, 3),
    "p_malignant": MetricFormat("P(malignant)", 1.0, 3),
}

#: Labels for non-metric columns used on plot axes and legends.
AXIS_LABELS: dict[str, str] = {
    "method": "Method",
    "backbone": "Backbone",
    "image_size": "Input size (px)",
    "seed": "Seed",
    "label_ratio": "Fraction of training images with masks",
    "label_fraction": "Fraction of training images with masks",
    "ratio": "Fraction of training images with location labels",
    "fold": "Cross-validation fold",
    "threshold": "Lesion-map threshold",
    "tau": "Pseudo-label class gate tau",
    "alpha": "Pseudo-label loss weight alpha",
}


def metric_format(metric: str) -> MetricFormat:
    """The :class:`MetricFormat` of ``metric``; unknown names are shown unscaled with 3 decimals."""
    return METRIC_FORMATS.get(metric, MetricFormat(axis_label(metric)))


def axis_label(name: str) -> str:
    """Readable label for a metric or column name (``"accuracy"`` → ``"Accuracy (%)"``, ``"iou"`` → ``"IoU"``)."""
    if name in METRIC_FORMATS:
        return METRIC_FORMATS[name].label
    if name in AXIS_LABELS:
        return AXIS_LABELS[name]
    return name.replace("_", " ").capitalize()


def format_mean_ci(mean: float, half_width: float, scale: float = 100, digits: int = 1) -> str:
    """``"95.1 ± 1.7"`` from fractions ``(0.951, 0.017)``; ``""`` for a NaN mean; the mean alone if the half
    width is NaN (a single run)."""
    if mean is None or not math.isfinite(float(mean)):
        return ""
    text = f"{float(mean) * scale:.{digits}f}"
    if half_width is None or not math.isfinite(float(half_width)):
        return text
    return f"{text} ± {float(half_width) * scale:.{digits}f}"


def format_metric_ci(metric: str, mean: float, half_width: float) -> str:
    """:func:`format_mean_ci` with the scale and digits of ``metric`` from :data:`METRIC_FORMATS`."""
    fmt = metric_format(metric)
    return format_mean_ci(mean, half_width, scale=fmt.scale, digits=fmt.digits)


def format_diff_ci(metric: str, diff: float, low: float, high: float) -> str:
    """Signed difference with its interval in the metric's display units, e.g. ``"+2.4 [-1.2, +6.1]"``."""
    fmt = metric_format(metric)

    def one(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v * fmt.scale:+.{fmt.digits}f}"

    if not math.isfinite(diff):
        return ""
    return f"{one(diff)} [{one(low)}, {one(high)}]"


# --------------------------------------------------------------------------------------------------------------
# grouping helpers shared by the two table builders


def _check_group_cols(df: pd.DataFrame, group_cols: Sequence[str], method_col: str, what: str) -> list[str]:
    group_cols = list(group_cols)
    if method_col not in group_cols:
        raise ConfigError(f"{what}: method_col {method_col!r} must be one of group_cols {group_cols}")
    require_columns(df, group_cols, what)
    return group_cols


def _reference_key(key: tuple, group_cols: list[str], method_col: str, reference: str) -> tuple:
    """The group key of the reference method in the same stratum (same values of the other group columns)."""
    i = group_cols.index(method_col)
    return key[:i] + (reference,) + key[i + 1 :]


def _ordered_groups(
    df: pd.DataFrame, group_cols: list[str], method_col: str, order: Sequence[str] | None
) -> list[tuple[tuple, pd.DataFrame]]:
    """(key, rows) per group: in order of first appearance, or by position of the method in ``order``
    (methods not in ``order`` follow, in order of appearance)."""
    groups = [
        (k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(group_cols, sort=False, dropna=False)
    ]
    if order is None:
        return groups
    rank = {m: i for i, m in enumerate(order)}
    i = group_cols.index(method_col)
    return sorted(groups, key=lambda kg: rank.get(kg[0][i], len(rank)))  # stable: keeps appearance order


def _require_reference(df: pd.DataFrame, method_col: str, reference: str, what: str) -> None:
    if reference not in set(df[method_col]):
        raise ConfigError(
            f"{what}: reference method {reference!r} not found in column {method_col!r}; "
            f"methods: {list(pd.unique(df[method_col]))}"
        )


# --------------------------------------------------------------------------------------------------------------
# tables


def comparison_table(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    reference: str,
    method_col: str = "method",
    group_cols: Sequence[str] = ("method",),
    extra_cols: Sequence[str] = (),
    order: Sequence[str] | None = None,
    confidence: float = 0.95,
    numeric: bool = True,
) -> pd.DataFrame:
    """One row per method (per group): "mean ± CI" per metric and the study's two-sided Welch t-test vs ``reference``.

    ``runs`` has one row per run (seed) with metric columns as fractions. Groups are ``group_cols`` (must
    include ``method_col``); the reference is matched within the other group columns (e.g. with
    ``group_cols=("method", "image_size")`` each method at 256 px is compared with the reference at 256 px).
    ``extra_cols`` are carried over and must be constant within a group. Rows follow first appearance, or
    ``order`` (method names). Columns: group cols, extra cols, ``n`` (runs), then for each metric ``m``:
    ``m`` (text "95.1 ± 1.7", :data:`METRIC_FORMATS` units), ``m_sig`` (stars, ``"ns"``, ``"identical
    repeats"``, ``"n < 2"``, ``"reference"``, or ``""`` where the metric does not apply) and, if ``numeric``,
    ``m_n, m_mean, m_sd, m_half_width, m_low, m_high`` (fractions) and ``m_t, m_p``. The test is
    the study's one convention (:data:`~lanet_core.stats.SIGNIFICANCE_TEST`): two-sided Welch t-test of the method
    against the reference; significant labels say the direction (``"** lower"``, ``"* higher"``).
    """
    metrics = list(metrics)
    extra_cols = list(extra_cols)
    group_cols = _check_group_cols(runs, group_cols, method_col, "comparison_table")
    require_columns(runs, metrics + extra_cols, "comparison_table")
    require_numeric(runs, metrics, "comparison_table")
    _require_reference(runs, method_col, reference, "comparison_table")
    groups = _ordered_groups(runs, group_cols, method_col, order)
    by_key = dict(groups)
    rows = []
    for key, grp in groups:
        row: dict[str, Any] = dict(zip(group_cols, key))
        for col in extra_cols:
            vals = pd.unique(grp[col])
            if len(vals) != 1:
                raise DataError(f"comparison_table: extra column {col!r} is not constant within group {key}: "
                                f"{list(vals)}")
            row[col] = vals[0]
        row["n"] = len(grp)
        ref_key = _reference_key(key, group_cols, method_col, reference)
        ref = by_key.get(ref_key)
        for m in metrics:
            ci = mean_ci(grp[m], confidence)
            row[m] = format_metric_ci(m, ci.mean, ci.half_width)
            test: TTest | None = None
            if key == ref_key:
                sig = "reference"
            elif ref is None:
                sig = "no reference"
            elif ci.n == 0 or ref[m].notna().sum() == 0:
                sig = ""
            else:
                test = welch_ttest(grp[m], ref[m])
                sig = test.label
            row[f"{m}_sig"] = sig
            if numeric:
                row.update({f"{m}_n": ci.n, f"{m}_mean": ci.mean, f"{m}_sd": ci.sd,
                            f"{m}_half_width": ci.half_width, f"{m}_low": ci.low, f"{m}_high": ci.high,
                            f"{m}_t": test.statistic if test else math.nan,
                            f"{m}_p": test.pvalue if test else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_bootstrap_table(
    per_image: pd.DataFrame,
    reference: str,
    metric_cols: Sequence[str] = ("correct", "iou"),
    method_col: str = "method",
    group_cols: Sequence[str] = ("method",),
    image_col: str = "image_id",
    seed_col: str = "seed",
    order: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "BCa",
) -> pd.DataFrame:
    """Per method vs ``reference``: paired bootstrap CI over test images of the per-image metric difference.

    Each method's per-image values are first **averaged over seeds** (so a method's per-image "correct" is the
    fraction of its seeds that classified the image correctly), then images are resampled jointly for the two
    methods (aligned by ``image_col``; see :func:`lanet_core.stats.paired_bootstrap_diff`). This captures
    test-set sampling noise, complementing the repeat-level t-test. The reference is matched within the other
    ``group_cols``. One row per (non-reference group, metric): group cols, ``metric``, ``n_images``
    (pairs used), ``n_dropped``, ``n_seeds``, ``n_seeds_reference``, ``mean``, ``mean_reference``, ``diff``
    (method − reference), ``low``, ``high`` (fractions), ``diff_ci`` (text in display units),
    ``bootstrap_method``, ``note`` (e.g. ``"all values identical"``, or why no interval exists).
    """
    metric_cols = list(metric_cols)
    group_cols = _check_group_cols(per_image, group_cols, method_col, "paired_bootstrap_table")
    require_columns(per_image, metric_cols + [image_col, seed_col], "paired_bootstrap_table")
    require_numeric(per_image, metric_cols, "paired_bootstrap_table")
    _require_reference(per_image, method_col, reference, "paired_bootstrap_table")
    dup = per_image.duplicated(group_cols + [seed_col, image_col], keep=False)
    if dup.any():
        sample = per_image.loc[dup, group_cols + [seed_col, image_col]].head(3).to_dict("records")
        raise DataError(f"paired_bootstrap_table: {int(dup.sum())} rows repeat the same "
                        f"{group_cols + [seed_col, image_col]}, e.g. {sample}")
    groups = _ordered_groups(per_image, group_cols, method_col, order)
    by_key = dict(groups)
    rows = []
    for key, grp in groups:
        ref_key = _reference_key(key, group_cols, method_col, reference)
        if key == ref_key:
            continue
        ref = by_key.get(ref_key)
        for m in metric_cols:
            row: dict[str, Any] = {**dict(zip(group_cols, key)), "metric": m}
            a = grp.groupby(image_col, sort=True)[m].mean()
            row.update(n_seeds=int(grp[seed_col].nunique()), mean=float(a.mean()))
            if ref is None:
                rows.append({**row, "note": "no reference"})
                continue
            b = ref.groupby(image_col, sort=True)[m].mean()
            row.update(n_seeds_reference=int(ref[seed_col].nunique()), mean_reference=float(b.mean()))
            if not (a.notna() & b.reindex(a.index).notna()).any():  # e.g. a classifier has no IoU
                rows.append({**row, "note": "not applicable: no image has a value for both methods"})
                continue
            ci = paired_bootstrap_diff(a, b, n_resamples=n_resamples, seed=seed, confidence=confidence,
                                       method=method)
            row.update(n_images=ci.n, n_dropped=ci.n_dropped, diff=ci.estimate, low=ci.low, high=ci.high,
                       diff_ci=format_diff_ci(m, ci.estimate, ci.low, ci.high), bootstrap_method=ci.method,
                       note=ci.note)
            rows.append(row)
    columns = group_cols + ["metric", "n_images", "n_dropped", "n_seeds", "n_seeds_reference", "mean",
                            "mean_reference", "diff", "low", "high", "diff_ci", "bootstrap_method", "note"]
    out = pd.DataFrame(rows, columns=columns)
    counts = ["n_images", "n_dropped", "n_seeds", "n_seeds_reference"]
    out[counts] = out[counts].astype("Int64")
    out["note"] = out["note"].fillna("")
    return out


# --------------------------------------------------------------------------------------------------------------
# writers

FloatFormat = str | Callable[[float], str]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(name: str, what: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ConfigError(f"{what}: {name!r} must be a plain file stem (letters, digits, '.', '_', '-')")


def _format_cells(df: pd.DataFrame, float_format: FloatFormat, na_rep: str) -> pd.DataFrame:
    """Every cell as display text: floats through ``float_format``, NaN/None as ``na_rep``."""
    fmt = float_format if callable(float_format) else float_format.format

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return na_rep
        if isinstance(v, (float, np.floating)):
            v = float(v)
            return str(int(v)) if v.is_integer() and abs(v) < 1e15 else fmt(v)
        return str(v)

    return df.apply(lambda col: col.map(cell)).astype(str)


def _numeric_columns(df: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]


def _with_index(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a meaningful (non-default) index turned into columns, so writers never lose it."""
    default = isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
    return df if default else df.reset_index()


#: Suffixes of the numeric companions of a formatted metric column (``accuracy`` -> ``accuracy_mean`` ...).
NUMERIC_COMPANIONS = ("n", "mean", "sd", "half_width", "low", "high", "t", "p", "diff")


def display_columns(df: pd.DataFrame) -> list[str]:
    """The columns a reader needs: drops numeric ``<m>_<suffix>`` companions of a text column ``<m>``.

    A comparison table holds ``accuracy`` ("95.1 ± 1.7"), ``accuracy_sig`` and the raw numbers
    ``accuracy_mean``, ``accuracy_sd``, ... (:data:`NUMERIC_COMPANIONS`); the CSV keeps them all, the
    Markdown and LaTeX renderings show the text and the stars only.
    """
    text = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    companions = {f"{t}_{s}" for t in text for s in NUMERIC_COMPANIONS}
    return [c for c in df.columns if not (c in companions and pd.api.types.is_numeric_dtype(df[c]))]


def markdown_table(df: pd.DataFrame, float_format: FloatFormat = "{:.4g}", na_rep: str = "") -> str:
    """A GitHub-flavoured Markdown table (numeric columns right-aligned), padded for plain-text reading."""
    df = _with_index(df)
    cells = _format_cells(df, float_format, na_rep)
    header = [str(c) for c in df.columns]
    body = [[v.replace("|", "\\|") for v in row] for row in cells.itertuples(index=False)]
    header = [h.replace("|", "\\|") for h in header]
    widths = [max([3, len(h)] + [len(r[j]) for r in body]) for j, h in enumerate(header)]
    right = _numeric_columns(df)

    def line(vals: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right)) + " |"
    return "\n".join([line(header), rule] + [line(r) for r in body]) + "\n"


def latex_table(
    df: pd.DataFrame,
    caption: str | None = None,
    label: str | None = None,
    float_format: FloatFormat = "{:.4g}",
    na_rep: str = "--",
) -> str:
    """A booktabs LaTeX table (pandas Styler), special characters escaped, ``±`` as ``\\ensuremath{\\pm}``.

    Wrapped in a ``table`` environment with ``\\caption``/``\\label`` when a caption is given.
    """
    df = _with_index(df)
    cells = _format_cells(df, float_format, na_rep)
    colfmt = "".join("r" if r else "l" for r in _numeric_columns(df))
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    kwargs: dict[str, Any] = dict(hrules=True, column_format=colfmt)
    if caption is not None:
        kwargs.update(caption=caption, position_float="centering")
        if label:
            kwargs["label"] = label
    tex = styler.to_latex(**kwargs)
    return tex.replace("±", r"\ensuremath{\pm}")


def write_table(
    df: pd.DataFrame,
    name: str,
    out_dir: str | Path,
    caption: str | None = None,
    float_format: FloatFormat = "{:.4g}",
    compact: bool = True,
) -> dict[str, Path]:
    """Write ``name.csv`` (raw numbers, full precision), ``name.md`` and ``name.tex`` into ``out_dir``.

    With ``compact`` the Markdown and LaTeX files show only :func:`display_columns` (formatted metrics and
    significance, not their numeric companions); the CSV always holds every column.

    Writes are atomic and deterministic (byte-identical on re-run). ``float_format`` (a ``str.format``
    pattern or a callable) applies to the Markdown and LaTeX renderings only. The caption heads the Markdown
    file and becomes ``\\caption`` (label ``tab:<name>``) in LaTeX. Returns ``{"csv": path, "md": path,
    "tex": path}``.
    """
    _check_name(name, "write_table")
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"write_table({name!r}): expected a pandas DataFrame, got {type(df).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = _with_index(df)
    caption = caption or None
    shown = df[display_columns(df)] if compact else df
    md = markdown_table(shown, float_format)
    if caption:
        md = f"{caption}\n\n{md}"
    texts = {
        "csv": df.to_csv(index=False, lineterminator="\n"),
        "md": md,
        "tex": latex_table(shown, caption=caption, label=f"tab:{name}" if caption else None,
                           float_format=float_format),
    }
    paths = {}
    for ext, text in texts.items():
        paths[ext] = out_dir / f"{name}.{ext}"
        atomic_write_text(paths[ext], text)
    return paths


def save_fig(fig: Any, stem: str, out_dir: str | Path, dpi: int = 200) -> tuple[Path, Path]:
    """Save a matplotlib figure as ``stem.png`` (``dpi``, tight bbox) and ``stem.pdf``, atomically.

    Re-renders are byte-identical: the PNG carries no ``Software`` entry and the PDF no ``CreationDate``.
    Returns ``(png_path, pdf_path)``.
    """
    _check_name(stem, "save_fig")
    out_dir = Path(out_dir)
    paths = (out_dir / f"{stem}.png", out_dir / f"{stem}.pdf")
    options = (
        dict(format="png", dpi=dpi, metadata={"Software": None}),
        dict(format="pdf", metadata={"CreationDate": None}),
    )
    for path, opts in zip(paths, options):
        buf = io.BytesIO()
        fig.savefig(buf, bbox_inches="tight", **opts)
        atomic_write_bytes(path, buf.getvalue())
    return paths


# --------------------------------------------------------------------------------------------------------------
# colours

_TAB = {  # matplotlib's tab10, as hex so the palette does not depend on rcParams
    "blue": "#1f77b4", "orange": "#ff7f0e", "green": "#2ca02c", "red": "#d62728", "purple": "#9467bd",
    "brown": "#8c564b", "pink": "#e377c2", "gray": "#7f7f7f", "olive": "#bcbd22", "cyan": "#17becf",
}

#: Fixed colours; the R18/R50 families and baselines follow the LA-Net authors' plot script so figures look alike.
METHOD_COLORS: dict[str, str] = {
    "R50": _TAB["blue"],
    "R50+RMTL": _TAB["orange"],
    "R50+LA-Net": _TAB["green"],
    "R50+LA-Net (no CAM)": "#5d8700",
    "R50+LA-Net (no SAM)": "#82b300",
    "R50+LA-Net (no MAM)": "#2d581a",
    "R18": _TAB["red"],
    "R18+RMTL": _TAB["purple"],
    "R18+LA-Net": _TAB["brown"],
    "R18+LA-Net (no CAM)": "#fd9a24",
    "R18+LA-Net (no SAM)": "#fa8223",
    "R18+LA-Net (no MAM)": "#f55f20",
    "R18+LA-Net-fine": "#17a589",  # teal: the stride-8 lesion map (beyond the paper)
    "R18+LA-Net-fine (no CAM)": "#48c9b0",
    "R18+LA-Net-fine (no SAM)": "#76d7c4",
    "R18+LA-Net-fine (no MAM)": "#0e6655",
    "ViT": "#b03a2e",
    "EB0": "#196f3d",
    "U-Net": "#2e4053",
    "AGN": _TAB["pink"],
    "DeepLabV3": _TAB["cyan"],
    "MobileNetV2": _TAB["gray"],
    "MobileNetV2+RMTL": "#c49c94",
    "MobileNetV2+LA-Net": _TAB["olive"],
    "MobileNetV2+LA-Net-fine": "#6c7a00",
}

_ALIASES = {"unet": "U-Net", "deeplabv3+": "DeepLabV3", "deeplab": "DeepLabV3", "mnv2": "MobileNetV2",
            "mobilenet_v2": "MobileNetV2", "mobilenetv2_100": "MobileNetV2", "efficientnet-b0": "EB0",
            "effnet-b0": "EB0", "resnet18": "R18", "resnet50": "R50", "vit-ti/16": "ViT", "vit-s/16": "ViT",
            "vit-b/16": "ViT"}
_CANONICAL = {k.lower(): k for k in METHOD_COLORS}
# trailing qualifiers that keep the base method's colour: " (1)", " (0.25)", "-256", "@512", "-SSL", "-FSL",
# the partly-labelled regimes "-s-SSL" / "-F" and the initialisations " (scratch)" / " (ImageNet...)"
_SUFFIX = re.compile(r"(\s*\((?:[0-9.]+%?|full|scratch|ImageNet[^)]*)\)|[-@ ]\d{3,4}(?:px)?|-[SF]SL|-s-SSL|-F)$",
                     re.IGNORECASE)
#: Hatches that tell apart variants sharing a method's colour: supervised-only subsets ("-F") and initialisations.
_HATCHES = ((re.compile(r"-F$|\(scratch\)$", re.IGNORECASE), "///"),
            (re.compile(r"\(ImageNet\)$", re.IGNORECASE), "..."))

#: Colours for names not in :data:`METHOD_COLORS`, picked by a stable hash of the name.
FALLBACK_COLORS: tuple[str, ...] = (
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
    "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#de9ed6", "#e7ba52", "#ad494a",
)


def _canonical_method(name: str) -> str | None:
    """The :data:`METHOD_COLORS` key for ``name`` (case-insensitive, aliases, trailing qualifiers stripped)."""
    candidate = name.strip()
    while True:
        low = candidate.lower()
        for prefix, canon in _ALIASES.items():
            if low == prefix or low.startswith(prefix + "+"):
                low = canon.lower() + low[len(prefix):]
                break
        if low in _CANONICAL:
            return _CANONICAL[low]
        stripped = _SUFFIX.sub("", candidate)
        if stripped == candidate:
            return None
        candidate = stripped


def method_color(name: str) -> str:
    """The fixed hex colour of a method name; unknown names get a colour chosen by an MD5 hash of the name."""
    canon = _canonical_method(str(name))
    if canon is not None:
        return METHOD_COLORS[canon]
    digest = int(hashlib.md5(str(name).encode("utf-8")).hexdigest(), 16)
    return FALLBACK_COLORS[digest % len(FALLBACK_COLORS)]


def method_hatch(name: str) -> str:
    """Bar hatch of a variant that shares its method's colour ("" for the plain method)."""
    return next((h for pattern, h in _HATCHES if pattern.search(str(name))), "")


def method_palette(methods: Sequence[str]) -> dict[str, str]:
    """``{method: hex colour}`` with a fixed colour per method name, identical across figures and runs."""
    return {m: method_color(m) for m in methods}


# --------------------------------------------------------------------------------------------------------------
# plots


@contextlib.contextmanager
def plot_context(context: str = "paper", style: str = "whitegrid", font_scale: float = 1.0) -> Iterator[None]:
    """Seaborn plotting context (``"paper"`` or ``"notebook"``) and axes style for figures made inside it."""
    import seaborn as sns

    with sns.plotting_context(context, font_scale=font_scale), sns.axes_style(style):
        yield


def _plot_summary(data: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: mean, half_width, low, high and the run values, in display units.

    ``data`` is either a runs table holding a ``metric`` column (one row per run; CI computed here, runs kept
    for dots) or a long summary from :func:`lanet_core.stats.summarise_runs` (no run values).
    """
    scale = metric_format(metric).scale
    if metric in data.columns:
        require_columns(data, keys, "plot")
        rows = []
        for key, grp in data.groupby(keys, sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            ci = mean_ci(grp[metric])
            vals = grp[metric].dropna().to_numpy(dtype=float) * scale
            rows.append({**dict(zip(keys, key)), "n": ci.n, "mean": ci.mean * scale,
                         "half_width": ci.half_width * scale, "values": vals})
        out = pd.DataFrame(rows)
    elif {"metric", "mean", "half_width"} <= set(data.columns):
        require_columns(data, keys, "plot")
        out = data.loc[data["metric"] == metric, keys + ["mean", "half_width"]].copy()
        if out.empty:
            raise DataError(f"plot: the summary has no rows for metric {metric!r}; "
                            f"metrics: {list(pd.unique(data['metric']))}")
        if out.duplicated(keys).any():
            raise DataError(f"plot: the summary has several rows per {keys} for {metric!r}; filter it first")
        out[["mean", "half_width"]] = out[["mean", "half_width"]].astype(float) * scale
        out["values"] = [np.empty(0)] * len(out)
    else:
        raise DataError(f"plot: data has neither a {metric!r} column (runs table) nor metric/mean/half_width "
                        f"columns (summary); columns: {list(data.columns)}")
    out["low"] = out["mean"] - out["half_width"]
    out["high"] = out["mean"] + out["half_width"]
    return out.reset_index(drop=True)


def _significance_label(p: float | TTest | str | None) -> str:
    """Text drawn above a bar: stars for a p-value/valid test, ``"n/a"`` for identical repeats."""
    if p is None:
        return ""
    if isinstance(p, TTest):
        if p.valid:
            stars = significance_stars(p.pvalue)
            if p.alternative == "two-sided" and stars != "ns":  # an arrow shows which way
                stars += "\u2193" if p.statistic < 0 else "\u2191"
            return stars
        p = p.note
    if isinstance(p, str):
        return "n/a" if p == IDENTICAL_REPEATS else ("" if p.startswith("n <") else p)
    return significance_stars(p)


def bar_ci_plot(
    data: pd.DataFrame,
    metric: str,
    ax: Any,
    order: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    reference: str | None = None,
    pvalues: Mapping[str, float | TTest | str] | None = None,
    method_col: str = "method",
    show_points: bool = True,
    zoom: bool = False,
) -> Any:
    """Bars = mean per method, error bars = 95 % CI, dots = individual runs, significance vs ``reference``.

    ``data``: a runs table (one row per run, already filtered to one setting, e.g. one image size) or a long
    summary from :func:`~lanet_core.stats.summarise_runs` (no dots then). Values are shown in display units
    (:data:`METRIC_FORMATS`). ``pvalues`` maps method → p-value, :class:`~lanet_core.stats.TTest` or a label;
    when omitted and ``reference`` is given (runs table), the study's two-sided Welch t-test is computed (arrow = direction). Labels
    above bars: stars / ``"ns"``, ``"n/a"`` for identical repeats; the reference's tick label is bold.
    The y axis starts at 0 (bar lengths compare honestly); ``zoom`` limits it to the data range instead and
    says so on the axes ("axis starts at ..."). Variants sharing a colour are hatched (:func:`method_hatch`).
    Returns ``ax``.
    """
    summary = _plot_summary(data, metric, [method_col])
    methods = list(summary[method_col])
    order = list(order) if order is not None else methods
    missing = [m for m in order if m not in methods]
    if missing:
        raise DataError(f"bar_ci_plot: methods {missing} have no {metric!r} values; present: {methods}")
    summary = summary.set_index(method_col).loc[order]
    palette = dict(palette) if palette is not None else method_palette(order)
    if pvalues is None and reference is not None and metric in data.columns:
        if reference not in methods:
            raise DataError(f"bar_ci_plot: reference {reference!r} not in the data; methods: {methods}")
        ref_vals = data.loc[data[method_col] == reference, metric]
        pvalues = {m: welch_ttest(data.loc[data[method_col] == m, metric], ref_vals)
                   for m in order if m != reference}
    pvalues = dict(pvalues or {})

    x = np.arange(len(order))
    means = summary["mean"].to_numpy(dtype=float)
    errs = np.nan_to_num(summary["half_width"].to_numpy(dtype=float), nan=0.0)
    bars = ax.bar(x, means, width=0.7, color=[palette.get(m, method_color(m)) for m in order], edgecolor="black",
                  linewidth=0.6, yerr=errs, capsize=3, error_kw=dict(elinewidth=1.0, ecolor="black"), zorder=2)
    for bar, m in zip(bars, order):
        bar.set_hatch(method_hatch(m))
    tops, bottoms = means + errs, means - errs
    for i, m in enumerate(order):
        vals = summary.loc[m, "values"]
        if show_points and len(vals):
            offsets = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(x[i] + offsets, vals, s=10, color="black", alpha=0.8, zorder=3, linewidths=0)
            tops[i], bottoms[i] = max(tops[i], vals.max()), min(bottoms[i], vals.min())
    finite = np.isfinite(tops) & np.isfinite(bottoms)
    lo, hi = (float(bottoms[finite].min()), float(tops[finite].max())) if finite.any() else (0.0, 1.0)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.05
    axis_span = span if zoom else max(hi - min(lo, 0.0), span)  # stars sit clear of the caps on either axis
    for i, m in enumerate(order):
        label = _significance_label(pvalues.get(m))
        if label and np.isfinite(tops[i]):
            ax.text(x[i], tops[i] + 0.03 * axis_span, label, ha="center", va="bottom", fontsize="small")
    if zoom:
        bottom = lo - 0.25 * span
        bottom = max(bottom, 0.0) if lo >= 0 else bottom
        ax.set_ylim(bottom, hi + 0.25 * span)
        if bottom > 0:
            ax.text(0.01, 0.01, f"axis starts at {bottom:.3g}", transform=ax.transAxes, fontsize="x-small",
                    color="0.35", ha="left", va="bottom")
    else:
        base = min(lo, 0.0)
        extent = hi - base if hi > base else 1.0  # all zero: still a visible axis
        ax.set_ylim(base - (0.05 * extent if base < 0 else 0.0), max(hi, base) + 0.15 * extent)
    ax.set_xticks(x)
    ax.set_xticklabels(order, rotation=30, ha="right", rotation_mode="anchor")
    ax.grid(axis="x", visible=False)
    for tick, m in zip(ax.get_xticklabels(), order):
        if m == reference:
            tick.set_fontweight("bold")
    ax.set_xlabel("")
    ax.set_ylabel(axis_label(metric))
    return ax


def line_ci_plot(
    data: pd.DataFrame,
    x: str,
    metric: str,
    hue: str,
    ax: Any,
    order: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    show_points: bool = True,
    legend: bool = True,
) -> Any:
    """Mean of ``metric`` vs ``x`` (e.g. label ratio), one line per ``hue`` level, shaded 95 % CI band.

    ``data``: a runs table (one row per run; runs shown as small dots) or a long summary from
    :func:`~lanet_core.stats.summarise_runs` grouped by ``[hue, x]``. ``x`` must be numeric; with at most six
    distinct values the ticks sit on them. The y range spans at least 10 points (percent metrics) or 0.1
    (fractions), so that differences of one or two images do not look steep. ``legend=False``: the caller draws
    one legend for the figure. Returns ``ax``.
    """
    summary = _plot_summary(data, metric, [hue, x])
    if not pd.api.types.is_numeric_dtype(summary[x]):
        raise DataError(f"line_ci_plot: x column {x!r} must be numeric, got {summary[x].dtype}")
    levels = list(order) if order is not None else list(pd.unique(summary[hue]))
    palette = dict(palette) if palette is not None else method_palette(levels)
    for level in levels:
        part = summary[summary[hue] == level].sort_values(x)
        if part.empty:
            raise DataError(f"line_ci_plot: no {metric!r} values for {hue}={level!r}")
        color = palette.get(level, method_color(str(level)))
        xs = part[x].to_numpy(dtype=float)
        ax.plot(xs, part["mean"], marker="o", markersize=4, color=color, label=str(level), zorder=3)
        band = np.isfinite(part["low"].to_numpy(dtype=float))
        if band.any():
            ax.fill_between(xs[band], part["low"].to_numpy()[band], part["high"].to_numpy()[band], color=color,
                            alpha=0.2, linewidth=0, zorder=1)
        if show_points:
            for xv, vals in zip(xs, part["values"]):
                if len(vals):
                    ax.scatter(np.full(len(vals), xv), vals, s=8, color=color, alpha=0.6, linewidths=0, zorder=2)
    xs_all = np.sort(pd.unique(summary[x].astype(float)))
    if len(xs_all) <= 6:
        ax.set_xticks(xs_all)
        ax.set_xticklabels([f"{v:g}" for v in xs_all])
    min_span = 10.0 if metric_format(metric).scale == 100 else 0.1
    low, high = ax.get_ylim()
    if high - low < min_span:
        mid = (low + high) / 2
        low, high = mid - min_span / 2, mid + min_span / 2
        data_low = float(np.nanmin(summary["low"])) if summary["low"].notna().any() else float(summary["mean"].min())
        if low < 0 <= data_low:
            low, high = 0.0, min_span
        else:
            top = 100.0 if min_span == 10.0 else 1.0  # percent metrics end at 100, fractions (IoU, AUC) at 1
            if high > top >= float(summary["mean"].max()):
                low, high = top - min_span, top
        ax.set_ylim(low, high)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(metric))
    if legend:
        ax.legend(title=axis_label(hue), fontsize="small", title_fontsize="small", frameon=False)
    return ax
