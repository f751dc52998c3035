"""AGN: attention-gated classification network (Schlemper et al., MedIA 53:197-207, 2019; AG-Sononet).

Built on a timm CNN trunk with 4 stages (strides 4, 8, 16, 32 for a ResNet), of which stages 2-4 are used:
    * two grid attention gates on the stage-2 (stride 8) and stage-3 (stride 16) maps, gated by the
      stage-4 map g (stride 32):  q = psi(ReLU(W_x x + up(W_g g) + b_g)) + b_psi,  alpha = sigmoid(q),
      gated map = alpha * x  ("additive attention", sigmoid normalisation, 1x1 convolutions);
    * aggregation in the paper's "concatenation" mode: global-average-pool the two gated maps and the
      stage-4 map, concatenate, one ``Linear`` -> class logits;
    * localisation: ``lesion_logits`` = q of the stage-2 gate, ``(B, 1, S/8, S/8)``.
No code of the LA-Net authors exists for AGN; the design choices are listed in ``docs/baselines.md``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import create_feature_extractor
from lanet_core.models.classifiers import stage_module
from lanet_core.models.output import ModelOutput
from lanet_core.models.base import LanetModel

GATED_STAGES = 2  # the gates act on the two stages before the last one


class GridAttentionGate(nn.Module):
    """Additive grid attention gate: ``(x (B, Cx, h, w), g (B, Cg, h', w')) -> (alpha * x, q (B, 1, h, w))``.

    ``W_g g`` is computed at the gating resolution and bilinearly upsampled to ``(h, w)`` (the 1x1
    convolution commutes with the interpolation, so this equals ``W_g up(g)`` at lower cost).
    ``q`` is the pre-sigmoid attention logit map, ``alpha = sigmoid(q)``.
    """

    def __init__(self, in_channels: int, gating_channels: int, inter_channels: int):
        super().__init__()
        self.theta = nn.Conv2d(in_channels, inter_channels, kernel_size=1, bias=False)  # W_x
        self.phi = nn.Conv2d(gating_channels, inter_channels, kernel_size=1)  # W_g, b_g
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1)  # psi, b_psi
        for conv in (self.theta, self.phi, self.psi):
            nn.init.kaiming_normal_(conv.weight)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = F.interpolate(self.phi(g), size=x.shape[-2:], mode="bilinear", align_corners=False)
        q = self.psi(F.relu(self.theta(x) + gate))
        return torch.sigmoid(q) * x, q


class AGN(LanetModel):
    """Attention-gated CNN; ``forward`` -> logits ``(B, K)``, lesion_logits ``(B, 1, S/8, S/8)`` (ResNet trunk).

    ``inter_channels``: width of the gates' hidden layer; default the gating (stage-4) channels, as
    in AG-Sononet.
    """

    def __init__(
        self,
        backbone: str,
        weights: str | os.PathLike = "none",
        *,
        image_size: int,  # noqa: ARG001 - fully convolutional + global pooling: any input size
        num_classes: int = 2,
        inter_channels: int | None = None,
        timm_kwargs: dict | None = None,
    ):
        super().__init__()
        self.features = create_feature_extractor(backbone, weights, n_stages=GATED_STAGES + 1, **(timm_kwargs or {}))
        *gated, c4 = self.features.feature_info.channels()
        inter = c4 if inter_channels is None else inter_channels
        if inter < 1:
            raise ConfigError(f"AGN inter_channels must be positive, got {inter_channels}")
        self.gates = nn.ModuleList(GridAttentionGate(c, c4, inter) for c in gated)
        self.classifier = nn.Linear(sum(gated) + c4, num_classes)
        self.gradcam_layer = stage_module(self.features)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """``x``: ``(B, 3, S, S)``."""
        *maps, g = self.features(x)
        gated, attention_logits = zip(*(gate(f, g) for gate, f in zip(self.gates, maps)))
        pooled = [m.mean(dim=(2, 3)) for m in (*gated, g)]
        logits = self.classifier(torch.cat(pooled, dim=1))
        return ModelOutput(logits=logits, lesion_logits=attention_logits[0])

    def component_modules(self) -> dict[str, nn.Module]:
        return {"feature extractor": self.features, "attention gates": self.gates, "classifier head": self.classifier}
