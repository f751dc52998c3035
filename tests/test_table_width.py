"""Study tables fit JupyterLab's output area (issue 31, item 4), and their captions name only columns they show.

How the width is measured, and why in a browser: every committed study table (``results/tables/*.csv``, caption from
its ``.md``) is rendered through the display path the notebooks use (:func:`lanet_core.reporting.display_html`, the
same :func:`~lanet_core.reporting.display_table` as the Markdown and LaTeX files) and laid out by Debian's Chromium
(driven by Playwright, as ``tests/test_browser.py`` does) with JupyterLab 4's own rules for rendered HTML tables
(:data:`JUPYTERLAB_CSS`, copied from ``@jupyterlab/rendermime``'s ``base.css``: 13 px table font, 0.5 em cell padding,
``white-space: normal``) inside an output area :data:`OUTPUT_AREA_PX` = 968 px wide (the width the issue measured in
JupyterLab). A table passes when

* its rendered width is at most 968 px (wider, JupyterLab adds a horizontal scroll bar), and
* no number expression (``"72.0 ± 8.0 **↓"``, an interval ``"[-1.0, +4.9]"``, ``"p = 0.064"``) is split over two
  lines: text may wrap between words (a long method name, a note) and an estimate may end the line above its
  bracketed interval (``"+2.0"`` / ``"[-1.0, +4.9]"``), a value never.

Counting characters instead was considered and rejected: how wide a table is depends on where the browser may break a
cell (spaces, hyphens, ``<wbr>``, never a non-breaking space) and on glyph widths (a DejaVu Sans digit is 8.3 px at
13 px, an ``i`` 3.6 px, bold headers wider), so a character count either overestimates (failing tables that fit) or
needs a fudge factor that can hide a real overflow. The browser's layout is what a reader sees. Where Chromium or
Playwright is missing the browser tests skip, saying why; the caption tests need no browser.

The widths (before the change / after) are printed by the test; ``pytest -s tests/test_table_width.py`` shows them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from lanet_core import reporting
from lanet_core.paths import project_root

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
#: The results checked: the committed ones, or a freshly rendered set named by $LANET_CHECK_RESULTS (conftest points
#: $LANET_RESULTS_DIR at an empty session folder, so that variable cannot say it).
RESULTS = Path(os.environ.get("LANET_CHECK_RESULTS") or project_root() / "results")
TABLES = RESULTS / "tables"
NOTEBOOKS = RESULTS / "notebooks"
OUTPUT_AREA_PX = 968

#: JupyterLab 4's CSS for an HTML output (``@jupyterlab/rendermime`` ``style/base.css`` and the light theme's
#: variables), the rules that decide a table's layout.
JUPYTERLAB_CSS = """
:root { --jp-ui-font-family: system-ui, -apple-system, blinkmacsystemfont, 'Segoe UI', helvetica, arial, sans-serif,
          'Apple Color Emoji', 'Segoe UI Emoji', 'Segoe UI Symbol';
        --jp-content-font-family: var(--jp-ui-font-family); --jp-ui-font-size1: 13px; --jp-content-font-size1: 14px; }
body { margin: 0; }
.jp-RenderedHTMLCommon { font-family: var(--jp-content-font-family); font-size: var(--jp-content-font-size1);
                         line-height: 1.7; padding-right: 20px; }
.jp-OutputArea-output { width: %dpx; height: auto; overflow: auto; }
.jp-RenderedHTMLCommon table { border-collapse: collapse; border-spacing: 0; border: none;
                               font-size: var(--jp-ui-font-size1); table-layout: fixed; margin-left: auto;
                               margin-bottom: 1em; margin-right: auto; }
.jp-OutputArea-output.jp-RenderedHTMLCommon table { margin-left: 0; margin-right: 0; }
.jp-RenderedHTMLCommon thead { border-bottom: 1px solid #616161; vertical-align: bottom; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon tr {
    vertical-align: middle; padding: 0.5em; line-height: normal; white-space: normal; max-width: none; border: none; }
:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td, :not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon th,
:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon tr { text-align: right; }
.jp-RenderedHTMLCommon th { font-weight: bold; }
""" % OUTPUT_AREA_PX

#: A number expression that must stay on one line, whatever spaces it is written with: "72.0 ± 8.0" (and its marks),
#: an interval "[-1.0, +4.9]" (an estimate before it may end the line above), "p = 0.064", "p < 0.001".
_EXPRESSION_JS = (r"(?:[-+\u2212]?\d[\d.]*[ \u00a0\u202f]±[ \u00a0\u202f]\d[\d.]*|\[[-+\u2212]?\d[^\]]*\])"
                  r"(?:[ \u00a0]\*{1,3}[\u2191\u2193]?)?|\bp[ \u00a0][=<][ \u00a0]\d[\d.]*")

#: In the page: lay out ``html`` in the output area; its table's width there and unconstrained, and the number
#: expressions of its cells split over two lines.
_MEASURE_JS = r"""([html, pattern]) => {
  const area = document.getElementById('area');
  area.innerHTML = html;
  const table = area.querySelector('table');
  const width = table.getBoundingClientRect().width;
  const broken = [];
  for (const td of table.querySelectorAll('td')) {
    const node = td.firstChild;
    if (!node || node.nodeType !== Node.TEXT_NODE) continue;
    const expressions = new RegExp(pattern, 'g');
    let m;
    while ((m = expressions.exec(node.textContent)) !== null) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
      if (lines.size > 1) broken.push(m[0]);
    }
  }
  area.style.width = '20000px';
  const natural = area.querySelector('table').getBoundingClientRect().width;
  area.style.width = '';
  return {width: width, natural: natural, broken: broken};
}"""


#: Tables too wide by construction, with the fix each needs (empty: every study table fits; the test fails if a
#: listed one fits, so that it leaves this list).
WIDE_BY_CONSTRUCTION: dict[str, str] = {}


def _need_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium; `make browser`)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")


def measure_tables(htmls: dict[str, str]) -> dict[str, dict]:
    """``{name: {"width", "natural", "broken"}}`` of each HTML table laid out in JupyterLab's output area."""
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_content(f"<html><head><meta charset='utf-8'><style>{JUPYTERLAB_CSS}</style></head><body>"
                             "<div id='area' class='jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML'>"
                             "</div></body></html>")
            for name, html in htmls.items():
                out[name] = page.evaluate(_MEASURE_JS, [html, _EXPRESSION_JS])
        finally:
            browser.close()
    return out


def committed_caption(name: str) -> str:
    """The caption of a committed table: the paragraph above the table in its Markdown file."""
    md = (TABLES / f"{name}.md").read_text(encoding="utf-8")
    return "" if md.startswith("|") else md.split("\n\n", 1)[0]


def committed_tables() -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_csv(p) for p in sorted(TABLES.glob("*.csv"))}


def study_table_htmls() -> dict[str, str]:
    """Every committed study table as the notebooks display it."""
    return {name: reporting.display_html(df, committed_caption(name) or None, name)
            for name, df in committed_tables().items()}


@pytest.mark.browser
def test_every_study_table_fits_the_output_area() -> None:
    _need_browser()
    htmls = study_table_htmls()
    assert len(htmls) > 40, "expected the committed study tables under results/tables"
    widths = measure_tables(htmls)
    print(f"\nrendered width in a {OUTPUT_AREA_PX}-px JupyterLab output area (px; unconstrained width in brackets):")
    for name, w in sorted(widths.items(), key=lambda kv: -kv[1]["width"]):
        print(f"  {w['width']:6.0f} ({w['natural']:5.0f})  {name}")
    too_wide = {n: round(w["width"]) for n, w in widths.items() if w["width"] > OUTPUT_AREA_PX + 0.5}
    broken = {n: w["broken"][:3] for n, w in widths.items() if w["broken"]}
    unexpected = {n: w for n, w in too_wide.items() if n not in WIDE_BY_CONSTRUCTION}
    assert not unexpected, f"wider than the {OUTPUT_AREA_PX}-px output area: {unexpected}"
    fits_now = sorted(n for n in WIDE_BY_CONSTRUCTION if n in widths and n not in too_wide)
    assert not fits_now, f"these fit now: remove them from WIDE_BY_CONSTRUCTION: {fits_now}"
    assert not broken, f"values split over two lines: {broken}"


