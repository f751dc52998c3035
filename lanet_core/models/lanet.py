"""LA-Net (Fan et al., Medical Image Analysis 90:102960, 2023): feature extractor + lesion-aware network +
mask-attention classifier.

Shapes for a ResNet18 feature extractor and a ``(B, 3, 256, 256)`` input:
``f1..f4`` = (B,64,64,64), (B,128,32,32), (B,256,16,16), (B,512,8,8); lesion map ``f_mask`` (B,1,8,8)
(input/32, the paper's setting; ``fusion_stride`` 16 or 8 gives a finer map); logits (B,2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lanet_core.models.geometry import PAPER_FUSION_STRIDE
from lanet_core.models.attention import CBAM
from lanet_core.models.backbones import create_feature_extractor
from lanet_core.models.output import ModelOutput
from lanet_core.models.base import LanetModel


def resize_map(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a ``(B, C, h, w)`` map to ``size``.

    ``bilinear``: bilinear with ``align_corners=True`` in both directions (the authors' fusion; point
    sampling when shrinking). ``area``: average pooling when shrinking, bilinear when enlarging.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    if mode == "area":
        if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
            return F.adaptive_avg_pool2d(x, size)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    raise ValueError(f"unknown resize mode {mode!r}")


class LesionAwareNet(nn.Module):
    """The lesion-aware network D: per stage CBAM -> 3x3 squeeze conv to one channel -> resize to the
    fusion grid -> concatenate -> 3x3 conv -> BatchNorm. Returns lesion *logits*; ``sigmoid`` gives the
    paper's ``f_mask = P_pixel``.

    Args:
        channels: channels of the n input feature maps (from ``feature_info.channels()``).
        reductions: their strides (from ``feature_info.reduction()``).
        fusion_stride: stride of the output map relative to the input (32 = the top feature map's grid).
    """

    def __init__(
        self,
        channels: list[int],
        reductions: list[int],
        *,
        reduction: int = 16,
        use_cam: bool = True,
        use_sam: bool = True,
        sam: str = "authors",
        fusion_stride: int = PAPER_FUSION_STRIDE,
        fusion_resize: str = "bilinear",
    ):
        super().__init__()
        if fusion_stride < min(reductions) or fusion_stride > max(reductions):
            raise ValueError(f"fusion_stride {fusion_stride} outside the feature strides {reductions}")
        self.reductions = list(reductions)
        self.fusion_stride = fusion_stride
        self.fusion_resize = fusion_resize
        self.cbam = nn.ModuleList(CBAM(c, reduction, use_cam, use_sam, sam) for c in channels)
        self.squeeze = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in channels)
        self.fuse = nn.Sequential(nn.Conv2d(len(channels), 1, 3, padding=1), nn.BatchNorm2d(1))

    def grid_size(self, features: list[torch.Tensor]) -> tuple[int, int]:
        """Size of the fused lesion map for these features (input size / fusion_stride)."""
        top = features[-1]
        scale = self.reductions[-1] // self.fusion_stride
        return top.shape[-2] * scale, top.shape[-1] * scale

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = self.grid_size(features)
        squeezed = [
            resize_map(sq(att(f)), size, self.fusion_resize)
            for f, att, sq in zip(features, self.cbam, self.squeeze)
        ]
        return self.fuse(torch.cat(squeezed, dim=1))


def init_weights(module: nn.Module, scheme: str = "kaiming") -> None:
    """LA-Net initialisation: Kaiming-normal (fan_in, ReLU gain; authors' code) or Xavier (paper text) on
    every conv / linear weight; BatchNorm weight 1, bias 0; biases keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def last_stage_module(feature_extractor: nn.Module) -> nn.Module:
    """The module producing a timm feature extractor's last feature map (the Grad-CAM target layer)."""
    name = feature_extractor.feature_info.module_name()[-1]
    for cand in (name, name.replace(".", "_")):
        try:
            return feature_extractor.get_submodule(cand)
        except AttributeError:
            continue
    raise AttributeError(f"cannot locate feature module {name!r} in {type(feature_extractor).__name__}")


class LANet(LanetModel):
    """The full framework: FEX (timm) + LA-Net + attention-based classifier (MAM + GAP + linear).

    ``forward(x: (B,3,S,S)) -> ModelOutput(logits (B,K), lesion_logits (B,1,S/stride,S/stride))``.
    With ``use_mam=False`` the classifier sees ``f_n`` alone; LA-Net still exists and is trained by the
    localisation loss, as in the authors' ablation.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str = "none",
        num_classes: int = 2,
        *,
        use_cam: bool = True,
        use_sam: bool = True,
        use_mam: bool = True,
        sam: str = "authors",
        cam_reduction: int = 16,
        fusion_stride: int = PAPER_FUSION_STRIDE,
        fusion_resize: str = "bilinear",
        init: str = "kaiming",
        backbone_kwargs: dict | None = None,
    ):
        super().__init__()
        self.feature_extractor = create_feature_extractor(backbone, weights, **(backbone_kwargs or {}))
        info = self.feature_extractor.feature_info
        self.lanet = LesionAwareNet(
            info.channels(),
            info.reduction(),
            reduction=cam_reduction,
            use_cam=use_cam,
            use_sam=use_sam,
            sam=sam,
            fusion_stride=fusion_stride,
            fusion_resize=fusion_resize,
        )
        init_weights(self.lanet, init)
        self.use_mam = use_mam
        self.head = nn.Linear(info.channels()[-1], num_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        return last_stage_module(self.feature_extractor)

    def component_modules(self) -> dict[str, nn.Module]:
        return {"feature extractor": self.feature_extractor, "LA-Net": self.lanet, "classifier head": self.head}

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = self.feature_extractor(x)
        lesion_logits = self.lanet(features)
        top = features[-1]
        if self.use_mam:
            f_mask = resize_map(torch.sigmoid(lesion_logits), tuple(top.shape[-2:]), "area")
            top = top + top * f_mask  # MAM: f_att = f_n + f_n * f_mask
        logits = self.head(top.mean(dim=(2, 3)))
        return ModelOutput(logits=logits, lesion_logits=lesion_logits)
