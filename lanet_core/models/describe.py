"""``lanet describe``: the model a config builds, module by module, with parameter counts and map sizes."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from lanet_core.models.backbones import count_parameters
from lanet_core.models.factory import build_model


def _children_table(module: nn.Module, indent: str, depth: int) -> list[str]:
    lines = []
    for name, child in module.named_children():
        n = count_parameters(child)
        lines.append(f"{indent}{name:<28} {type(child).__name__:<28} {n:>12,}")
        if depth > 1:
            lines += _children_table(child, indent + "  ", depth - 1)
    return lines


@torch.no_grad()
def describe_model(cfg: Mapping[str, Any], depth: int = 2) -> str:
    """A text report: components with parameter counts, feature maps, output shapes for the configured input."""
    model = build_model(cfg)
    model.eval()
    size = cfg["data"]["image_size"]
    m = cfg["model"]
    lines = [
        f"model.arch={m['arch']}  backbone={m['backbone']}  weights={m['weights']}  input=3x{size}x{size}",
        f"BatchNorm of the feature extractor frozen: {model.bn_frozen}",
        "",
        f"{'component':<30} {'parameters':>14}",
    ]
    total = count_parameters(model)
    comps = model.component_modules()
    for name, comp in comps.items():
        lines.append(f"{name:<30} {count_parameters(comp):>14,}")
    lines.append(f"{'total':<30} {total:>14,}")
    fex = comps.get("feature extractor")
    if fex is not None and hasattr(fex, "feature_info"):
        info = fex.feature_info
        if isinstance(info, list):  # a full timm model: a list of dicts
            chans, reds = [d["num_chs"] for d in info], [d["reduction"] for d in info]
        else:  # a features_only model: a FeatureInfo
            chans, reds = info.channels(), info.reduction()
        lines += ["", "feature maps (channels @ stride -> size):"]
        for c, r in zip(chans, reds):
            lines.append(f"  {c:>5} @ /{r:<3} -> {size // r}x{size // r}")
    out = model(torch.zeros(1, 3, size, size))
    lines.append("")
    if out.logits is not None:
        lines.append(f"class logits: {tuple(out.logits.shape)}")
    if out.lesion_logits is not None:
        h, w = out.lesion_logits.shape[-2:]
        lines.append(f"lesion map: {tuple(out.lesion_logits.shape)}  (stride {size // h}; upsampled to {size}x{size} for IoU/Dice)")
    lines += ["", "modules:"] + _children_table(model, "  ", depth)
    return "\n".join(lines)
