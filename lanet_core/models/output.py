"""The typed output every lanet model returns (classifiers, segmenters and joint models alike)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelOutput:
    """Raw network outputs; no activation applied, no loss or metric inside the model.

    Attributes:
        logits: class logits ``(B, K)`` (``None`` for segmenters); class 0 = benign, 1 = malignant.
        lesion_logits: lesion-map logits ``(B, 1, h, w)`` (``None`` for plain classifiers); ``h, w`` is
            the model's native map size (input/32 for LA-Net, the input size for U-Net).
    """

    logits: torch.Tensor | None = None
    lesion_logits: torch.Tensor | None = None

    @property
    def lesion_prob(self) -> torch.Tensor | None:
        """Lesion probability map ``sigmoid(lesion_logits)`` (LA-Net's ``f_mask``)."""
        return None if self.lesion_logits is None else torch.sigmoid(self.lesion_logits)


class LogitsOnly(nn.Module):
    """Wrap a lanet model so that ``forward`` returns only the class logits (for Grad-CAM)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if out.logits is None:
            raise TypeError(f"{type(self.model).__name__} has no classification head")
        return out.logits