@pytest.mark.browser
def test_the_measurement_sees_a_too_wide_table_and_a_broken_value() -> None:
    """The measuring is not vacuous: the old display (a column per ``_sig``, plain spaces) of Table 5 is wider
    than the output area and its "72.0 ± 8.0" wraps; the new display of the same table fits, nothing split."""
    _need_browser()
    path = TABLES / "table5_busi_classification.csv"
    if not path.is_file():
        pytest.skip("no committed Table 5")
    df = pd.read_csv(path)
    old = df[reporting.display_columns(df)].to_html(index=False, na_rep="")
    narrow = "<table><tr><td>" + "</td><td>".join(["72.0 ± 8.0"] * 20) + "</td></tr></table>"
    res = measure_tables({"old": old, "new": reporting.display_html(df, "Table 5", "t5"), "narrow": narrow})
    assert res["old"]["width"] > OUTPUT_AREA_PX
    assert res["new"]["width"] <= OUTPUT_AREA_PX and not res["new"]["broken"]
    assert res["narrow"]["broken"]  # plain spaces: the browser breaks "72.0 ± 8.0"


# ---------------------------------------------------------------- captions

#: Column names a caption may quote: `backticked`, 'quoted', "quoted", or snake_case words.
_QUOTED = re.compile(r"`([^`]+)`|'([^'\s][^']*)'|\"([^\"]+)\"|(?<!/)\b([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+)\b(?![./]\w)")


def named_columns(caption: str) -> set[str]:
    """The column names ``caption`` quotes (in backticks or quotes) or writes in snake_case."""
    names = set()
    for m in _QUOTED.finditer(caption):
        name = next(g for g in m.groups() if g)
        if m.group(4) or m.group(1) or " " not in name.strip():  # a quoted phrase is prose, a quoted name a column
            names.add(name.strip())
    return names


def test_named_columns_reads_backticks_quotes_and_snake_case() -> None:
    caption = ("share (`cam_energy`), 'n' and zero_energy_cams; \"two words\" are prose, ablation_busi_att.csv a "
               "file, n_test/n_train a ratio")
    assert named_columns(caption) == {"cam_energy", "n", "zero_energy_cams"}


def test_every_caption_names_only_columns_its_table_shows() -> None:
    """A committed table's caption (above it in the Markdown and the notebook) names no column the display leaves
    out or shows under another header (a metric is shown with its unit: "IoU (box)", not "iou_box")."""
    wrong = {}
    for name, df in committed_tables().items():
        caption = committed_caption(name)
        shown = set(reporting.display_table(df).cells.columns)
        missing = sorted(c for c in named_columns(caption) if c not in shown)
        if missing:
            wrong[name] = missing
    assert not wrong, f"captions naming columns their table does not show: {wrong}"


def _notebook_tables(path: Path) -> list[tuple[str, list[str]]]:
    """(caption, headers) of every study table an executed notebook displays (its HTML output)."""
    out = []
    for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
        for output in cell.get("outputs", []):
            html = "".join(output.get("data", {}).get("text/html", []))
            m = re.match(r"\s*<p><b>(.*?)</b>.*?</p>\s*<table", html, re.S)
            if not m:
                continue
            headers = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", html, re.S)]
            out.append((m.group(1), [_unescape(h).strip() for h in headers]))
    return out


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_executed_notebooks_captions_name_only_columns_shown() -> None:
    """What a reader sees in a notebook, column selections included (notebook 09 showed a caption naming
    ``bootstrap_method`` above a selection without it)."""
    if not NOTEBOOKS.is_dir():
        pytest.skip("no executed notebooks under results/notebooks")
    wrong, tables = {}, {p.stem for p in TABLES.glob("*.csv")}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for caption, headers in _notebook_tables(path):
            named = named_columns(_unescape(caption)) - tables  # a table without a caption shows its name
            missing = sorted(c for c in named if c not in headers)
            if missing:
                wrong.setdefault(path.stem, []).append(missing)
    assert not wrong, f"notebook tables whose caption names a column they do not show: {wrong}"
