"""Segmentation baselines from segmentation-models-pytorch: U-Net and DeepLabV3 on timm encoders.

The smp encoder is smp's timm-universal encoder (``encoder_name="tu-<backbone>"``), whose
``encoder.model`` is a timm ``features_only`` model with timm's key names. Pretrained weights never
come from smp's hub: the model is built with ``encoder_weights=None`` and the state dict of
``create_model_with_weights(backbone, weights, features_only=True)`` (the project's one weights path)
is copied in strictly. Output: ``ModelOutput(logits=None, lesion_logits=(B, 1, S, S))``, raw logits
(``activation=None``; the authors' sigmoid-in-forward + BCE-with-logits double sigmoid is not reproduced).
"""

from __future__ import annotations

import functools

import os

import segmentation_models_pytorch as smp
import torch
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import create_model_with_weights
from lanet_core.models.output import ModelOutput
from lanet_core.models.base import LanetModel

_RANDOM_INIT = ("none", "", "random")  # weights specs meaning "random init" (backbones._weights_kwargs)
_SMP_ARCHS = {"unet": smp.Unet, "deeplabv3": smp.DeepLabV3}


class SmpSegmenter(LanetModel):
    """An smp model returning ``ModelOutput(lesion_logits=(B, 1, S, S))``; no classifier, no Grad-CAM layer."""

    gradcam_layer: nn.Module | None = None

    def __init__(self, net: smp.base.SegmentationModel):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """``x``: ``(B, 3, S, S)`` with ``S`` a multiple of the encoder's output stride."""
        stride = self.net.encoder.output_stride
        if x.shape[-1] % stride or x.shape[-2] % stride:
            raise ConfigError(f"segmenter input {tuple(x.shape[-2:])} px is not a multiple of {stride}")
        return ModelOutput(lesion_logits=self.net(x))

    def component_modules(self) -> dict[str, nn.Module]:
        return {
            "feature extractor": self.net.encoder,  # the (pretrained) smp encoder
            "decoder": self.net.decoder,
            "segmentation head": self.net.segmentation_head,
        }


def copy_encoder_weights(net: smp.base.SegmentationModel, backbone: str, weights: str | os.PathLike) -> None:
    """Load ``weights`` (project weights spec) into the timm-universal encoder of ``net``, strictly."""
    encoder = net.encoder.model
    source = create_model_with_weights(
        backbone, weights, features_only=True, out_indices=tuple(encoder.feature_info.out_indices)
    )
    try:
        encoder.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights {weights} for {backbone} do not fit the smp encoder: {exc}") from exc


def build_segmenter(
    arch: str,
    backbone: str,
    weights: str | os.PathLike = "none",
    *,
    image_size: int,
) -> SmpSegmenter:
    """smp ``Unet`` / ``DeepLabV3`` (output stride 8, output upsampled to the input) with ``classes=1``.

    ``image_size`` must be a multiple of the encoder's output stride (32 for U-Net).
    """
    if arch not in _SMP_ARCHS:
        raise ConfigError(f"unknown segmenter {arch!r}; expected one of {sorted(_SMP_ARCHS)}")
    net = _SMP_ARCHS[arch](encoder_name=f"tu-{backbone}", encoder_weights=None, classes=1, activation=None)
    stride = net.encoder.output_stride
    if image_size % stride:
        raise ConfigError(f"{arch} with {backbone}: image_size {image_size} is not a multiple of {stride}")
    if weights is not None and str(weights) not in _RANDOM_INIT:
        copy_encoder_weights(net, backbone, weights)
    return SmpSegmenter(net)


build_unet = functools.partial(build_segmenter, "unet")  # registry builders (lanet_core.models.registry)
build_deeplabv3 = functools.partial(build_segmenter, "deeplabv3")
