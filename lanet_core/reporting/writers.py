"""Deterministic writers: tables as CSV, Markdown and LaTeX (:func:`write_table`), figures as PNG and PDF
(:func:`save_fig`); the same input gives byte-identical files."""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from lanet_core.io import atomic_write_bytes, atomic_write_text
from lanet_core.errors import ConfigError, DataError


FloatFormat = str | Callable[[float], str]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(name: str, what: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ConfigError(f"{what}: {name!r} must be a plain file stem (letters, digits, '.', '_', '-')")


def _format_cells(df: pd.DataFrame, float_format: FloatFormat, na_rep: str) -> pd.DataFrame:
    """Every cell as display text: floats through ``float_format``, NaN/None as ``na_rep``. A whole number prints
    without decimals (512, not 512.0), except in a column of numbers rounded to at most 1-3 decimals, each shown
    exactly: there every cell gets the column's largest count of decimals (a pooled accuracy of 81.0 beside 78.7
    prints ``81.0``, not ``81``; a box IoU of 0.18 beside 0.236 prints ``0.180``), so a column reads at one
    precision. A column whose format rounds (``.4g`` of 0.12345) keeps the format's text."""
    fmt = float_format if callable(float_format) else float_format.format

    def column(col: pd.Series) -> pd.Series:
        floats = [float(v) for v in col if isinstance(v, (float, np.floating)) and math.isfinite(float(v))]
        digits = _fixed_places(floats, fmt)

        def cell(v: Any) -> str:
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                return na_rep
            if isinstance(v, (float, np.floating)):
                v = float(v)
                if digits:
                    return f"{v:.{digits}f}"
                if v.is_integer() and abs(v) < 1e15:
                    return str(int(v))
                return fmt(v)
            return str(v)

        return col.map(cell)

    return df.apply(column).astype(str)


def _fixed_places(floats: list[float], fmt: Callable[[float], str]) -> int:
    """The decimals (1-3) every cell of a column can print with and still read as the format shows it: the largest
    count the format uses, provided each value printed with that many decimals is the number its formatted text is
    (0.18 -> "0.180" beside "0.236"; float32 81.0 beside 78.7 -> "81.0"). 0 (keep the format's text) where a value
    would change: a format that rounds (.4g of 0.123456), scientific notation (3e-07 never becomes 0.000), numbers
    of 1e15 and above."""
    shown = {v: fmt(v) for v in floats if not v.is_integer()}
    if not shown or any("e" in t.lower() or "." not in t for t in shown.values()) or any(abs(v) >= 1e15 for v in floats):
        return 0
    d = max(len(t.split(".", 1)[1]) for t in shown.values())
    if not 1 <= d <= 3:
        return 0
    try:
        same = all(float(f"{v:.{d}f}") == float(t) for v, t in shown.items())
    except ValueError:
        return 0
    return d if same else 0


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
    displays (:func:`display_table`) start from these columns and put the ``_sig`` label into the value cell.
    """
    text = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    companions = {f"{t}_{s}" for t in text for s in NUMERIC_COMPANIONS}
    return [c for c in df.columns if not (c in companions and pd.api.types.is_numeric_dtype(df[c]))]


#: Numeric columns named like this are the numbers behind an interval shown as text in the same table (e.g.
#: ``diff``, ``low``, ``high`` beside ``diff_ci``); the display leaves them to the CSV.
BARE_COMPANIONS = ("diff", "low", "high", "half_width", "sd", "t")
_INTERVAL_TEXT = re.compile(r"[-+]?\d[\d.]*\s*(?:±\s*\d|\[)")
NBSP = "\u00a0"
NNBSP = "\u202f"  # narrow no-break space: the thin space of "72.0 ± 8.0" in HTML
_GLUE = (  # where a number expression must not break: "72.0 ± 8.0", "[-1.0, +4.9]", "p = 0.064", "p < 0.001"
    (re.compile(r"(?<=\d) ± (?=\d)"), f"{NBSP}±{NBSP}"),
    (re.compile(r"(?<=\d), (?=[-+−]?\d)"), f",{NBSP}"),
    (re.compile(r"(?<![\w.])p ([=<]) (?=\d)"), f"p{NBSP}\\1{NBSP}"),
    (re.compile(r"(?:^|(?<= ))([<>≤≥]) (?=\d)"), f"\\1{NBSP}"),
)


def glue(text: str) -> str:
    """``text`` with non-breaking spaces inside its number expressions (``"72.0 ± 8.0"``, ``"[-1.0, +4.9]"``,
    ``"p = 0.064"``, ``"< 0.001"``), so a narrow column wraps between words, never inside a value. An estimate and
    its bracketed interval (``"+2.0 [-1.0, +4.9]"``, ``"93.9 [86.5, 100.0]"``) may go on two lines, the interval
    whole."""
    for pattern, repl in _GLUE:
        text = pattern.sub(repl, text)
    return text


def _is_text(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _holds_intervals(col: pd.Series) -> bool:
    return _is_text(col) and col.dropna().astype(str).str.contains(_INTERVAL_TEXT).any()


@dataclass(frozen=True)
class DisplayTable:
    """A table as a reader sees it (:func:`display_table`): ``cells`` (text, final headers), which columns are
    right-aligned (numbers), the key to its significance marks (``legend``, for the caption) and how many columns
    of the full table (the CSV) it leaves out."""

    cells: pd.DataFrame
    right: list[bool]
    legend: str
    hidden: int


def display_table(df: pd.DataFrame, float_format: FloatFormat = "{:.4g}", na_rep: str = "") -> DisplayTable:
    """The one display of a study table, shared by its Markdown, LaTeX and notebook (HTML) renderings; a pure
    function of the table's columns, so a CSV read back displays the same.

    * the numeric companions of a text column go (:func:`display_columns`), and so do bare ``diff``, ``low``,
      ``high``, ... (:data:`BARE_COMPANIONS`) where an interval is already shown as text, and columns empty in
      every row;
    * a significance column ``<m>_sig`` goes into the value cell of ``<m>``: ``"72.0 ± 8.0 **↓"``
      (:func:`~lanet_core.reporting.formats.significance_mark`; ``legend`` keys the marks for the caption);
    * p-values in the study's one format (:func:`~lanet_core.reporting.formats.format_p`): ``"< 0.001"``, ``"0.0640"``;
    * a metric column's header states its unit once (:func:`~lanet_core.reporting.formats.column_header`:
      ``"Accuracy (%)"``, ``"IoU"``; ``"Accuracy (points)"`` for a column of differences); in a long table with a
      ``metric`` column, its ``mean`` / ``mean_reference`` are shown in that metric's units;
    * number expressions never break across lines (:func:`glue`: non-breaking spaces).
    """
    from lanet_core.reporting.formats import (column_header, format_p, is_p_column, marks_legend, metric_format,
                                              significance_mark)

    df = _with_index(df)
    if not all(isinstance(c, str) for c in df.columns):  # a pivot's (metric, stat) columns: "metric stat"
        df = df.set_axis([" ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c) for c in df.columns],
                         axis=1)
    keep = display_columns(df)
    if len(df):  # a column with nothing in any row says nothing
        keep = [c for c in keep if not (df[c].isna() | (df[c].astype(str).str.strip() == "")).all()]
    if any(_holds_intervals(df[c]) for c in keep):
        keep = [c for c in keep if not (c in BARE_COMPANIONS and pd.api.types.is_numeric_dtype(df[c]))]
    sig = {c: c[: -len("_sig")] for c in keep if c.endswith("_sig") and c[: -len("_sig")] in keep}
    shown = [c for c in keep if c not in sig]
    cells = _format_cells(df[shown], float_format, na_rep)
    right = _numeric_columns(df[shown])
    marks: set[str] = set()
    for sig_col, col in sig.items():
        mark = df[sig_col].map(significance_mark)
        marks |= set(mark)
        cells[col] = [f"{v}{NBSP}{m}" if v and m else v for v, m in zip(cells[col], mark)]
    for c in shown:
        if is_p_column(c) and pd.api.types.is_numeric_dtype(df[c]):
            cells[c] = df[c].map(lambda p: format_p(p, label=False) or na_rep)

    def in_units(metric: str, v: float) -> str:
        f = metric_format(metric)
        return na_rep if pd.isna(v) else f"{v * f.scale:.{f.digits}f}"

    if "metric" in shown and _is_text(df["metric"]):
        for c in ("mean", "mean_reference"):
            if c in shown and pd.api.types.is_numeric_dtype(df[c]):
                cells[c] = [in_units(m, v) for m, v in zip(df["metric"], df[c])]
        # the metric cell states its unit
        cells["metric"] = df["metric"].map(lambda m: column_header(m) if isinstance(m, str) else na_rep)
    cells = cells.apply(lambda col: col.map(glue))
    cells.columns = [column_header(c, difference=f"{c}_diff" in df.columns) for c in shown]
    return DisplayTable(cells.reset_index(drop=True), right, marks_legend(marks), df.shape[1] - len(shown))


def _caption(caption: str | None, legend: str) -> str | None:
    """The caption with the key to the table's marks appended (once: a caption read back from a Markdown file
    already ends with it)."""
    if not legend or (caption and legend in caption):
        return caption or None
    return f"{caption.rstrip('. ')}; {legend}" if caption else legend[0].upper() + legend[1:]


def display_html(df: pd.DataFrame, caption: str | None = None, name: str | None = None) -> str:
    """The notebook (JupyterLab) rendering of a study table: :func:`display_table` as HTML, no index, its caption
    (with the key to the marks) above and, where columns are left out, where the full table is. Narrow no-break
    spaces around "±" and a line-break opportunity after each "_" of a long snake_case name keep it narrow."""
    shown = display_table(df)
    caption = _caption(caption or name or "", shown.legend) or ""
    more = f" (all {df.shape[1]} columns: tables/{name}.csv)" if shown.hidden and name else ""
    head = f"<p><b>{html.escape(caption)}</b>{html.escape(more)}</p>" if caption or more else ""

    def cell(text: str) -> str:  # a long snake_case name may wrap after its underscores; thin spaces around ±
        return html.escape(text).replace("_", "_<wbr>").replace(f"{NBSP}±{NBSP}", f"{NNBSP}±{NNBSP}")

    cells = shown.cells.apply(lambda col: col.map(cell))
    cells.columns = [cell(c) for c in shown.cells.columns]
    return head + cells.to_html(index=False, na_rep="", escape=False)


def _markdown(header: Sequence[str], body: list[list[str]], right: Sequence[bool]) -> str:
    body = [[v.replace("|", "\\|") for v in row] for row in body]
    header = [h.replace("|", "\\|") for h in header]
    widths = [max([3, len(h)] + [len(r[j]) for r in body]) for j, h in enumerate(header)]

    def line(vals: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right)) + " |"
    return "\n".join([line(header), rule] + [line(r) for r in body]) + "\n"


def markdown_table(df: pd.DataFrame, float_format: FloatFormat = "{:.4g}", na_rep: str = "") -> str:
    """A GitHub-flavoured Markdown table of every column as it is (numeric columns right-aligned), padded for
    plain-text reading. :func:`write_table` renders :func:`display_table` instead."""
    df = _with_index(df)
    cells = _format_cells(df, float_format, na_rep)
    return _markdown([str(c) for c in df.columns], [list(r) for r in cells.itertuples(index=False)],
                     _numeric_columns(df))


def display_markdown(shown: DisplayTable) -> str:
    """:func:`display_table` as a Markdown table."""
    return _markdown(list(shown.cells.columns), [list(r) for r in shown.cells.itertuples(index=False)], shown.right)


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
    return _latex(_format_cells(df, float_format, na_rep), _numeric_columns(df), caption, label)


#: Characters a LaTeX table writes as math (after escaping); a non-breaking space is ``~``.
_LATEX_SYMBOLS = {"±": r"\ensuremath{\pm}", "\u2193": r"\ensuremath{\downarrow}", "\u2191": r"\ensuremath{\uparrow}",
                  "≥": r"\ensuremath{\geq}", "≤": r"\ensuremath{\leq}", "−": r"\ensuremath{-}",
                  "<": r"\ensuremath{<}", ">": r"\ensuremath{>}", NBSP: "~"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_text(text: str) -> str:
    """``text`` (a caption) with LaTeX's special characters escaped, as the cells are."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(cells: pd.DataFrame, right: Sequence[bool], caption: str | None, label: str | None) -> str:
    colfmt = "".join("r" if r else "l" for r in right)
    styler = cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    kwargs: dict[str, Any] = dict(hrules=True, column_format=colfmt)
    if caption is not None:
        kwargs.update(caption=_latex_text(caption), position_float="centering")
        if label:
            kwargs["label"] = label
    tex = styler.to_latex(**kwargs)
    for char, latex in _LATEX_SYMBOLS.items():
        tex = tex.replace(char, latex)
    return tex


