"""One training epoch as a plain function (in the manner of torchvision's ``train_one_epoch``), and the seeding
that makes an epoch reproducible and resumable.

Determinism: the global RNGs are re-seeded from ``(seed, stage, epoch)`` at the start of every epoch, batch order
comes from a generator seeded the same way and augmentation is seeded per sample, so a run resumed from its last
checkpoint finishes with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from lanet_core.data.dataset import LesionDataset
from lanet_core.errors import ConfigError
from lanet_core.evaluation import autocast_for
from lanet_core.training.context import RunContext
from lanet_core.errors import TrainingDiverged
from lanet_core.training.losses import LossParts
from lanet_core.training.stages import Stage, stage_loss


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, stage_index: int, epoch: int) -> int:
    """The seed of one epoch, derived from the run's seed and the epoch's place in the schedule."""
    return int(np.random.SeedSequence([seed, 7919, stage_index, epoch]).generate_state(1)[0])


def _progress(iterable, enabled: bool, desc: str):
    if not enabled or os.environ.get("TQDM_DISABLE"):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def build_optimizer(cfg: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Adam at ``train.lr``; with ``train.backbone_lr_scale != 1`` the feature extractor (the model's
    ``"feature extractor"`` component: LA-Net's backbone, a classifier's trunk, RMTL/AGN's features) is its own
    parameter group at lr x scale."""
    t = cfg["train"]
    scale = float(t.get("backbone_lr_scale", 1.0))
    fex = model.component_modules().get("feature extractor")
    if scale != 1.0 and fex is None:
        raise ConfigError(f"train.backbone_lr_scale = {scale}: {type(model).__name__} has no feature-extractor "
                          f"component (components: {list(model.component_modules())})")
    if scale == 1.0:
        return torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=t["lr"], weight_decay=t["weight_decay"]
        )
    fex_ids = {id(p) for p in fex.parameters()}
    groups = [
        {"params": [p for p in fex.parameters() if p.requires_grad], "lr": t["lr"] * scale},
        {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in fex_ids], "lr": t["lr"]},
    ]
    return torch.optim.Adam(groups, lr=t["lr"], weight_decay=t["weight_decay"])


def train_step(ctx: RunContext, model: nn.Module, opt: torch.optim.Optimizer, stage: Stage,
               batch: dict[str, torch.Tensor]) -> tuple[int, LossParts]:
    """One optimiser step on one batch (already on the device); returns (images, loss parts)."""
    x = ctx.model_input(batch["image"])
    with autocast_for(ctx.device, ctx.amp):
        out = model(x)
    parts = stage_loss(ctx.cfg, stage, out, batch)
    if not torch.isfinite(parts.total.detach()).all():  # stop before a NaN/inf step corrupts the weights
        raise TrainingDiverged(
            f"{stage.name}: the training loss is {float(parts.total.detach())} (not finite); no finished record is "
            f"written. Lower train.lr (now {ctx.cfg['train']['lr']:g}) or check the data, then train again")
    opt.zero_grad(set_to_none=True)
    parts.total.backward()
    opt.step()
    return len(x), parts


def train_one_epoch(ctx: RunContext, model: nn.Module, opt: torch.optim.Optimizer, stage: Stage,
                    stage_index: int, epoch: int, ds: LesionDataset) -> tuple[dict[str, Any], list[str]]:
    """Train ``model`` for one epoch of ``stage`` over ``ds``.

    Returns the epoch's history row (mean losses per training image, images, pseudo-labelled images, seconds,
    images/s) and the names of ops that warned about a missing deterministic implementation.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = _epoch(ctx, model, opt, stage, stage_index, epoch, ds)
    ops: list[str] = []
    for w in caught:
        text = str(w.message)
        if "deterministic" in text:
            op = text.split(" does not have a deterministic")[0].strip()
            if op not in ops:
                ops.append(op)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return row, ops


def _epoch(ctx: RunContext, model: nn.Module, opt: torch.optim.Optimizer, stage: Stage, stage_index: int,
           epoch: int, ds: LesionDataset) -> dict[str, Any]:
    seed = epoch_seed(ctx.cfg["train"]["seed"], stage_index, epoch)
    seed_everything(seed)
    ds.set_epoch(epoch + 1000 * stage_index)
    model.train()
    sums = {"loss": 0.0, "cls": 0.0, "loc": 0.0, "pseudo": 0.0}
    counts = {"loss": 0, "cls": 0, "loc": 0, "pseudo": 0}
    n_img, n_pseudo = 0, 0
    t0 = time.perf_counter()
    batches = _progress(ctx.loader(ds, True, seed), ctx.cfg["train"]["progress"], f"{stage.name} {epoch + 1}/{stage.epochs}")
    for b in batches:
        b = {k: v.to(ctx.device, non_blocking=True) for k, v in b.items()}
        bs, parts = train_step(ctx, model, opt, stage, b)
        n_img += bs
        n_pseudo += parts.n_pseudo
        for k, v in (("loss", float(parts.total.detach())), ("cls", parts.cls), ("loc", parts.loc), ("pseudo", parts.pseudo)):
            if np.isfinite(v):
                sums[k] += v * bs
                counts[k] += bs
    dt = time.perf_counter() - t0
    row = {f"train_{k}": (sums[k] / counts[k] if counts[k] else float("nan")) for k in sums}
    row.update(train_images=n_img, train_pseudo_images=n_pseudo, train_seconds=dt, images_per_s=n_img / dt if dt else float("nan"))
    return row
