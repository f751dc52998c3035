"""Cross-validated comparisons over every image (issue 12) with verdicts that include training variance (issue 27).

Each BUSI image is tested exactly once across the folds (:mod:`lanet_core.data.folds`); every (method, fold, seed)
is one training run. Two tests per comparison ``a - b`` (two-sided, 95 %, :mod:`lanet_core.stats`):

* **with retraining** (the verdict): the corrected repeated k-fold t-test (Nadeau & Bengio 2003; Bouckaert & Frank
  2004) over the per-(fold, seed) differences of the run metrics (:func:`run_table`), paired by fold and seed
  (only the (fold, seed) pairs where both arms have a run), with the variance correction ``1/J + n_test/n_train``
  (``n_train`` = the fold's train + validation images: the data the training procedure is given,
  :func:`fold_sizes`). It asks "does training ``a`` give a better classifier than training ``b``".
* **given these trained models** (shown beside it): per-image paired tests over the out-of-fold predictions
  (:func:`out_of_fold`), exact McNemar (accuracy), DeLong (AUC), paired t (IoU / Dice). Where a method has
  several seeds, they run over the seed ensemble: the malignancy probability (and IoU) averaged over the seeds of
  an image's fold, then decided once (:func:`lanet_core.metrics.decide`); with one seed this is the seed-0 model,
  as before. It asks "do these particular networks differ on these images".

Differences are ``a - b`` as fractions; tables show accuracy and AUC in points, IoU as a fraction.
See ``docs/statistics.md``.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from lanet_core import stats
from lanet_core.data.conflicts import label_conflict_ids
from lanet_core.data.manifest import read_manifest
from lanet_core.metrics import classification_metrics, decide_or_nan
from lanet_core.reporting import count_noun, count_range, format_diff_ci, format_metric_ci, metric_format
from lanet_core.study.records import ExperimentResults

PAIRED_TESTS = {"accuracy": "exact McNemar", "auc": "DeLong", "iou": "paired t", "dice": "paired t",
                "iou_box": "paired t"}
RUN_METRICS = ("accuracy", "auc", "iou", "dice", "iou_box")
#: Per-image localisation columns: a run's value is their mean over the images that have one (classification metrics
#: are computed from the run's probabilities instead).
LOCALISATION_METRICS = ("iou", "dice", "iou_box", "dice_box")  # iou_box: the paper's box protocol (BUS-BRA, Table 10)
RUN_KEYS = ["method", "fold", "seed"]
WITH_RETRAINING = "difference (with retraining)"  # the columns of :func:`paired_table`
GIVEN_MODELS = "difference (given these trained models)"
READING = "reading (with retraining)"  # "a better", "b better", "no difference", "inconclusive", "no test (1 run)"


def scored_images(res: ExperimentResults, exclude: Iterable[str] | None = None) -> pd.DataFrame:
    """The per-image test records the cross-validation scores: every run's test rows except the images of a
    same-scan opposite-label pair (``exclude``; default :func:`lanet_core.data.conflicts.label_conflict_ids`,
    the study's one policy on such twins: their truth is unknown, so no method is scored on them)."""
    per = res.per_image()
    if per.empty:
        return per
    per = per[per["split"] == "test"] if "split" in per else per
    drop = label_conflict_ids() if exclude is None else set(exclude)
    return per[~per["image_id"].isin(drop)]


def out_of_fold(res: ExperimentResults, exclude: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (method, image), the input of the "given these trained models" tests: ``y_true``,
    ``p_malignant`` (mean over the seeds: the seed ensemble), ``y_pred`` (:func:`decide_or_nan` of that mean),
    ``correct``, ``iou``/``dice`` (mean over seeds, NaN without a lesion map), ``n_seeds``, ``fold``. Images of
    :func:`scored_images` only (label-conflict twins left out)."""
    per = scored_images(res, exclude)
    if per.empty:
        return per
    dup = per.groupby(["method", "seed", "image_id"]).size()
    if (dup > 1).any():
        raise ValueError(f"an image is tested twice within one method and seed: {dup[dup > 1].index[:3].tolist()}")
    agg = {"y_true": ("y_true", "first"), "n_seeds": ("seed", "nunique"), "fold": ("fold", "first")}
    for col in ("p_malignant", "iou", "dice", "iou_box"):
        if col in per:
            agg[col] = (col, "mean")
    out = per.groupby(["method", "image_id"], sort=False).agg(**agg).reset_index()
    if "p_malignant" in out:
        has = out["p_malignant"].notna()
        out["y_pred"] = decide_or_nan(out["p_malignant"])
        out["correct"] = np.where(has, (out["y_pred"] == out["y_true"]).astype(float), np.nan)
    return out


def run_table(res: ExperimentResults, metrics: Sequence[str] = RUN_METRICS,
              exclude: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per finished run, keyed by ``method, fold, seed``: ``n_images`` and each metric of ``metrics``
    recomputed from the run's per-image test records (accuracy and AUC by
    :func:`lanet_core.metrics.classification_metrics`, i.e. the one decision rule; IoU / Dice the mean over the
    images with a lesion map; NaN where a method has no such output). Fractions. On the committed records these
    equal each run's ``metrics.json`` test block with ``exclude=()`` (checked in ``tests/test_repeated_cv.py``);
    by default the label-conflict twins are left out (:func:`scored_images`)."""
    per = scored_images(res, exclude)
    if per.empty:
        return pd.DataFrame(columns=RUN_KEYS + ["n_images", *metrics])
    rows = [{**dict(zip(RUN_KEYS, key)), **_run_metrics(df, metrics)} for key, df in per.groupby(RUN_KEYS, sort=False)]
    return pd.DataFrame(rows, columns=RUN_KEYS + ["n_images", *metrics])


def _run_metrics(df: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float]:
    """The metrics of one run from its ``(N,)`` per-image test rows."""
    out: dict[str, float] = {"n_images": len(df)}
    has_cls = "p_malignant" in df and df["p_malignant"].notna().all()
    cls = classification_metrics(df["y_true"], df["p_malignant"]) if has_cls else {}
    for m in metrics:
        if m in LOCALISATION_METRICS:
            vals = df[m].to_numpy(float) if m in df else np.array([np.nan])
            out[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
        else:
            out[m] = float(cls.get(m, np.nan))
    return out


def fold_sizes(res: ExperimentResults) -> pd.DataFrame:
    """Images per split of each fold the finished runs used, from their manifests: columns ``fold, n_train,
    n_val, n_test`` (counts of the ``train`` / ``val`` / ``test`` rows)."""
    from lanet_core.data.sources import resolve_manifest
    from lanet_core.paths import project_root

    specs = {s.group.get("fold"): s.config["data"]["manifest"] for s, r in zip(res.specs, res.results)
             if r is not None and "fold" in s.group}
    rows = []
    for fold, spec in sorted(specs.items()):
        path, _ = resolve_manifest(spec, str(project_root()))  # only the rows are needed, not the images
        n = read_manifest(path)["split"].value_counts()
        rows.append({"fold": fold, "n_train": int(n.get("train", 0)), "n_val": int(n.get("val", 0)),
                     "n_test": int(n.get("test", 0))})
    return pd.DataFrame(rows, columns=["fold", "n_train", "n_val", "n_test"])


def correction_ratio(sizes: pd.DataFrame) -> float:
    """``n_test / n_train`` of the Nadeau-Bengio correction: mean test images over mean train + validation images
    of the folds (the training procedure is given train + val and carves its selection split from them);
    BUSI 5-fold: 129 / 516 = 0.25. NaN without folds."""
    if sizes.empty:
        return float("nan")
    return float(sizes["n_test"].mean() / (sizes["n_train"] + sizes["n_val"]).mean())


@dataclass
class CVRecords:
    """What the cross-validated comparisons read: the out-of-fold predictions (:func:`out_of_fold`), one row of
    metrics per run (:func:`run_table`), the folds' sizes (:func:`fold_sizes`) and their ``n_test/n_train``."""

    oof: pd.DataFrame
    runs: pd.DataFrame
    sizes: pd.DataFrame

    @property
    def ratio(self) -> float:
        return correction_ratio(self.sizes)


def cv_records(res: ExperimentResults) -> CVRecords:
    """:class:`CVRecords` of a cross-validation experiment's finished runs."""
    return CVRecords(out_of_fold(res), run_table(res), fold_sizes(res))


def run_pairs(runs: pd.DataFrame, a: str, b: str, metric: str) -> pd.DataFrame:
    """The (fold, seed) pairs at which both ``a`` and ``b`` have a finite ``metric``: columns ``fold, seed, a, b,
    diff`` (``a - b``, fractions), sorted by fold and seed."""
    if runs.empty or metric not in runs:
        return pd.DataFrame(columns=["fold", "seed", "a", "b", "diff"])
    wide = [runs.loc[runs["method"] == m].set_index(["fold", "seed"])[metric].rename(k)
            for k, m in (("a", a), ("b", b))]
    both = pd.concat(wide, axis=1, join="inner").dropna().sort_index()
    return both.assign(diff=both["a"] - both["b"]).reset_index()


def repeated_cv(cv: CVRecords, a: str, b: str, metric: str) -> stats.RepeatedCVTest | None:
    """The "with retraining" test of ``a - b`` (:func:`lanet_core.stats.corrected_repeated_cv_ttest` over
    :func:`run_pairs`), or None where the two methods share no (fold, seed) with this metric."""
    pairs = run_pairs(cv.runs, a, b, metric)
    if pairs.empty:
        return None
    return stats.corrected_repeated_cv_ttest(pairs["diff"], cv.ratio, metric=metric)


def fold_summary(res: ExperimentResults, metrics: Sequence[str] = ("accuracy", "auc", "iou"),
                 cv: CVRecords | None = None) -> pd.DataFrame:
    """Per method: the number of folds, seeds per fold and runs; per metric the mean over its (fold, seed) runs
    ± the 95 % CI that includes training variance (the corrected repeated k-fold t interval, as the comparisons:
    ``t(J-1) * sqrt((1/J + n_test/n_train) * s**2)`` over the ``J`` runs), and for accuracy and AUC the pooled
    out-of-fold value (the seed ensemble over every image, :func:`out_of_fold`). A localisation metric gets no pooled
    column: it is a mean over images, linear in the seeds, so its pooled value is the runs' mean with other fold
    weights (scored images per fold instead of seeds per fold; equal for equal folds and seed counts, within 0.001
    on the committed CV tables). Numbers as fractions in ``<m>_mean``/``<m>_half_width``.

    With ``res``, LA-Net methods also get ``lesion_map`` (e.g. "7x7": the map their IoU is drawn from) and
    ``iou_ceiling`` (the IoU at 0.5 of a perfect predictor of the training target on that map, mean over the runs'
    test folds, :func:`lanet_core.study.records.lesion_map_columns`), so a coarse map's low IoU is read against its
    ceiling. Computing the ceilings loads the test masks; pass ``res=None`` with ``cv`` to skip them."""
    cv = cv or cv_records(res)
    if cv.runs.empty:
        return pd.DataFrame()
    maps = _lesion_maps(res) if res is not None else {}
    rows = []
    for method, grp in cv.runs.groupby("method", sort=False):
        seeds = count_range(grp.groupby("fold")["seed"].nunique())
        row: dict[str, object] = {"method": method, "folds": int(grp["fold"].nunique()), "seeds per fold": seeds,
                                  "runs": len(grp)}
        if maps:
            row.update(maps.get(method, {"lesion_map": "", "iou_ceiling": np.nan}))
        o = cv.oof[cv.oof["method"] == method]
        for m in metrics:
            if m not in grp or grp[m].isna().all():
                continue
            t = stats.corrected_repeated_cv_ttest(grp[m], cv.ratio, metric=m)  # a one-sample interval of the mean
            half = (t.high - t.low) / 2
            row[f"{m} (runs)"] = format_metric_ci(m, t.estimate, half)
            row[f"{m} (runs)_mean"], row[f"{m} (runs)_half_width"] = t.estimate, half
            if m not in LOCALISATION_METRICS:
                fmt = metric_format(m)
                row[f"{m} (pooled)"] = round(_pooled(o, m) * fmt.scale, fmt.digits)
        rows.append(row)
    return pd.DataFrame(rows)


def _lesion_maps(res: ExperimentResults) -> dict[str, dict[str, object]]:
    """Per method with a lesion map: ``lesion_map`` (one size, or "a / b" if its runs differ) and ``iou_ceiling``
    (mean over its runs, rounded to 3 decimals). Empty when no method has a lesion map."""
    runs = res.runs()
    if runs.empty or "lesion_map" not in runs or not runs["lesion_map"].astype(bool).any():
        return {}
    out = {}
    for method, grp in runs[runs["lesion_map"].astype(bool)].groupby("method", sort=False):
        sizes = list(dict.fromkeys(grp["lesion_map"]))
        ceiling = grp["iou_ceiling"].astype(float)
        out[method] = {"lesion_map": " / ".join(sizes),
                       "iou_ceiling": round(float(ceiling.mean()), 3) if ceiling.notna().any() else np.nan}
    return out


def _pooled(o: pd.DataFrame, metric: str) -> float:
    if o.empty:
        return float("nan")
    if metric == "accuracy":
        return float(o["correct"].mean()) if "correct" in o else float("nan")
    if metric == "auc":
        from sklearn.metrics import roc_auc_score

        ok = o["p_malignant"].notna() if "p_malignant" in o else pd.Series(False, index=o.index)
        return float(roc_auc_score(o.loc[ok, "y_true"], o.loc[ok, "p_malignant"])) if ok.sum() > 1 else float("nan")
    return float(o[metric].mean()) if metric in o else float("nan")


def paired(oof: pd.DataFrame, a: str, b: str, metric: str) -> stats.PairedDiff | None:
    """The "given these trained models" test of ``a - b`` on the images both methods scored (fractions, over the
    seed ensemble of :func:`out_of_fold`), or None where a method lacks the metric."""
    A = oof[oof["method"] == a].set_index("image_id")
    B = oof[oof["method"] == b].set_index("image_id")
    ids = A.index.intersection(B.index)
    if len(ids) == 0:
        return None
    A, B = A.loc[ids], B.loc[ids]
    if metric == "accuracy":
        if "correct" not in A or A["correct"].isna().any() or B["correct"].isna().any():
            return None
        return stats.mcnemar_exact(A["correct"].astype(bool), B["correct"].astype(bool))
    if metric == "auc":
        if "p_malignant" not in A or A["p_malignant"].isna().any() or B["p_malignant"].isna().any():
            return None
        return stats.delong_paired(A["y_true"], A["p_malignant"], B["p_malignant"])
    if metric not in A or A[metric].isna().all() or B[metric].isna().all():
        return None
    return stats.paired_t(A[metric], B[metric], metric)


def paired_table(cv: CVRecords, comparisons: Sequence[tuple[str, str]],
                 metrics: Sequence[str] = ("accuracy", "auc", "iou")) -> pd.DataFrame:
    """One row per (a, b, metric) where both tests can run: the difference ``a - b`` with its 95 % CI and two-sided
    p **with retraining** (corrected repeated k-fold t over the (fold, seed) runs; the reading "a better" / "b better"
    / "inconclusive" comes from it, and what an inconclusive CI still rules out is its far end, printed in the same
    cell; the claims spell it out) and **given these trained models** (the per-image
    test over the out-of-fold images, :data:`PAIRED_TESTS` by metric: the caption names it, no column repeats it).
    Text in the two difference columns; their numbers (accuracy and AUC in points) in
    ``<column>_diff``/``_low``/``_high``/``_half_width``, which the Markdown rendering leaves out."""
    rows = []
    for a, b in comparisons:
        for m in metrics:
            rt, img = repeated_cv(cv, a, b, m), paired(cv.oof, a, b, m)
            if rt is None or img is None:
                continue
            rows.append(_table_row(a, b, m, rt, img))
    return pd.DataFrame(rows)


def precision_table(cv: CVRecords, comparisons: Sequence[tuple[str, str]],
                    metrics: Sequence[str] = ("accuracy", "auc"), target: float = 0.03,
                    seeds: Sequence[int] = (2, 3, 5, 10), max_seeds: int = 20) -> pd.DataFrame:
    """What more seeds per fold would buy: per (a, b, metric) run on every fold that any method of ``cv`` has run,
    the half-width of the corrected test's with-retraining CI now and projected for ``seeds`` seeds per fold
    (:func:`lanet_core.stats.projected_half_width`, taking today's SD of the differences as true; what the corrected
    test would report, under its correlation model), the floor that no number of seeds goes below, and the fewest
    seeds per fold (up to ``max_seeds``) that reach ``target`` (a fraction: 0.03 = 3 points) or "not reachable".
    Half-widths in display units, rounded as the metric is shown (points to 0.1 for accuracy and AUC); the seeds
    needed come from the unrounded projection."""
    rows = []
    all_folds = int(cv.runs["fold"].nunique()) if "fold" in cv.runs else 0
    for a, b in comparisons:
        for m in metrics:
            rt = repeated_cv(cv, a, b, m)
            if rt is None or rt.n_pairs < 2 or not math.isfinite(rt.sd):
                continue
            k = int(run_pairs(cv.runs, a, b, m)["fold"].nunique())
            if k < all_folds:  # a projection from some of the folds would be noise (df = 1 from two folds)
                continue
            fmt = metric_format(m)
            scale = fmt.scale

            def half(n: int | None) -> float:
                return stats.projected_half_width(rt.sd, rt.test_train_ratio, n, rt.confidence) * scale

            row: dict[str, object] = {"a": a, "b": b, "metric": m, "folds": k,
                                      "seeds per fold now": round(rt.n_pairs / k, 2), "df now": rt.df,
                                      "half-width now": round((rt.high - rt.low) / 2 * scale, fmt.digits)}
            row.update({f"{count_noun(r, 'seed')} per fold": round(half(k * r), fmt.digits) for r in seeds})
            row["floor (any number of seeds)"] = round(half(None), fmt.digits)
            need = next((r for r in range(1, max_seeds + 1) if half(k * r) <= target * scale), None)
            row[f"seeds per fold for <= {target * scale:g}"] = (
                str(need) if need is not None else
                "not reachable" if half(None) > target * scale else f"more than {max_seeds}")
            rows.append(row)
    return pd.DataFrame(rows)


def _reading(rt: stats.RepeatedCVTest) -> str:
    """The with-retraining interval of ``a - b`` in the table's own words: "a better" (above 0), "b better" (below),
    "no difference" (identical runs: a zero-width interval at 0), else "inconclusive"; one run gives no test. A
    reader of a row with a higher IoU for ``a`` sees "a better", not a claim word ("reproduced") that a claim in the
    other direction would turn around."""
    if rt.n_pairs < 2 or not (math.isfinite(rt.low) and math.isfinite(rt.high)):
        return f"no test ({count_noun(rt.n_pairs, 'run')})"
    if rt.low == rt.high == 0:
        return "no difference"
    return "a better" if rt.low > 0 else "b better" if rt.high < 0 else "inconclusive"


def _table_row(a: str, b: str, m: str, rt: stats.RepeatedCVTest, img: stats.PairedDiff) -> dict[str, object]:
    s = metric_format(m).scale
    row: dict[str, object] = {
        "a": a, "b": b, "metric": m, "runs (fold x seed)": rt.n_pairs,
        WITH_RETRAINING: format_diff_ci(m, rt.estimate, rt.low, rt.high),
        "p (with retraining)": rt.p, READING: _reading(rt),  # what it rules out: the CI's far end, shown beside
        GIVEN_MODELS: format_diff_ci(m, img.diff, img.low, img.high),
        "p (given these trained models)": img.p, "n_images": img.n,  # the test follows the metric: PAIRED_TESTS
    }
    for col, d in ((WITH_RETRAINING, rt), (GIVEN_MODELS, img)):  # numbers in display units; the CSV keeps them
        row.update({f"{col}_diff": d.diff * s, f"{col}_low": d.low * s, f"{col}_high": d.high * s,
                    f"{col}_half_width": (d.high - d.low) / 2 * s})
    return row
