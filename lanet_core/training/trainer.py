"""The two-stage sequential semi-supervised trainer (paper Algorithm 1), used for every model.

Stages (from the config and the model's heads):

* ``stage1`` (LA-Net with ``train.stage1_epochs > 0``): the feature extractor and LA-Net
  learn ``L_floc`` on the location-labelled training images; selection on validation IoU.
* ``stage2``: every part learns ``L_hyb`` on the training images named by ``data.train_images``
  (``all`` mixes labelled and unlabelled images in each batch); it starts from the best stage-1 weights
  (``train.stage2_init``: ``fex+lanet`` as Algorithm 1, or ``lanet``: the authors' code, which carried only
  LA-Net over). Classifiers learn CE, segmenters BCE. Selection on validation accuracy (segmenters:
  IoU), ties broken by the lower validation loss. ``train.select_on=test`` reproduces the authors'
  test-set selection and is recorded in the run.

Determinism: the global RNGs are re-seeded from ``(seed, stage, epoch)`` at the start of every epoch,
batch order comes from a generator seeded the same way and augmentation is seeded per sample, so a run
resumed from its last checkpoint finishes with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import socket
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from lanet_core.data.dataset import ImageCache, LesionDataset
from lanet_core.errors import BudgetExhausted, ConfigError
from lanet_core.evaluation import (
    Predictions, autocast_for, per_image_records, predict, summary_metrics, tune_threshold,
)
from lanet_core.models.factory import ARCH_HEADS, build_model
from lanet_core.models.registry import ARCHITECTURES
from lanet_core.models.output import ModelOutput
from lanet_core.precision import resolve_amp, resolve_channels_last
from lanet_core.training.losses import hybrid_loss, localisation_loss

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Stage:
    """One training stage: its loss, which training images it sees and how it selects its best epoch."""

    name: str
    epochs: int
    loss: str  # "floc" | "hybrid"
    images: str  # "labelled" | "all"
    select: str  # "accuracy" | "iou" | "auc+iou"
    also_track: tuple[str, ...] = ()  # other criteria whose best epoch is kept and reported (not used for the result)


JOINT_CRITERIA = ("accuracy", "auc+iou")


def plan_stages(cfg: Mapping[str, Any]) -> list[Stage]:
    """The stages a config trains, in order."""
    has_cls, has_loc = ARCH_HEADS[cfg["model"]["arch"]]
    stages = []
    if cfg["train"]["stage1_epochs"] > 0 and ARCHITECTURES[cfg["model"]["arch"]].stage1:
        stages.append(Stage("stage1", cfg["train"]["stage1_epochs"], "floc", "labelled", "iou"))
    images = cfg["data"]["train_images"] if has_cls else "labelled"
    if has_cls and has_loc:  # a joint model: select on the configured criterion, report the other one too
        crit = cfg["train"].get("select_metric", "accuracy")
        other = tuple(c for c in JOINT_CRITERIA if c != crit)
        stages.append(Stage("stage2", cfg["train"]["stage2_epochs"], "hybrid", images, crit, other))
    else:
        stages.append(Stage("stage2", cfg["train"]["stage2_epochs"], "hybrid", images, "accuracy" if has_cls else "iou"))
    return stages


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, stage_index: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, 7919, stage_index, epoch]).generate_state(1)[0])


def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress(iterable, enabled: bool, desc: str):
    if not enabled or os.environ.get("TQDM_DISABLE"):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


class Trainer:
    """Trains one config into ``run_dir`` (``checkpoints/last.pt`` every epoch, ``checkpoints/best.pt`` at the end).

    Args:
        cfg: resolved config (:func:`lanet_core.config.resolve_config`).
        rows: the manifest rows (all splits).
        data_root: folder the manifest's paths are relative to.
        run_dir: where checkpoints go.
    """

    def __init__(self, cfg: Mapping[str, Any], rows: pd.DataFrame, data_root: Path, run_dir: Path):
        self.cfg = copy.deepcopy(dict(cfg))
        self.rows = rows.reset_index(drop=True)
        self.data_root = Path(data_root)
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = resolve_device(self.cfg["train"]["device"])
        self.amp = resolve_amp(self.cfg["train"]["amp"], self.device)
        self.channels_last = resolve_channels_last(self.cfg["train"]["channels_last"], self.device, self.amp)
        self.deterministic = bool(self.cfg["train"].get("deterministic", True))
        self.nondeterministic_ops: list[str] = []
        if self.device.type == "cuda" and self.deterministic:
            # cuBLAS needs a fixed workspace for reproducible GEMMs (read when its handle is created)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        # warn_only: an op without a deterministic kernel warns (and is recorded in provenance, by name)
        # instead of stopping the run
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)
        d = self.cfg["data"]
        self.cache = ImageCache(self.data_root, d["image_size"], d["resize"])
        self.stages = plan_stages(self.cfg)
        self.select_split = "test" if self.cfg["train"]["select_on"] == "test" else "val"
        self.history: list[dict[str, Any]] = []
        self.wall: dict[str, float] = {}
        self.selected: dict[str, Any] = {}
        self.calls: list[dict[str, Any]] = []
        self.alternatives: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- data
    def rows_for(self, split: str, images: str = "all") -> pd.DataFrame:
        sel = self.rows[self.rows["split"] == split]
        if images == "labelled":
            sel = sel[sel["location_label"] != "none"]
        return sel

    def dataset(self, rows: pd.DataFrame, train: bool) -> LesionDataset:
        d = self.cfg["data"]
        return LesionDataset(
            rows,
            self.data_root,
            d["image_size"],
            train=train,
            resize=d["resize"],
            augment=d["augment"],
            rotation=d["rotation"],
            normalize=d["normalize"],
            seed=self.cfg["train"]["seed"],
            cache=self.cache,
        )

    def loader(self, ds: LesionDataset, train: bool, seed: int = 0) -> DataLoader:
        bs = self.cfg["train"]["batch_size"]
        workers = self.cfg["data"]["num_workers"]
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            ds,
            batch_size=bs,
            shuffle=train,
            generator=gen if train else None,
            drop_last=train and len(ds) > bs,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ----------------------------------------------------------------- losses
    def loss_fn(self, stage: Stage) -> Callable[[ModelOutput, dict], torch.Tensor]:
        """The stage's loss as a function of (output, batch), for validation passes."""
        return lambda out, b: self.batch_loss(stage, out, b).total

    def batch_loss(self, stage: Stage, out: ModelOutput, b: dict):
        lc = self.cfg["loss"]
        if stage.loss == "floc":
            return localisation_loss(out, b["target"], b["has_location"], lc["target_downsample"])
        return hybrid_loss(
            out, b["label"], b["target"], b["has_location"],
            lam=lc["lam"], alpha=lc["alpha"], tau=lc["tau"], pseudo=lc["pseudo"], downsample=lc["target_downsample"],
        )

    # ----------------------------------------------------------------- model
    def fresh_model(self) -> nn.Module:
        model = build_model(self.cfg).to(self.device)
        self.bn_frozen = bool(model.bn_frozen)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Adam; with ``train.backbone_lr_scale != 1`` the feature extractor (the model's ``"feature extractor"``
        component: LA-Net's backbone, a classifier's trunk, RMTL/AGN's features) is its own group at lr x scale."""
        t = self.cfg["train"]
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

    def rebuild_batchnorm(self, model: nn.Module) -> int:
        """``model.bn_rebuild``: recalibrate the folded feature extractor's BNs on the (un-augmented) training
        images so that the network computes the pretrained function, then let them train."""
        from lanet_core.models.bn_rebuild import rebuild_batchnorm

        ds = self.dataset(self.rows_for("train"), train=False)
        batches = (b["image"].to(self.device) for b in self.loader(ds, False))
        fex = getattr(model, "feature_extractor", model)
        n = rebuild_batchnorm(fex, batches, forward=fex)
        log.info("rebuilt %d BatchNorm layers from %d training images", n, len(ds))
        return n

    # ----------------------------------------------------------------- checkpoints
    def _save(self, name: str, payload: dict) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt_dir / f".{name}.{os.getpid()}.{time.time_ns()}.tmp"  # unique per writer
        torch.save(payload, tmp)
        os.replace(tmp, self.ckpt_dir / name)

    def _load_last(self) -> dict | None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            return None
        try:
            ck = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged checkpoint restarts the run rather than failing deep in torch
            log.warning("checkpoint %s unreadable (%s); starting from scratch", path, exc)
            return None
        if ck.get("format") != CHECKPOINT_FORMAT:
            return None
        return ck

    # ----------------------------------------------------------------- training
    def _select_key(self, stage: Stage, metrics: Mapping[str, float], criterion: str | None = None) -> tuple[float, float]:
        primary = metrics.get(criterion or stage.select, float("nan"))
        primary = -1.0 if primary is None or np.isnan(primary) else primary
        loss = metrics.get("loss", float("nan"))
        return primary, -(loss if np.isfinite(loss) else 1e30)

    def validate(self, model: nn.Module, stage: Stage) -> dict[str, float]:
        images = "labelled" if stage.loss == "floc" else "all"
        rows = self.rows_for(self.select_split, images)
        if len(rows) == 0:
            raise ConfigError(
                f"no {self.select_split!r} rows{' with location labels' if images == 'labelled' else ''} in the manifest: "
                "model selection needs a validation split"
            )
        ds = self.dataset(rows, train=False)
        pred = predict(
            model, self.loader(ds, False), self.device, loss_fn=self.loss_fn(stage), amp=self.amp,
            channels_last=self.channels_last,
        )
        per = per_image_records(pred, ds.rows, threshold=self.cfg["eval"]["threshold"],
                                align_corners=self.cfg["eval"]["align_corners"], gt_mode=self.cfg["eval"]["gt"])
        s = summary_metrics(per)
        out = {"loss": pred.loss, "accuracy": s.get("accuracy", float("nan")), "auc": s.get("auc", float("nan")),
               "iou": s.get("iou", float("nan")), "dice": s.get("dice", float("nan"))}
        if "auc+iou" in (stage.select, *stage.also_track):
            out["auc+iou"] = (out["auc"] + out["iou"]) / 2  # NaN when either is missing
        return out

    def train_epoch(self, model, opt, stage: Stage, stage_index: int, epoch: int, ds: LesionDataset) -> dict[str, float]:
        """One epoch; ops that warn about a missing deterministic implementation are recorded by name."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row = self._train_epoch(model, opt, stage, stage_index, epoch, ds)
        for w in caught:
            text = str(w.message)
            if "deterministic" in text:
                op = text.split(" does not have a deterministic")[0].strip()
                if op not in self.nondeterministic_ops:
                    self.nondeterministic_ops.append(op)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return row

    def _train_epoch(self, model, opt, stage: Stage, stage_index: int, epoch: int, ds: LesionDataset) -> dict[str, float]:
        seed = epoch_seed(self.cfg["train"]["seed"], stage_index, epoch)
        seed_everything(seed)
        ds.set_epoch(epoch + 1000 * stage_index)
        model.train()
        sums = {"loss": 0.0, "cls": 0.0, "loc": 0.0, "pseudo": 0.0}
        counts = {"loss": 0, "cls": 0, "loc": 0, "pseudo": 0}
        n_img, n_pseudo = 0, 0
        t0 = time.perf_counter()
        for b in _progress(self.loader(ds, True, seed), self.cfg["train"]["progress"], f"{stage.name} {epoch + 1}/{stage.epochs}"):
            b = {k: v.to(self.device, non_blocking=True) for k, v in b.items()}
            x = b["image"].contiguous(memory_format=torch.channels_last) if self.channels_last else b["image"]
            with autocast_for(self.device, self.amp):
                out = model(x)
            parts = self.batch_loss(stage, out, b)
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            opt.step()
            bs = len(x)
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

    def fit(self, *, deadline: float | None = None, stop_after_epochs: int | None = None) -> nn.Module:
        """Train every stage (resuming from ``checkpoints/last.pt``); returns the selected model.

        ``deadline`` (``time.time()`` value): stop cleanly with :class:`BudgetExhausted` after the epoch that
        passes it. ``stop_after_epochs``: stop after that many epochs in this call (tests of resume).
        """
        t_start = time.time()
        ck = self._load_last()
        model = self.fresh_model()
        start_stage, start_epoch, best, alt = 0, 0, None, {}
        self.calls = list(ck.get("calls", [])) if ck is not None else []
        self.calls.append({"start_utc": _utc(), "end_utc": None, "device": str(self.device),
                           "host": socket.gethostname(), "threads": torch.get_num_threads()})
        if ck is None and model.bn_rebuild_pending:
            self.rebuild_batchnorm(model)
        if ck is not None:
            model.load_state_dict(ck["model"])
            start_stage, start_epoch = ck["stage_index"], ck["epoch"] + 1
            self.history, best, self.wall = ck["history"], ck["best"], ck.get("wall", {})
            alt = ck.get("alt", {})
            log.info("resuming %s at %s epoch %d", self.run_dir.name, self.stages[start_stage].name, start_epoch + 1)
        done_this_call = 0
        for si, stage in enumerate(self.stages):
            if si < start_stage:
                continue
            resuming = ck is not None and si == start_stage and start_epoch > 0
            if not resuming:
                if si > 0:
                    model = self.begin_next_stage(model, best)  # ``best`` of the previous stage
                best, alt = None, {}
            opt = self.optimizer(model)
            if resuming:
                opt.load_state_dict(ck["optimizer"])
            images = "labelled" if stage.loss == "floc" else stage.images
            train_rows = self.rows_for("train", images)
            if len(train_rows) == 0:
                raise ConfigError(f"{stage.name}: no training images ({images}) in the manifest")
            ds = self.dataset(train_rows, train=True)
            first = start_epoch if resuming else 0
            for epoch in range(first, stage.epochs):
                row = {"stage": stage.name, "epoch": epoch + 1}
                row.update(self.train_epoch(model, opt, stage, si, epoch, ds))
                t_val = time.perf_counter()
                val = self.validate(model, stage)
                row.update({f"{self.select_split}_{k}": v for k, v in val.items()})
                row["eval_seconds"] = time.perf_counter() - t_val
                key = self._select_key(stage, val)
                improved = best is None or key > tuple(best["key"])
                if improved:
                    best = {"key": list(key), "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict()), "stage": stage.name}
                row["selected"] = int(improved)
                for crit in stage.also_track:
                    k = self._select_key(stage, val, crit)
                    if crit not in alt or k > tuple(alt[crit]["key"]):
                        alt[crit] = {"key": list(k), "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict()),
                                     "stage": stage.name}
                        row[f"selected_{crit}"] = 1
                    else:
                        row[f"selected_{crit}"] = 0
                self.history.append(row)
                self.wall[stage.name] = self.wall.get(stage.name, 0.0) + row["train_seconds"] + row["eval_seconds"]
                self._save("last.pt", {
                    "format": CHECKPOINT_FORMAT, "stage_index": si, "epoch": epoch, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "best": best, "alt": alt, "history": self.history, "wall": self.wall,
                    "calls": [*self.calls[:-1], {**self.calls[-1], "end_utc": _utc()}],
                })
                log.info("%s epoch %d/%d: %s", stage.name, epoch + 1, stage.epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
                done_this_call += 1
                if stop_after_epochs is not None and done_this_call >= stop_after_epochs:
                    raise KeyboardInterrupt(f"stopped after {done_this_call} epoch(s) (test hook)")
                if deadline is not None and time.time() > deadline and not (si == len(self.stages) - 1 and epoch + 1 == stage.epochs):
                    raise BudgetExhausted(f"{self.run_dir.name}: time budget reached at {stage.name} epoch {epoch + 1}; progress saved")
        model.load_state_dict(best["state"])
        self.selected = {"stage": best["stage"], "epoch": best["epoch"], "key": best["key"],
                         "criterion": self.stages[-1].select}
        # models of the other criteria (reported beside the result, never used for it)
        self.alternatives = {crit: {"stage": a["stage"], "epoch": a["epoch"], "key": a["key"], "state": a["state"]}
                             for crit, a in alt.items()}
        self._save("best.pt", {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "selected": self.selected})
        self.wall["fit_call"] = time.time() - t_start
        self.calls[-1]["end_utc"] = _utc()
        return model

    def begin_next_stage(self, model: nn.Module, best: dict | None) -> nn.Module:
        """Stage 2 starts from the best stage-1 weights (feature extractor and LA-Net, or LA-Net only)."""
        if best is not None:
            model.load_state_dict(best["state"])
        if self.cfg["train"]["stage2_init"] == "lanet" and hasattr(model, "feature_extractor"):
            fresh = self.fresh_model()
            if fresh.bn_rebuild_pending:
                self.rebuild_batchnorm(fresh)
            model.feature_extractor.load_state_dict(fresh.feature_extractor.state_dict())
        return model

    # ----------------------------------------------------------------- evaluation
    def tune_lesion_threshold(self, model: nn.Module) -> dict[str, float] | None:
        """The lesion threshold maximising IoU on the *validation* split (never test); ``None`` without
        a lesion head or validation masks."""
        if not ARCH_HEADS[self.cfg["model"]["arch"]][1]:
            return None
        rows = self.rows_for("val")
        if len(rows) == 0:
            return None
        e = self.cfg["eval"]
        ds = self.dataset(rows, train=False)
        pred = predict(model, self.loader(ds, False), self.device, amp=self.amp, channels_last=self.channels_last)
        tuned = tune_threshold(pred, ds.rows, align_corners=e["align_corners"], gt_mode=e["gt"])
        return None if tuned is None else {**tuned, "split": "val"}

    def evaluate(self, model: nn.Module, split: str | None = None, tuned_threshold: float | None = None
                 ) -> tuple[pd.DataFrame, Predictions, pd.DataFrame]:
        """(per-image records, predictions, rows) of ``split`` (default ``eval.split``); ``tuned_threshold``
        adds IoU/Dice at a validation-tuned lesion threshold."""
        e = self.cfg["eval"]
        split = split or e["split"]
        rows = self.rows_for(split)
        if len(rows) == 0:
            raise ConfigError(f"no {split!r} rows in the manifest to evaluate")
        ds = self.dataset(rows, train=False)
        pred = predict(model, self.loader(ds, False), self.device, amp=self.amp, channels_last=self.channels_last)
        per = per_image_records(pred, ds.rows, threshold=e["threshold"], sweep=e["sweep"],
                                align_corners=e["align_corners"], gt_mode=e["gt"], tuned_threshold=tuned_threshold)
        per.insert(1, "split", split)
        return per, pred, ds.rows

    def load_best(self) -> nn.Module:
        path = self.ckpt_dir / "best.pt"
        if not path.is_file():
            raise ConfigError(f"{self.run_dir}: no checkpoint {path} (checkpoints are not kept in git; retrain with --force)")
        model = self.fresh_model()
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)["model"]
        except Exception as exc:
            raise ConfigError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); retrain the run "
                              "(lanet train <run>/config.yaml --force)") from None
        model.load_state_dict(state)
        return model
