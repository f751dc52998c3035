"""Tests for lanet_core.reporting: text formats, comparison / bootstrap tables, writers, palette and plots."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lanet_core.errors import ConfigError, DataError  # noqa: E402
from lanet_core.reporting import (  # noqa: E402
    FALLBACK_COLORS,
    METHOD_COLORS,
    METRIC_FORMATS,
    axis_label,
    bar_ci_plot,
    comparison_table,
    column_header,
    display_columns,
    display_html,
    display_table,
    format_diff_ci,
    format_mean_ci,
    format_metric_ci,
    format_p,
    line_ci_plot,
    markdown_table,
    method_palette,
    paired_bootstrap_table,
    plot_context,
    save_fig,
    significance_mark,
    write_table,
)
from lanet_core.stats import summarise_runs, welch_ttest  # noqa: E402

REF = "R50+LA-Net"


@pytest.fixture
def runs() -> pd.DataFrame:
    """Tiny runs table: BUSI-like k/82 accuracies (R18 reproduces the paper's 88.6 ± 1.7), IoU for MTL/seg."""
    rows = []
    acc = {"R18": [73, 72, 73], "R50": [77, 77, 77], REF: [79, 79, 79], "U-Net": [None] * 3}
    iou = {"R18": [None] * 3, "R50": [None] * 3, REF: [0.438, 0.432, 0.445], "U-Net": [0.463, 0.459, 0.483]}
    for size in (256, 512):
        for method in acc:
            for seed in range(3):
                k = acc[method][seed]
                rows.append({
                    "method": method, "seed": seed, "image_size": size, "backbone": method.split("+")[0],
                    "accuracy": np.nan if k is None else k / 82 - (0.0 if size == 256 else 1 / 82),
                    "iou": np.nan if iou[method][seed] is None else iou[method][seed],
                })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- formats


def test_format_mean_ci() -> None:
    assert format_mean_ci(0.951, 0.017) == "95.1 ± 1.7"
    assert format_mean_ci(0.438333, 0.016163, scale=1, digits=3) == "0.438 ± 0.016"
    assert format_mean_ci(0.9, float("nan")) == "90.0"
    assert format_mean_ci(float("nan"), 0.1) == ""
    assert METRIC_FORMATS["iou"].scale == 1 and METRIC_FORMATS["iou"].digits == 3
    assert METRIC_FORMATS["accuracy"].scale == 100 and METRIC_FORMATS["accuracy"].digits == 1
    assert format_metric_ci("dice", 0.543, 0.0179) == "0.543 ± 0.018"
    assert format_metric_ci("auc", 0.99, 0.004) == "99.0 ± 0.4"
    assert format_diff_ci("correct", -0.1016, -0.1626, -0.0447) == "-10.2 [-16.3, -4.5]"
    assert axis_label("accuracy") == "Accuracy (%)" and axis_label("iou") == "IoU"
    assert axis_label("some_metric") == "Some metric"


# ---------------------------------------------------------------- comparison table


def test_comparison_table_content(runs: pd.DataFrame) -> None:
    small = runs[runs.image_size == 256]
    table = comparison_table(small, ["accuracy", "iou"], REF, extra_cols=["backbone"], order=[REF, "R18"])
    assert list(table["method"]) == [REF, "R18", "R50", "U-Net"]  # `order` first, the rest by appearance
    row = table.set_index("method")
    assert row.loc["R18", "accuracy"] == "88.6 ± 1.7"  # paper Table 5 BUSI R18-256
    assert row.loc["R18", "n"] == 3 and row.loc["R18", "backbone"] == "R18"
    expected = welch_ttest(np.array([73, 72, 73]) / 82, [79 / 82] * 3)
    assert row.loc["R18", "accuracy_p"] == pytest.approx(expected.pvalue)
    assert row.loc["R18", "accuracy_p"] < 0.01 and row.loc["R18", "accuracy_sig"] == "** lower"
    assert row.loc["R50", "accuracy"] == "93.9 ± 0.0"
    assert row.loc["R50", "accuracy_sig"] == "identical repeats" and np.isnan(row.loc["R50", "accuracy_p"])
    assert row.loc[REF, "accuracy_sig"] == "reference"
    assert row.loc["U-Net", "accuracy"] == "" and row.loc["U-Net", "accuracy_sig"] == ""
    # one convention (two-sided Welch): a method *above* the reference is flagged too, with its direction; the
    # paper's one-sided test could only ever say "ns" here
    assert row.loc["U-Net", "iou"] == "0.468 ± 0.032" and row.loc["U-Net", "iou_sig"] == "* higher"
    assert row.loc[REF, "iou"] == "0.438 ± 0.016"
    assert row.loc["R18", "accuracy_mean"] == pytest.approx(218 / 246)
    text_only = comparison_table(small, ["accuracy"], REF, numeric=False)
    assert list(text_only.columns) == ["method", "n", "accuracy", "accuracy_sig"]


def test_comparison_table_matches_reference_within_strata(runs: pd.DataFrame) -> None:
    table = comparison_table(runs, ["accuracy"], REF, group_cols=("method", "image_size"))
    assert len(table) == 8
    r18_512 = table[(table.method == "R18") & (table.image_size == 512)].iloc[0]
    ref_512 = runs[(runs.method == REF) & (runs.image_size == 512)]["accuracy"]
    r18_vals = runs[(runs.method == "R18") & (runs.image_size == 512)]["accuracy"]
    assert r18_512["accuracy_p"] == pytest.approx(welch_ttest(r18_vals, ref_512).pvalue)
    assert r18_512["accuracy"] == "87.4 ± 1.7"


def test_comparison_table_errors(runs: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="R101"):
        comparison_table(runs, ["accuracy"], "R101")
    with pytest.raises(DataError, match="image_size"):
        comparison_table(runs, ["accuracy"], REF, extra_cols=["image_size"])  # two sizes per method
    with pytest.raises(DataError, match="f2"):
        comparison_table(runs, ["f2"], REF)
    with pytest.raises(DataError, match="not numeric"):
        comparison_table(runs.assign(iou="n/a"), ["iou"], REF)
    with pytest.raises(ConfigError, match="method_col"):
        comparison_table(runs, ["accuracy"], REF, group_cols=("image_size",))


# ---------------------------------------------------------------- paired bootstrap table


def _per_image(n: int = 40) -> pd.DataFrame:
    ids = [f"img{i:03d}" for i in range(n)]
    rng = np.random.default_rng(0)
    base_iou = rng.uniform(0.2, 0.7, n)
    rows = []
    for seed in range(3):
        for i, image_id in enumerate(ids):
            rows.append({"method": REF, "seed": seed, "image_id": image_id, "correct": 1.0,
                         "iou": base_iou[i]})
            # "R18": wrong on the first 8 images in every seed; on image 8 only in seed 0
            wrong = i < 8 or (i == 8 and seed == 0)
            rows.append({"method": "R18", "seed": seed, "image_id": image_id, "correct": 0.0 if wrong else 1.0,
                         "iou": np.nan})
            rows.append({"method": "U-Net", "seed": seed, "image_id": image_id, "correct": np.nan,
                         "iou": base_iou[i] - 0.05})
    return pd.DataFrame(rows)


def test_paired_bootstrap_table_content() -> None:
    table = paired_bootstrap_table(_per_image(), REF, n_resamples=1000)
    assert list(zip(table.method, table.metric)) == [("R18", "correct"), ("R18", "iou"), ("U-Net", "correct"),
                                                     ("U-Net", "iou")]
    t = table.set_index(["method", "metric"])
    r18 = t.loc[("R18", "correct")]
    # seed-averaged per-image correctness: 8 images 0, one image 2/3, the rest 1
    assert r18["mean"] == pytest.approx((31 + 2 / 3) / 40)
    assert r18["diff"] == pytest.approx((31 + 2 / 3) / 40 - 1.0)
    assert r18["low"] < r18["diff"] < r18["high"] < 0
    assert r18["n_images"] == 40 and r18["n_seeds"] == 3 and r18["note"] == ""
    unet = t.loc[("U-Net", "iou")]
    assert unet["diff"] == pytest.approx(-0.05) and unet["low"] == pytest.approx(-0.05)
    assert unet["high"] == pytest.approx(-0.05) and unet["note"] == "all values identical"
    assert unet["diff_ci"] == "-0.050 [-0.050, -0.050]"
    assert "not applicable" in t.loc[("R18", "iou"), "note"] and pd.isna(t.loc[("R18", "iou"), "n_images"])


def test_paired_bootstrap_table_bad_input() -> None:
    per_image = _per_image(5)
    per_image = pd.concat([per_image, per_image.iloc[:1]])
    with pytest.raises(DataError, match="repeat"):
        paired_bootstrap_table(per_image, REF, n_resamples=100)
    with pytest.raises(DataError, match="not numeric"):
        paired_bootstrap_table(_per_image(5).assign(iou="big"), REF, n_resamples=100)


# ---------------------------------------------------------------- writers


def test_write_table_is_deterministic(tmp_path: Path, runs: pd.DataFrame) -> None:
    table = comparison_table(runs[runs.image_size == 256], ["accuracy", "iou"], REF)
    first = write_table(table, "busi_cls", tmp_path / "a", caption="BUSI, 256 px")
    second = write_table(table, "busi_cls", tmp_path / "b", caption="BUSI, 256 px")
    assert set(first) == {"csv", "md", "tex"}
    for ext in first:
        assert first[ext].read_bytes() == second[ext].read_bytes()
    again = write_table(table, "busi_cls", tmp_path / "a", caption="BUSI, 256 px")
    assert again["md"].read_bytes() == second["md"].read_bytes()
    assert not list((tmp_path / "a").glob(".*tmp"))  # no temporary files left behind

    back = pd.read_csv(first["csv"])
    assert back["accuracy_mean"].tolist() == pytest.approx(table["accuracy_mean"].tolist(), nan_ok=True)
    assert back["accuracy_sig"].fillna("").tolist() == table["accuracy_sig"].tolist()  # the machine-readable labels
    md = first["md"].read_text(encoding="utf-8")
    nb = "\u00a0"
    # the caption gets the key to the marks; units in the headers; the marks inside the value cell, glued to it
    assert md.startswith("BUSI, 256 px; marks vs the reference: * p < 0.05, ** p < 0.01, *** p < 0.001 "
                         "(↓ lower, ↑ higher); no mark: p ≥ 0.05 or the reference; n/a: no test")
    assert "| method     |   n | Accuracy (%)" in md and "| IoU " in md
    assert f"| 88.6{nb}±{nb}1.7{nb}**↓ |" in md and f"93.9{nb}±{nb}0.0{nb}n/a" in md
    lines = md.splitlines()
    assert set(lines[3].replace("|", "").replace(" ", "")) <= {"-", ":"}  # the rule line
    tex = first["tex"].read_text(encoding="utf-8")
    assert r"\toprule" in tex and r"\label{tab:busi_cls}" in tex and r"\caption{BUSI, 256 px; marks" in tex
    assert r"88.6~\ensuremath{\pm}~1.7~**\ensuremath{\downarrow}" in tex and "±" not in tex and nb not in tex
    assert r"Accuracy (\%)" in tex
    # the readable renderings show text and marks; the _sig labels and numeric companions live in the CSV only
    for text in (md.split("\n\n", 1)[1], tex):
        assert "accuracy_mean" not in text and r"accuracy\_mean" not in text
        assert "_sig" not in text and r"\_sig" not in text and "| identical repeats" not in text
    full = write_table(table, "busi_cls_full", tmp_path / "a", compact=False)
    assert "accuracy_mean" in full["md"].read_text(encoding="utf-8")


def test_display_columns_drops_numeric_companions_only() -> None:
    df = pd.DataFrame({"method": ["a"], "n": [3], "accuracy": ["90.0 ± 1.0"], "accuracy_sig": ["ns"],
                       "accuracy_mean": [0.9], "accuracy_p": [0.2], "iou_mean": [0.4], "auc_diff": [0.1]})
    # iou_mean and auc_diff stay: there is no text column "iou" or "auc" that they accompany
    assert display_columns(df) == ["method", "n", "accuracy", "accuracy_sig", "iou_mean", "auc_diff"]


def test_display_table_marks_units_and_one_p_format() -> None:
    """Issue 31 item 4: marks inside the value cell, the unit once in the header, one p-value format, no column
    of companions; values never break (non-breaking spaces)."""
    nb = "\u00a0"
    df = pd.DataFrame({
        "method": ["A", "B", "C", "D"], "n": [3, 3, 3, 1],
        "accuracy": ["72.0 ± 8.0", "50.0 ± 0.0", "80.0 ± 1.0", "60.0"],
        "accuracy_sig": ["reference", "** lower", "*** higher", "n < 2"], "accuracy_mean": [0.72, 0.5, 0.8, 0.6],
        "iou": ["0.136 ± 0.035", "", "0.422 ± 0.085", ""], "iou_sig": ["reference", "", "ns", ""],
        "p (two-sided)": [float("nan"), 9.806e-38, 0.06395, 0.0041], "empty": [float("nan")] * 4,
    })
    shown = display_table(df)
    assert list(shown.cells.columns) == ["method", "n", "Accuracy (%)", "IoU", "p (two-sided)"]
    acc = shown.cells["Accuracy (%)"].tolist()
    assert acc == [f"72.0{nb}±{nb}8.0", f"50.0{nb}±{nb}0.0{nb}**\u2193", f"80.0{nb}±{nb}1.0{nb}***\u2191",
                   f"60.0{nb}n/a"]
    assert shown.cells["IoU"].tolist() == [f"0.136{nb}±{nb}0.035", "", f"0.422{nb}±{nb}0.085", ""]  # ns: no mark
    assert shown.cells["p (two-sided)"].tolist() == ["", f"<{nb}0.001", "0.0640", "0.00410"]
    assert shown.right == [False, True, False, False, True]
    assert "↓ lower, ↑ higher" in shown.legend and "n/a: no test" in shown.legend
    assert shown.hidden == 4  # accuracy_sig, accuracy_mean, iou_sig, empty
    # the CSV keeps every column; write_table's Markdown is this display
    assert display_table(df[["method", "accuracy"]]).legend == ""


def test_format_p_is_the_one_p_value_format() -> None:
    assert [format_p(p) for p in (9.806e-38, 0.000999, 0.001, 0.00416, 0.06395, 0.718, 1.0)] == [
        "p < 0.001", "p < 0.001", "p = 0.00100", "p = 0.00416", "p = 0.0640", "p = 0.718", "p = 1.00"]
    assert format_p(0.06395, label=False) == "0.0640" and format_p(float("nan")) == ""
    from lanet_core.stats import diff_ci

    text = diff_ci(np.array([0.80, 0.82, 0.84]), np.array([0.70, 0.71, 0.72]), "accuracy")["accuracy"]
    assert text.endswith("(p = 0.00245)") or re.search(r"\(p (=|<) [0-9.]+\)$", text), text


def test_column_headers_state_the_unit_once() -> None:
    assert column_header("accuracy") == "Accuracy (%)" and column_header("iou") == "IoU"
    assert column_header("accuracy", difference=True) == "Accuracy (points)"
    assert column_header("auc (paper)") == "AUC, paper (%)" and column_header("iou (paper)") == "IoU, paper"
    assert column_header("accuracy drop") == "Accuracy, drop (points)" and column_header("auc (%)") == "AUC (%)"
    assert column_header("iou_tuned") == "IoU, tuned threshold" and column_header("method") == "method"
    assert column_header("iou_box") == "IoU (box)"
    assert significance_mark("** lower") == "**\u2193" and significance_mark("ns") == ""
    assert significance_mark("identical repeats") == "n/a" and significance_mark(float("nan")) == ""


def test_display_of_a_long_table_and_of_bare_interval_numbers() -> None:
    """A paired-bootstrap-like table: the metric cell carries the unit, means in the metric's units, and the bare
    ``diff``/``low``/``high`` behind the interval text stay in the CSV."""
    df = pd.DataFrame({"method": ["A", "A"], "metric": ["correct", "iou"], "n_images": [82, 82],
                       "mean": [0.7073, 0.248], "mean_reference": [0.7195, 0.1355], "diff": [-0.0122, 0.1125],
                       "low": [-0.057, 0.085], "high": [0.037, 0.145],
                       "diff_ci": ["-1.2 [-5.7, +3.7]", "+0.112 [+0.085, +0.145]"], "note": ["", ""]})
    cells = display_table(df).cells
    assert list(cells.columns) == ["method", "metric", "n_images", "mean", "mean_reference", "diff_ci"]
    assert cells["metric"].tolist() == ["Accuracy (%)", "IoU"]
    assert cells["mean"].tolist() == ["70.7", "0.248"] and cells["mean_reference"].tolist() == ["72.0", "0.136"]
    assert cells["diff_ci"].tolist() == ["-1.2 [-5.7,\u00a0+3.7]", "+0.112 [+0.085,\u00a0+0.145]"]


def test_display_html_caption_key_and_thin_spaces() -> None:
    df = pd.DataFrame({"method": ["A", "B"], "accuracy": ["72.0 ± 8.0", "50.0 ± 0.0"],
                       "accuracy_sig": ["reference", "** lower"], "accuracy_mean": [0.72, 0.5], "n_seeds_x": [3, 3]})
    html = display_html(df, "Table <5>", "t5")
    assert html.startswith("<p><b>Table &lt;5&gt;; marks vs the reference") and "(all 5 columns: tables/t5.csv)" in html
    assert "50.0\u202f±\u202f0.0\u00a0**\u2193" in html and "_sig" not in html
    assert "<th>Accuracy (%)</th>" in html and "n_<wbr>seeds_<wbr>x" in html


def test_notebook_display_of_a_study_table_and_of_frames_derived_from_it(tmp_path) -> None:
    """Study.table's frame, and a column selection of it, display as the study table (caption, marks); a pivot
    of it keeps pandas' attrs but is shown as a plain frame, without a caption naming other columns."""
    from types import SimpleNamespace

    from lanet_core.study.notebook import Study, _readable_html

    df = pd.DataFrame({"method": ["A", "B"], "target": ["x", "y"], "accuracy": ["72.0 ± 8.0", "50.0 ± 0.0"],
                       "accuracy_sig": ["reference", "** lower"]})
    study = Study(profile=SimpleNamespace(tables_dir=tmp_path, figures_dir=tmp_path), train=False)
    tab = study.table(df, "t", "Caption naming accuracy_sig")
    assert "**\u2193" in _readable_html(tab) and "Caption naming" in _readable_html(tab[["method", "accuracy"]])
    pivot = tab.pivot_table(index="method", columns="target", values="accuracy", aggfunc="first")
    assert "Caption naming" not in _readable_html(pivot)
    assert (tmp_path / "t.md").read_text(encoding="utf-8").count("|") > 0


def test_markdown_table_escapes_and_formats() -> None:
    df = pd.DataFrame({"name": ["a|b", "c"], "p": [4.2e-05, np.nan], "n": [82, 3], "x": [512.0, 0.12345678]})
    md = markdown_table(df)
    assert "a\\|b" in md and "4.2e-05" in md and "0.1235" in md and " 512 |" in md and "512.0" not in md
    header, rule = md.splitlines()[:2]
    assert rule.split("|")[2].strip().endswith(":")  # numeric column right-aligned


def test_write_table_rejects_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stem"):
        write_table(pd.DataFrame({"a": [1]}), "../escape", tmp_path)


def test_save_fig_byte_identical(tmp_path: Path, runs: pd.DataFrame) -> None:
    def render(out: Path) -> tuple[Path, Path]:
        with plot_context("paper"):
            fig, ax = plt.subplots(figsize=(3, 2))
            bar_ci_plot(runs[(runs.image_size == 256) & runs.accuracy.notna()], "accuracy", ax, reference=REF)
            paths = save_fig(fig, "acc", out)
            plt.close(fig)
        return paths

    png1, pdf1 = render(tmp_path / "one")
    png2, pdf2 = render(tmp_path / "two")
    assert png1.read_bytes() == png2.read_bytes() and pdf1.read_bytes() == pdf2.read_bytes()
    assert png1.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf1.read_bytes()[:5] == b"%PDF-"
    assert b"Software" not in png1.read_bytes() and b"CreationDate" not in pdf1.read_bytes()


# ---------------------------------------------------------------- palette


def test_method_palette_fixed_and_stable() -> None:
    pal = method_palette(["R18", "R50+LA-Net", "UNet", "R50+LA-Net (0.25)", "mnv2+LA-Net", "Mystery-Net"])
    assert pal["R18"] == METHOD_COLORS["R18"] == "#0072B2"  # Okabe-Ito blue
    assert pal["R50+LA-Net"] == pal["R50+LA-Net (0.25)"] == METHOD_COLORS["R50+LA-Net"]
    assert pal["UNet"] == METHOD_COLORS["U-Net"]
    assert pal["mnv2+LA-Net"] == METHOD_COLORS["MobileNetV2+LA-Net"]
    assert pal["Mystery-Net"] in FALLBACK_COLORS
    assert method_palette(["Mystery-Net"]) == {"Mystery-Net": pal["Mystery-Net"]}  # independent of the others
    known = ["R18", "R50", "EB0", "ViT", "R18+RMTL", "R50+RMTL", "R18+LA-Net", "R50+LA-Net", "U-Net",
             "DeepLabV3", "AGN", "MobileNetV2", "MobileNetV2+RMTL", "MobileNetV2+LA-Net"]
    assert len(set(method_palette(known).values())) == len(known)
    ablation = method_palette(["R18+LA-Net (no CAM)"])["R18+LA-Net (no CAM)"]
    assert ablation == METHOD_COLORS["R18+LA-Net (no CAM)"] != METHOD_COLORS["R18+LA-Net"]


# ---------------------------------------------------------------- plots


def test_bar_ci_plot_bars_points_and_stars(runs: pd.DataFrame) -> None:
    data = runs[(runs.image_size == 256) & runs.accuracy.notna()]
    fig, ax = plt.subplots()
    bar_ci_plot(data, "accuracy", ax, order=["R18", "R50", REF], reference=REF)
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([100 * 218 / 246, 100 * 77 / 82, 100 * 79 / 82])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["**\u2193", "n/a"]  # R18 significantly lower (two-sided Welch); R50 vs reference: identical repeats
    assert ax.get_ylabel() == "Accuracy (%)"
    assert len(ax.collections[-1].get_offsets()) == 3  # one dot per seed (last method)
    assert [t.get_fontweight() for t in ax.get_xticklabels()][-1] == "bold"
    plt.close(fig)


def test_bar_ci_plot_from_summary_with_given_pvalues(runs: pd.DataFrame) -> None:
    summary = summarise_runs(runs[runs.image_size == 256], ["method"], ["iou"]).dropna(subset=["mean"])
    fig, ax = plt.subplots()
    bar_ci_plot(summary, "iou", ax, pvalues={"U-Net": 0.004})
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.438333, 0.468333], abs=1e-6)
    assert [t.get_text() for t in ax.texts] == ["**"]
    with pytest.raises(DataError, match="R18"):
        bar_ci_plot(summary, "iou", ax, order=["R18"])
    with pytest.raises(DataError, match="neither"):
        bar_ci_plot(summary.drop(columns="metric"), "iou", ax)
    plt.close(fig)


