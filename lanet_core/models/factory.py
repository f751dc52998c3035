"""Build the model a resolved config describes (LA-Net or any baseline)."""

from __future__ import annotations

import numbers
import os
from typing import Any, Mapping

import timm
import torch
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.registry import architecture


def weights_info(weights: str) -> tuple[dict, bool]:
    """(extra timm kwargs, BatchNorm folded?) for a weights spec; a converted TFLite file needs TF padding."""
    from lanet_core.models.backbones import resolve_weights
    from lanet_core.models.tflite_mobilenet import backbone_kwargs_for_weights, weights_metadata

    if weights in ("none", "imagenet") or str(weights).startswith("imagenet:"):
        return {}, False
    weights = resolve_weights(weights)
    meta = weights_metadata(weights)
    return backbone_kwargs_for_weights(weights), str(meta.get("bn_folded", "")).lower() == "true"


def build_model(cfg: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """The ``nn.Module`` of ``cfg["model"]`` for input size ``cfg["data"]["image_size"]``.

    ``seed`` (default ``cfg["train"]["seed"]``) seeds the random initialisation, so the same config
    always starts from the same weights.
    """
    m = cfg["model"]
    torch.manual_seed(cfg["train"]["seed"] if seed is None else seed)
    extra, bn_folded = weights_info(m["weights"])
    arch = architecture(m["arch"])
    options = {k: m[k] for k in arch.config_options}
    if extra:
        if arch.timm_kwargs_arg is None:
            raise ConfigError(f"model.arch={m['arch']} cannot take the weights file {m['weights']} (needs {extra})")
        options[arch.timm_kwargs_arg] = extra
    model = build_architecture(m["arch"], backbone=m["backbone"], weights=m["weights"],
                               image_size=cfg["data"]["image_size"], num_classes=2, **options)
    if m.get("head_init", "timm") == "torch":
        reset_head(model)
    rebuild = bool(m.get("bn_rebuild", False))
    if rebuild and not bn_folded:
        raise ConfigError(f"model.bn_rebuild = true needs BatchNorm-folded weights (model.weights = {m['weights']!r} is not)")
    freeze = (bn_folded and not rebuild) if m["freeze_bn"] == "auto" else bool(m["freeze_bn"])
    model.configure_batchnorm(frozen=freeze, rebuild_pending=rebuild)  # the trainer rebuilds before the first step
    return model


def reset_head(model: nn.Module) -> None:
    """``model.head_init: torch``: PyTorch's default init (U(+-1/sqrt(fan_in))) for a timm classifier's new head.

    timm initialises the new head of MobileNetV2/EfficientNet with U(+-1/sqrt(fan_out)), meant for 1000 classes:
    with 2 classes that is U(+-0.71), and the converted ImageNet MobileNetV2's pooled features give initial
    logits up to +-16 (measured at 224 px), so the first Adam steps at lr 1e-3 wreck the pretrained features.
    """
    from lanet_core.models.classifiers import TimmClassifier

    head = model.head if isinstance(model, TimmClassifier) else None
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"model.head_init = torch applies to classifier/vit heads; {type(model).__name__} has none")
    head.reset_parameters()


def build_architecture(
    name: str,
    *,
    backbone: str | None = None,
    weights: str | os.PathLike = "none",
    image_size: int,
    num_classes: int = 2,
    **options,
) -> nn.Module:
    """Build architecture ``name`` from its registry entry (:data:`~lanet_core.models.registry.ARCHITECTURES`) for
    ``image_size`` px square inputs: the one constructor path of every model, LA-Net and the baselines alike.

    Args:
        backbone: timm model name (``None``: the entry's ``default_backbone``; for segmenters the smp encoder).
        weights: the project's weights spec, applied to the backbone / encoder.
        num_classes: class outputs (passed only to architectures with a class head).
        options: the entry's ``options`` (e.g. ``drop_rate``, ``map_size``, LA-Net's ``use_cam`` ...).
    Raises:
        ConfigError: unknown architecture, backbone or option, or an image size the model cannot take.
    """
    arch = architecture(name)
    unknown = set(options) - set(arch.options)
    if unknown:
        raise ConfigError(f"model.arch {name!r} got unknown option(s) {sorted(unknown)}; it accepts {list(arch.options)}")
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size!r}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be positive, got {num_classes}")
    backbone = backbone or arch.default_backbone
    if not timm.is_model(backbone):
        raise ConfigError(f"model.backbone = {backbone!r}: unknown timm model for model.arch = {name!r} "
                          "(list them with timm.list_models())")
    kwargs = dict(options)
    if arch.takes_image_size:
        kwargs["image_size"] = int(image_size)
    if arch.class_head:
        kwargs["num_classes"] = num_classes
    return arch.build_fn()(backbone, weights, **kwargs)
