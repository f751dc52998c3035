"""Cross-validated comparisons over every image: out-of-fold predictions and paired tests (issue 12).

Each BUSI image is tested exactly once across the folds (:mod:`lanet_core.data.folds`), so the union of the
folds' per-image records is one out-of-fold prediction per image and method. Seeds, where there are several,
are averaged per image first (malignancy probability, IoU), so the unit of inference is the image.

Tests (:mod:`lanet_core.stats`), two-sided, 95 %:

* accuracy: exact McNemar on the discordant images, Wald CI of the paired difference;
* AUC: DeLong's paired test (the pairing of images enters through the placement values);
* IoU / Dice: paired t over the images with a mask.

Differences are ``a - b`` in display units (accuracy and AUC in points, IoU as a fraction).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lanet_core import stats
from lanet_core.metrics import decide_or_nan
from lanet_core.reporting import format_metric_ci, metric_format
from lanet_core.study.records import ExperimentResults

PAIRED_TESTS = {"accuracy": "exact McNemar", "auc": "DeLong", "iou": "paired t", "dice": "paired t"}


def out_of_fold(res: ExperimentResults) -> pd.DataFrame:
    """One row per (method, image): ``y_true``, ``p_malignant`` (mean over seeds), ``y_pred``, ``correct``,
    ``iou``/``dice`` (mean over seeds, NaN without a lesion map), ``n_seeds``, ``fold``."""
    per = res.per_image()
    if per.empty:
        return per
    per = per[per["split"] == "test"] if "split" in per else per
    dup = per.groupby(["method", "seed", "image_id"]).size()
    if (dup > 1).any():
        raise ValueError(f"an image is tested twice within one method and seed: {dup[dup > 1].index[:3].tolist()}")
    agg = {"y_true": ("y_true", "first"), "n_seeds": ("seed", "nunique"), "fold": ("fold", "first")}
    for col in ("p_malignant", "iou", "dice"):
        if col in per:
            agg[col] = (col, "mean")
    out = per.groupby(["method", "image_id"], sort=False).agg(**agg).reset_index()
    if "p_malignant" in out:
        has = out["p_malignant"].notna()
        out["y_pred"] = decide_or_nan(out["p_malignant"])
        out["correct"] = np.where(has, (out["y_pred"] == out["y_true"]).astype(float), np.nan)
    return out


def fold_summary(res: ExperimentResults, metrics: Sequence[str] = ("accuracy", "auc", "iou")) -> pd.DataFrame:
    """Per method: mean ± 95 % CI over folds (seed-averaged) of each metric, and the pooled out-of-fold value."""
    runs = res.runs()
    if runs.empty:
        return runs
    rows = []
    oof = out_of_fold(res)
    for method, grp in runs.groupby("method", sort=False):
        row: dict[str, object] = {"method": method, "folds": int(grp["fold"].nunique()), "runs": len(grp)}
        per_fold = grp.groupby("fold")[[m for m in metrics if m in grp]].mean()
        o = oof[oof["method"] == method]
        for m in metrics:
            if m not in per_fold or per_fold[m].isna().all():
                continue
            fmt = metric_format(m)
            ci = stats.mean_ci(per_fold[m])
            row[f"{m} (folds)"] = format_metric_ci(m, ci.mean, ci.half_width)
            row[f"{m} (pooled)"] = round(_pooled(o, m) * fmt.scale, fmt.digits)
        rows.append(row)
    return pd.DataFrame(rows)


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
    """``a - b`` on the images both methods scored (fractions), or None where a method lacks the metric."""
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


def paired_table(oof: pd.DataFrame, comparisons: Sequence[tuple[str, str]],
                 metrics: Sequence[str] = ("accuracy", "auc", "iou")) -> pd.DataFrame:
    """One row per (a, b, metric): difference a - b with 95 % CI and two-sided p (display units), the test, the
    number of paired images, the CI half-width, and the verdict on "a is better than b" with what it rules out."""
    rows = []
    for a, b in comparisons:
        for m in metrics:
            d = paired(oof, a, b, m)
            if d is None:
                continue
            fmt = metric_format(m)
            s = fmt.scale
            v = stats.verdict(d, "better")
            rules = ""
            if v["verdict"] == "inconclusive":
                rules = f"{a} - {b} < {d.high * s:+.{fmt.digits}f}" + (" points" if s == 100 else "")
            rows.append({
                "a": a, "b": b, "metric": m, "n_images": d.n,
                "difference": f"{d.diff * s:+.{fmt.digits}f} [{d.low * s:+.{fmt.digits}f}, {d.high * s:+.{fmt.digits}f}]",
                "p (two-sided)": d.p, "test": d.test, "verdict (a better)": v["verdict"], "rules out": rules,
                "diff": d.diff * s, "low": d.low * s, "high": d.high * s, "half_width": (d.high - d.low) / 2 * s,
            })
    return pd.DataFrame(rows)


def forest_figure(paired: pd.DataFrame):
    """One panel per metric: each comparison's difference with its 95 % CI, zero marked."""
    import matplotlib.pyplot as plt

    from lanet_core import reporting

    metrics = list(dict.fromkeys(paired["metric"]))
    with reporting.plot_context():
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.5 * paired.groupby("metric").size().max() + 1.6),
                                 squeeze=False)
        for ax, m in zip(axes[0], metrics):
            sub = paired[paired["metric"] == m].reset_index(drop=True)
            y = np.arange(len(sub))[::-1]
            ax.errorbar(sub["diff"], y, xerr=[sub["diff"] - sub["low"], sub["high"] - sub["diff"]], fmt="o", color="black",
                        capsize=3)
            ax.axvline(0, color="grey", lw=1, ls="--")
            lo, hi = min(0.0, float(sub["low"].min())), max(0.0, float(sub["high"].max()))
            pad = 0.08 * (hi - lo if hi > lo else 1.0)
            ax.set_xlim(lo - pad, hi + pad)  # zero always inside, never on the frame
            ax.set_ylim(-0.6, len(sub) - 0.4)
            ax.set_yticks(y, [f"{a} vs {b}" for a, b in zip(sub["a"], sub["b"])])
            unit = " (points)" if metric_format(m).scale == 100 else ""
            name = metric_format(m).label.split(" (")[0]
            ax.set_xlabel(f"{name} difference{unit}")
            ax.set_title(f"{name}: {PAIRED_TESTS.get(m, '')}", fontsize="small")
        n_img = int(paired["n_images"].max()) if "n_images" in paired else None
        fig.suptitle("Out-of-fold paired differences (first minus second), 95 % CI, two-sided"
                     + (f"; {n_img} images" if n_img else ""), fontsize="small")
        fig.tight_layout()
    return fig
