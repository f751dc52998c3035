"""The study's figure style and the plots shared by the notebooks: bars, dot and line plots with confidence
intervals, laid out at journal sizes.

Every figure of the study is drawn inside :func:`plot_context` (the style file ``lanet.mplstyle`` shipped with the
package) and saved at its final size by :func:`lanet_core.reporting.save_fig`: 3.5 in (:data:`ONE_COLUMN`) or
7.2 in (:data:`TWO_COLUMNS`) wide, text 7-8 pt, TrueType fonts in the PDF. Figures with several panels carry panel
letters (:func:`label_panels`); their reading key and conditions (dataset, images, seeds, input size,
initialisation) sit in a header above the panels (:func:`figure_header`).
"""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from lanet_core.errors import DataError
from lanet_core.reporting.formats import METRIC_FORMATS, axis_label, metric_format, metric_title
from lanet_core.reporting.palette import method_color, method_hatch, method_marker, method_palette
from lanet_core.stats import (
    IDENTICAL_REPEATS,
    TTest,
    mean_ci,
    welch_ttest,
    require_columns,
    significance_stars,
)

#: The study's matplotlib style file (package data).
STYLE_PATH = Path(__file__).with_name("lanet.mplstyle")
ONE_COLUMN = 3.5  #: inches, a journal's single-column width
TWO_COLUMNS = 7.2  #: inches, a journal's full page (two-column) width
FIGURE_WIDTHS = {"single": ONE_COLUMN, "double": TWO_COLUMNS}
MIN_FONT_PT = 6.0  #: no text below this size at final size (tests/test_figure_style.py checks every figure)
FONT_PT = 7.0  #: body text: tick labels, axis labels, legends, notes
TITLE_PT = 8.0  #: panel titles
#: Perceptually uniform colour maps: probabilities and lesion maps, Grad-CAMs, and differences (diverging, to be
#: centred on zero). Rainbow maps (:data:`FORBIDDEN_CMAPS`) are never used.
PROBABILITY_CMAP = "viridis"
CAM_CMAP = "magma"
DIFFERENCE_CMAP = "RdBu_r"
FORBIDDEN_CMAPS = frozenset({"jet", "rainbow", "gist_rainbow", "hsv", "nipy_spectral", "gist_ncar", "turbo",
                             "jet_r", "rainbow_r", "gist_rainbow_r", "hsv_r", "nipy_spectral_r", "gist_ncar_r",
                             "turbo_r"})
_HALO = "white"  # drawn under black whiskers and dots so they stay visible on dark bars


@contextlib.contextmanager
def plot_context(context: str = "paper", style: str | None = None, font_scale: float = 1.0) -> Iterator[None]:
    """The study's figure style (:data:`STYLE_PATH`) for figures made inside it.

    ``context``/``style`` are accepted for compatibility with the former seaborn context and ignored;
    ``font_scale`` scales every font size (for slides; study figures use 1).
    """
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    with mpl.rc_context():
        plt.style.use(STYLE_PATH)
        if font_scale != 1.0:
            for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                        "legend.fontsize", "legend.title_fontsize", "figure.titlesize", "figure.labelsize"):
                mpl.rcParams[key] = float(mpl.rcParams[key]) * font_scale
        yield


def figure_width(width: str | float) -> float:
    """``"single"`` (3.5 in), ``"double"`` (7.2 in) or a number of inches (must be one of those two)."""
    w = FIGURE_WIDTHS.get(width, width) if isinstance(width, str) else float(width)
    if isinstance(w, str) or min(abs(w - ONE_COLUMN), abs(w - TWO_COLUMNS)) > 1e-6:
        raise ValueError(f"figure width must be 'single' ({ONE_COLUMN} in) or 'double' ({TWO_COLUMNS} in), got {width!r}")
    return float(w)


def journal_figure(width: str | float = "double", height: float = 3.0, nrows: int = 1, ncols: int = 1,
                   **subplots_kw: Any) -> tuple[Any, np.ndarray]:
    """``(figure, axes (nrows, ncols))`` at a journal width with constrained layout; call inside
    :func:`plot_context`."""
    import matplotlib.pyplot as plt

    subplots_kw.setdefault("squeeze", False)
    fig, axes = plt.subplots(nrows, ncols, figsize=(figure_width(width), height), layout="constrained",
                             **subplots_kw)
    return fig, axes


