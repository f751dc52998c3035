"""The bar and line plots with confidence intervals shared by the notebooks, in one plotting context."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from lanet_core.errors import DataError
from lanet_core.reporting.formats import axis_label, metric_format
from lanet_core.reporting.palette import method_color, method_hatch, method_palette
from lanet_core.stats import (
    IDENTICAL_REPEATS,
    TTest,
    mean_ci,
    welch_ttest,
    require_columns,
    significance_stars,
)



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
