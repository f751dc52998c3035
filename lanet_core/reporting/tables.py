"""Comparison tables: per method (and stratum) "mean ± CI" over seeds with the study's Welch t-test against a
reference (:func:`comparison_table`), and paired bootstrap differences over images (:func:`paired_bootstrap_table`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from lanet_core.errors import ConfigError, DataError
from lanet_core.reporting.formats import format_diff_ci, format_metric_ci
from lanet_core.stats import (
    TTest,
    mean_ci,
    welch_ttest,
    paired_bootstrap_diff,
    require_columns,
    require_numeric,
    require_unique_rows,
)

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
    against the reference; significant labels say the direction (``"** lower"``, ``"* higher"``). The CSV keeps
    these columns as they are; the Markdown, LaTeX and notebook displays (:func:`~lanet_core.reporting.display_table`)
    show the label as a mark inside the value cell (``"50.0 ± 0.0 **↓"``) and leave the numbers to the CSV.
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
    require_unique_rows(per_image, group_cols + [seed_col, image_col], "paired_bootstrap_table")
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
