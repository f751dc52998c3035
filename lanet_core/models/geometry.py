"""Lesion-map geometry, defined once: the stride of LA-Net's fused lesion map and the map size it gives.

Plain data (no torch import), read by the config defaults, the model, the study's records, plan and claims. The paper
fuses at the top feature map's grid (stride 32: 4x4 cells at 128 px, 8x8 at 256 px); "LA-Net-fine" (issue 11) fuses at
stride 8 (16x16 at 128 px).
"""

from __future__ import annotations

from typing import Any, Mapping

PAPER_FUSION_STRIDE = 32  # model.fusion_stride default: input / 32, the paper's setting
FINE_FUSION_STRIDE = 8  # LA-Net-fine's default (profile key lanet_fine.fusion_stride)
FUSION_STRIDES = (8, 16, 32)  # the values model.fusion_stride may take


def fusion_stride(model_cfg: Mapping[str, Any]) -> int:
    """The lesion-map stride of a resolved (or older, partial) ``model`` config section."""
    return int(model_cfg.get("fusion_stride", PAPER_FUSION_STRIDE))


def lesion_map_size(image_size: int, stride: int = PAPER_FUSION_STRIDE) -> int:
    """Side of the fused lesion map in cells for a square input of ``image_size`` px: ``image_size // stride``."""
    return int(image_size) // int(stride)


def fine_stride(lanet_fine: Mapping[str, Any] | None) -> int:
    """LA-Net-fine's stride from a profile's ``lanet_fine`` entry (default :data:`FINE_FUSION_STRIDE`)."""
    return int((lanet_fine or {}).get("fusion_stride", FINE_FUSION_STRIDE))
