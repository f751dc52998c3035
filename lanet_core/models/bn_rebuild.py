"""Trainable BatchNorm for BatchNorm-folded weights (the converted TFLite MobileNetV2).

The converted network has every BatchNorm folded into its convolution: each BN is an identity plus a bias
(weight 1, running mean 0, running variance 1 - eps). Training such BNs in train mode would normalise by
batch statistics the weights were never scaled for (the network diverged at lr 1e-3); freezing them keeps
the network normalisation-free.

:func:`rebuild_batchnorm` turns each folded BN into an ordinary one that computes *exactly the pretrained
function* on the calibration images: with ``mu, var`` the per-channel mean and (biased) variance of the
BN's input over those images (every pixel of every image), it sets ``running_mean = mu``,
``running_var = var``, ``weight = sqrt(var + eps)`` and ``bias = mu + b``, so that in eval mode
``weight * (x - mu) / sqrt(var + eps) + bias = x + b`` for any ``x``, and in train mode the same holds for a
batch with those statistics. Then the BNs train normally (``model.freeze_bn: false``).

``rescale_convs`` (default) also divides the weights of the convolution feeding each BN by its output's standard
deviation ``s = sqrt(var + eps)`` (and gives the BN the statistics of the rescaled output, ``mu / s`` and
``var / s^2``, with ``weight`` x ``s``): the function is again unchanged, but every convolution now has the scale
of one trained with BatchNorm (unit-variance outputs) instead of the folded BN's arbitrary per-channel scale.
This matters for Adam, whose steps have the same size for every weight: on the folded scales a step of 1e-3
(the paper's lr) is a large relative change of small depthwise kernels, and fine-tuning collapsed to a constant
prediction in the first epoch (measured: train CE 4.2, validation AUC 0.46-0.65 after three epochs at
224 px, with or without a 10x lower feature-extractor lr).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def conv_feeding(module: nn.Module) -> dict[int, nn.Conv2d]:
    """``{id(bn): conv}`` for each BatchNorm2d directly preceded (in module order) by the bias-free Conv2d whose
    output it normalises (timm's ConvBnAct / BatchNormAct2d blocks, MobileNetV2's conv_pw/bn1, conv_dw/bn2 ...)."""
    out, prev = {}, None
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            prev = m
        elif isinstance(m, nn.BatchNorm2d):
            if prev is not None and prev.out_channels == m.num_features and prev.bias is None:
                out[id(m)] = prev
            prev = None
    return out


@torch.no_grad()
def rebuild_batchnorm(module: nn.Module, batches: Iterable[torch.Tensor], *, forward: nn.Module | None = None,
                      rescale_convs: bool = True) -> int:
    """Recalibrate every BatchNorm2d of ``module`` from ``batches`` (inputs of ``forward``, default ``module``).

    All statistics are measured in one eval-mode pass (at this point every BN computes its folded function,
    so each BN sees exactly the inputs it saw when the network was folded). ``rescale_convs``: also bring the
    feeding convolutions to unit-variance outputs (module docstring). Returns the number of BNs rebuilt.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = conv_feeding(module) if rescale_convs else {}
    if not bns:
        return 0
    sums = {id(m): None for m in bns}
    counts = {id(m): 0 for m in bns}

    def hook(m: nn.Module, inputs: tuple) -> None:
        x = inputs[0].detach().to(torch.float64)
        s1 = x.sum(dim=(0, 2, 3))
        s2 = (x * x).sum(dim=(0, 2, 3))
        prev = sums[id(m)]
        sums[id(m)] = (s1, s2) if prev is None else (prev[0] + s1, prev[1] + s2)
        counts[id(m)] += x.shape[0] * x.shape[2] * x.shape[3]

    handles = [m.register_forward_pre_hook(hook) for m in bns]
    runner = forward or module
    was_training = runner.training
    runner.eval()
    try:
        for x in batches:
            runner(x)
    finally:
        for h in handles:
            h.remove()
        runner.train(was_training)
    for m in bns:
        if sums[id(m)] is None:
            continue  # not reached by the forward pass (unused stage)
        n = counts[id(m)]
        mu = sums[id(m)][0] / n
        var = (sums[id(m)][1] / n - mu * mu).clamp_min(0.0)
        # the BN's current eval function: y = w * (x - rm) / sqrt(rv + eps) + b  ->  keep it, renormalised
        scale_old = m.weight.double() / torch.sqrt(m.running_var.double() + m.eps)
        shift_old = m.bias.double() - scale_old * m.running_mean.double()
        conv = convs.get(id(m))
        if conv is not None:  # x' = x / s: the conv's output at unit variance; the BN then sees x'
            s = torch.sqrt(var + m.eps)
            conv.weight.copy_((conv.weight.double() / s.view(-1, 1, 1, 1)).to(conv.weight.dtype))
            mu, var, scale_old = mu / s, var / (s * s), scale_old * s
        std = torch.sqrt(var + m.eps)
        m.running_mean.copy_(mu.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        # y = scale_old * x + shift_old = (scale_old * std) * (x - mu) / std + (scale_old * mu + shift_old)
        m.weight.copy_((scale_old * std).to(m.weight.dtype))
        m.bias.copy_((scale_old * mu + shift_old).to(m.bias.dtype))
        m.num_batches_tracked.zero_()
    return len(bns)
