"""Tables and figures for the study, one module per job:

* :mod:`.formats`: how each metric is shown ("mean ± CI", differences, axis labels, table headers with units,
  significance marks, the one p-value format);
* :mod:`.tables`: comparison tables (Welch t-test against a reference) and paired bootstrap tables;
* :mod:`.writers`: deterministic CSV/Markdown/LaTeX tables and PNG/PDF figures; :func:`.writers.display_table`,
  the one display of a table shared by its Markdown, LaTeX and notebook HTML;
* :mod:`.palette`: a fixed colour-blind-safe colour, marker and hatch per method;
* :mod:`.plots`: the figure style (``lanet.mplstyle``: journal widths, 7-8 pt text, TrueType fonts in PDF) and
  the bar / line / dot plots with confidence intervals shared by the notebooks.

Metric values arrive as fractions in [0, 1]; :data:`METRIC_FORMATS` says how each is shown. Everything written is
byte-identical when re-run on the same input with the same library versions. The names below are the public API
(``from lanet_core import reporting; reporting.write_table(...)``).
"""

from lanet_core.reporting.formats import (  # noqa: F401
    MetricFormat, METRIC_FORMATS, AXIS_LABELS, metric_format, metric_title, axis_label, format_mean_ci, format_metric_ci,
    format_diff_ci, format_signed, format_p, significance_mark, column_header, count_noun,
)
from lanet_core.reporting.tables import (  # noqa: F401
    comparison_table, paired_bootstrap_table,
)
from lanet_core.reporting.writers import (  # noqa: F401
    FloatFormat, NUMERIC_COMPANIONS, DisplayTable, display_columns, display_table, display_html, display_markdown,
    markdown_table, latex_table, write_table, save_fig,
)
from lanet_core.reporting.palette import (  # noqa: F401
    METHOD_COLORS, METHOD_MARKERS, FALLBACK_COLORS, OKABE_ITO, method_color, method_hatch, method_marker,
    method_palette,
)
from lanet_core.reporting.plots import (  # noqa: F401
    STYLE_PATH, ONE_COLUMN, TWO_COLUMNS, MIN_FONT_PT, PROBABILITY_CMAP, CAM_CMAP, DIFFERENCE_CMAP, FORBIDDEN_CMAPS,
    plot_context, journal_figure, label_panels, figure_header, bar_ci_plot, line_ci_plot, dot_ci_panel,
    bars_figure, lines_figure, count_range,
)

__all__ = [
    "MetricFormat", "METRIC_FORMATS", "AXIS_LABELS", "metric_format", "metric_title", "axis_label", "format_mean_ci",
    "format_metric_ci", "format_diff_ci", "format_p", "count_noun", "significance_mark", "column_header",
    "comparison_table",
    "paired_bootstrap_table", "FloatFormat", "NUMERIC_COMPANIONS", "DisplayTable", "display_columns", "display_table",
    "display_html", "display_markdown", "markdown_table", "latex_table", "write_table", "save_fig",
    "METHOD_COLORS", "METHOD_MARKERS", "FALLBACK_COLORS", "OKABE_ITO", "method_color", "method_hatch",
    "method_marker", "method_palette", "STYLE_PATH", "ONE_COLUMN", "TWO_COLUMNS", "MIN_FONT_PT", "PROBABILITY_CMAP",
    "CAM_CMAP", "DIFFERENCE_CMAP", "FORBIDDEN_CMAPS", "plot_context", "journal_figure", "label_panels",
    "figure_header", "bar_ci_plot", "line_ci_plot", "dot_ci_panel", "bars_figure", "lines_figure",
    "count_range",
]
