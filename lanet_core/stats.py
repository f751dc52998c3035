"""Statistics for the study: mean ± t-based 95 % CI over repeats, the paper's one-sided t-test, stars, and
paired per-image bootstrap intervals.

Conventions (LA-Net paper, ``authors-code.md`` §4.3):

* A group of ``n`` repeats (seeds) is summarised as mean ± ``t(0.975, n-1) * sd / sqrt(n)`` (sd with ``ddof=1``).
  The authors' plot script adds 1e-5 to the SEM; we do not (it only matters for zero-variance groups, where the
  paper prints ``±0.0`` anyway).
* Significance: one-sided two-sample t-test with pooled variance, ``ttest_ind(comparison, proposed,
  alternative="less")`` — a small p says "the comparison method scores lower than the proposed one".
  Identical repeats (pooled variance 0) make scipy return a meaningless t ≈ 1e14; we report
  ``note="identical repeats"`` with no t and no p instead.
* The repeat-level CI only captures training noise. :func:`paired_bootstrap_diff` resamples test images (paired
  by ``image_id``) to show test-set sampling noise.
* Cross-validation: :func:`corrected_repeated_cv_ttest` (Nadeau & Bengio 2003; Bouckaert & Frank 2004) over the
  per-(fold, seed) differences includes training variance and decides the cross-validated claims; the per-image
  paired tests (:func:`mcnemar_exact`, :func:`delong_paired`, :func:`paired_t`) condition on the trained models.
* Verdicts: :func:`verdict` is the one rule from a CI to "reproduced / contradicted / inconclusive", and
  :func:`rules_out` the one wording of what an inconclusive CI still rules out (``docs/statistics.md``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lanet_core.errors import DataError

IDENTICAL_REPEATS = "identical repeats"
TOO_FEW = "n < 2"
DEGENERATE = "all values identical"

#: Relative tolerance under which a pooled SD (t-test) or a spread of values (bootstrap) counts as zero,
#: i.e. values equal up to float round-off.
ZERO_VARIANCE_RTOL = 1e-12



@dataclass(frozen=True)
class MeanCI:
    """Mean ± t-based confidence interval of ``n`` finite values (NaNs are not counted in ``n``).

    ``sd`` uses ``ddof=1``; ``sem = sd / sqrt(n)``; ``half_width = t((1+confidence)/2, n-1) * sem``;
    ``low/high = mean ∓ half_width``. With ``n = 1`` sd, sem, half_width, low and high are NaN; with ``n = 0``
    everything is NaN. Units are those of the input values.
    """

    mean: float
    sd: float
    sem: float
    half_width: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class TTest:
    """Result of :func:`one_sided_ttest`. ``statistic``/``pvalue`` are NaN when ``note`` is set."""

    statistic: float
    pvalue: float
    df: float
    n_comparison: int
    n_proposed: int
    alternative: str = "less"
    note: str = ""

    @property
    def valid(self) -> bool:
        """True when a p-value was computed."""
        return not self.note and math.isfinite(self.pvalue)

    @property
    def label(self) -> str:
        """Stars for a valid test (see :func:`significance_stars`), else the note. A significant two-sided test
        says which way: ``"** lower"`` / ``"** higher"`` (comparison vs proposed)."""
        if not self.valid:
            return self.note
        stars = significance_stars(self.pvalue)
        if self.alternative == "two-sided" and stars != "ns" and math.isfinite(self.statistic):
            stars += " lower" if self.statistic < 0 else " higher"
        return stars


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap confidence interval for a statistic (or a paired difference of statistics).

    ``estimate`` is the statistic on the observed data; ``n`` the number of observations (pairs) used;
    ``n_dropped`` how many were dropped because a value (or its partner) was NaN or missing. ``note`` explains
    any fallback: ``"all values identical"`` (degenerate: zero-width interval at the estimate), ``"n < 2"``
    (no interval), or ``"BCa undefined; percentile used"``.
    """

    estimate: float
    low: float
    high: float
    n: int
    n_dropped: int
    confidence: float
    method: str
    n_resamples: int
    note: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# input checking


