"""The architecture registry: one record per ``model.arch`` with every per-architecture fact the library needs.

Plain data (no torch import), so that ``config`` can read it. Each :class:`Architecture` says which heads the
model has, whether it has LA-Net's stage 1 (location-only pre-training), which training images a supervised-only
baseline uses, its default feature extractor, the paper's row label, and where its builder lives. The tables other
modules used to keep by hand (``config.ARCH_DEFAULTS``, ``factory.ARCH_HEADS``, ``baselines.DEFAULT_BACKBONES``,
the row labels of ``study.experiments.method_name``) are derived from :data:`ARCHITECTURES`.

Adding an architecture: write its builder (an ``nn.Module`` returning :class:`~lanet_core.models.output.ModelOutput`,
``component_modules()`` and a Grad-CAM layer as the others), then add one entry here: every model, LA-Net included,
is built by :func:`lanet_core.models.factory.build_architecture` from its entry (no per-name code elsewhere).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_BACKBONE = "resnet18"  # config.DEFAULTS["model"]["backbone"]: the paper's main feature extractor
DEFAULT_VIT = "vit_small_patch16_224"  # ViT-S/16: the paper's ViT-B/16 has 86 M parameters


@dataclass(frozen=True)
class Architecture:
    """Facts of one ``model.arch``.

    Attributes:
        name: the ``model.arch`` value.
        builder: ``"module:attribute"`` of the constructor, imported on first use.
        class_head / lesion_head: the model returns class logits / lesion-map logits.
        stage1: LA-Net's stage 1 (the lesion branch pre-trained on location-labelled images) exists.
        train_images: ``"all"`` or ``"labelled"`` (supervised-only baselines train on location-labelled images).
        default_backbone: the feature extractor (timm name; smp encoder for segmenters) when none is named.
        row_label: the paper's row label; ``{b}`` is the backbone's short name (R18, R50, MNV2, ...).
        options: the builder's keyword options beyond backbone, weights, image size and classes (``drop_rate``;
            ``timm_kwargs``: extra arguments for timm, e.g. a converted checkpoint's BN-free layers).
        config_options: the keys of the resolved ``model`` section handed to the builder as keywords of the same
            name (LA-Net's attention modules, fusion and init; a classifier's ``drop_rate``).
        timm_kwargs_arg: the builder's keyword for a converted weights file's extra timm arguments (``None``: the
            architecture cannot take such a file).
        takes_image_size: the builder takes ``image_size`` (LA-Net's modules adapt to any input size).
    """

    name: str
    builder: str
    class_head: bool
    lesion_head: bool
    stage1: bool = False
    train_images: str = "all"
    default_backbone: str = DEFAULT_BACKBONE
    row_label: str = "{b}"
    options: tuple[str, ...] = ()
    config_options: tuple[str, ...] = ()
    timm_kwargs_arg: str | None = None
    takes_image_size: bool = True

    def config_defaults(self) -> dict[str, Any]:
        """This architecture's layer of the resolved config (between the defaults and the preset)."""
        out: dict[str, Any] = {}
        if self.default_backbone != DEFAULT_BACKBONE:
            out["model"] = {"backbone": self.default_backbone}
        if not self.stage1:
            out["train"] = {"stage1_epochs": 0}
        if self.train_images != "all":
            out["data"] = {"train_images": self.train_images}
        return out

    def label(self, backbone_short: str) -> str:
        return self.row_label.format(b=backbone_short)

    def build_fn(self) -> Callable[..., Any]:
        module, attr = self.builder.split(":")
        return getattr(importlib.import_module(module), attr)


LANET_OPTIONS = ("use_cam", "use_sam", "use_mam", "sam", "cam_reduction", "fusion_stride", "fusion_resize", "init")

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("lanet", "lanet_core.models.lanet:LANet", True, True, stage1=True, row_label="{b}+LA-Net",
                 options=(*LANET_OPTIONS, "backbone_kwargs"), config_options=LANET_OPTIONS,
                 timm_kwargs_arg="backbone_kwargs", takes_image_size=False),
    Architecture("classifier", "lanet_core.models.classifiers:build_classifier", True, False,
                 options=("drop_rate", "timm_kwargs"), config_options=("drop_rate",), timm_kwargs_arg="timm_kwargs"),
    Architecture("vit", "lanet_core.models.classifiers:build_vit", True, False, default_backbone=DEFAULT_VIT,
                 options=("drop_rate",), config_options=("drop_rate",)),
    Architecture("unet", "lanet_core.models.segmenters:build_unet", False, True, train_images="labelled",
                 row_label="U-Net"),
    Architecture("deeplabv3", "lanet_core.models.segmenters:build_deeplabv3", False, True, train_images="labelled",
                 default_backbone="resnet50", row_label="DeepLabV3"),  # the authors' DeepLabV3 has a ResNet50
    Architecture("rmtl", "lanet_core.models.rmtl:RMTL", True, True, train_images="labelled", row_label="{b}+RMTL",
                 options=("map_size", "timm_kwargs"), timm_kwargs_arg="timm_kwargs"),
    Architecture("agn", "lanet_core.models.agn:AGN", True, True, train_images="labelled", row_label="AGN",
                 options=("inter_channels", "timm_kwargs"), timm_kwargs_arg="timm_kwargs"),
)}


def architecture(name: str) -> Architecture:
    """The registry entry of ``model.arch = name`` (a clear error for unknown names)."""
    from lanet_core.errors import ConfigError

    if name not in ARCHITECTURES:
        raise ConfigError(f"model.arch = {name!r} is not one of {list(ARCHITECTURES)}")
    return ARCHITECTURES[name]
