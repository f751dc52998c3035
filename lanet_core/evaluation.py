"""Run a model over a split and turn its outputs into per-image records and summary metrics.

Per image (``per_image.csv``): class probabilities and prediction; for localisation, the lesion map
upsampled bilinearly to the evaluation size S and binarised at the threshold, IoU / Dice against the
ground-truth mask, and, where a box is known, the predicted mask converted to the bounding box of its
largest connected component against the true box (the paper's protocol for box-labelled data); an
IoU threshold sweep; a summary of the lesion map (max, area fraction, predicted box).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from lanet_core import metrics as M
from lanet_core.data.manifest import LABELS
from lanet_core.models.output import ModelOutput


@dataclass
class Predictions:
    """Everything a pass over one split produced (CPU tensors / arrays, rows in dataset order)."""

    index: np.ndarray  # (N,) dataset row numbers
    y_true: np.ndarray  # (N,)
    logits: np.ndarray | None  # (N, K)
    lesion_prob: torch.Tensor | None  # (N, 1, h, w) native map resolution
    mask: torch.Tensor  # (N, 1, S, S) ground-truth mask in [0, 1] (soft edges)
    has_mask: np.ndarray
    box: torch.Tensor  # (N, 1, S, S) ground-truth box map
    has_box: np.ndarray
    loss: float = float("nan")  # mean loss over batches (the stage's loss), if a loss function was given


def autocast_for(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA or CPU when ``enabled`` (``train.amp``); losses are computed in float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if enabled else nullcontext()


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    loss_fn: Callable[[ModelOutput, dict], torch.Tensor] | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> Predictions:
    """Forward every batch of ``loader`` in eval mode and gather the outputs."""
    model.eval()
    idx, ys, logits, maps, masks, hm, boxes, hb, losses, sizes = [], [], [], [], [], [], [], [], [], []
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, amp):
            out = model(x)
        if loss_fn is not None:
            dev_batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
            losses.append(float(loss_fn(out, dev_batch)))
            sizes.append(len(x))
        idx.append(batch["index"].numpy())
        ys.append(batch["label"].numpy())
        if out.logits is not None:
            logits.append(out.logits.float().cpu().numpy())
        if out.lesion_logits is not None:
            maps.append(torch.sigmoid(out.lesion_logits.float()).cpu())
        masks.append(batch["mask"])
        hm.append(batch["has_mask"].numpy())
        boxes.append(batch["box"])
        hb.append(batch["has_box"].numpy())
    loss = float(np.average(losses, weights=sizes)) if losses else float("nan")
    return Predictions(
        index=np.concatenate(idx),
        y_true=np.concatenate(ys),
        logits=np.concatenate(logits) if logits else None,
        lesion_prob=torch.cat(maps) if maps else None,
        mask=torch.cat(masks),
        has_mask=np.concatenate(hm).astype(bool),
        box=torch.cat(boxes),
        has_box=np.concatenate(hb).astype(bool),
        loss=loss,
    )


def _gt(soft: torch.Tensor, mode: str) -> np.ndarray:
    """Binary ground truth from a soft resized map: ``>= 0.5`` or the authors' ``== 1`` (int cast)."""
    arr = soft.numpy()
    return arr >= 0.5 if mode == "binarize" else arr >= 1.0 - 1e-6