def _as_float_array(values: Iterable[float] | pd.Series | np.ndarray, what: str) -> np.ndarray:
    """1-D float array of ``values``; non-numeric or infinite entries raise :class:`DataError` naming ``what``."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: values must be numbers ({exc})") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise DataError(f"{what}: infinite value(s) at position(s) {np.flatnonzero(np.isinf(arr)).tolist()}")
    return arr


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


# --------------------------------------------------------------------------------------------------------------
# repeats: mean ± CI and the paper's t-test


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean ± t-based CI of the finite ``values`` (NaNs dropped and not counted in ``n``).

    Example: ``mean_ci([95.1, 95.2, 95.1])`` → mean 95.133, half_width 0.143 (= 4.303 · 0.0577 / √3).
    """
    _check_confidence(confidence)
    arr = _as_float_array(values, "mean_ci")
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    nan = float("nan")
    if n == 0:
        return MeanCI(nan, nan, nan, nan, nan, nan, 0, confidence)
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(mean, nan, nan, nan, nan, nan, 1, confidence)
    sd = float(arr.std(ddof=1))
    sem = sd / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return MeanCI(mean, sd, sem, half, mean - half, mean + half, n, confidence)


def one_sided_ttest(
    comparison: Iterable[float],
    proposed: Iterable[float],
    alternative: Literal["less", "greater", "two-sided"] = "less",
) -> TTest:
    """Two-sample pooled-variance t-test of ``comparison`` vs ``proposed`` (the paper's test).

    ``alternative="less"`` tests H1 "mean(comparison) < mean(proposed)"; NaNs are dropped. Returns a
    :class:`TTest` whose ``note`` is ``"n < 2"`` when either group has fewer than two finite values, or
    ``"identical repeats"`` when the pooled variance is zero (scipy would return t ≈ 1e14 and a precision
    warning); in both cases statistic and p-value are NaN.
    """
    if alternative not in ("less", "greater", "two-sided"):
        raise DataError(f"alternative must be 'less', 'greater' or 'two-sided', got {alternative!r}")
    return _ttest(comparison, proposed, alternative, equal_var=True, what="one_sided_ttest")


def _ttest(comparison: Iterable[float], proposed: Iterable[float], alternative: str, *, equal_var: bool,
           what: str) -> TTest:
    """The two-sample t-test behind :func:`one_sided_ttest` (pooled) and :func:`welch_ttest` (Welch): NaNs
    dropped, ``"n < 2"`` / ``"identical repeats"`` notes instead of scipy's meaningless t for zero spread."""
    a = _as_float_array(comparison, f"{what} comparison")
    b = _as_float_array(proposed, f"{what} proposed")
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    na, nb = int(a.size), int(b.size)
    nan = float("nan")
    if na < 2 or nb < 2:
        return TTest(nan, nan, nan, na, nb, alternative, TOO_FEW)
    if equal_var:
        df = float(na + nb - 2)
        spread = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df)
    else:
        df, spread = nan, math.sqrt(a.var(ddof=1) / na + b.var(ddof=1) / nb)
    scale = max(1.0, float(np.abs(np.concatenate([a, b])).max()))
    if spread <= ZERO_VARIANCE_RTOL * scale:
        return TTest(nan, nan, df, na, nb, alternative, IDENTICAL_REPEATS)
    with warnings.catch_warnings():
        # one group with zero spread is fine once the spread is positive; scipy still warns about it
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        res = sps.ttest_ind(a, b, equal_var=equal_var, alternative=alternative)
    return TTest(float(res.statistic), float(res.pvalue), float(res.df), na, nb, alternative, "")


#: The one significance convention of the study's tables, figures and claims (issue 12): two-sided Welch t-test
#: over seeds of each method against the reference; it rejects at 0.05 exactly when the claims' 95 % Welch CI of
#: the difference excludes 0. The paper's one-sided pooled test stays available as :func:`one_sided_ttest`.
SIGNIFICANCE_TEST = "two-sided Welch t-test over seeds against the reference (the test behind the claims' 95 % CIs)"


def welch_ttest(comparison: Iterable[float], proposed: Iterable[float]) -> TTest:
    """Two-sided Welch t-test of ``comparison`` vs ``proposed`` (NaNs dropped; notes as :func:`one_sided_ttest`)."""
    return _ttest(comparison, proposed, "two-sided", equal_var=False, what="welch_ttest")


@dataclass(frozen=True)
class WelchDiff:
    """Difference of means ``a - b`` of two independent samples (e.g. seeds of two settings), Welch's two-sided
    95 % CI and p; ``note``: ``"n < 2"`` (no CI) or ``"identical repeats"`` (both samples constant: CI = the
    difference, no p)."""

    diff: float
    low: float
    high: float
    p: float
    note: str = ""


