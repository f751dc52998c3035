"""Oracle ceilings of a coarse lesion map: the IoU/Dice a *perfect* predictor of the training target reaches.

A lesion map of ``m x m`` cells (``m = S / fusion_stride``: 4x4 for LA-Net at 128 px) cannot draw a lesion
smaller than its cells. The oracle predicts exactly the training target of each image (the ground-truth mask, or
the filled box where training uses boxes as on BUS-BRA, downsampled by ``loss.target_downsample`` to ``m x m``),
which is then scored as a model's map is: upsampled bilinearly to ``S x S`` (``eval.align_corners``), binarised at
the threshold, IoU/Dice against the binarised *mask*. A model's IoU is read against this number, not against 1.
A box target caps IoU below what the map's resolution allows (a box covers more than its lesion); the mask
oracle of the same map is that resolution bound.

``oracle_scores`` takes masks as a ``(N, 1, S, S)`` float tensor in [0, 1] (the evaluation's resized masks);
``split_masks`` loads them (and the filled boxes) for a manifest split; ``ceiling_table`` tabulates every
(size, stride, target) combination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from lanet_core import metrics as M
from lanet_core.training.losses import downsample_target

TARGET_ALIGN = {"area": False, "max": False, "bilinear": True}  # the geometry each target's cells are centred on


def oracle_scores(
    masks: torch.Tensor,
    map_size: int,
    target: str = "area",
    *,
    threshold: float = 0.5,
    align_corners: bool = True,
    source: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Per image: ``iou``, ``dice`` and ``empty`` (the oracle predicts nothing) of the perfect target predictor.

    ``masks``: ``(N, 1, S, S)`` in [0, 1]; ground truth = ``mask >= 0.5`` (the evaluation's ``binarize``).
    ``source``: what the model is trained to draw, same shape (e.g. the filled boxes); default ``masks``.
    """
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be (N, 1, S, S), got {tuple(masks.shape)}")
    if source is not None and source.shape != masks.shape:
        raise ValueError(f"source {tuple(source.shape)} must have the shape of masks {tuple(masks.shape)}")
    size = int(masks.shape[-1])
    cells = downsample_target((masks if source is None else source).float(), (map_size, map_size), target)
    up = M.upsample_maps(cells, size, align_corners)[:, 0].numpy()
    gt = masks[:, 0].numpy() >= 0.5
    rows = []
    for p, g in zip(up, gt):
        binary = p > threshold
        iou, dice = M.iou_dice(binary, g)
        rows.append({"iou": iou, "dice": dice, "empty": int(not binary.any())})
    return pd.DataFrame(rows)


def split_masks(manifest: str, image_size: int, split: str = "test", root: str = "auto", resize: str = "squash",
                *, with_boxes: bool = False
                ) -> tuple[torch.Tensor, list[str]] | tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(N, 1, S, S)`` masks and image ids of the rows of ``split`` that have a mask file, whatever their
    ``location_label`` (the rows the evaluation scores ``iou`` on: a BUS-BRA test row is labelled ``box`` and
    has its mask). ``with_boxes``: also their filled boxes, ``(masks, boxes, ids)``, for rows that have a box too."""
    from lanet_core.data.dataset import ImageCache, LesionDataset
    from lanet_core.data.manifest import mask_paths, parse_bbox
    from lanet_core.data.sources import load_manifest

    rows, _, data_root = load_manifest(manifest, root)
    keep = (rows["split"] == split) & rows.apply(lambda r: bool(mask_paths(r)), axis=1)
    if with_boxes:
        boxes = rows["bbox"].fillna("") if "bbox" in rows else pd.Series("", index=rows.index)
        keep &= boxes.map(lambda b: parse_bbox(str(b)) is not None)
    ds = LesionDataset(rows[keep], data_root, image_size, cache=ImageCache(Path(data_root), image_size, resize),
                       resize=resize)
    samples = [ds[i] for i in range(len(ds))]
    empty = torch.zeros(0, 1, image_size, image_size)
    masks = torch.stack([x["mask"] for x in samples]) if samples else empty
    ids = ds.rows["image_id"].tolist()
    if not with_boxes:
        return masks, ids
    return masks, (torch.stack([x["box"] for x in samples]) if samples else empty), ids


def ceiling_table(
    manifest: str,
    sizes: Iterable[int],
    strides: Iterable[int] = (32, 16, 8),
    targets: Iterable[str] = ("area", "max", "bilinear"),
    *,
    split: str = "test",
    threshold: float = 0.5,
    geometries: str = "matched",
) -> pd.DataFrame:
    """Oracle IoU/Dice per (image size, lesion-map size, target, upsampling geometry) on ``split``.

    ``geometries``: ``matched`` scores each target with its own geometry (:data:`TARGET_ALIGN`); ``both``
    adds the other one (e.g. the paper's area target evaluated with ``align_corners=True``).
    """
    out = []
    for size in sizes:
        masks, _ = split_masks(manifest, int(size), split)
        for stride in strides:
            m = int(size) // int(stride)
            for target in targets:
                aligns = [TARGET_ALIGN[target]] if geometries == "matched" else [True, False]
                for align in aligns:
                    s = oracle_scores(masks, m, target, threshold=threshold, align_corners=align)
                    out.append({
                        "image_size": int(size), "fusion_stride": int(stride), "map": f"{m}x{m}", "target": target,
                        "align_corners": align, "threshold": threshold, "n_images": len(s),
                        "oracle_iou": float(s["iou"].mean()) if len(s) else np.nan,
                        "oracle_dice": float(s["dice"].mean()) if len(s) else np.nan,
                        "oracle_empty": int(s["empty"].sum()) if len(s) else 0,
                    })
    return pd.DataFrame(out)
