"""Paired tests over images (issue 12): McNemar, DeLong, paired t; the one verdict rule (issue 29); tally."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lanet_core import stats


def test_mcnemar_exact_hand_computed() -> None:
    # 10 images: a right & b wrong on 4 (n10), a wrong & b right on 1 (n01), 5 concordant
    a = [1, 1, 1, 1, 0, 1, 1, 0, 0, 1]
    b = [0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    r = stats.mcnemar_exact(a, b)
    # two-sided exact binomial: P(X<=1 or X>=4 | n=5, p=.5) = 2 * (1 + 5) / 32
    assert r.p == pytest.approx(12 / 32)
    assert r.diff == pytest.approx(0.3)
    # conditional exact CI: Clopper-Pearson of pi = 4/5 -> [0.28358, 0.99495]; d = (5/10)(2 pi - 1)
    assert r.low == pytest.approx(0.5 * (2 * 0.283582 - 1), abs=1e-5)
    assert r.high == pytest.approx(0.5 * (2 * 0.994950 - 1), abs=1e-5)
    assert (r.low < 0) == (r.p > 0.05)  # CI and exact test agree here
    assert stats.mcnemar_exact(a, a).p == 1.0


def test_delong_single_auc_variance_hand_computed() -> None:
    # 3 positives (0.9, 0.6, 0.4), 2 negatives (0.5, 0.1): placement values
    # V10 = [1, 1, 0.5], V01 = [2/3, 1]; AUC = 5/6
    y = [1, 1, 1, 0, 0]
    s = [0.9, 0.6, 0.4, 0.5, 0.1]
    v = stats.delong_variance(y, s)
    expected = np.var([1, 1, 0.5], ddof=1) / 3 + np.var([2 / 3, 1], ddof=1) / 2
    assert v == pytest.approx(expected)
    assert stats._structural_components(np.array(y), np.array(s))[0] == pytest.approx(roc_auc_score(y, s))


def test_delong_paired_difference() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = y + rng.normal(0, 0.6, 400)
    bad = y + rng.normal(0, 2.0, 400)
    r = stats.delong_paired(y, good, bad)
    assert r.diff == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad))
    assert r.low > 0 and r.p < 0.001
    same = stats.delong_paired(y, good, good)
    assert same.diff == 0 and same.p == 1.0
    # a monotone transform leaves every AUC, hence the difference, unchanged
    assert stats.delong_paired(y, np.exp(good), bad).diff == pytest.approx(r.diff)


def test_paired_t_matches_scipy() -> None:
    from scipy.stats import ttest_rel

    a = np.array([0.5, 0.6, 0.7, 0.2, 0.9])
    b = np.array([0.4, 0.6, 0.5, 0.1, 0.7])
    r = stats.paired_t(a, b)
    assert r.diff == pytest.approx(0.12) and r.p == pytest.approx(ttest_rel(a, b).pvalue)
    assert r.low < 0.12 < r.high


def test_one_verdict_function() -> None:
    """stats.verdict is the one rule from an interval to a verdict (fixed-split, cross-validated and per-image
    tables alike), and stats.rules_out the one wording of what an inconclusive interval still rules out."""
    v = stats.verdict
    assert str(v(0.05, 0.01, 0.09, "accuracy")) == "reproduced"
    assert str(v(-0.05, -0.09, -0.01, "accuracy")) == "contradicted"
    assert str(v(-0.05, -0.09, -0.01, "accuracy", "less")) == "reproduced"
    inc = v(0.01, -0.02, 0.031, "iou")
    assert inc.kind == "inconclusive" and inc.rules_out == stats.rules_out("iou", 0.031) == "an effect above +0.031"
    assert str(inc) == "inconclusive (same direction, CI includes 0): rules out an effect above +0.031"
    acc = v(-0.01, -0.05, 0.02, "accuracy")
    assert str(acc) == "inconclusive (opposite direction, CI includes 0): rules out an effect above +2.0 points"
    less = v(-0.01, -0.04, 0.02, "accuracy", "less")  # the bound on the claim's side: -low
    assert less.rules_out == "an effect above +4.0 points" and "same direction" in str(less)
    assert str(v(0.0, 0.0, 0.0, "accuracy")) == "contradicted (identical repeats, no difference)"
    assert str(v(0.01, float("nan"), float("nan"), "accuracy")) == "inconclusive (n < 2)"
    # "not better" needs a margin declared in advance (non-superiority)
    assert str(v(0.0, -0.02, 0.02, "accuracy", "not_greater")) == "inconclusive (no equivalence margin declared)"
    assert str(v(0.0, -0.02, 0.02, "accuracy", "not_greater", margin=0.03)) == "reproduced (CI below the margin +3)"
    wide = v(-0.004, -0.081, 0.073, "accuracy", "not_greater", margin=0.03)
    assert str(wide) == ("inconclusive (the CI reaches above the declared margin +3): rules out an effect above "
                         "+7.3 points")
    assert str(v(0.2, 0.1, 0.3, "accuracy", "not_greater", margin=0.03)) == "contradicted"
    with pytest.raises(stats.DataError):
        v(0.0, -1.0, 1.0, "accuracy", "better")


def test_tally() -> None:
    assert stats.tally(["reproduced", "inconclusive", "inconclusive"]) == "1 reproduced · 0 contradicted · 2 inconclusive"
