"""Plain classification baselines from timm: CNN classifiers (ResNet, EfficientNet, MobileNetV2, ...) and ViT.

Both are a timm model whose classifier was detached: ``trunk`` (everything up to the pooled feature
vector, including timm's dropout) and ``head`` (the final ``Linear``), so that parameter counts split
cleanly into "feature extractor" and "classifier head". See ``docs/baselines.md``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import create_model_with_weights
from lanet_core.models.output import ModelOutput
from lanet_core.models.registry import DEFAULT_VIT
from lanet_core.models.base import LanetModel



def stage_module(model: nn.Module, index: int = -1) -> nn.Module:
    """The submodule that produces feature stage ``index`` of a timm model (``-1``: the last, stride 32).

    Works for full timm models (``feature_info`` is a list of dicts) and ``features_only`` wrappers
    (a ``FeatureInfo``; ``FeatureListNet`` flattens ``"stages.3"`` to ``"stages_3"``). Its forward
    output is a tensor, so it is a valid Grad-CAM target layer.
    """
    info = getattr(model, "feature_info", None)
    if info is None:
        raise ConfigError(f"{type(model).__name__} has no timm feature_info; cannot locate its stages")
    names = info.module_name() if hasattr(info, "module_name") else [d["module"] for d in info]
    name = names[index]
    for candidate in (name, name.replace(".", "_")):
        try:
            return model.get_submodule(candidate)
        except AttributeError:
            continue
    raise ConfigError(f"{type(model).__name__}: feature stage module {name!r} not found")


def vit_reshape_transform(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Token activations ``(B, N, C)`` of a ViT block -> a feature map ``(B, C, height, width)`` for Grad-CAM.

    The leading ``N - height*width`` prefix tokens (class token, register tokens) are dropped.
    Use as ``GradCAM(..., reshape_transform=functools.partial(vit_reshape_transform, height=h, width=w))``;
    every ViT baseline carries that partial as ``model.gradcam_reshape_transform``.
    """
    if tensor.ndim != 3 or tensor.shape[1] < height * width:
        raise ConfigError(
            f"ViT activations of shape {tuple(tensor.shape)} do not hold a {height}x{width} token grid"
        )
    b, _, c = tensor.shape
    grid = tensor[:, tensor.shape[1] - height * width :, :]
    return grid.reshape(b, height, width, c).permute(0, 3, 1, 2)


class TimmClassifier(LanetModel):
    """A timm classifier returning :class:`ModelOutput` ``(logits=(B, K), lesion_logits=None)``.

    Attributes:
        trunk: the timm model with its classifier reset (outputs pooled features ``(B, F)``).
        head: the final layer ``F -> K`` (raw logits).
        gradcam_layer: the module Grad-CAM hooks (last CNN stage, or the last ViT block's ``norm1``).
        gradcam_reshape_transform: ``None`` for CNNs; for ViT, tokens -> ``(B, C, h, w)``.
        input_size: the only accepted input side in pixels (ViT), or ``None`` (any size, CNNs).
    """

    def __init__(
        self,
        trunk: nn.Module,
        head: nn.Module,
        gradcam_layer: nn.Module,
        *,
        input_size: int | None = None,
        gradcam_reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.gradcam_layer = gradcam_layer
        self.input_size = input_size
        self.gradcam_reshape_transform = gradcam_reshape_transform

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """``x``: ``(B, 3, S, S)`` -> logits ``(B, K)``."""
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ConfigError(
                f"this model was built for {self.input_size}x{self.input_size} px input, got "
                f"{tuple(x.shape[-2:])}; build it with image_size={x.shape[-1]}"
            )
        return ModelOutput(logits=self.head(self.trunk(x)))

    def component_modules(self) -> dict[str, nn.Module]:
        return {"feature extractor": self.trunk, "classifier head": self.head}


def _detach_head(net: nn.Module, backbone: str) -> nn.Module:
    """Take the classifier out of a timm model (it becomes a pooled-feature extractor); return it."""
    head = net.get_classifier()
    if not isinstance(head, nn.Module) or isinstance(head, nn.Identity):
        raise ConfigError(f"timm model {backbone!r} has no single classifier module (got {type(head).__name__})")
    net.reset_classifier(0)
    return head


def _timm_kwargs(num_classes: int, drop_rate: float | None) -> dict:
    kwargs: dict = {"num_classes": num_classes}
    if drop_rate is not None:
        kwargs["drop_rate"] = float(drop_rate)
    return kwargs


def build_classifier(
    backbone: str,
    weights: str | os.PathLike = "none",
    *,
    image_size: int,  # noqa: ARG001 - CNN classifiers pool globally and accept any input size
    num_classes: int = 2,
    drop_rate: float | None = None,
    timm_kwargs: dict | None = None,
) -> TimmClassifier:
    """A timm CNN classifier (resnet18/50, efficientnet_b0, mobilenetv2_100, ...) with a new ``num_classes`` head.

    ``timm_kwargs``: extra ``timm.create_model`` arguments (e.g. ``pad_type="same"`` for the converted
    TFLite MobileNetV2). ``drop_rate``: dropout before the final layer (``None``: timm's default for the model, 0 for
    ResNet/EfficientNet-B0 in timm 1.0.31; the authors' EfficientNet-B0 used 0.25).
    """
    net = create_model_with_weights(backbone, weights, **_timm_kwargs(num_classes, drop_rate), **(timm_kwargs or {}))
    if hasattr(net, "pos_embed"):
        raise ConfigError(f"{backbone!r} is a vision transformer: use arch 'vit' (it adapts the input size)")
    head = _detach_head(net, backbone)
    return TimmClassifier(net, head, stage_module(net))


def build_vit(
    backbone: str = DEFAULT_VIT,
    weights: str | os.PathLike = "none",
    *,
    image_size: int,
    num_classes: int = 2,
    drop_rate: float | None = None,
) -> TimmClassifier:
    """A timm ViT created for ``image_size`` px input (a multiple of the patch size).

    timm resamples the absolute position embeddings of pretrained weights (e.g. 224 px, 14x14 tokens)
    to the new token grid when it loads them, so 64/128/256/512 px inputs all start from the same
    pretrained ViT. Grad-CAM hooks the last block's ``norm1`` (the last block's output reaches the
    class token only through attention, its patch-token gradients are zero) with
    ``gradcam_reshape_transform``.
    """
    try:
        net = create_model_with_weights(backbone, weights, img_size=image_size, **_timm_kwargs(num_classes, drop_rate))
    except TypeError as exc:
        raise ConfigError(f"arch 'vit' needs a timm vision transformer; {backbone!r} does not take img_size") from exc
    except AssertionError as exc:
        raise ConfigError(f"{backbone!r} cannot take {image_size} px input: {exc}") from exc
    if not (hasattr(net, "pos_embed") and hasattr(net, "blocks") and hasattr(net, "patch_embed")):
        raise ConfigError(f"arch 'vit' needs a timm ViT (pos_embed, blocks, patch_embed); {backbone!r} is not one")
    grid = net.patch_embed.grid_size
    if grid[0] * net.patch_embed.patch_size[0] != image_size:
        raise ConfigError(
            f"image_size {image_size} is not a multiple of {backbone}'s patch size {net.patch_embed.patch_size[0]}"
        )
    head = _detach_head(net, backbone)
    reshape = functools.partial(vit_reshape_transform, height=grid[0], width=grid[1])
    return TimmClassifier(
        net, head, net.blocks[-1].norm1, input_size=image_size, gradcam_reshape_transform=reshape
    )
