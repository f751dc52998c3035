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
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def rebuild_batchnorm(module: nn.Module, batches: Iterable[torch.Tensor], *, forward: nn.Module | None = None) -> int:
    """Recalibrate every BatchNorm2d of ``module`` from ``batches`` (inputs of ``forward``, default ``module``).

    All statistics are measured in one eval-mode pass (at this point every BN computes its folded function,
    so each BN sees exactly the inputs it saw when the network was folded). Returns the number of BNs rebuilt.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
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
        std = torch.sqrt(var + m.eps)
        m.running_mean.copy_(mu.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        # y = scale_old * x + shift_old = (scale_old * std) * (x - mu) / std + (scale_old * mu + shift_old)
        m.weight.copy_((scale_old * std).to(m.weight.dtype))
        m.bias.copy_((scale_old * mu + shift_old).to(m.bias.dtype))
        m.num_batches_tracked.zero_()
    return len(bns)
