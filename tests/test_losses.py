import math

import pytest
import torch

from lanet_core.models.output import ModelOutput
from lanet_core.training.losses import (
    downsample_target,
    hybrid_loss,
    localisation_loss,
    per_image_bce,
    pseudo_targets,
)


def bce(p, t):
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def logit(p):
    return math.log(p / (1 - p))


def test_area_vs_bilinear_downsampling():
    t = torch.zeros(1, 1, 4, 4)
    t[0, 0, 0, 0] = 1.0  # one lesion pixel in the top-left 2x2 cell
    area = downsample_target(t, (2, 2), "area")
    assert torch.allclose(area, torch.tensor([[[[0.25, 0.0], [0.0, 0.0]]]]))
    bil = downsample_target(t, (2, 2), "bilinear")  # align_corners=True samples the corner pixels
    assert torch.allclose(bil, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))


def test_floc_uses_labelled_images_only():
    logits = torch.full((2, 1, 2, 2), logit(0.8))
    target = torch.ones(2, 1, 2, 2)
    target[1] = 0.0
    out = ModelOutput(lesion_logits=logits)
    parts = localisation_loss(out, target, torch.tensor([True, False]))
    assert parts.total.item() == pytest.approx(bce(0.8, 1.0), rel=1e-5)
    none = localisation_loss(out, target, torch.tensor([False, False]))
    assert none.total.item() == 0.0 and none.n_labelled == 0


def test_pseudo_gate_paper_and_authors():
    lesion = torch.tensor([logit(0.6), logit(0.3), logit(0.85), logit(0.6)]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    cls = torch.tensor([[0.0, 3.0], [0.0, 0.5]])  # max softmax ~0.95 vs ~0.62
    t, use = pseudo_targets(lesion, cls, variant="paper", tau=0.8)
    assert use.tolist() == [True, False]
    assert t[0, 0].flatten().tolist() == [1.0, 0.0, 1.0, 1.0]
    assert not t.requires_grad
    t2, use2 = pseudo_targets(lesion, cls, variant="authors")
    assert use2.tolist() == [True, True]
    assert t2[0, 0].flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_hybrid_loss_hand_computed():
    # image 0 labelled (target 1 everywhere), image 1 unlabelled with a confident classifier
    lesion = torch.full((2, 1, 2, 2), logit(0.7), requires_grad=True)
    cls = torch.tensor([[0.0, 0.0], [0.0, 4.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    target = torch.zeros(2, 1, 2, 2)
    target[0] = 1.0
    has = torch.tensor([True, False])
    out = ModelOutput(logits=cls, lesion_logits=lesion)
    parts = hybrid_loss(out, labels, target, has, lam=0.5, alpha=0.1, tau=0.8, pseudo="paper")
    ce = (math.log(2) + -math.log(math.exp(4) / (1 + math.exp(4)))) / 2
    l_w = bce(0.7, 1.0)  # labelled image
    l_wo = bce(0.7, 1.0)  # pseudo target 1[0.7 > 0.5] = 1
    expected = 0.5 * ce + 0.5 * (l_w + 0.1 * l_wo)
    assert parts.total.item() == pytest.approx(expected, rel=1e-5)
    assert parts.n_pseudo == 1 and parts.n_labelled == 1
    parts.total.backward()
    assert lesion.grad is not None and cls.grad is not None


def test_hybrid_loss_authors_variant_single_mean():
    lesion = torch.full((2, 1, 1, 1), logit(0.9))
    cls = torch.zeros(2, 2)
    labels = torch.tensor([0, 1])
    target = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)
    has = torch.tensor([True, False])
    parts = hybrid_loss(ModelOutput(cls, lesion), labels, target, has, lam=0.5, alpha=0.1, pseudo="authors")
    loc = (bce(0.9, 1.0) + 0.1 * bce(0.9, 1.0)) / 2  # pseudo target 1[0.9 >= 0.8] = 1, one mean over 2 images
    assert parts.total.item() == pytest.approx(0.5 * math.log(2) + 0.5 * loc, rel=1e-5)


def test_hybrid_loss_single_task_paths():
    cls_only = hybrid_loss(ModelOutput(logits=torch.zeros(2, 2)), torch.tensor([0, 1]), torch.zeros(2, 1, 4, 4), torch.tensor([True, True]))
    assert cls_only.total.item() == pytest.approx(math.log(2), rel=1e-6)
    seg = hybrid_loss(ModelOutput(lesion_logits=torch.zeros(2, 1, 4, 4)), torch.tensor([0, 1]), torch.ones(2, 1, 4, 4), torch.tensor([True, True]))
    assert seg.total.item() == pytest.approx(math.log(2), rel=1e-6)


def test_pseudo_none_ignores_unlabelled():
    lesion = torch.zeros(2, 1, 2, 2)
    parts = hybrid_loss(ModelOutput(torch.zeros(2, 2), lesion), torch.tensor([0, 1]), torch.ones(2, 1, 2, 2),
                        torch.tensor([True, False]), pseudo="none")
    assert parts.n_pseudo == 0
    assert per_image_bce(lesion, torch.ones(2, 1, 2, 2))[0].item() == pytest.approx(math.log(2))
