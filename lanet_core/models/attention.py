"""CBAM attention as used by LA-Net: channel attention (CAM) then spatial attention (SAM).

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018. LA-Net's released code replaces
CBAM's single 7x7 spatial convolution by three 3x3 convolutions (2->8->8->1, each with BatchNorm);
both variants are available (``sam="authors"`` default, ``sam="cbam"`` for the original).
"""

from __future__ import annotations

import torch
from torch import nn

# BatchNorm settings of the authors' spatial-attention stack.
SAM_BN = {"eps": 1e-5, "momentum": 0.01}


class ChannelAttention(nn.Module):
    """CAM: average- and max-pooled channel descriptors through one shared MLP, summed, sigmoid.

    ``(B, C, H, W) -> (B, C, H, W)``: ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        mx = self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]


class SpatialAttention(nn.Module):
    """SAM: channel-pooled ``[max_c(x), mean_c(x)]`` -> convolutions -> sigmoid -> ``x * map``.

    ``variant="authors"``: 3x3 convs 2->8 (BN, ReLU) -> 8->8 (BN, ReLU) -> 8->1 (BN), no biases.
    ``variant="cbam"``: one 7x7 conv 2->1 (no bias) + BN, as in Woo et al.
    """

    def __init__(self, variant: str = "authors"):
        super().__init__()
        if variant == "authors":
            self.body = nn.Sequential(
                nn.Conv2d(2, 8, 3, padding=1, bias=False),
                nn.BatchNorm2d(8, **SAM_BN),
                nn.ReLU(inplace=True),
                nn.Conv2d(8, 8, 3, padding=1, bias=False),
                nn.BatchNorm2d(8, **SAM_BN),
                nn.ReLU(inplace=True),
                nn.Conv2d(8, 1, 3, padding=1, bias=False),
                nn.BatchNorm2d(1, **SAM_BN),
            )
        elif variant == "cbam":
            self.body = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1))
        else:
            raise ValueError(f"unknown spatial-attention variant {variant!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.body(pooled))


class CBAM(nn.Module):
    """CAM followed by SAM; a disabled module is absent (not an identity with parameters)."""

    def __init__(self, channels: int, reduction: int = 16, use_cam: bool = True, use_sam: bool = True, sam: str = "authors"):
        super().__init__()
        self.cam = ChannelAttention(channels, reduction) if use_cam else None
        self.sam = SpatialAttention(sam) if use_sam else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cam is not None:
            x = self.cam(x)
        if self.sam is not None:
            x = self.sam(x)
        return x