def per_image_records(
    pred: Predictions,
    rows: pd.DataFrame,
    *,
    threshold: float = 0.5,
    sweep: list[float] | tuple[float, ...] = (),
    align_corners: bool = True,
    gt_mode: str = "binarize",
    tuned_threshold: float | None = None,
) -> pd.DataFrame:
    """One row per image: ids, class outputs, localisation scores (NaN where not applicable).

    ``tuned_threshold`` (chosen on the validation split, :func:`tune_threshold`) adds ``iou_tuned`` and
    ``dice_tuned`` beside the scores at ``threshold`` (the paper's 0.5).
    """
    n = len(pred.index)
    size = pred.mask.shape[-1]
    rec: dict[str, list | np.ndarray] = {
        "image_id": rows["image_id"].iloc[pred.index].tolist(),
        "label": [LABELS[int(y)] for y in pred.y_true],
        "y_true": pred.y_true.astype(int),
    }
    if pred.logits is not None:
        prob = torch.softmax(torch.from_numpy(pred.logits), dim=1).numpy()
        y_pred = M.decide_logits(pred.logits)
        rec.update(
            y_pred=y_pred,
            p_malignant=prob[:, 1],
            logit_benign=pred.logits[:, 0],
            logit_malignant=pred.logits[:, 1],
            correct=(y_pred == pred.y_true).astype(int),
        )
    if pred.lesion_prob is not None:
        up = M.upsample_maps(pred.lesion_prob, size, align_corners)[:, 0].numpy()  # (N, S, S)
        cols: dict[str, list] = {k: [] for k in ("iou", "dice", "iou_box", "dice_box", "lesion_max", "lesion_area", "pred_box")}
        sweep_cols: dict[str, list] = {f"iou_t{t:g}": [] for t in sweep}
        sweep_cols.update({f"iou_box_t{t:g}": [] for t in sweep})
        if tuned_threshold is not None:
            sweep_cols.update(iou_tuned=[], dice_tuned=[])
        for i in range(n):
            p = up[i]
            binary = p > threshold
            box = M.mask_to_box_of_largest_component(binary)
            cols["lesion_max"].append(float(pred.lesion_prob[i].max()))
            cols["lesion_area"].append(float(binary.mean()))
            cols["pred_box"].append("" if box is None else str(box))
            gt_mask = _gt(pred.mask[i, 0], gt_mode) if pred.has_mask[i] else None
            gt_box = _gt(pred.box[i, 0], "binarize") if pred.has_box[i] else None
            iou, dice = M.iou_dice(binary, gt_mask) if gt_mask is not None else (np.nan, np.nan)
            ib, db = M.iou_dice(M.box_map(box, binary.shape), gt_box) if gt_box is not None else (np.nan, np.nan)
            cols["iou"].append(iou)
            cols["dice"].append(dice)
            cols["iou_box"].append(ib)
            cols["dice_box"].append(db)
            if tuned_threshold is not None:
                it, dt = M.iou_dice(p > tuned_threshold, gt_mask) if gt_mask is not None else (np.nan, np.nan)
                sweep_cols["iou_tuned"].append(it)
                sweep_cols["dice_tuned"].append(dt)
            for t in sweep:
                bt = p > t
                sweep_cols[f"iou_t{t:g}"].append(M.iou_dice(bt, gt_mask)[0] if gt_mask is not None else np.nan)
                bbox_t = M.box_map(M.mask_to_box_of_largest_component(bt), bt.shape)
                sweep_cols[f"iou_box_t{t:g}"].append(M.iou_dice(bbox_t, gt_box)[0] if gt_box is not None else np.nan)
        rec["has_mask"] = pred.has_mask.astype(int)
        rec["has_box"] = pred.has_box.astype(int)
        rec.update(cols)
        rec.update(sweep_cols)
    return pd.DataFrame(rec)


def summary_metrics(per_image: pd.DataFrame) -> dict[str, float]:
    """Aggregate metrics from per-image records (so any subset of images can be re-scored)."""
    out: dict[str, float] = {"n_images": int(len(per_image))}
    if "p_malignant" in per_image and per_image["p_malignant"].notna().all():
        out.update(M.classification_metrics(per_image["y_true"], per_image["p_malignant"], per_image["y_pred"]))
        out["auc_authors"] = M.auc_authors(
            per_image["y_true"], per_image[["logit_benign", "logit_malignant"]].to_numpy()
        )
    if "iou" in per_image and "iou_box" in per_image:
        out.update(M.localisation_metrics(per_image["iou"], per_image["dice"]))
        box = M.localisation_metrics(per_image["iou_box"], per_image["dice_box"])
        out.update(iou_box=box["iou"], dice_box=box["dice"], n_box_images=box["n_loc_images"])
        for col in per_image.columns:
            if col.startswith("iou_t") or col.startswith("iou_box_t") or col == "dice_tuned":
                vals = per_image[col].to_numpy(dtype=float)
                out[col] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else float("nan")
    return out


THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


def tune_threshold(
    pred: Predictions,
    rows: pd.DataFrame,
    *,
    align_corners: bool = True,
    gt_mode: str = "binarize",
    grid: tuple[float, ...] = THRESHOLD_GRID,
) -> dict[str, float] | None:
    """The lesion threshold maximising mean IoU on the images of ``pred`` (pass the *validation* split only).

    Ties go to the threshold closest to 0.5. Returns ``{"threshold", "iou", "iou_at_0.5", "n_images"}``, or
    ``None`` when no image has a mask.
    """
    if pred.lesion_prob is None:
        return None
    per = per_image_records(pred, rows, threshold=0.5, sweep=grid, align_corners=align_corners, gt_mode=gt_mode)
    n = int(per["has_mask"].sum())
    if n == 0:
        return None
    means = {t: float(np.nanmean(per[f"iou_t{t:g}"])) for t in grid}
    best = max(grid, key=lambda t: (round(means[t], 12), -abs(t - 0.5)))
    return {"threshold": float(best), "iou": means[best], "iou_at_0.5": float(np.nanmean(per["iou"])), "n_images": n}


def lesion_map_archive(pred: Predictions, rows: pd.DataFrame, max_size: int = 64) -> dict[str, np.ndarray]:
    """Lesion maps as uint8 (probability x 255) at ``min(native, max_size)`` for figures, with ids."""
    if pred.lesion_prob is None:
        return {}
    maps = pred.lesion_prob
    if maps.shape[-1] > max_size:
        maps = torch.nn.functional.adaptive_avg_pool2d(maps, (max_size, max_size))
    return {
        "image_id": np.asarray(rows["image_id"].iloc[pred.index].tolist()),
        "maps": np.round(maps[:, 0].numpy() * 255).astype(np.uint8),
    }
