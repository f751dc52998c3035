"""How metrics are shown: the scale and digits of each metric (classification metrics x100 with one decimal,
IoU/Dice as fractions with three), axis labels, and "mean ± CI" / "difference [low, high]" text."""

from __future__ import annotations

import math
from dataclasses import dataclass





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


#: Range of every metric of :data:`METRIC_FORMATS` (fractions: accuracy, AUC, IoU, ...).
METRIC_RANGE = (0.0, 1.0)
CLIPPED_NOTE = ("mean [low, high]: the t-interval clipped to the metric's range (0-100 %, 0-1), shown where "
                "mean ± CI would leave it")


def format_mean_ci(mean: float, half_width: float, scale: float = 100, digits: int = 1,
                   bounds: tuple[float, float] | None = METRIC_RANGE) -> str:
    """``"95.1 ± 1.7"`` from fractions ``(0.951, 0.017)``; ``""`` for a NaN mean; the mean alone if the half
    width is NaN (a single run).

    Where ``mean ± half_width`` leaves ``bounds`` (a metric in [0, 1]: a wide t-interval over 3 seeds near 100 %
    or 0), the interval is clipped to the range and written as ``"93.9 [86.5, 100.0]"`` (:data:`CLIPPED_NOTE`),
    never as an impossible ``"93.9 ± 7.4"``."""
    if mean is None or not math.isfinite(float(mean)):
        return ""
    m = float(mean)
    text = f"{m * scale:.{digits}f}"
    if half_width is None or not math.isfinite(float(half_width)):
        return text
    hw = float(half_width)
    if bounds is not None and (m - hw < bounds[0] or m + hw > bounds[1]):
        lo, hi = max(m - hw, bounds[0]), min(m + hw, bounds[1])
        return f"{text} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
    return f"{text} ± {hw * scale:.{digits}f}"


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
