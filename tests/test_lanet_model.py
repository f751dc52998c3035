import pytest
import torch

from lanet_core.config import resolve_config
from lanet_core.models.backbones import count_parameters
from lanet_core.models.factory import build_model
from lanet_core.models.lanet import LANet
from lanet_core.models.output import LogitsOnly


@torch.no_grad()
@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("size", [128, 256, 512])
def test_shapes(backbone, size):
    model = LANet(backbone).eval()
    out = model(torch.zeros(1, 3, size, size))
    assert out.logits.shape == (1, 2)
    assert out.lesion_logits.shape == (1, 1, size // 32, size // 32)
    assert out.lesion_prob.min() >= 0 and out.lesion_prob.max() <= 1


@torch.no_grad()
@pytest.mark.parametrize("backbone", ["efficientnet_b0", "mobilenetv2_100", "convnext_atto"])
def test_any_timm_cnn_channels_from_feature_info(backbone):
    model = LANet(backbone).eval()
    chans = model.feature_extractor.feature_info.channels()
    assert [c.mlp[0].in_features for c in (b.cam for b in model.lanet.cbam)] == chans
    assert model.head.in_features == chans[-1]
    assert model(torch.zeros(1, 3, 64, 64)).lesion_logits.shape == (1, 1, 2, 2)


def test_ablation_flags_remove_modules():
    full = LANet("resnet18")
    no_cam = LANet("resnet18", use_cam=False)
    no_sam = LANet("resnet18", use_sam=False)
    chans = full.feature_extractor.feature_info.channels()
    mlp = sum(c * (c // 16) + c // 16 + (c // 16) * c + c for c in chans)
    assert count_parameters(full) - count_parameters(no_cam) == mlp
    assert all(b.cam is None for b in no_cam.lanet.cbam)
    assert all(b.sam is None for b in no_sam.lanet.cbam)
    assert count_parameters(full) - count_parameters(no_sam) == 4 * count_parameters(full.lanet.cbam[0].sam)
    cbam7 = LANet("resnet18", sam="cbam")
    assert cbam7.lanet.cbam[0].sam.body[0].kernel_size == (7, 7)


def test_no_mam_cuts_the_mask_out_of_the_classifier():
    x = torch.randn(2, 3, 64, 64)
    for use_mam, expect_grad in ((True, True), (False, False)):
        model = LANet("resnet18", use_mam=use_mam).eval()
        model.zero_grad()
        model(x).logits.sum().backward()
        g = model.lanet.fuse[0].weight.grad
        assert (g is not None and g.abs().sum() > 0) == expect_grad


@torch.no_grad()
@pytest.mark.parametrize("stride, size", [(16, 8), (8, 16)])
def test_finer_fusion(stride, size):
    model = LANet("resnet18", fusion_stride=stride, fusion_resize="area").eval()
    out = model(torch.zeros(1, 3, 128, 128))
    assert out.lesion_logits.shape == (1, 1, size, size)


def test_factory_and_gradcam_wrapper():
    cfg = resolve_config({"model": {"use_sam": False}, "data": {"image_size": 64}})
    model = build_model(cfg)
    same = build_model(cfg)  # seeded from train.seed: the same initial weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    assert isinstance(model, LANet) and all(b.sam is None for b in model.lanet.cbam)
    assert isinstance(LogitsOnly(model)(torch.zeros(1, 3, 64, 64)), torch.Tensor)
    assert model.gradcam_layer is model.feature_extractor.layer4


def test_init_schemes_differ():
    torch.manual_seed(0)
    a = LANet("resnet18", init="kaiming")
    torch.manual_seed(0)
    b = LANet("resnet18", init="xavier")
    assert not torch.equal(a.lanet.squeeze[0].weight, b.lanet.squeeze[0].weight)
    assert torch.all(a.lanet.fuse[1].weight == 1)
