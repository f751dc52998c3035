"""The two-stage sequential semi-supervised trainer (paper Algorithm 1), used for every model.

Stages (:func:`~lanet_core.training.stages.plan_stages`, from the config and the model's heads):

* ``stage1`` (LA-Net with ``train.stage1_epochs > 0``): the feature extractor and LA-Net
  learn ``L_floc`` on the location-labelled training images; selection on validation IoU.
* ``stage2``: every part learns ``L_hyb`` on the training images named by ``data.train_images``
  (``all`` mixes labelled and unlabelled images in each batch); it starts from the best stage-1 weights
  (``train.stage2_init``: ``fex+lanet`` as Algorithm 1, or ``lanet``: the authors' code, which carried only
  LA-Net over). Classifiers learn CE, segmenters BCE. Selection on validation accuracy (segmenters:
  IoU), ties broken by the lower validation loss. ``train.select_on=test`` reproduces the authors'
  test-set selection and is recorded in the run.

The pieces: :class:`~lanet_core.training.context.RunContext` (data, device, model construction),
:func:`~lanet_core.training.loop.train_one_epoch`, :mod:`~lanet_core.training.evaluator` (validation and test
passes). :meth:`Trainer.fit` adds the schedule, selection and checkpoints, and returns a :class:`FitResult` that
the run-record writer (:func:`lanet_core.runs.write_records`) consumes.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from lanet_core.errors import BudgetExhausted, ConfigError
from lanet_core.io import make_dirs, storage_error
from lanet_core.training.context import RunContext
from lanet_core.training.evaluator import validation_metrics
from lanet_core.training.loop import build_optimizer, train_one_epoch
from lanet_core.training.stages import Stage, plan_stages

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` produced: the selected model and everything the run records say about training.

    Attributes:
        model: the model with the selected epoch's weights.
        stages: the stages trained, in order.
        select_split: the split selection read (``val``; ``test`` only under ``train.select_on=test``).
        selected: ``{"stage", "epoch", "key", "criterion"}`` of the selected epoch.
        alternatives: per other criterion (joint models), its best epoch and weights (``state``), reported beside
            the result and never used for it.
        history: one row per epoch (losses, validation metrics, images/s, selection flags).
        wall: seconds per stage and of the whole ``fit`` call.
        calls: every (resumed) training call: start, end, device, host, threads.
        nondeterministic_ops: ops that warned about a missing deterministic kernel.
        bn_frozen: the feature extractor's BatchNorm was frozen (folded pretrained weights).
    """

    model: nn.Module
    stages: list[Stage]
    select_split: str
    selected: dict[str, Any]
    alternatives: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    wall: dict[str, float] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    nondeterministic_ops: list[str] = field(default_factory=list)
    bn_frozen: bool = False

    @property
    def selection_rule(self) -> str:
        """The rule in words, e.g. ``best val accuracy, ties broken by the lower loss``."""
        return f"best {self.select_split} {self.stages[-1].select}, ties broken by the lower loss"


@dataclass
class _Progress:
    """Where training stands (what ``last.pt`` holds): the stage and next epoch, the best epoch so far (and the
    other criteria's), history, wall times, calls; ``optimizer``: its state when resuming mid-stage."""

    calls: list[dict[str, Any]]
    bn_frozen: bool
    stage_index: int = 0
    next_epoch: int = 0
    best: dict | None = None
    alt: dict[str, dict] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    wall: dict[str, float] = field(default_factory=dict)
    ops: list[str] = field(default_factory=list)
    optimizer: dict | None = None


def select_key(stage: Stage, metrics: Mapping[str, float], criterion: str | None = None) -> tuple[float, float]:
    """The sort key of an epoch: the criterion (missing or NaN counts as -1), then the lower validation loss."""
    primary = metrics.get(criterion or stage.select, float("nan"))
    primary = -1.0 if primary is None or np.isnan(primary) else primary
    loss = metrics.get("loss", float("nan"))
    return primary, -(loss if np.isfinite(loss) else 1e30)