def label_panels(axes: Sequence[Any] | np.ndarray, titles: Sequence[str | None] | None = None) -> None:
    """Panel letters: each axes' title becomes ``"(a) <title>"`` (left-aligned; the title already set is kept
    when ``titles`` is None or holds None)."""
    flat = list(np.ravel(np.asarray(axes, dtype=object)))
    for i, ax in enumerate(flat):
        given = titles[i] if titles is not None and i < len(titles) else None
        title = given if given is not None else (ax.get_title("left") or ax.get_title("center"))
        ax.set_title("", loc="center")
        ax.set_title(f"({chr(ord('a') + i)}) {title}".rstrip(), loc="left", fontsize=TITLE_PT)


def wrap(text: str, width_in: float, font_pt: float = FONT_PT) -> str:
    """``text`` wrapped (per line) to fit ``width_in`` inches at ``font_pt`` (DejaVu Sans, ~0.6 em per char)."""
    chars = max(20, int(width_in * 72 / (0.6 * font_pt)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) if line else line
                     for line in text.split("\n"))


def figure_header(fig: Any, title: str | None = None, lines: Sequence[str | None] = ()) -> Any:
    """A left-aligned header above the panels: the title and the reading key / conditions (one line each,
    wrapped to the figure's width), one text at 7 pt. Returns the text (None when there is nothing to say)."""
    parts = [p for p in (title, *lines) if p]
    if not parts:
        return None
    width = fig.get_size_inches()[0] - 0.1
    return fig.suptitle(wrap("\n".join(parts), width), x=0.01, ha="left", fontsize=FONT_PT, linespacing=1.25)


