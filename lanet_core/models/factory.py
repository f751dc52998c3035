"""Build the model a resolved config describes (LA-Net or any baseline)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.registry import ARCHITECTURES


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
    if m["arch"] == "lanet":
        from lanet_core.models.lanet import LANet

        model: nn.Module = LANet(
            m["backbone"],
            m["weights"],
            num_classes=2,
            use_cam=m["use_cam"],
            use_sam=m["use_sam"],
            use_mam=m["use_mam"],
            sam=m["sam"],
            cam_reduction=m["cam_reduction"],
            fusion_stride=m["fusion_stride"],
            fusion_resize=m["fusion_resize"],
            init=m["init"],
            backbone_kwargs=extra,
        )
    else:
        from lanet_core.models.baselines import baseline_options, build_baseline

        accepted = baseline_options(m["arch"])
        options: dict[str, Any] = {}
        if "drop_rate" in accepted:
            options["drop_rate"] = m["drop_rate"]
        if extra:
            if "timm_kwargs" not in accepted:
                raise ConfigError(f"model.arch={m['arch']} cannot take the weights file {m['weights']} (needs {extra})")
            options["timm_kwargs"] = extra
        model = build_baseline(
            m["arch"],
            backbone=m["backbone"],
            weights=m["weights"],
            image_size=cfg["data"]["image_size"],
            num_classes=2,
            **options,
        )
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


# (classification head, lesion head) of each architecture (from the registry)
ARCH_HEADS: dict[str, tuple[bool, bool]] = {n: (a.class_head, a.lesion_head) for n, a in ARCHITECTURES.items()}