def _plain(obj: Any) -> Any:
    """A checkpoint payload that ``torch.load(weights_only=True)`` reads: numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class Trainer:
    """Trains one config into ``run_dir`` (``checkpoints/last.pt`` every epoch, ``checkpoints/best.pt`` at the end).

    Args:
        ctx: the config's data, device and model construction.
        run_dir: where checkpoints go.
    """

    def __init__(self, ctx: RunContext, run_dir: Path | str):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.stages = plan_stages(self.cfg)

    # ----------------------------------------------------------------- model
    @property
    def training_images(self) -> str:
        """The training images the run ever sees: ``"all"`` if a stage trains on every class-labelled image,
        else ``"labelled"`` (an F run, a segmentation model: only the images with a location label)."""
        return "all" if any(s.training_images == "all" for s in self.stages) else "labelled"

    def rebuild_batchnorm(self, model: nn.Module) -> int:
        """``model.bn_rebuild``: recalibrate the folded feature extractor's BNs on the (un-augmented) training
        images the run trains on (:attr:`training_images`: an F run never sees an unboxed image, not even its
        pixels for BatchNorm statistics) so that the network computes the pretrained function, then let them
        train."""
        from lanet_core.models.bn_rebuild import rebuild_batchnorm

        ds, loader = self.ctx.split_loader("train", self.training_images)
        batches = (b["image"].to(self.ctx.device) for b in loader)
        fex = model.batchnorm_trunk()
        n = rebuild_batchnorm(fex, batches, forward=fex)
        log.info("rebuilt %d BatchNorm layers from %d training images", n, len(ds))
        return n

    def begin_next_stage(self, model: nn.Module, best: dict | None) -> nn.Module:
        """Stage 2 starts from the best stage-1 weights (feature extractor and LA-Net, or LA-Net only)."""
        if best is not None:
            model.load_state_dict(best["state"])
        if self.cfg["train"]["stage2_init"] == "lanet" and hasattr(model, "feature_extractor"):
            fresh = self.ctx.build_model()
            if fresh.bn_rebuild_pending:
                self.rebuild_batchnorm(fresh)
            model.feature_extractor.load_state_dict(fresh.feature_extractor.state_dict())
        return model

    # ----------------------------------------------------------------- checkpoints
    def _save(self, name: str, payload: dict) -> None:
        """Atomic checkpoint write; a full or read-only disk is one clear error, and no temp file stays behind."""
        make_dirs(self.ckpt_dir)
        tmp = self.ckpt_dir / f".{name}.{os.getpid()}.{time.time_ns()}.tmp"  # unique per writer
        try:
            torch.save(_plain(payload), tmp)
            os.replace(tmp, self.ckpt_dir / name)
        except (OSError, RuntimeError) as exc:
            tmp.unlink(missing_ok=True)
            err = storage_error(exc, self.ckpt_dir / name)
            if err is None:
                raise
            raise err from None

    def _load_last(self) -> dict | None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            return None
        try:  # weights_only: tensors and plain containers, never pickled code (the folder may come from elsewhere)
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint restarts the run rather than failing deep in torch
            log.warning("checkpoint %s unreadable (%s); starting from scratch", path, exc)
            return None
        if ck.get("format") != CHECKPOINT_FORMAT:
            return None
        return ck

    # ----------------------------------------------------------------- training
    def fit(self, *, deadline: float | None = None,
            on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> FitResult:
        """Train every stage (resuming from ``checkpoints/last.pt``); returns the selected model and its records.

        ``deadline`` (``time.time()`` value): stop cleanly with :class:`BudgetExhausted` after the epoch that
        passes it (progress saved). ``on_epoch_end``: called with each epoch's history row after its checkpoint
        is written (an exception raised there interrupts the run, as a kill would).
        """
        t_start = time.time()
        model, state = self._start()
        for si, stage in enumerate(self.stages):
            if si < state.stage_index:
                continue
            resuming = state.optimizer is not None and si == state.stage_index
            if not resuming:
                if si > 0:
                    model = self.begin_next_stage(model, state.best)  # ``best`` of the previous stage
                state.best, state.alt, state.next_epoch = None, {}, 0
            opt = build_optimizer(self.cfg, model)
            if resuming:
                opt.load_state_dict(state.optimizer)
            train_rows = self.ctx.rows_for("train", stage.training_images)
            if len(train_rows) == 0:
                raise ConfigError(f"{stage.name}: no training images ({stage.training_images}) in the manifest")
            ds = self.ctx.dataset(train_rows, train=True)
            for epoch in range(state.next_epoch, stage.epochs):
                row, ops = train_one_epoch(self.ctx, model, opt, stage, si, epoch, ds)
                row = {"stage": stage.name, "epoch": epoch + 1, **row}
                state.ops += [op for op in ops if op not in state.ops]
                state.best, state.alt = self._validate_and_select(model, stage, epoch, row, state.best, state.alt)
                state.history.append(row)
                state.wall[stage.name] = state.wall.get(stage.name, 0.0) + row["train_seconds"] + row["eval_seconds"]
                self._save_last(si, epoch, model, opt, state)
                log.info("%s epoch %d/%d: %s", stage.name, epoch + 1, stage.epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
                if on_epoch_end is not None:
                    on_epoch_end(row)
                last = si == len(self.stages) - 1 and epoch + 1 == stage.epochs
                if deadline is not None and time.time() > deadline and not last:
                    raise BudgetExhausted(f"{self.run_dir.name}: time budget reached at {stage.name} epoch {epoch + 1}; progress saved")
        return self._finish(model, state, time.time() - t_start)

    def _start(self) -> tuple[nn.Module, "_Progress"]:
        """A fresh model (BatchNorm rebuilt if the config asks), or the model and progress of ``last.pt``."""
        ck = self._load_last()
        model = self.ctx.build_model()
        calls = list(ck.get("calls", [])) if ck is not None else []
        calls.append({"start_utc": _utc(), "end_utc": None, "device": str(self.ctx.device),
                      "host": socket.gethostname(), "threads": torch.get_num_threads()})
        state = _Progress(calls=calls, bn_frozen=bool(model.bn_frozen))
        if ck is None:
            if model.bn_rebuild_pending:
                self.rebuild_batchnorm(model)
            return model, state
        model.load_state_dict(ck["model"])
        state.stage_index, state.next_epoch = ck["stage_index"], ck["epoch"] + 1
        state.history, state.best, state.wall, state.alt = ck["history"], ck["best"], ck.get("wall", {}), ck.get("alt", {})
        state.optimizer = ck["optimizer"] if state.next_epoch > 0 else None
        log.info("resuming %s at %s epoch %d", self.run_dir.name, self.stages[state.stage_index].name, state.next_epoch + 1)
        return model, state

    def _save_last(self, si: int, epoch: int, model: nn.Module, opt: torch.optim.Optimizer, state: "_Progress") -> None:
        self._save("last.pt", {
            "format": CHECKPOINT_FORMAT, "stage_index": si, "epoch": epoch, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "best": state.best, "alt": state.alt, "history": state.history,
            "wall": state.wall, "calls": [*state.calls[:-1], {**state.calls[-1], "end_utc": _utc()}],
        })

    def _finish(self, model: nn.Module, state: "_Progress", seconds: float) -> FitResult:
        """Load the selected epoch's weights, write ``best.pt``, and assemble the :class:`FitResult`."""
        best = state.best
        model.load_state_dict(best["state"])
        selected = {"stage": best["stage"], "epoch": best["epoch"], "key": best["key"], "criterion": self.stages[-1].select}
        self._save("best.pt", {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "selected": selected,
                               "config": copy.deepcopy(dict(self.cfg))})  # names what an edited config.yaml changed
        state.wall["fit_call"] = seconds
        state.calls[-1]["end_utc"] = _utc()
        return FitResult(
            model=model, stages=self.stages, select_split=self.ctx.select_split, selected=selected,
            alternatives={crit: {"stage": a["stage"], "epoch": a["epoch"], "key": a["key"], "state": a["state"]}
                          for crit, a in state.alt.items()},
            history=state.history, wall=state.wall, calls=state.calls, nondeterministic_ops=state.ops,
            bn_frozen=state.bn_frozen,
        )

    def _validate_and_select(self, model: nn.Module, stage: Stage, epoch: int, row: dict[str, Any],
                             best: dict | None, alt: dict[str, dict]) -> tuple[dict, dict[str, dict]]:
        """Validate after an epoch, add the metrics and selection flags to ``row``; the updated (best, alt)."""
        t_val = time.perf_counter()
        val = validation_metrics(self.ctx, model, stage)
        row.update({f"{self.ctx.select_split}_{k}": v for k, v in val.items()})
        row["eval_seconds"] = time.perf_counter() - t_val
        key = select_key(stage, val)
        improved = best is None or key > tuple(best["key"])
        if improved:
            best = {"key": list(key), "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict()), "stage": stage.name}
        row["selected"] = int(improved)
        for crit in stage.also_track:
            k = select_key(stage, val, crit)
            better = crit not in alt or k > tuple(alt[crit]["key"])
            if better:
                alt[crit] = {"key": list(k), "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict()),
                             "stage": stage.name}
            row[f"selected_{crit}"] = int(better)
        return best, alt
