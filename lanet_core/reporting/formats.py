"""How metrics are shown: the scale and digits of each metric (classification metrics x100 with one decimal,
IoU/Dice as fractions with three), axis labels and table headers (the unit once, in the header), "mean ± CI" /
"difference [low, high]" text, significance marks and the one p-value format of every table and text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Significance thresholds of the paper's plots, from strictest to loosest (stats.stars reads them here: this module
#: imports nothing of lanet_core, so statistics may format with it without an import circle).
STAR_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


@dataclass(frozen=True)
class MetricFormat:
    """Display of one metric: axis/column ``label``, multiply by ``scale``, round to ``digits`` decimals.

    ``short``: the name in a table header where ``label`` is long (the unit is added by :meth:`header`)."""

    label: str
    scale: float = 1.0
    digits: int = 3
    short: str = ""

    @property
    def unit(self) -> str:
        """``"%"`` for a metric shown x100, else ``""`` (a fraction in [0, 1], e.g. IoU)."""
        return "%" if self.scale == 100 else ""

    @property
    def name(self) -> str:
        """The label without its unit: ``"Accuracy"``."""
        suffix = f" ({self.unit})"
        return self.short or (self.label[: -len(suffix)] if self.unit and self.label.endswith(suffix) else self.label)

    def header(self, qualifier: str = "", difference: bool = False) -> str:
        """A table header stating the unit once: ``"Accuracy (%)"``, ``"IoU"``, ``"Accuracy, paper (%)"``; a
        difference of a percentage is in ``"points"``."""
        unit = ("points" if difference else "%") if self.unit else ""
        return self.name + (f", {qualifier}" if qualifier else "") + (f" ({unit})" if unit else "")


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
    "iou_tuned": MetricFormat("IoU at the validation-tuned threshold", 1.0, 3, "IoU, tuned threshold"),
    "dice_tuned": MetricFormat("Dice at the validation-tuned threshold", 1.0, 3, "Dice, tuned threshold"),
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


def metric_title(name: str) -> str:
    """A panel title for a metric: its label without the unit (``"Accuracy (%)"`` → ``"Accuracy"``) but with any
    other qualifier (``"IoU (box)"`` stays ``"IoU (box)"``)."""
    label = axis_label(name)
    return label[: -len(" (%)")] if label.endswith(" (%)") else label


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


def format_signed(metric: str, value: float) -> str:
    """A signed point difference in the metric's display units (``"+2.4"``, ``"-0.013"``); a value that rounds to
    zero is ``"0.0"`` (never ``"-0.0"``); ``""`` for NaN. (Interval bounds keep their sign: :func:`format_diff_ci`.)"""
    if value is None or not math.isfinite(float(value)):
        return ""
    fmt = metric_format(metric)
    text = f"{float(value) * fmt.scale:+.{fmt.digits}f}"
    return text[1:] if float(text) == 0 else text


def format_diff_ci(metric: str, diff: float, low: float, high: float) -> str:
    """Signed difference with its interval in the metric's display units, e.g. ``"+2.4 [-1.2, +6.1]"``; every
    number keeps its sign (a bound ``"-0.000"`` is below zero, so the interval includes it). Without an interval
    (fewer than two values): ``"+7.4 [no CI]"``, the bracket where the interval would be."""
    fmt = metric_format(metric)

    def one(v: float) -> str:
        return "nan" if not math.isfinite(v) else f"{v * fmt.scale:+.{fmt.digits}f}"

    if not math.isfinite(diff):
        return ""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{one(diff)} [no CI]"
    return f"{one(diff)} [{one(low)}, {one(high)}]"


# --------------------------------------------------------------------------------------------------------------
# p-values, significance marks, table headers


#: Below this a p-value is shown as ``"p < 0.001"``.
P_FLOOR = 0.001


def count_noun(n: int, noun: str) -> str:
    """``"1 fold"``, ``"5 folds"``, ``"0 runs"``: a count with its noun, plural unless it is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_p(p: float | None, label: bool = True) -> str:
    """The study's one p-value format: ``"p < 0.001"`` below :data:`P_FLOOR`, else three significant digits
    (``"p = 0.0640"``, ``"p = 0.718"``, ``"p = 0.00416"``); ``label=False`` leaves out the ``"p = "`` (a cell of a
    column headed p: ``"< 0.001"``, ``"0.0640"``). ``""`` for a missing (NaN) p."""
    if p is None or not math.isfinite(float(p)):
        return ""
    p = min(max(float(p), 0.0), 1.0)
    if p < P_FLOOR:
        return f"p < {P_FLOOR:g}" if label else f"< {P_FLOOR:g}"
    text = f"{p:#.3g}"
    return f"p = {text}" if label else text