def write_table(
    df: pd.DataFrame,
    name: str,
    out_dir: str | Path,
    caption: str | None = None,
    float_format: FloatFormat = "{:.4g}",
    compact: bool = True,
) -> dict[str, Path]:
    """Write ``name.csv`` (raw numbers, full precision), ``name.md`` and ``name.tex`` into ``out_dir``.

    With ``compact`` the Markdown and LaTeX files show the table as a reader sees it (:func:`display_table`:
    formatted metrics with their significance marks in the value cell, units in the headers, no numeric
    companions; the caption gets the key to the marks); the CSV always holds every column, as machine-readable
    text, ``_sig`` labels and numbers.

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
    if compact:
        shown = display_table(df, float_format)
        caption = _caption(caption, shown.legend)
        md = display_markdown(shown)
        tex = _latex(shown.cells, shown.right, caption, f"tab:{name}" if caption else None)
    else:
        md = markdown_table(df, float_format)
        tex = latex_table(df, caption=caption, label=f"tab:{name}" if caption else None, float_format=float_format)
    if caption:
        md = f"{caption}\n\n{md}"
    texts = {"csv": df.to_csv(index=False, lineterminator="\n"), "md": md, "tex": tex}
    paths = {}
    for ext, text in texts.items():
        paths[ext] = out_dir / f"{name}.{ext}"
        atomic_write_text(paths[ext], text)
    return paths


def save_fig(fig: Any, stem: str, out_dir: str | Path, dpi: int = 200) -> tuple[Path, Path]:
    """Save a matplotlib figure as ``stem.png`` (``dpi``) and ``stem.pdf``, atomically, at the figure's own size.

    No tight bounding box: a figure is saved at the size it was laid out for (3.5 or 7.2 in wide, see
    :mod:`lanet_core.reporting.plots`), so its fonts keep their point sizes on the page. Saved inside the study's
    style (:func:`~lanet_core.reporting.plot_context`): TrueType (Type 42) fonts in the PDF, never Type 3, and
    anything matplotlib creates while drawing (e.g. extra tick labels) gets the study's fonts. Re-renders are
    byte-identical: the PNG carries no ``Software`` entry and the PDF no ``CreationDate``.
    Returns ``(png_path, pdf_path)``.
    """
    from lanet_core.reporting.plots import plot_context

    _check_name(stem, "save_fig")
    out_dir = Path(out_dir)
    paths = (out_dir / f"{stem}.png", out_dir / f"{stem}.pdf")
    options = (
        dict(format="png", dpi=dpi, metadata={"Software": None}),
        dict(format="pdf", metadata={"CreationDate": None}),
    )
    with plot_context():
        for path, opts in zip(paths, options):
            buf = io.BytesIO()
            fig.savefig(buf, bbox_inches=None, **opts)
            atomic_write_bytes(path, buf.getvalue())
    return paths