def test_line_ci_plot_means_and_band() -> None:
    rows = [{"method": m, "label_ratio": r, "seed": s, "iou": 0.3 + 0.1 * r + 0.01 * s + 0.05 * (m == "U-Net")}
            for m in ("R18+LA-Net", "U-Net") for r in (1.0, 0.25, 0.5) for s in range(3)]
    fig, ax = plt.subplots()
    line_ci_plot(pd.DataFrame(rows), "label_ratio", "iou", "method", ax)
    lines = ax.get_lines()
    assert len(lines) == 2
    assert list(lines[0].get_xdata()) == [0.25, 0.5, 1.0]
    assert list(lines[0].get_ydata()) == pytest.approx([0.335, 0.36, 0.41])
    assert lines[1].get_color() == METHOD_COLORS["U-Net"]
    assert ax.get_xlabel() == "Fraction of training images with masks" and ax.get_ylabel() == "IoU"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["R18+LA-Net", "U-Net"]
    plt.close(fig)


def test_study_bootstrap_restricts_to_one_family(tmp_path) -> None:
    """``Study.bootstrap(methods=...)`` keeps only that family's rows (and the reference), e.g. the LA-Net-fine
    ablation inside an experiment that also holds the stride-32 one."""
    from types import SimpleNamespace

    from lanet_core.study.notebook import Study

    per = _per_image()
    study = Study(profile=SimpleNamespace(tables_dir=tmp_path, figures_dir=tmp_path), train=False)
    res = SimpleNamespace(per_image=lambda: per)
    everything = study.bootstrap(res, REF, "all")
    assert set(everything["method"]) == {"R18", "U-Net"}
    one = study.bootstrap(res, REF, "family", methods=["U-Net"])
    assert set(one["method"]) == {"U-Net"} and (tmp_path / "family.csv").is_file()
    pd.testing.assert_frame_equal(one.reset_index(drop=True),
                                  everything[everything["method"] == "U-Net"].reset_index(drop=True))
    assert study.bootstrap(res, REF, "none", methods=["not run"]).empty and not (tmp_path / "none.csv").exists()
    with pytest.raises(TypeError, match="list"):
        study.bootstrap(res, REF, "str", methods="U-Net")