def welch_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> WelchDiff:
    """Welch's difference of means of two seed samples (``scipy.stats.ttest_ind(equal_var=False)`` and its
    ``confidence_interval``): the study's between-setting difference (tables of differences, pretraining)."""
    xa, xb = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    d = float(np.mean(xa) - np.mean(xb))
    nan = float("nan")
    if len(xa) < 2 or len(xb) < 2:
        return WelchDiff(d, nan, nan, nan, TOO_FEW)
    if np.std(xa) == 0 and np.std(xb) == 0:
        return WelchDiff(d, d, d, nan, IDENTICAL_REPEATS)
    with warnings.catch_warnings():  # near-identical seeds: scipy warns about precision, the CI is still right
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        t = sps.ttest_ind(xa, xb, equal_var=False)
    ci = t.confidence_interval(confidence)
    return WelchDiff(d, float(ci.low), float(ci.high), float(t.pvalue))


def significance_stars(p: float) -> str:
    """``"***"`` for p ≤ 0.001, ``"**"`` ≤ 0.01, ``"*"`` ≤ 0.05, ``"ns"`` above; ``""`` for NaN/None."""
    if p is None:
        return ""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise DataError(f"a p-value must be a number, got {p!r}") from None
    if math.isnan(p):
        return ""
    if not 0.0 <= p <= 1.0:
        raise DataError(f"a p-value must lie in [0, 1], got {p!r}")
    from lanet_core.reporting.formats import STAR_THRESHOLDS  # the display convention; reporting imports stats

    for threshold, stars in STAR_THRESHOLDS:
        if p <= threshold:
            return stars
    return "ns"


# --------------------------------------------------------------------------------------------------------------
# per-image bootstrap

StatisticName = Literal["mean", "median"]
_STATISTICS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}


def _statistic(name: str) -> Callable[..., np.ndarray]:
    try:
        return _STATISTICS[name]
    except KeyError:
        raise DataError(f"statistic must be one of {sorted(_STATISTICS)}, got {name!r}") from None


