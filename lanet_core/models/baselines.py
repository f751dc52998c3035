"""The paper's baselines as lanet models, behind one entry point :func:`build_baseline`.

Every model maps ``x (B, 3, S, S)`` to :class:`lanet_core.models.output.ModelOutput` (raw logits, no
activation, no loss), has ``component_modules() -> dict[str, nn.Module]`` (disjoint parts that sum to
the model's parameters), ``gradcam_layer`` (a module with a tensor output, or ``None`` for segmenters)
and ``gradcam_reshape_transform`` (``None`` except for ViT). Pretrained weights all go through
``lanet_core.models.backbones`` ("none", "imagenet", "imagenet:<tag>" or a local file).

==========  ===================================  =========================  ========================
arch        model                                logits                     lesion_logits
==========  ===================================  =========================  ========================
classifier  timm CNN (resnet18, efficientnet_b0)  (B, K)                     None
vit         timm ViT at ``img_size=S``           (B, K)                     None
unet        smp U-Net, timm encoder              None                       (B, 1, S, S)
deeplabv3   smp DeepLabV3, timm encoder          None                       (B, 1, S, S)
rmtl        Rasaee & Rivaz 2021 (authors' form)  (B, K)                     (B, 1, map_size, map_size)
agn         Schlemper et al. 2019 (AG-Sononet)   (B, K)                     (B, 1, S/8, S/8)
==========  ===================================  =========================  ========================
"""

from __future__ import annotations

import os

from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.factory import build_architecture
from lanet_core.models.registry import ARCHITECTURES

#: Every architecture but LA-Net, in registry order (a baseline = an entry that is not LA-Net's).
BASELINE_ARCHS: tuple[str, ...] = tuple(n for n in ARCHITECTURES if n != "lanet")

#: Backbone used when none is named (registry ``default_backbone``): ResNet18 trunks (the paper's main size)
#: except ViT-S/16 for "vit" (ViT-B/16, the paper's, has 86 M parameters) and ResNet50 for DeepLabV3.
DEFAULT_BACKBONES: dict[str, str] = {n: ARCHITECTURES[n].default_backbone for n in BASELINE_ARCHS}


def baseline_options(arch: str) -> tuple[str, ...]:
    """Names of the extra keyword options ``arch`` accepts (registry ``options``, e.g. ``("drop_rate", ...)``)."""
    if arch not in BASELINE_ARCHS:
        raise ConfigError(f"unknown baseline arch {arch!r}; expected one of {list(BASELINE_ARCHS)}")
    return ARCHITECTURES[arch].options


def build_baseline(
    arch: str,
    *,
    backbone: str | None = None,
    weights: str | os.PathLike = "none",
    image_size: int,
    num_classes: int = 2,
    **options,
) -> nn.Module:
    """Build baseline ``arch`` (one of :data:`BASELINE_ARCHS`) for ``image_size`` px square inputs, through the
    registry like every model (:func:`lanet_core.models.factory.build_architecture`).

    Args:
        backbone: timm model name (``None``: :data:`DEFAULT_BACKBONES`); for segmenters the smp encoder.
        weights: the project's weights spec, applied to the backbone / encoder.
        num_classes: classifier outputs (ignored by the segmenters, which output one lesion map).
        options: per-arch extras, see :func:`baseline_options`: ``drop_rate`` (classifier, vit),
            ``map_size`` (rmtl), ``inter_channels`` (agn).
    Raises:
        ConfigError: unknown arch, backbone or option, or an image size the model cannot take.
    """
    baseline_options(arch)  # a clear error for LA-Net or an unknown name
    return build_architecture(arch, backbone=backbone, weights=weights, image_size=image_size,
                              num_classes=num_classes, **options)