def is_p_column(name: str) -> bool:
    """A column of p-values: ``p``, ``p (two-sided)``, ``p (with retraining)``, ``<metric>_p``."""
    return name == "p" or name.startswith("p (") or name.endswith("_p")


_UP, _DOWN = "\u2191", "\u2193"


def significance_mark(label: str | None) -> str:
    """The mark a table shows inside the value cell for a :attr:`~lanet_core.stats.TTest.label` of
    :func:`~lanet_core.reporting.comparison_table`: ``"** lower"`` → ``"**↓"``, ``"* higher"`` → ``"*↑"`` (the
    figures' marks); nothing for ``"ns"``, the reference row or a metric that does not apply; ``"n/a"`` where no
    test could run (identical repeats, fewer than 2 runs, no reference in the stratum)."""
    label = "" if label is None or (isinstance(label, float) and math.isnan(label)) else str(label).strip()
    if label in ("", "ns", "reference"):
        return ""
    m = re.fullmatch(r"(\*{1,3})(?:\s+(lower|higher))?", label)
    if m:
        return m.group(1) + {"lower": _DOWN, "higher": _UP, None: ""}[m.group(2)]
    return "n/a"


def marks_legend(marks: set[str]) -> str:
    """The caption's key to the ``marks`` a table shows (``""`` when it shows none)."""
    if not any(marks):
        return ""
    stars = ", ".join(f"{s} p < {t:g}" for t, s in sorted(STAR_THRESHOLDS, key=lambda ts: -ts[0]))
    text = f"marks vs the reference: {stars}"
    arrows = [a for a, word in ((_DOWN, "lower"), (_UP, "higher")) if any(a in m for m in marks)]
    if arrows:
        text += " (" + ", ".join(f"{a} {w}" for a, w in ((_DOWN, "lower"), (_UP, "higher")) if a in arrows) + ")"
    text += f"; no mark: p ≥ 0.05 or the reference"
    if "n/a" in marks:
        text += "; n/a: no test (identical repeats, fewer than 2 runs or no reference)"
    return text


def column_header(name: str, difference: bool = False) -> str:
    """The header of a table column: a metric column states its unit once (``"accuracy"`` → ``"Accuracy (%)"``,
    ``"iou"`` → ``"IoU"``, ``"accuracy (paper)"`` → ``"Accuracy, paper (%)"``, ``"auc drop"`` → ``"AUC, drop
    (points)"``); ``difference``: the column holds differences (``"Accuracy (points)"``). Other names unchanged."""
    if name in METRIC_FORMATS:
        return METRIC_FORMATS[name].header(difference=difference)
    for metric in sorted(METRIC_FORMATS, key=len, reverse=True):
        if name.startswith(metric + " "):
            rest = name[len(metric) + 1:].strip()
            qualifier = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
            if qualifier in ("%", "points"):  # the unit already: "accuracy (%)"
                return METRIC_FORMATS[metric].header(difference=qualifier == "points")
            diff = difference or qualifier in ("diff", "drop", "difference")
            return METRIC_FORMATS[metric].header(qualifier, diff)
    return name
