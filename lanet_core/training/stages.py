"""The stages a config trains (paper Algorithm 1) and the loss of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lanet_core.models.output import ModelOutput
from lanet_core.models.registry import ARCHITECTURES
from lanet_core.training.losses import LossParts, hybrid_loss, localisation_loss


@dataclass(frozen=True)
class Stage:
    """One training stage: its loss, which training images it sees and how it selects its best epoch."""

    name: str
    epochs: int
    loss: str  # "floc" | "hybrid"
    images: str  # "labelled" | "all"
    select: str  # "accuracy" | "iou" | "auc+iou"
    also_track: tuple[str, ...] = ()  # other criteria whose best epoch is kept and reported (not used for the result)

    @property
    def validation_images(self) -> str:
        """Which validation images select the epoch: stage 1 only sees location-labelled ones."""
        return "labelled" if self.loss == "floc" else "all"

    @property
    def training_images(self) -> str:
        return "labelled" if self.loss == "floc" else self.images


JOINT_CRITERIA = ("accuracy", "auc+iou")


def plan_stages(cfg: Mapping[str, Any]) -> list[Stage]:
    """The stages a config trains, in order."""
    spec = ARCHITECTURES[cfg["model"]["arch"]]
    has_cls, has_loc = spec.class_head, spec.lesion_head
    stages = []
    if cfg["train"]["stage1_epochs"] > 0 and spec.stage1:
        stages.append(Stage("stage1", cfg["train"]["stage1_epochs"], "floc", "labelled", "iou"))
    images = cfg["data"]["train_images"] if has_cls else "labelled"
    if has_cls and has_loc:  # a joint model: select on the configured criterion, report the other one too
        crit = cfg["train"].get("select_metric", "accuracy")
        other = tuple(c for c in JOINT_CRITERIA if c != crit)
        stages.append(Stage("stage2", cfg["train"]["stage2_epochs"], "hybrid", images, crit, other))
    else:
        stages.append(Stage("stage2", cfg["train"]["stage2_epochs"], "hybrid", images, "accuracy" if has_cls else "iou"))
    return stages


def stage_loss(cfg: Mapping[str, Any], stage: Stage, out: ModelOutput, batch: Mapping[str, Any]) -> LossParts:
    """The loss of ``stage`` (``L_floc`` or ``L_hyb``, paper Eqs. 5-8) for one batch, by parts."""
    lc = cfg["loss"]
    if stage.loss == "floc":
        return localisation_loss(out, batch["target"], batch["has_location"], lc["target_downsample"])
    return hybrid_loss(
        out, batch["label"], batch["target"], batch["has_location"],
        lam=lc["lam"], alpha=lc["alpha"], tau=lc["tau"], pseudo=lc["pseudo"], downsample=lc["target_downsample"],
    )
