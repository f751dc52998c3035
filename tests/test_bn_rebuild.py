"""Trainable BatchNorm for BatchNorm-folded weights (issue 13): identity at init, statistics move in training,
the frozen mode stays available, per-group learning rates."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from lanet_core.models.backbones import freeze_batchnorm
from lanet_core.models.bn_rebuild import rebuild_batchnorm
from lanet_core.models.tflite_mobilenet import folded_batchnorm_state


def _folded_mobilenet() -> nn.Module:
    """A MobileNetV2 feature extractor whose every BN is 'folded' (identity + a bias), as the converted TFLite."""
    torch.manual_seed(0)
    m = timm.create_model("mobilenetv2_100", pretrained=False, features_only=True)
    for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
        state = folded_batchnorm_state(torch.randn(bn.num_features).numpy() * 0.1, bn.eps)
        bn.load_state_dict(state)
    return m.eval()


def _images(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_rebuilt_network_computes_the_folded_function() -> None:
    folded = _folded_mobilenet()
    rebuilt = copy.deepcopy(folded)
    x = _images()
    n = rebuild_batchnorm(rebuilt, [x[:4], x[4:]])
    assert n == sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        a, b = folded(x), rebuilt.eval()(x)
        other = _images(4, seed=7)  # eval mode: identical on any input, not just the calibration images
        c, d = folded(other), rebuilt(other)
    for fa, fb in zip(a + c, b + d):
        assert torch.allclose(fa, fb, rtol=1e-4, atol=1e-4)
    bn = next(m for m in rebuilt.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.allclose(bn.running_var, torch.full_like(bn.running_var, 1 - bn.eps))  # real statistics now


def test_train_mode_on_the_calibration_batch_matches_and_updates_statistics() -> None:
    folded = _folded_mobilenet()
    rebuilt = copy.deepcopy(folded)
    x = _images(16)
    rebuild_batchnorm(rebuilt, [x])
    first = next(m for m in rebuilt.modules() if isinstance(m, nn.BatchNorm2d))
    before = first.running_mean.clone()
    rebuilt.train()
    with torch.no_grad():
        out = rebuilt(x)[0]  # the first stage: batch statistics = the calibration statistics there
        ref = folded(x)[0]
    assert torch.allclose(out, ref, rtol=1e-3, atol=1e-3)
    rebuilt(x * 1.5 + 0.2)  # another batch in train mode moves the running statistics
    assert not torch.allclose(first.running_mean, before)


def test_frozen_mode_still_freezes() -> None:
    m = _folded_mobilenet()
    freeze_batchnorm(m)
    m.train()
    bn = next(x for x in m.modules() if isinstance(x, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    m(_images(4))
    assert not bn.training and torch.equal(bn.running_mean, before)


def test_bn_rebuild_needs_folded_weights_and_backbone_lr_groups() -> None:
    from lanet_core.config import resolve_config
    from lanet_core.errors import ConfigError
    from lanet_core.models.factory import build_model
    from lanet_core.training.loop import build_optimizer

    with pytest.raises(ConfigError, match="bn_rebuild = true needs BatchNorm-folded weights"):
        build_model(resolve_config({"model": {"backbone": "test_resnet", "bn_rebuild": True}, "data": {"image_size": 64}}))
    cfg = resolve_config({"model": {"backbone": "test_resnet"}, "data": {"image_size": 64},
                          "train": {"lr": 1e-3, "backbone_lr_scale": 0.1}})
    opt = build_optimizer(cfg, build_model(cfg))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-3])
    assert len(opt.param_groups[0]["params"]) > 0 and len(opt.param_groups[1]["params"]) > 0
    for arch in ("classifier", "rmtl", "agn", "unet"):  # every model's feature extractor, not only LA-Net's
        c = resolve_config({"model": {"arch": arch, "backbone": "test_resnet"}, "data": {"image_size": 64},
                            "train": {"lr": 1e-3, "backbone_lr_scale": 0.1}})
        model = build_model(c)
        opt = build_optimizer(c, model)
        fex = model.component_modules()["feature extractor"]
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-3]), arch
        assert sum(p.numel() for p in opt.param_groups[0]["params"]) == sum(p.numel() for p in fex.parameters())


def test_rebuild_brings_folded_convolutions_to_unit_variance_outputs() -> None:
    """Same function, standard parameterisation: each conv feeding a BN outputs unit variance on the calibration
    images (as in a network trained with BN); without ``rescale_convs`` the conv weights are untouched."""
    from lanet_core.models.bn_rebuild import conv_feeding

    folded = _folded_mobilenet()
    x = _images()
    plain = copy.deepcopy(folded)
    rebuild_batchnorm(plain, [x], rescale_convs=False)
    for a, b in zip(folded.parameters(), plain.parameters()):
        if a.dim() == 4:
            assert torch.equal(a, b)
    rebuilt = copy.deepcopy(folded)
    rebuild_batchnorm(rebuilt, [x])
    pairs = conv_feeding(rebuilt)
    assert len(pairs) == sum(isinstance(m, nn.BatchNorm2d) for m in rebuilt.modules())
    seen = []
    hooks = [conv.register_forward_hook(lambda m, i, o: seen.append(o.double().var(dim=(0, 2, 3), unbiased=False)))
             for conv in pairs.values()]
    with torch.no_grad():
        out_a, out_b = folded(x), rebuilt.eval()(x)
    for h in hooks:
        h.remove()
    v = torch.cat(seen)  # var / (var + eps) per channel: 1 except for (near-)dead channels
    assert v.max() <= 1 + 1e-3 and (v > 0.99).double().mean() > 0.9
    for fa, fb in zip(out_a, out_b):
        assert torch.allclose(fa, fb, rtol=1e-4, atol=1e-4)


def test_head_init_torch_replaces_timms_thousand_class_init() -> None:
    """timm's MobileNetV2 head init is U(+-1/sqrt(classes)) (+-0.71 for 2 classes); head_init=torch is fan-in based."""
    from lanet_core.config import resolve_config
    from lanet_core.errors import ConfigError
    from lanet_core.models.factory import build_model

    def head_max(init: str) -> float:
        cfg = resolve_config({"model": {"arch": "classifier", "backbone": "mobilenetv2_100", "head_init": init}})
        return float(build_model(cfg).head.weight.detach().abs().max())

    assert head_max("timm") > 0.5
    assert head_max("torch") <= 1 / 1280 ** 0.5 + 1e-6
    with pytest.raises(ConfigError, match="classifier/vit heads"):
        build_model(resolve_config({"model": {"arch": "lanet", "head_init": "torch"}}))