def _plot_summary(data: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: mean, half_width, low, high and the run values, in display units.

    ``data`` is either a runs table holding a ``metric`` column (one row per run; CI computed here, runs kept
    for dots) or a long summary from :func:`lanet_core.stats.summarise_runs` (no run values). ``low``/``high``
    are clipped to the metric's range (0-100 %, 0-1) as the tables write them.
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
    if metric in METRIC_FORMATS:
        out["low"], out["high"] = out["low"].clip(lower=0.0), out["high"].clip(upper=scale)
    return out.reset_index(drop=True)


def _significance_label(p: float | TTest | str | None) -> str:
    """Text drawn beside a bar: stars for a p-value/valid test, ``"n/a"`` for identical repeats."""
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


def _whiskers(ax: Any, pos: np.ndarray, low: np.ndarray, high: np.ndarray, horizontal: bool, *, color: str = "black",
              lw: float = 0.9, halo: bool = True, transform: Any = None) -> None:
    """CI whiskers from ``low`` to ``high`` at ``pos`` (a white halo under black lines keeps them visible on dark
    bars); NaN intervals are skipped. Drawn as line collections (no Line2D)."""
    ok = np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return
    kw = {} if transform is None else {"transform": transform}
    draw = ax.hlines if horizontal else ax.vlines
    if halo:
        draw(pos[ok], low[ok], high[ok], colors=_HALO, linewidths=lw + 1.4, zorder=3.9, **kw)
    draw(pos[ok], low[ok], high[ok], colors=color, linewidths=lw, zorder=4, **kw)


def _luminance(color: str) -> float:
    """Relative luminance (0 black - 1 white) of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


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
    orient: str = "v",
    missing: str = "error",
) -> Any:
    """Bars = mean per method, whiskers = 95 % CI (clipped to the metric's range), dots = individual runs,
    significance vs ``reference``.

    ``data``: a runs table (one row per run, already filtered to one setting, e.g. one image size) or a long
    summary from :func:`~lanet_core.stats.summarise_runs` (no dots then). Values are shown in display units
    (:data:`METRIC_FORMATS`). ``pvalues`` maps method → p-value, :class:`~lanet_core.stats.TTest` or a label;
    when omitted and ``reference`` is given (runs table), the study's two-sided Welch t-test is computed (arrow =
    direction). Labels beside bars: stars / ``"ns"``, ``"n/a"`` for identical repeats; the reference's tick label
    is bold. The value axis starts at 0 (bar lengths compare honestly); ``zoom`` limits it to the data range
    instead and says so on the axes ("axis starts at ..."). Variants sharing a hue are hatched
    (:func:`method_hatch`). ``orient="h"``: one row per method (top to bottom in ``order``), the value on x, so
    method names read horizontally. ``missing="blank"``: methods of ``order`` without values keep an empty row
    marked "n/a" (panels that share their rows); ``"error"`` raises. Returns ``ax``.
    """
    if orient not in ("v", "h"):
        raise ValueError(f"bar_ci_plot: orient must be 'v' or 'h', got {orient!r}")
    horizontal = orient == "h"
    summary = _plot_summary(data, metric, [method_col])
    methods = list(summary[method_col])
    order = list(order) if order is not None else methods
    absent = [m for m in order if m not in methods]
    if absent and missing != "blank":
        raise DataError(f"bar_ci_plot: methods {absent} have no {metric!r} values; present: {methods}")
    summary = summary.set_index(method_col).reindex(order)
    palette = dict(palette) if palette is not None else method_palette(order)
    if pvalues is None and reference is not None and metric in data.columns:
        if reference not in methods:
            raise DataError(f"bar_ci_plot: reference {reference!r} not in the data; methods: {methods}")
        ref_vals = data.loc[data[method_col] == reference, metric]
        pvalues = {m: welch_ttest(data.loc[data[method_col] == m, metric], ref_vals)
                   for m in order if m != reference and m in methods}
    pvalues = dict(pvalues or {})

    pos = np.arange(len(order), dtype=float)
    means = summary["mean"].to_numpy(dtype=float)
    lows, highs = summary["low"].to_numpy(dtype=float), summary["high"].to_numpy(dtype=float)
    colors = [palette.get(m, method_color(m)) for m in order]
    bar = ax.barh if horizontal else ax.bar
    drawn = np.nan_to_num(means, nan=0.0)
    bars = bar(pos, drawn, 0.7, color=colors, edgecolor="black", linewidth=0.5, zorder=2)
    for b, m, mean, c in zip(bars, order, means, colors):
        b.set_hatch(method_hatch(m))
        if _luminance(c) < 0.35:  # a black hatch vanishes on a dark bar
            b.set_hatchcolor("white")
        if not np.isfinite(mean):
            b.set_visible(False)
    _whiskers(ax, pos, lows, highs, horizontal)
    tops = np.where(np.isfinite(highs), highs, means)
    bottoms = np.where(np.isfinite(lows), lows, means)
    for i, m in enumerate(order):
        vals = summary.loc[m, "values"] if isinstance(summary.loc[m, "values"], np.ndarray) else np.empty(0)
        if show_points and len(vals):
            offsets = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(1)
            xy = (vals, pos[i] + offsets) if horizontal else (pos[i] + offsets, vals)
            ax.scatter(*xy, s=7, color="black", edgecolors=_HALO, linewidths=0.4, zorder=5)
            tops[i], bottoms[i] = np.nanmax([tops[i], vals.max()]), np.nanmin([bottoms[i], vals.min()])
    finite = np.isfinite(tops) & np.isfinite(bottoms)
    lo, hi = (float(bottoms[finite].min()), float(tops[finite].max())) if finite.any() else (0.0, 1.0)
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.05
    axis_span = span if zoom else max(hi - min(lo, 0.0), span)  # stars sit clear of the caps on either axis
    for i, m in enumerate(order):
        if not np.isfinite(means[i]):
            if horizontal:
                ax.text(0.02, pos[i], "n/a", transform=ax.get_yaxis_transform(), ha="left", va="center",
                        fontsize=FONT_PT, color="0.45")
            else:
                ax.text(pos[i], 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=FONT_PT, color="0.45")
            continue
        label = _significance_label(pvalues.get(m))
        if label and np.isfinite(tops[i]):
            if horizontal:
                ax.text(tops[i] + 0.03 * axis_span, pos[i], label, ha="left", va="center", fontsize=FONT_PT)
            else:
                ax.text(pos[i], tops[i] + 0.03 * axis_span, label, ha="center", va="bottom", fontsize=FONT_PT)
    set_lim = ax.set_xlim if horizontal else ax.set_ylim
    room = 0.3 if horizontal else 0.15  # stars beside a horizontal bar need more room than above a vertical one
    if zoom:
        bottom = lo - 0.25 * span
        bottom = max(bottom, 0.0) if lo >= 0 else bottom
        set_lim(bottom, hi + (room + 0.1) * span)
        if bottom > 0:
            ax.text(0.99, 0.01, f"axis starts at {bottom:.3g}", transform=ax.transAxes, fontsize=FONT_PT,
                    color="0.35", ha="right", va="bottom")
    else:
        base = min(lo, 0.0)
        extent = hi - base if hi > base else 1.0  # all zero: still a visible axis
        set_lim(base - (0.05 * extent if base < 0 else 0.0), max(hi, base) + room * extent)
    if horizontal:
        ax.set_yticks(pos, order)
        ax.set_ylim(len(order) - 0.5, -0.5)  # first method on top
        ax.grid(axis="y", visible=False)
        ticks = ax.get_yticklabels()
        ax.set_ylabel("")
        ax.set_xlabel(axis_label(metric))
    else:
        ax.set_xticks(pos, order, rotation=30, ha="right", rotation_mode="anchor")
        ax.grid(axis="x", visible=False)
        ticks = ax.get_xticklabels()
        ax.set_xlabel("")
        ax.set_ylabel(axis_label(metric))
    for tick, m in zip(ticks, order):
        if m == reference:
            tick.set_fontweight("bold")
    return ax


def line_ci_plot(
    data: pd.DataFrame,
    x: str,
    metric: str,
    hue: str,
    ax: Any,
    order: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    show_points: bool = False,
    legend: bool = True,
    ci: str = "bars",
    dodge_pt: float = 3.0,
) -> Any:
    """Mean of ``metric`` vs ``x`` (e.g. label ratio), one line per ``hue`` level with its own marker, 95 % CI.

    ``ci="bars"`` (default): whiskers at each point, the levels shifted sideways by ``dodge_pt`` points each so
    their intervals never overlap (the data coordinates stay exact; only the drawing is offset);
    ``ci="band"``: a shaded band (one level, or bands that do not overlap). ``data``: a runs table (one row per
    run; ``show_points`` draws the runs as small dots) or a long summary from
    :func:`~lanet_core.stats.summarise_runs` grouped by ``[hue, x]``. ``x`` must be numeric; with at most six
    distinct values the ticks sit on them. The y range spans at least 10 points (percent metrics) or 0.1
    (fractions), so that differences of one or two images do not look steep. ``legend=False``: the caller draws
    one legend for the figure. Returns ``ax``.
    """
    from matplotlib.transforms import ScaledTranslation

    if ci not in ("bars", "band"):
        raise ValueError(f"line_ci_plot: ci must be 'bars' or 'band', got {ci!r}")
    summary = _plot_summary(data, metric, [hue, x])
    if not pd.api.types.is_numeric_dtype(summary[x]):
        raise DataError(f"line_ci_plot: x column {x!r} must be numeric, got {summary[x].dtype}")
    levels = list(order) if order is not None else list(pd.unique(summary[hue]))
    palette = dict(palette) if palette is not None else method_palette(levels)
    for k, level in enumerate(levels):
        part = summary[summary[hue] == level].sort_values(x)
        if part.empty:
            raise DataError(f"line_ci_plot: no {metric!r} values for {hue}={level!r}")
        color = palette.get(level, method_color(str(level)))
        shift = (k - (len(levels) - 1) / 2) * dodge_pt if ci == "bars" else 0.0
        trans = ax.transData + ScaledTranslation(shift / 72, 0, ax.figure.dpi_scale_trans)
        xs = part[x].to_numpy(dtype=float)
        low, high = part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float)
        ax.plot(xs, part["mean"], marker=method_marker(str(level)), markersize=4, color=color, label=str(level),
                markeredgecolor="white", markeredgewidth=0.5, zorder=5, transform=trans)
        if ci == "bars":
            _whiskers(ax, xs, low, high, False, color=color, lw=1.0, halo=False, transform=trans)
            ok = np.isfinite(low) & np.isfinite(high)
            if ok.any():  # caps: short horizontal ticks (markers, so their width is in points)
                ax.scatter(np.r_[xs[ok], xs[ok]], np.r_[low[ok], high[ok]], marker="_", s=12, color=color,
                           linewidths=1.0, zorder=4, transform=trans)
        else:
            band = np.isfinite(low)
            if band.any():
                ax.fill_between(xs[band], low[band], high[band], color=color, alpha=0.2, linewidth=0, zorder=1)
        if show_points:
            for xv, vals in zip(xs, part["values"]):
                if len(vals):
                    ax.scatter(np.full(len(vals), xv), vals, s=6, color=color, alpha=0.6, linewidths=0, zorder=2,
                               transform=trans)
                    ax.update_datalim(np.c_[np.full(len(vals), xv), vals])
        # artists drawn with an offset transform do not update the data limits themselves
        pts = np.c_[np.r_[xs, xs, xs], np.r_[part["mean"].to_numpy(dtype=float), low, high]]
        ax.update_datalim(pts[np.isfinite(pts).all(axis=1)])
    ax.autoscale_view()
    xs_all = np.sort(pd.unique(summary[x].astype(float)))
    if len(xs_all) <= 6:
        ax.set_xticks(xs_all)
        ax.set_xticklabels([f"{v:g}" for v in xs_all])
    if len(xs_all) > 1:  # room for the dodged whiskers at both ends
        pad = 0.08 * (xs_all[-1] - xs_all[0])
        ax.set_xlim(xs_all[0] - pad, xs_all[-1] + pad)
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
        ax.legend(title=axis_label(hue), frameon=False)
    return ax


# ---------------------------------------------------------------------------------------------------- figures


def count_range(counts: pd.Series) -> str:
    """The range of a set of counts for a figure key: ``"3"`` when all equal, ``"255-258"`` otherwise."""
    lo, hi = int(counts.min()), int(counts.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def bars_key(runs: pd.DataFrame, reference: str | None, method_col: str = "method") -> str:
    """The reading key of a bar figure: what bars, whiskers, dots and stars are, and n."""
    counts = runs.groupby(method_col).size()
    n = count_range(counts)
    key = ("Bars: one run each (no CI)" if counts.max() == 1 else
           f"Bars: mean; whiskers: 95 % t-CI over n = {n} seeds (clipped to the metric's range); dots: seeds")
    if reference and reference in set(runs[method_col]):
        key += (f"; stars: two-sided Welch t-test vs {reference} (bold), \u2191/\u2193 higher/lower, "
                "n/a: identical repeats")
    return key


def bars_figure(runs: pd.DataFrame, metrics: Sequence[str], reference: str | None, order: Sequence[str] | None = None,
                title: str | None = None, conditions: str | None = None, method_col: str = "method"):
    """One panel per metric (a), (b), ..., one row per method shared by every panel (methods without a metric
    keep their row, marked n/a): horizontal bars = mean, whiskers = 95 % CI, dots = seeds, stars vs
    ``reference``. 7.2 in wide; the title, reading key and ``conditions`` in the header. Returns the figure, or
    None when no metric has values."""
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    if runs.empty or not metrics:
        return None
    order = [o for o in (order or list(dict.fromkeys(runs[method_col]))) if o in set(runs[method_col])]
    palette = method_palette(order)
    height = 1.25 + 0.19 * len(order)
    with plot_context():
        fig, axes = journal_figure("double", height, 1, len(metrics), sharey=True)
        for ax, m in zip(axes[0], metrics):
            sub = runs[runs[m].notna()]
            ref = reference if reference in set(sub[method_col]) else None
            bar_ci_plot(sub, m, ax, order=order, palette=palette, reference=ref, method_col=method_col, orient="h",
                        missing="blank")
            ax.set_title(metric_title(m))
            ax.xaxis.set_major_locator(_max_ticks(4))
        for ax in axes[0][1:]:
            ax.tick_params(axis="y", length=0)
        label_panels(axes[0])
        figure_header(fig, title, [bars_key(runs, reference, method_col), conditions])
    return fig


def _max_ticks(n: int, steps: Sequence[float] = (1, 2, 2.5, 5, 10)):
    """At most ``n`` ticks at round values (no crowded labels such as "-0.0025")."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, steps=list(steps))


def lines_key(runs: pd.DataFrame, x: str, method_col: str = "method") -> str:
    """The reading key of a line figure: what points and whiskers are, and n."""
    per_point = runs.groupby([method_col, x]).size()
    if per_point.max() == 1:
        return "one seed per point (no CI)"
    key = f"points: mean; whiskers: 95 % t-CI over n = {count_range(per_point)} seeds (clipped to the metric's range)"
    if runs[method_col].nunique() > 1:
        key += "; methods shifted sideways so that their intervals do not overlap"
    return key


def lines_figure(runs: pd.DataFrame, x: str, metrics: Sequence[str], title: str | None = None,
                 conditions: str | None = None, method_col: str = "method"):
    """One panel per metric (a), (b), ...: mean ± 95 % CI vs ``x`` per method (whiskers, dodged; one marker per
    method), one legend below the panels. 7.2 in wide; the reading key and ``conditions`` in the header.
    Returns the figure, or None when no metric has values."""
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    if runs.empty or not metrics:
        return None
    methods = list(dict.fromkeys(runs[method_col]))
    with plot_context():
        fig, axes = journal_figure("double", 2.9, 1, len(metrics))
        for ax, m in zip(axes[0], metrics):
            sub = runs[runs[m].notna()]
            line_ci_plot(sub, x, m, method_col, ax, order=[o for o in methods if o in set(sub[method_col])],
                         palette=method_palette(methods), legend=False)
            ax.set_title(metric_title(m))
            ax.yaxis.set_major_locator(_max_ticks(5, steps=(1, 2, 5, 10)))
        label_panels(axes[0])
        key = lines_key(runs, x, method_col)
        key = f"{methods[0]}: {key}" if len(methods) == 1 else key[0].upper() + key[1:]
        figure_header(fig, title, [key, conditions])
        if len(methods) > 1:  # one legend below the panels, never over the data
            merged: dict[str, object] = {}
            for ax in axes[0]:  # every method, even one missing from the first metric
                for h, lab in zip(*ax.get_legend_handles_labels()):
                    merged.setdefault(lab, h)
            fig.legend(list(merged.values()), list(merged), loc="outside lower center", ncol=min(len(merged), 4),
                       frameon=False)
    return fig


def dot_ci_panel(ax: Any, rows: Sequence[str], series: Sequence[dict], metric: str | None = None) -> Any:
    """Rows (top to bottom) of points with horizontal 95 % CI whiskers, several ``series`` per row side by side
    (each ``{"label", "color", "marker", "mean", "low", "high"}`` with arrays aligned to ``rows``; NaN = no
    value). A value without a CI (e.g. one run) is drawn hollow. The x label is the metric's axis label when given.
    Returns ``ax``."""
    pos = np.arange(len(rows), dtype=float)
    k = len(series)
    step = min(0.22, 0.7 / max(k, 1))
    for j, s in enumerate(series):
        y = pos + (j - (k - 1) / 2) * step
        mean = np.asarray(s["mean"], dtype=float)
        low, high = np.asarray(s["low"], dtype=float), np.asarray(s["high"], dtype=float)
        _whiskers(ax, y, low, high, True, color=s["color"], lw=1.0, halo=False)
        ok = np.isfinite(mean)
        bare = ok & ~(np.isfinite(low) & np.isfinite(high))  # no interval: hollow, never read as precise
        filled = ok & ~bare
        ax.plot(mean[filled], y[filled], linestyle="none", marker=s["marker"], markersize=4, color=s["color"],
                markeredgecolor="white", markeredgewidth=0.5, label=s["label"], zorder=5)
        if bare.any():
            ax.plot(mean[bare], y[bare], linestyle="none", marker=s["marker"], markersize=4, markerfacecolor="white",
                    markeredgecolor=s["color"], markeredgewidth=0.9, zorder=5)
    ax.set_yticks(pos, list(rows))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    for y in pos[:-1] + 0.5:  # a faint rule between rows
        ax.axhline(y, color="0.9", linewidth=0.5, zorder=0)
    if metric is not None:
        ax.set_xlabel(axis_label(metric))
    return ax