def test_intervals_respect_the_metric_range() -> None:
    """Issue 29 item 7: no '93.9 ± 7.4' (above 100) or '0.002 ± 0.008' (below 0) in any table."""
    from lanet_core.reporting import format_mean_ci, format_metric_ci

    assert format_metric_ci("auc", 0.939, 0.074) == "93.9 [86.5, 100.0]"
    assert format_metric_ci("iou", 0.002, 0.008) == "0.002 [0.000, 0.010]"
    assert format_metric_ci("accuracy", 0.951, 0.017) == "95.1 ± 1.7"  # inside the range: unchanged
    assert format_mean_ci(0.5, float("nan")) == "50.0"
    assert format_mean_ci(0.95, 0.1, bounds=None) == "95.0 ± 10.0"

def test_whole_numbers_keep_a_columns_fixed_decimals() -> None:
    """81.0 beside 78.7 prints 81.0 (a pooled CV cell once printed "81"); 0.18 beside 0.426 prints 0.180 (a column
    of numbers rounded to 3 decimals reads at 3); 512.0 beside 0.1235 (four significant digits, not a fixed
    rounding), a column the format rounds (.4g of 0.123456) and integer columns print as the format has them."""
    md = markdown_table(pd.DataFrame({"pooled": [78.7, 81.0, np.nan], "n": [3, 4, 5], "whole": [1.0, 2.0, 3.0],
                                      "sig": [512.0, 0.1235, 2.5], "iou": [0.426, 0.18, 1.0],
                                      "rounded": [0.123456, 0.5, 2.0]}))
    rows = [[c.strip() for c in r.split("|")[1:-1]] for r in md.splitlines()[2:]]
    assert rows[1] == ["81.0", "4", "2", "0.1235", "0.180", "0.5"]
    assert rows[0] == ["78.7", "3", "1", "512", "0.426", "0.1235"]
    assert rows[2] == ["", "5", "3", "2.5", "1.000", "2"]
    # padding never changes a number: 3e-07 stays (not "0.00"), float32 pads like float64, 1e16 is not padded out
    md = markdown_table(pd.DataFrame({"p": [0.05, 3e-7, 0.5], "f32": np.array([78.7, 81.0, 80.25], dtype=np.float32),
                                      "big": [1e16, 0.5, 0.25]}))
    rows = [[c.strip() for c in r.split("|")[1:-1]] for r in md.splitlines()[2:]]
    assert [r[0] for r in rows] == ["0.05", "3e-07", "0.5"]
    assert [r[1] for r in rows] == ["78.70", "81.00", "80.25"]
    assert rows[0][2] == "1e+16" and rows[1][2] == "0.5"


def test_metric_title_drops_the_unit_only() -> None:
    """Panel titles lose "(%)" but keep a qualifier: box IoU once read as plain "IoU" in the BUS-BRA figures."""
    from lanet_core.reporting import metric_title

    assert metric_title("accuracy") == "Accuracy" and metric_title("f1_macro") == "F1, macro"
    assert metric_title("iou_box") == "IoU (box)" and metric_title("iou") == "IoU"
