"""Deterministic writers: tables as CSV, Markdown and LaTeX (:func:`write_table`), figures as PNG and PDF
(:func:`save_fig`); the same input gives byte-identical files."""

from __future__ import annotations

import io
import math
import re
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