def _run_bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    paired: bool,
    n_resamples: int,
    seed: int,
    confidence: float,
    method: str,
) -> tuple[float, float, str, str]:
    """(low, high, method actually used, note) from scipy's bootstrap; BCa falls back to percentile if undefined."""
    if n_resamples < 1:
        raise DataError(f"n_resamples must be positive, got {n_resamples}")
    methods = {"bca": "BCa", "percentile": "percentile", "basic": "basic"}
    if method.lower() not in methods:
        raise DataError(f"bootstrap method must be one of {sorted(methods.values())}, got {method!r}")
    method = methods[method.lower()]
    note = ""
    for attempt in ([method, "percentile"] if method == "BCa" else [method]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns (and returns NaN) when BCa is undefined; handled below
            res = sps.bootstrap(
                data,
                statistic,
                n_resamples=n_resamples,
                paired=paired,
                vectorized=True,
                confidence_level=confidence,
                method=attempt,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high, attempt, note
        note = "BCa undefined; percentile used"
    return float("nan"), float("nan"), method, "bootstrap interval undefined"


def bootstrap_mean_ci(
    values: Iterable[float] | pd.Series,
    statistic: StatisticName = "mean",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "BCa",
) -> BootstrapCI:
    """Bootstrap CI of one method's per-image ``statistic`` (e.g. accuracy = mean of 0/1 ``correct``).

    NaNs are dropped (counted in ``n_dropped``). All-identical values give a zero-width interval at the
    estimate (``note="all values identical"``); ``n = 1`` gives a NaN interval (``note="n < 2"``).
    """
    _check_confidence(confidence)
    stat = _statistic(statistic)
    arr = _as_float_array(values, "bootstrap_mean_ci")
    keep = arr[~np.isnan(arr)]
    dropped = int(arr.size - keep.size)
    if keep.size == 0:
        raise DataError(f"bootstrap_mean_ci: no finite values (all {arr.size} are NaN)")
    est = float(stat(keep))
    return _interval_or_degenerate(
        est, (keep,), keep, stat1=stat, paired=False, dropped=dropped, n_resamples=n_resamples, seed=seed,
        confidence=confidence, method=method,
    )


def _interval_or_degenerate(
    estimate: float,
    data: tuple[np.ndarray, ...],
    spread: np.ndarray,
    *,
    stat1: Callable[..., np.ndarray],
    paired: bool,
    dropped: int,
    n_resamples: int,
    seed: int,
    confidence: float,
    method: str,
) -> BootstrapCI:
    """Shared tail of the two bootstrap functions: handle n < 2 and degenerate data, else run scipy.

    ``spread`` is the per-observation quantity whose constancy makes the bootstrap degenerate (the values, or
    the paired differences).
    """
    n = int(spread.size)
    if n < 2:
        nan = float("nan")
        return BootstrapCI(estimate, nan, nan, n, dropped, confidence, method, n_resamples, TOO_FEW)
    if np.ptp(spread) <= ZERO_VARIANCE_RTOL * max(1.0, float(np.abs(spread).max())):
        return BootstrapCI(estimate, estimate, estimate, n, dropped, confidence, method, n_resamples, DEGENERATE)
    if len(data) == 1:
        statistic = stat1
    else:

        def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
            return stat1(x, axis=axis) - stat1(y, axis=axis)

    low, high, used, note = _run_bootstrap(
        data, statistic, paired=paired, n_resamples=n_resamples, seed=seed, confidence=confidence, method=method
    )
    return BootstrapCI(estimate, low, high, n, dropped, confidence, used, n_resamples, note)


def align_pairs(a: pd.Series, b: pd.Series, what: str = "paired series") -> tuple[pd.DataFrame, int]:
    """Align two series on their index (e.g. ``image_id``); return (pairs with both values finite, n dropped).

    Duplicate index labels raise :class:`DataError` naming them; ids present in only one series, or NaN on
    either side, are dropped and counted.
    """
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, pd.Series):
            raise DataError(f"{what}: {name} must be a pandas Series indexed by image_id, got {type(s).__name__}")
        dup = s.index[s.index.duplicated()].unique().tolist()
        if dup:
            raise DataError(f"{what}: series {name} has duplicate index label(s) {dup[:5]}; aggregate them first")
    joined = pd.concat({"a": a, "b": b}, axis=1, join="outer", sort=True)
    try:
        joined = joined.astype(float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: values must be numbers ({exc})") from None
    complete = joined.dropna()
    return complete, int(len(joined) - len(complete))


def paired_bootstrap_diff(
    a: pd.Series,
    b: pd.Series,
    statistic: StatisticName = "mean",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    method: str = "BCa",
) -> BootstrapCI:
    """Paired bootstrap CI of ``statistic(a) - statistic(b)`` over images.

    ``a`` and ``b`` are per-image values (e.g. 0/1 ``correct`` or ``iou``) indexed by ``image_id``; they are
    aligned on the index and pairs with a NaN or missing side are dropped (``n_dropped``). Images are resampled
    jointly (``scipy.stats.bootstrap(..., paired=True)``), BCa by default with a percentile fallback when BCa
    is undefined. If every paired difference is the same (e.g. identical predictions), the interval has zero
    width at the estimate and ``note="all values identical"``.
    """
    _check_confidence(confidence)
    stat = _statistic(statistic)
    pairs, dropped = align_pairs(a, b, "paired_bootstrap_diff")
    if pairs.empty:
        raise DataError(
            f"paired_bootstrap_diff: no image has a finite value in both series "
            f"({len(a)} and {len(b)} rows, {dropped} dropped)"
        )
    x, y = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    est = float(stat(x) - stat(y))
    return _interval_or_degenerate(
        est, (x, y), x - y, stat1=stat, paired=True, dropped=dropped, n_resamples=n_resamples, seed=seed,
        confidence=confidence, method=method,
    )


# --------------------------------------------------------------------------------------------------------------
# tables of runs


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`DataError` listing every column of ``columns`` missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {missing}; available: {list(df.columns)}")


def require_numeric(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`DataError` naming every column of ``columns`` that is not numeric."""
    bad = {c: str(df[c].dtype) for c in columns if not pd.api.types.is_numeric_dtype(df[c])}
    if bad:
        raise DataError(f"{what}: metric column(s) not numeric: {bad}")


def require_unique_rows(df: pd.DataFrame, keys: Sequence[str], what: str, hint: str = "") -> None:
    """Raise :class:`DataError` when rows of ``df`` repeat the same ``keys`` (e.g. two runs of one method and seed
    that a mean would silently merge), with up to three examples (and their ``run`` where the table has one)."""
    keys = list(keys)
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        shown = keys + (["run"] if "run" in df and "run" not in keys else [])
        sample = df.loc[dup, shown].head(3).to_dict("records")
        raise DataError(f"{what}: {int(dup.sum())} rows repeat the same {keys}, e.g. {sample}"
                        + (f"; {hint}" if hint else ""))


def summarise_runs(runs: pd.DataFrame, group_cols: Sequence[str], metrics: Sequence[str],
                   confidence: float = 0.95) -> pd.DataFrame:
    """Long table of mean ± CI per group and metric.

    ``runs`` has one row per run (seed). Output: one row per (group, metric), groups in order of first
    appearance and metrics in the given order, columns ``*group_cols, metric, n, mean, sd, sem, half_width,
    low, high`` (units of the input; ``n`` counts the non-NaN runs of that metric).
    """
    group_cols = list(group_cols)
    metrics = list(metrics)
    if not group_cols:
        raise DataError("summarise_runs: group_cols must name at least one column")
    require_columns(runs, group_cols + metrics, "summarise_runs")
    require_numeric(runs, metrics, "summarise_runs")
    rows = []
    for key, grp in runs.groupby(group_cols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            ci = mean_ci(grp[m], confidence)
            rows.append({**dict(zip(group_cols, key)), "metric": m, "n": ci.n, "mean": ci.mean, "sd": ci.sd,
                         "sem": ci.sem, "half_width": ci.half_width, "low": ci.low, "high": ci.high})
    columns = group_cols + ["metric", "n", "mean", "sd", "sem", "half_width", "low", "high"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------------- paired over images
# Tests of two methods scored on the *same* images (e.g. out-of-fold predictions of cross-validation). Seeds,
# where there are several, are averaged per image first (probabilities, correctness, IoU), so an image counts
# once; the unit of inference is the image.


@dataclass(frozen=True)
class PairedDiff:
    """Difference ``a - b`` over paired images: estimate, two-sided 95 % CI, two-sided p, test name, n."""

    metric: str
    diff: float
    low: float
    high: float
    p: float
    test: str
    n: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool], confidence: float = 0.95) -> PairedDiff:
    """Accuracy difference of two classifiers on the same images: exact McNemar test (two-sided binomial test
    of the discordant pairs, ``scipy.stats.binomtest``) and the matching conditional exact CI: with ``b`` images
    only A gets right and ``c`` only B, ``d = (b - c) / n = (b + c) / n * (2 pi - 1)`` for ``pi = b / (b + c)``,
    and the Clopper-Pearson interval of ``pi`` gives the CI of ``d`` (so CI and test come from the same binomial
    model; the Wald interval disagreed with the exact p near the boundary)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise DataError(f"mcnemar_exact: need two equal-length, non-empty vectors, got {a.shape} and {b.shape}")
    n = len(a)
    n10, n01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    d = (n10 - n01) / n
    if n10 + n01 == 0:
        return PairedDiff("accuracy", 0.0, 0.0, 0.0, 1.0, "exact McNemar", n)
    res = sps.binomtest(n10, n10 + n01, 0.5)
    ci = res.proportion_ci(confidence_level=confidence, method="exact")
    share = (n10 + n01) / n
    return PairedDiff("accuracy", d, share * (2 * ci.low - 1), share * (2 * ci.high - 1), float(res.pvalue),
                      "exact McNemar", n)


def _structural_components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's placement values V10 (positives) and V01 (negatives)."""
    pos, neg = score[y == 1], score[y == 0]
    cmp = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    return float(cmp.mean()), cmp.mean(axis=1), cmp.mean(axis=0)


def delong_paired(y_true: Sequence[int], score_a: Sequence[float], score_b: Sequence[float],
                  confidence: float = 0.95) -> PairedDiff:
    """AUC difference of two scores on the same images: DeLong, DeLong & Clarke-Pearson (Biometrics 1988).

    The covariance of the two AUCs comes from the placement values, so the test uses the pairing of images
    (a bootstrap would too, at 1000x the cost and with resampling noise); neither scipy nor scikit-learn has it,
    hence this implementation. Returns the difference with a normal CI and two-sided p.
    """
    y = np.asarray(y_true).astype(int)
    sa, sb = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m < 2 or n < 2 or not (len(y) == len(sa) == len(sb)):
        raise DataError(f"delong_paired: need >= 2 images of each class and equal lengths (got {m} pos, {n} neg)")
    auc_a, v10a, v01a = _structural_components(y, sa)
    auc_b, v10b, v01b = _structural_components(y, sb)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    d = auc_a - auc_b
    z = sps.norm.ppf(0.5 + confidence / 2)
    if var <= 0:
        return PairedDiff("auc", d, d, d, 1.0 if d == 0 else 0.0, "DeLong", m + n)
    se = math.sqrt(var)
    p = float(2 * sps.norm.sf(abs(d) / se))
    return PairedDiff("auc", d, d - z * se, d + z * se, p, "DeLong", m + n)


def delong_variance(y_true: Sequence[int], score: Sequence[float]) -> float:
    """DeLong's variance of one AUC (``var(V10)/m + var(V01)/n``)."""
    y = np.asarray(y_true).astype(int)
    _, v10, v01 = _structural_components(y, np.asarray(score, dtype=float))
    return float(np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01))


def paired_t(values_a: Sequence[float], values_b: Sequence[float], metric: str = "iou",
             confidence: float = 0.95) -> PairedDiff:
    """Mean difference of a per-image score (IoU, Dice) over paired images: paired t-test (``ttest_rel``) and
    its t CI; with hundreds of images the mean difference is near-normal whatever the IoU distribution."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2:
        raise DataError(f"paired_t: fewer than 2 paired {metric} values")
    d = a - b
    if np.allclose(d, d[0], rtol=0, atol=1e-15):
        return PairedDiff(metric, float(d[0]), float(d[0]), float(d[0]), 1.0 if d[0] == 0 else 0.0, "paired t", len(d))
    res = sps.ttest_rel(a, b)
    ci = res.confidence_interval(confidence)
    return PairedDiff(metric, float(d.mean()), float(ci.low), float(ci.high), float(res.pvalue), "paired t", len(d))


# ---------------------------------------------------------------------------------------------- repeated cross-validation
# The per-image tests above condition on one trained model per fold. The test below treats each (fold, seed) run as
# one replicate of the whole training procedure, so its interval includes the training variance (docs/statistics.md).

CORRECTED_CV_TEST = "corrected repeated k-fold t"


@dataclass(frozen=True)
class RepeatedCVTest:
    """Corrected repeated k-fold t-test of a mean difference ``a - b`` (:func:`corrected_repeated_cv_ttest`).

    ``estimate``/``low``/``high`` are in the units of the differences (fractions for accuracy and AUC); ``p`` is
    two-sided; ``df = n_pairs - 1``; ``sd`` is the SD of the ``n_pairs`` (fold, seed) differences and ``se`` the
    corrected standard error ``sqrt((1/n_pairs + test_train_ratio) * sd**2)``. ``note``: ``"n < 2"`` (no interval)
    or ``"all values identical"`` (zero spread: a zero-width interval at the estimate).
    """

    metric: str
    estimate: float
    low: float
    high: float
    p: float
    df: int
    n_pairs: int
    sd: float
    se: float
    test_train_ratio: float
    confidence: float = 0.95
    note: str = ""
    test: str = CORRECTED_CV_TEST

    @property
    def diff(self) -> float:
        """Alias of ``estimate`` (the field name of :class:`PairedDiff`)."""
        return self.estimate

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def corrected_repeated_cv_ttest(differences: Sequence[float], test_train_ratio: float, *, metric: str = "",
                                confidence: float = 0.95) -> RepeatedCVTest:
    """Corrected repeated k-fold t-test (Nadeau & Bengio 2003, Machine Learning 52:239-281; Bouckaert & Frank
    2004, PAKDD) over the ``J = k * r`` per-(fold, seed) differences ``a - b`` of a metric.

    ``differences``: ``(J,)`` one value per (fold, seed) at which both arms have a run; NaNs are dropped.
    ``test_train_ratio``: ``n_test / n_train`` of one fold (``>= 0``). The variance of the mean difference is
    ``(1/J + n_test/n_train) * s**2`` (``s``: SD of the differences, ``ddof=1``), which adds to the naive
    ``s**2 / J`` the correlation between runs that share training (and, across seeds, test) images; the statistic
    has ``J - 1`` degrees of freedom (``scipy.stats.t``). With one seed (``r = 1``) this is the corrected k-fold
    t-test over ``k`` differences.

    Example: differences ``[0.02, 0.04, 0.00, 0.06, 0.03]``, ratio 0.25: mean 0.03, ``s**2 = 0.0005``,
    ``se = sqrt(0.45 * 0.0005) = 0.015``, ``t = 2``, ``df = 4``, p = 0.116, 95 % CI 0.03 ± 2.776 * 0.015.
    """
    _check_confidence(confidence)
    ratio = float(test_train_ratio)
    if not (math.isfinite(ratio) and ratio >= 0):
        raise DataError(f"corrected_repeated_cv_ttest: test_train_ratio must be a finite number >= 0, got {ratio!r}")
    d = _as_float_array(differences, "corrected_repeated_cv_ttest")
    d = d[~np.isnan(d)]
    n, nan = int(d.size), float("nan")
    est = float(d.mean()) if n else nan
    if n < 2:
        return RepeatedCVTest(metric, est, nan, nan, nan, max(n - 1, 0), n, nan, nan, ratio, confidence, TOO_FEW)
    sd = float(d.std(ddof=1))
    se = _corrected_se(sd, n, ratio)
    if se <= ZERO_VARIANCE_RTOL * max(1.0, float(np.abs(d).max())):
        p = 1.0 if est == 0 else 0.0
        return RepeatedCVTest(metric, est, est, est, p, n - 1, n, sd, 0.0, ratio, confidence, DEGENERATE)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * se
    p = float(2.0 * sps.t.sf(abs(est) / se, df=n - 1))
    return RepeatedCVTest(metric, est, est - half, est + half, p, n - 1, n, sd, se, ratio, confidence)


def projected_half_width(sd: float, test_train_ratio: float, n_pairs: int | None, confidence: float = 0.95) -> float:
    """Half-width of the corrected repeated k-fold t interval (:func:`corrected_repeated_cv_ttest`) that ``n_pairs``
    (fold, seed) differences with SD ``sd`` would give: ``t(J-1) * sqrt(1/J + ratio) * sd``. ``n_pairs=None``: the
    floor no number of seeds goes below, ``z * sqrt(ratio) * sd`` (more seeds shrink only the ``1/J`` term; runs that
    share training images stay correlated). A projection: it takes an observed SD as the true one, and an SD from
    five folds is itself uncertain (4 df). NaN for ``n_pairs < 2`` or a NaN ``sd``.

    Example: ``sd`` 3.4 points, ratio 0.25: 5 pairs give 2.776 * sqrt(0.45) * 3.4 = 6.3 points, 15 pairs
    2.145 * sqrt(0.317) * 3.4 = 4.1, any number 1.96 * 0.5 * 3.4 = 3.3.
    """
    _check_confidence(confidence)
    if not math.isfinite(sd) or (n_pairs is not None and n_pairs < 2):
        return float("nan")
    if n_pairs is None:
        return float(sps.norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(test_train_ratio) * sd
    return float(sps.t.ppf(0.5 + confidence / 2.0, df=n_pairs - 1)) * _corrected_se(sd, n_pairs, test_train_ratio)


def _corrected_se(sd: float, n_pairs: int, test_train_ratio: float) -> float:
    """The corrected standard error of a mean over ``n_pairs`` (fold, seed) differences with SD ``sd``:
    ``sqrt((1/J + n_test/n_train) * sd**2)`` (the one formula of :func:`corrected_repeated_cv_ttest` and
    :func:`projected_half_width`)."""
    return math.sqrt((1.0 / n_pairs + test_train_ratio) * sd**2)


# ---------------------------------------------------------------------------------------------------------- verdicts
# The one rule that turns an interval into a verdict on a claim, and the one wording of what an inconclusive
# interval still rules out; every table and claim of the study uses these two.

Expectation = Literal["greater", "less", "not_greater"]
VERDICTS = ("reproduced", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    """A verdict on a claim: ``kind`` (one of :data:`VERDICTS`), ``reason`` (the text that follows it, e.g.
    ``" (same direction, CI includes 0): rules out an effect above +5.1 points"``) and ``rules_out`` (the bare
    phrase of :func:`rules_out`, set only for an inconclusive interval). ``str(v)`` is the full verdict."""

    kind: str
    reason: str = ""
    rules_out: str = ""

    def __str__(self) -> str:
        return self.kind + self.reason


def rules_out(metric: str, bound: float) -> str:
    """What an inconclusive interval still rules out, in ``metric``'s display units: ``"an effect above +5.1
    points"`` (accuracy, AUC: fractions shown x100) or ``"an effect above +0.041"`` (IoU). ``bound``: the interval's
    end on the claim's side (a fraction)."""
    from lanet_core.reporting.formats import metric_format  # reporting imports this module

    f = metric_format(metric)
    return f"an effect above {bound * f.scale:+.{f.digits}f}" + (" points" if f.scale == 100 else "")


def verdict(diff: float, low: float, high: float, metric: str, expect: Expectation = "greater", *,
            margin: float | None = None) -> Verdict:
    """The verdict on a claim about ``a - b`` from its two-sided 95 % CI ``[low, high]`` (fractions).

    * ``expect="greater"`` ("a is better than b") or ``"less"``: *reproduced* when the CI lies entirely on the
      claim's side of 0, *contradicted* when entirely on the other side, else *inconclusive*, and then the reason
      says on which side the estimate lies and :func:`rules_out` the largest effect in the claim's direction the
      data still allow (``high`` for "greater", ``-low`` for "less").
    * ``expect="not_greater"`` ("a is not better than b", non-superiority): needs an equivalence ``margin`` declared
      in advance; *contradicted* when the CI lies above 0, *reproduced* when it lies below ``+margin``, else
      inconclusive (no margin, or the CI reaches above it).
    * A missing interval (NaN: fewer than two values) is inconclusive ``" (n < 2)"``; a zero difference with a
      zero-width interval (identical repeats) contradicts a "greater"/"less" claim and reproduces "not_greater".
    """
    if expect not in ("greater", "less", "not_greater"):
        raise DataError(f"verdict: expect must be 'greater', 'less' or 'not_greater', got {expect!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return Verdict("inconclusive", f" ({TOO_FEW})")
    if diff == 0 and low == high:
        if expect == "not_greater":
            return Verdict("reproduced")
        return Verdict("contradicted", " (identical repeats, no difference)")
    if expect == "not_greater":
        return _non_superiority(low, high, metric, margin)
    sign = 1 if expect == "greater" else -1
    lo, hi = sorted((sign * low, sign * high))
    if lo > 0:
        return Verdict("reproduced")
    if hi < 0:
        return Verdict("contradicted")
    phrase = rules_out(metric, hi)
    side = "same" if sign * diff > 0 else "opposite"
    return Verdict("inconclusive", f" ({side} direction, CI includes 0): rules out {phrase}", phrase)


def _non_superiority(low: float, high: float, metric: str, margin: float | None) -> Verdict:
    """:func:`verdict` for "a is not better than b" against a declared ``margin`` (a fraction)."""
    from lanet_core.reporting.formats import metric_format

    if low > 0:
        return Verdict("contradicted")
    if margin is None:
        return Verdict("inconclusive", " (no equivalence margin declared)")
    shown = f"+{margin * metric_format(metric).scale:g}"
    if high < margin:
        return Verdict("reproduced", f" (CI below the margin {shown})")
    phrase = rules_out(metric, high)
    return Verdict("inconclusive", f" (the CI reaches above the declared margin {shown}): rules out {phrase}", phrase)


def diff_ci(xa: np.ndarray, xb: np.ndarray, metric: str) -> dict[str, object]:
    """``{metric: "diff [low, high] (p = ...)", metric_diff, metric_low, metric_high, metric_p}`` for two seed
    samples (:func:`welch_difference`; numbers as fractions, the text in the metric's display units, the p-value in
    the study's one format, :func:`~lanet_core.reporting.formats.format_p`)."""
    from lanet_core.reporting.formats import format_diff_ci, format_p  # reporting imports this module

    w = welch_difference(xa, xb)
    out: dict[str, object] = {f"{metric}_diff": w.diff, f"{metric}_low": w.low, f"{metric}_high": w.high,
                              f"{metric}_p": w.p}
    text = format_diff_ci(metric, w.diff, w.low, w.high)
    out[metric] = f"{text} ({w.note})" if w.note else f"{text} ({format_p(w.p)})"
    return out


def tally(verdicts: Iterable[str]) -> str:
    """``"3 reproduced · 1 contradicted · 5 inconclusive"`` (every verdict kind shown, in that order)."""
    vs = list(verdicts)
    return " · ".join(f"{vs.count(k)} {k}" for k in ("reproduced", "contradicted", "inconclusive"))
