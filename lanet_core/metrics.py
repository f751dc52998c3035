"""Classification and localisation metrics, per image and aggregated.

Conventions: class 1 = malignant is the positive class; probabilities come from the softmax of the
logits. ``*_macro`` metrics average the benign-positive and malignant-positive values, as the LA-Net
authors reported (so macro recall = macro specificity = balanced accuracy). IoU and Dice are computed
per image and averaged over images (the authors' convention), never pooled over pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from lanet_core.data.manifest import BBox


def decide(p_malignant) -> np.ndarray:
    """The class decision, the one rule every part of lanet uses: malignant (1) iff ``p_malignant > 0.5``.

    Equal to ``argmax`` over the (benign, malignant) logits with a tie going to benign (``argmax`` returns the
    first maximum), so an exact tie (two identical bf16 logits, ``p_malignant == 0.5``) is benign everywhere: run
    metrics, pooled cross-validation, claims, predict, export checks and figures. ``(N,)`` -> ``(N,)`` int;
    NaN probabilities stay NaN only in :func:`decide_or_nan`.
    """
    return (np.asarray(p_malignant, dtype=float) > 0.5).astype(int)


def decide_logits(logits) -> np.ndarray:
    """:func:`decide` from ``(N, 2)`` logits (benign, malignant): malignant iff its logit is strictly larger."""
    z = np.asarray(logits, dtype=float)
    return (z[..., 1] > z[..., 0]).astype(int)


def decide_or_nan(p_malignant) -> np.ndarray:
    """:func:`decide` as floats, NaN where the probability is NaN (methods without a class head)."""
    p = np.asarray(p_malignant, dtype=float)
    return np.where(np.isnan(p), np.nan, decide(np.nan_to_num(p)).astype(float))


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def binary_rates(y_true: np.ndarray, y_pred: np.ndarray, positive: int) -> dict[str, float]:
    """precision, recall (sensitivity), specificity, F1 = 2TP/(2TP+FP+FN) with ``positive`` as positive."""
    t = np.asarray(y_true) == positive
    p = np.asarray(y_pred) == positive
    tp, fp = int(np.sum(t & p)), int(np.sum(~t & p))
    fn, tn = int(np.sum(t & ~p)), int(np.sum(~t & ~p))
    return {
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
    }


def classification_metrics(y_true: np.ndarray, p_malignant: np.ndarray, y_pred: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, macro and malignant-positive precision / recall / specificity / F1, ROC AUC.

    Args:
        y_true: ``(N,)`` 0 = benign, 1 = malignant.
        p_malignant: ``(N,)`` softmax probability of malignant (the AUC score).
        y_pred: ``(N,)`` predicted classes; default :func:`decide` (``p_malignant > 0.5``, a tie is benign).
    """
    y_true = np.asarray(y_true).astype(int)
    p = np.asarray(p_malignant, dtype=float)
    y_pred = decide(p) if y_pred is None else np.asarray(y_pred).astype(int)
    out: dict[str, float] = {"accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")}
    mal = binary_rates(y_true, y_pred, 1)
    ben = binary_rates(y_true, y_pred, 0)
    for k in mal:
        out[f"{k}_macro"] = float(np.mean([mal[k], ben[k]]))
        out[f"{k}_malignant"] = mal[k]
    out["auc"] = float(roc_auc_score(y_true, p)) if len(np.unique(y_true)) == 2 else float("nan")
    out["n_images"] = int(len(y_true))
    return out


def auc_authors(y_true: np.ndarray, logits: np.ndarray) -> float:
    """The authors' AUC: per-class one-vs-rest ROC on the *raw logit* of that class, macro-averaged by
    interpolating the TPRs on the union of FPRs (reported for comparison only)."""
    y_true = np.asarray(y_true).astype(int)
    logits = np.asarray(logits, dtype=float)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    fprs, tprs = [], []
    for k in range(logits.shape[1]):
        fpr, tpr, _ = roc_curve(y_true == k, logits[:, k])
        fprs.append(fpr)
        tprs.append(tpr)
    grid = np.unique(np.concatenate(fprs))
    mean_tpr = np.mean([np.interp(grid, f, t) for f, t in zip(fprs, tprs)], axis=0)
    return float(sk_auc(grid, mean_tpr))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 confusion matrix, rows = truth (benign, malignant), columns = prediction."""
    return confusion_matrix(np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int), labels=[0, 1])


def iou_dice(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two boolean masks of one image. An empty ground truth gives NaN (not scored)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    g = gt.sum()
    if g == 0:
        return float("nan"), float("nan")
    inter = np.logical_and(pred, gt).sum()
    union = np.logical_or(pred, gt).sum()
    return float(inter / union), float(2 * inter / (pred.sum() + g))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (empty stays empty)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def mask_to_box_of_largest_component(mask: np.ndarray) -> BBox | None:
    """Bounding box (exclusive max) of the largest connected component; ``None`` for an empty mask."""
    comp = largest_component(mask)
    sl = ndimage.find_objects(comp.astype(np.int32))
    if not sl or sl[0] is None:
        return None
    ys, xs = sl[0]
    return BBox(xs.start, ys.start, xs.stop, ys.stop)


def box_map(box: BBox | None, shape: tuple[int, int]) -> np.ndarray:
    """A filled-rectangle boolean map of ``shape`` (all False for ``None``)."""
    out = np.zeros(shape, dtype=bool)
    if box is not None:
        out[box.y1 : box.y2, box.x1 : box.x2] = True
    return out


def upsample_maps(prob: torch.Tensor, size: int, align_corners: bool = True) -> torch.Tensor:
    """Bilinear upsampling of ``(N, 1, h, w)`` probability maps to ``(N, 1, size, size)``."""
    if prob.shape[-1] == size and prob.shape[-2] == size:
        return prob
    return F.interpolate(prob.float(), size=(size, size), mode="bilinear", align_corners=align_corners)


def localisation_metrics(per_image_iou: np.ndarray, per_image_dice: np.ndarray) -> dict[str, float]:
    """Means over the images that have a score (NaN entries, i.e. no ground truth, are skipped)."""
    iou = np.asarray(per_image_iou, dtype=float)
    dice = np.asarray(per_image_dice, dtype=float)
    n = int(np.sum(~np.isnan(iou)))
    return {
        "iou": float(np.nanmean(iou)) if n else float("nan"),
        "dice": float(np.nanmean(dice)) if n else float("nan"),
        "n_loc_images": n,
    }
