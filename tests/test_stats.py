"""Tests for lanet_core.stats: t-based CIs, the paper's one-sided t-test, stars and paired bootstrap CIs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from lanet_core.errors import DataError
from lanet_core.stats import (
    DEGENERATE,
    IDENTICAL_REPEATS,
    TOO_FEW,
    bootstrap_mean_ci,
    mean_ci,
    one_sided_ttest,
    paired_bootstrap_diff,
    significance_stars,
    summarise_runs,
)

T_0975_DF2 = 4.302652729749464  # t(0.975, df=2), the paper's 4.303


# ---------------------------------------------------------------- mean ± CI


def test_mean_ci_hand_computed_triplet() -> None:
    ci = mean_ci([95.1, 95.2, 95.1])
    sd = math.sqrt(((95.1 - 95.1333333) ** 2 * 2 + (95.2 - 95.1333333) ** 2) / 2)  # 0.057735
    assert ci.n == 3
    assert ci.mean == pytest.approx(95.133333, abs=1e-6)
    assert ci.sd == pytest.approx(sd, rel=1e-5)
    assert ci.sem == pytest.approx(sd / math.sqrt(3), rel=1e-5)
    assert ci.half_width == pytest.approx(T_0975_DF2 * sd / math.sqrt(3), rel=1e-5)
    assert ci.half_width == pytest.approx(0.14342, abs=1e-5)
    assert (ci.low, ci.high) == pytest.approx((ci.mean - ci.half_width, ci.mean + ci.half_width))


@pytest.mark.parametrize(
    ("triplet", "mean", "half_width"),
    [
        # paper Table 8 (BUSI, R50+LA-Net 256): IoU 0.438 ± 0.016, Dice 0.543 ± 0.018 (raw rows of
        # ablation_busi_att_iou.csv, authors-code.md §6.1/T8)
        ([0.438, 0.432, 0.445], 0.438, 0.016),
        ([0.541, 0.537, 0.551], 0.543, 0.018),
        # Table 8, R50+LA-Net (no CAM) 256 IoU: 0.412 ± 0.025
        ([0.405, 0.423, 0.407], 0.412, 0.025),
        # no-MAM Dice: raw rows give ± 0.024 (the paper prints ± 0.007, a known misprint)
        ([0.538, 0.528, 0.519], 0.528, 0.024),
    ],
)
def test_mean_ci_reproduces_paper_table8(triplet: list[float], mean: float, half_width: float) -> None:
    ci = mean_ci(triplet)
    assert round(ci.mean, 3) == mean
    assert round(ci.half_width, 3) == half_width


def test_mean_ci_zero_variance_single_and_empty() -> None:
    same = mean_ci([79 / 82] * 3)
    assert same.sd == 0.0 and same.half_width == 0.0 and same.low == same.high == pytest.approx(79 / 82)
    one = mean_ci([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.half_width) and math.isnan(one.sd)
    empty = mean_ci([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_mean_ci_drops_nan_and_uses_n_minus_1_df() -> None:
    ci = mean_ci([1.0, np.nan, 3.0])  # n = 2: sd = sqrt(2), sem = 1, t(0.975, df=1) = 12.706
    assert ci.n == 2 and ci.mean == 2.0 and ci.sem == pytest.approx(1.0)
    assert ci.half_width == pytest.approx(12.7062047, rel=1e-6)


def test_mean_ci_bad_input() -> None:
    with pytest.raises(DataError, match="numbers"):
        mean_ci(["a", "b"])
    with pytest.raises(DataError, match="infinite"):
        mean_ci([1.0, np.inf])
    with pytest.raises(DataError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


# ---------------------------------------------------------------- t-test


def test_ttest_matches_engineering_notes_example() -> None:
    # notes §2.9: ttest_ind([95.1,95.2,95.1], [89,89,87.8], alternative="greater") -> t=16.3, df=4, p=4.2e-5;
    # the paper's call is the same test with the arguments swapped and alternative="less".
    res = one_sided_ttest([89.0, 89.0, 87.8], [95.1, 95.2, 95.1], alternative="less")
    assert res.valid and res.note == ""
    assert res.statistic == pytest.approx(-16.28, abs=0.01)
    assert res.df == 4
    assert res.pvalue == pytest.approx(4.17e-5, rel=0.01)


def test_ttest_hand_computed_pooled_statistic() -> None:
    a, b = np.array([0.405, 0.423, 0.407]), np.array([0.438, 0.432, 0.445])
    sp = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    t = (a.mean() - b.mean()) / (sp * math.sqrt(2 / 3))
    res = one_sided_ttest(a, b)
    assert res.statistic == pytest.approx(t, rel=1e-9)
    assert res.pvalue < 0.01 and res.label == "**"
    greater = one_sided_ttest(a, b, alternative="greater")
    assert greater.pvalue == pytest.approx(1 - res.pvalue, rel=1e-9)


def test_ttest_identical_repeats_guard_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy would warn about precision loss and return t ~ 1e14
        res = one_sided_ttest([93.9] * 3, [96.4] * 3)
    assert res.note == IDENTICAL_REPEATS
    assert math.isnan(res.statistic) and math.isnan(res.pvalue)
    assert not res.valid and res.label == IDENTICAL_REPEATS


def test_ttest_one_group_constant_is_still_valid() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = one_sided_ttest([73 / 82, 72 / 82, 73 / 82], [79 / 82] * 3)
    assert res.valid and res.pvalue < 0.001 and res.label == "***"


def test_ttest_too_few_and_nan_dropped() -> None:
    assert one_sided_ttest([0.9], [0.8, 0.85]).note == TOO_FEW
    res = one_sided_ttest([0.8, np.nan, 0.82], [0.9, 0.91, np.nan])
    assert res.n_comparison == 2 and res.n_proposed == 2 and res.df == 2
    with pytest.raises(DataError, match="alternative"):
        one_sided_ttest([1, 2], [3, 4], alternative="lower")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p", "stars"),
    [(0.0, "***"), (0.001, "***"), (0.0010001, "**"), (0.01, "**"), (0.0100001, "*"), (0.05, "*"),
     (0.0500001, "ns"), (1.0, "ns"), (float("nan"), ""), (None, "")],
)
def test_significance_star_boundaries(p: float | None, stars: str) -> None:
    assert significance_stars(p) == stars  # type: ignore[arg-type]


def test_significance_stars_rejects_bad_p() -> None:
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        significance_stars(1.5)
    with pytest.raises(DataError, match="number"):
        significance_stars("small")  # type: ignore[arg-type]


# ---------------------------------------------------------------- bootstrap


def _ids(n: int) -> list[str]:
    return [f"img{i:03d}" for i in range(n)]


def test_paired_bootstrap_identical_vectors_zero_width() -> None:
    correct = pd.Series(np.r_[np.ones(70), np.zeros(12)], index=_ids(82))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = paired_bootstrap_diff(correct, correct.copy(), n_resamples=2000)
    assert ci.estimate == 0.0 and ci.low == 0.0 and ci.high == 0.0
    assert ci.n == 82 and ci.n_dropped == 0 and ci.note == DEGENERATE


def test_paired_bootstrap_exact_constant_shift_is_degenerate_at_shift() -> None:
    rng = np.random.default_rng(0)
    b = pd.Series(rng.random(40), index=_ids(40))
    ci = paired_bootstrap_diff(b + 0.05, b, n_resamples=500)
    assert ci.estimate == pytest.approx(0.05) and ci.low == pytest.approx(0.05) and ci.high == pytest.approx(0.05)


def test_paired_bootstrap_noisy_shift_ci_brackets_shift() -> None:
    rng = np.random.default_rng(1)
    b = pd.Series(rng.random(82), index=_ids(82))
    a = b + 0.1 + rng.normal(0.0, 0.02, 82)
    ci = paired_bootstrap_diff(a, b, n_resamples=2000, seed=3)
    assert ci.note == "" and ci.method == "BCa"
    assert ci.low < 0.1 < ci.high
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low < 0.02  # pairing removes the large between-image spread of b
    again = paired_bootstrap_diff(a, b, n_resamples=2000, seed=3)
    assert (again.low, again.high) == (ci.low, ci.high)


def test_paired_bootstrap_aligns_by_image_id_and_counts_drops() -> None:
    rng = np.random.default_rng(2)
    b = pd.Series(rng.random(30), index=_ids(30))
    a = b + 0.2 + rng.normal(0.0, 0.01, 30)
    shuffled = a.sample(frac=1.0, random_state=0)
    assert paired_bootstrap_diff(shuffled, b, n_resamples=500).estimate == pytest.approx((a - b).mean())
    a_gap = a.drop(index=_ids(30)[:2]).copy()
    a_gap.iloc[0] = np.nan
    ci = paired_bootstrap_diff(a_gap, b, n_resamples=500)
    assert ci.n == 27 and ci.n_dropped == 3


def test_paired_bootstrap_bad_input() -> None:
    s = pd.Series([1.0, 0.0], index=["x", "x"])
    with pytest.raises(DataError, match="duplicate"):
        paired_bootstrap_diff(s, pd.Series([1.0], index=["x"]))
    with pytest.raises(DataError, match="no image"):
        paired_bootstrap_diff(pd.Series([1.0], index=["a"]), pd.Series([1.0], index=["b"]))
    with pytest.raises(DataError, match="Series"):
        paired_bootstrap_diff([1.0, 2.0], pd.Series([1.0, 2.0]))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="statistic"):
        paired_bootstrap_diff(pd.Series([1.0, 2.0]), pd.Series([1.0, 3.0]), statistic="mode")  # type: ignore


def test_bootstrap_mean_ci_of_correct_flags() -> None:
    correct = np.r_[np.ones(70), np.zeros(12)]
    ci = bootstrap_mean_ci(correct, n_resamples=2000)
    assert ci.estimate == pytest.approx(70 / 82)
    assert 0.0 <= ci.low < 70 / 82 < ci.high <= 1.0
    assert 0.05 < ci.high - ci.low < 0.25  # roughly 2 * 1.96 * sqrt(p(1-p)/n) = 0.15
    const = bootstrap_mean_ci([0.4] * 5 + [np.nan])
    assert (const.low, const.high, const.n, const.n_dropped, const.note) == (0.4, 0.4, 5, 1, DEGENERATE)
    single = bootstrap_mean_ci([0.3])
    assert single.note == TOO_FEW and math.isnan(single.low)
    with pytest.raises(DataError, match="no finite"):
        bootstrap_mean_ci([np.nan])


# ---------------------------------------------------------------- summarise_runs


def _runs() -> pd.DataFrame:
    return pd.DataFrame({
        "method": ["R50+LA-Net"] * 3 + ["R18"] * 3,
        "image_size": [256] * 6,
        "seed": [0, 1, 2] * 2,
        "accuracy": [79 / 82] * 3 + [73 / 82, 72 / 82, 73 / 82],
        "iou": [0.438, 0.432, 0.445] + [np.nan] * 3,
    })


def test_summarise_runs_long_table() -> None:
    out = summarise_runs(_runs(), ["method", "image_size"], ["accuracy", "iou"])
    assert list(out.columns) == ["method", "image_size", "metric", "n", "mean", "sd", "sem", "half_width",
                                 "low", "high"]
    assert list(out["method"]) == ["R50+LA-Net", "R50+LA-Net", "R18", "R18"]  # order of first appearance
    assert list(out["metric"]) == ["accuracy", "iou"] * 2
    r18 = out[(out.method == "R18") & (out.metric == "accuracy")].iloc[0]
    assert r18["n"] == 3 and round(r18["mean"] * 100, 1) == 88.6 and round(r18["half_width"] * 100, 1) == 1.7
    iou = out[(out.method == "R50+LA-Net") & (out.metric == "iou")].iloc[0]
    assert round(iou["half_width"], 3) == 0.016
    assert out[(out.method == "R18") & (out.metric == "iou")]["n"].item() == 0


def test_summarise_runs_bad_columns() -> None:
    with pytest.raises(DataError, match="dice"):
        summarise_runs(_runs(), ["method"], ["dice"])
    runs = _runs().assign(accuracy="high")
    with pytest.raises(DataError, match="not numeric"):
        summarise_runs(runs, ["method"], ["accuracy"])


def test_welch_difference_matches_the_welch_formula() -> None:
    import math

    from scipy import stats as sps

    from lanet_core.stats import welch_difference

    a, b = [0.70, 0.72, 0.74], [0.60, 0.61, 0.65]
    w = welch_difference(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)  # Welch-Satterthwaite
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert w.diff == pytest.approx(0.1) and w.low == pytest.approx(0.1 - half) and w.high == pytest.approx(0.1 + half)
    assert w.note == "" and 0 < w.p < 0.05
    assert welch_difference([0.5, 0.5], [0.4, 0.4]).note == "identical repeats"
    assert math.isnan(welch_difference([0.5], [0.4, 0.45]).low)


def test_diff_ci_lives_in_stats_and_is_welch_in_display_units() -> None:
    from lanet_core import stats
    from lanet_core.study import notebook

    a, b = np.array([0.80, 0.82, 0.84]), np.array([0.70, 0.71, 0.75])
    d = stats.diff_ci(a, b, "accuracy")
    w = stats.welch_difference(a, b)
    assert d["accuracy_diff"] == pytest.approx(w.diff) and d["accuracy_low"] == pytest.approx(w.low)
    from lanet_core.reporting.formats import format_p

    assert d["accuracy"] == f"+{w.diff * 100:.1f} [{w.low * 100:+.1f}, {w.high * 100:+.1f}] ({format_p(w.p)})"
    assert notebook.diff_ci is stats.diff_ci  # the notebooks' import still works
