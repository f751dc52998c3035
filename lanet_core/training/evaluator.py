"""Evaluation passes of a model on a split of its run's manifest: validation metrics for model selection, the
validation-tuned lesion threshold, and the per-image test records. Plain functions of a
:class:`~lanet_core.training.context.RunContext` and a model; the metrics themselves live in
:mod:`lanet_core.evaluation`."""

from __future__ import annotations

from typing import Callable

import pandas as pd
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.evaluation import Predictions, per_image_records, predict, summary_metrics, tune_threshold
from lanet_core.models.registry import ARCHITECTURES
from lanet_core.training.context import RunContext
from lanet_core.training.stages import Stage, stage_loss


def validation_metrics(ctx: RunContext, model: nn.Module, stage: Stage) -> dict[str, float]:
    """Loss, accuracy, AUC, IoU and Dice of ``model`` on the selection split (``ctx.select_split``); the images a
    stage selects on (stage 1: location-labelled only); ``auc+iou`` when the stage tracks it."""
    split, images = ctx.select_split, stage.validation_images
    if len(ctx.rows_for(split, images)) == 0:
        raise ConfigError(
            f"no {split!r} rows{' with location labels' if images == 'labelled' else ''} in the manifest: "
            "model selection needs a validation split"
        )
    ds, loader = ctx.split_loader(split, images)
    loss_fn: Callable = lambda out, b: stage_loss(ctx.cfg, stage, out, b).total
    pred = predict(model, loader, ctx.device, loss_fn=loss_fn, amp=ctx.amp, channels_last=ctx.channels_last)
    e = ctx.cfg["eval"]
    per = per_image_records(pred, ds.rows, threshold=e["threshold"], align_corners=e["align_corners"], gt_mode=e["gt"])
    s = summary_metrics(per)
    out = {"loss": pred.loss, "accuracy": s.get("accuracy", float("nan")), "auc": s.get("auc", float("nan")),
           "iou": s.get("iou", float("nan")), "dice": s.get("dice", float("nan"))}
    if "auc+iou" in (stage.select, *stage.also_track):
        out["auc+iou"] = (out["auc"] + out["iou"]) / 2  # NaN when either is missing
    return out


def tune_lesion_threshold(ctx: RunContext, model: nn.Module) -> dict[str, float] | None:
    """The lesion threshold maximising IoU on the *validation* split (never test); ``None`` without a lesion head
    or validation masks."""
    if not ARCHITECTURES[ctx.cfg["model"]["arch"]].lesion_head:
        return None
    if len(ctx.rows_for("val")) == 0:
        return None
    e = ctx.cfg["eval"]
    ds, loader = ctx.split_loader("val")
    pred = predict(model, loader, ctx.device, amp=ctx.amp, channels_last=ctx.channels_last)
    tuned = tune_threshold(pred, ds.rows, align_corners=e["align_corners"], gt_mode=e["gt"])
    return None if tuned is None else {**tuned, "split": "val"}


def evaluate_with_tuned_threshold(ctx: RunContext, model: nn.Module, split: str | None = None
                                  ) -> tuple[dict[str, float] | None, pd.DataFrame, Predictions, pd.DataFrame]:
    """(validation-tuned threshold record or None, per-image records, predictions, rows) of ``split``: the
    threshold is tuned on the validation split, then applied beside 0.5 on ``split``."""
    tuned = tune_lesion_threshold(ctx, model)
    per, pred, rows = evaluate_split(ctx, model, split, tuned_threshold=tuned["threshold"] if tuned else None)
    return tuned, per, pred, rows


def evaluate_split(ctx: RunContext, model: nn.Module, split: str | None = None, tuned_threshold: float | None = None
                   ) -> tuple[pd.DataFrame, Predictions, pd.DataFrame]:
    """(per-image records, predictions, rows) of ``split`` (default ``eval.split``); ``tuned_threshold`` adds
    IoU/Dice at a validation-tuned lesion threshold."""
    e = ctx.cfg["eval"]
    split = split or e["split"]
    if len(ctx.rows_for(split)) == 0:
        raise ConfigError(f"no {split!r} rows in the manifest to evaluate")
    ds, loader = ctx.split_loader(split)
    pred = predict(model, loader, ctx.device, amp=ctx.amp, channels_last=ctx.channels_last)
    per = per_image_records(pred, ds.rows, threshold=e["threshold"], sweep=e["sweep"],
                            align_corners=e["align_corners"], gt_mode=e["gt"], tuned_threshold=tuned_threshold)
    per.insert(1, "split", split)
    return per, pred, ds.rows
