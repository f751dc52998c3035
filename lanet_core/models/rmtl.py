"""RMTL: the multi-task baseline of Rasaee & Rivaz (2021), as the LA-Net authors implemented it.

Shared timm trunk -> last stage ``f4`` (``C4`` channels, stride 32), then
    * classification head: global average pool -> ``Linear(C4, K)`` (Kaiming-normal weight, zero bias);
    * mask head: three blocks [3x3 conv -> ReLU6 -> bilinear upsampling (align_corners=True) -> BatchNorm],
      ``C4 -> 256 -> 64 -> 1`` channels, upsampled to ``S/16``, ``7S/16`` (rounded) and ``map_size``
      (default ``S``): 16, 112, 256 for the authors' 256 px input. The last BatchNorm's output is the
      lesion logit map (the authors' extra sigmoid(s) are not reproduced).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import create_feature_extractor
from lanet_core.models.classifiers import stage_module
from lanet_core.models.output import ModelOutput
from lanet_core.models.base import LanetModel

MASK_CHANNELS = (256, 64, 1)


def rmtl_upsample_sizes(image_size: int, map_size: int | None = None) -> tuple[int, int, int]:
    """Output sides (px) of the three mask blocks: ``(S/16, 7S/16, map_size or S)``, rounded, at least 1."""
    return (max(1, round(image_size / 16)), max(1, round(image_size * 7 / 16)), map_size or image_size)


def _mask_block(in_channels: int, out_channels: int, size: int) -> nn.Sequential:
    """3x3 conv -> ReLU6 -> bilinear resize to ``size x size`` (align_corners=True) -> BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU6(),
        nn.Upsample(size=(size, size), mode="bilinear", align_corners=True),
        nn.BatchNorm2d(out_channels),
    )


class RMTL(LanetModel):
    """Shared-trunk classification + mask model; ``forward`` -> logits ``(B, K)``, lesion_logits ``(B, 1, m, m)``.

    ``m = map_size`` (default: ``image_size``). The mask head's sizes are fixed at build time, so the
    lesion map is ``m x m`` whatever the input size.
    """

    def __init__(
        self,
        backbone: str,
        weights: str | os.PathLike = "none",
        *,
        image_size: int,
        num_classes: int = 2,
        map_size: int | None = None,
        timm_kwargs: dict | None = None,
    ):
        super().__init__()
        if map_size is not None and map_size < 1:
            raise ConfigError(f"RMTL map_size must be a positive number of pixels, got {map_size}")
        self.features = create_feature_extractor(backbone, weights, n_stages=1, **(timm_kwargs or {}))
        c4 = self.features.feature_info.channels()[-1]
        self.classifier = nn.Linear(c4, num_classes)
        nn.init.kaiming_normal_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)
        sizes = rmtl_upsample_sizes(image_size, map_size)
        channels = (c4, *MASK_CHANNELS)
        self.mask_head = nn.Sequential(
            *(_mask_block(c_in, c_out, s) for c_in, c_out, s in zip(channels[:-1], channels[1:], sizes))
        )
        self.gradcam_layer = stage_module(self.features)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """``x``: ``(B, 3, S, S)``."""
        f4 = self.features(x)[-1]
        logits = self.classifier(f4.mean(dim=(2, 3)))
        return ModelOutput(logits=logits, lesion_logits=self.mask_head(f4))

    def batchnorm_trunk(self) -> nn.Module:
        """The shared timm trunk (its BatchNorm is rebuilt for converted BN-folded weights)."""
        return self.features

    def component_modules(self) -> dict[str, nn.Module]:
        return {"feature extractor": self.features, "classifier head": self.classifier, "mask head": self.mask_head}
