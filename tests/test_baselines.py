"""Baselines (timm classifiers, ViT, smp U-Net/DeepLabV3, RMTL, AGN): shapes, raw logits, parameter
split, weight loading, Grad-CAM hooks and a smoke optimisation. CPU, tiny inputs, random weights."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timm.layers import resample_abs_pos_embed

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import count_parameters
from lanet_core.models.baselines import BASELINE_ARCHS, baseline_options, build_baseline
from lanet_core.models.classifiers import vit_reshape_transform
from lanet_core.models.output import LogitsOnly
from lanet_core.models.rmtl import rmtl_upsample_sizes

TINY_VIT = "vit_tiny_patch16_224"  # same code path as the default ViT-S/16, 4x fewer parameters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is as fast and leaves the shared cores alone."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def backbone_for(arch: str) -> str:
    return TINY_VIT if arch == "vit" else "resnet18"


def build(arch: str, size: int = 64, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_baseline(arch, backbone=kw.pop("backbone", backbone_for(arch)), image_size=size, **kw)


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# (logits shape, lesion shape) as functions of batch B and side S
EXPECTED = {
    "classifier": (lambda b, s: (b, 2), None),
    "vit": (lambda b, s: (b, 2), None),
    "unet": (None, lambda b, s: (b, 1, s, s)),
    "deeplabv3": (None, lambda b, s: (b, 1, s, s)),
    "rmtl": (lambda b, s: (b, 2), lambda b, s: (b, 1, s, s)),
    "agn": (lambda b, s: (b, 2), lambda b, s: (b, 1, s // 8, s // 8)),
}


def test_every_arch_has_an_expectation():
    assert set(EXPECTED) == set(BASELINE_ARCHS)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_forward_shapes(arch, size):
    model = build(arch, size).eval()
    with torch.no_grad():
        out = model(images(2, size))
    want_logits, want_lesion = EXPECTED[arch]
    assert (out.logits is None) == (want_logits is None)
    assert (out.lesion_logits is None) == (want_lesion is None)
    if want_logits:
        assert tuple(out.logits.shape) == want_logits(2, size)
    if want_lesion:
        assert tuple(out.lesion_logits.shape) == want_lesion(2, size)
    for t in (out.logits, out.lesion_logits):
        assert t is None or torch.isfinite(t).all()


def test_default_vit_is_vit_small_with_token_grid_of_the_input():
    model = build_baseline("vit", image_size=64)
    assert model.trunk.pos_embed.shape == (1, 1 + 4 * 4, 384)  # ViT-S/16: 384 dims, 64/16 = 4
    assert tuple(model(images(1, 64)).logits.shape) == (1, 2)


# final affine layer (path in the model) that produces each output; shifting its bias by c must
# shift the output by exactly c, which no sigmoid/softmax after it would allow
FINAL_LAYERS = {
    "classifier": [("head", "logits")],
    "vit": [("head", "logits")],
    "unet": [("net.segmentation_head.0", "lesion_logits")],
    "deeplabv3": [("net.segmentation_head.0", "lesion_logits")],
    "rmtl": [("classifier", "logits"), ("mask_head.2.3", "lesion_logits")],
    "agn": [("classifier", "logits"), ("gates.0.psi", "lesion_logits")],
}


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_outputs_are_raw_logits(arch):
    model = build(arch).eval()
    x = images(2, 64)
    for layer, field in FINAL_LAYERS[arch]:
        with torch.no_grad():
            before = getattr(model(x), field)
            model.get_submodule(layer).bias.add_(-3.0)
            after = getattr(model(x), field)
        torch.testing.assert_close(after, before - 3.0, atol=1e-4, rtol=0)
        assert (after < 0).any() and not torch.equal(after, after.clamp(0, 1))


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_component_modules_partition_the_parameters(arch):
    model = build(arch)
    parts = model.component_modules()
    assert len(parts) >= 2
    ids = [id(p) for m in parts.values() for p in m.parameters()]
    assert len(ids) == len(set(ids)), "components share parameters"
    assert sum(count_parameters(m) for m in parts.values()) == count_parameters(model)
    assert set(ids) == {id(p) for p in model.parameters()}


def test_classifier_parameter_count_matches_timm():
    model = build("classifier")
    assert count_parameters(model) == count_parameters(timm.create_model("resnet18", num_classes=2)) == 11_177_538
    assert count_parameters(model.component_modules()["classifier head"]) == 512 * 2 + 2


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A random ResNet18 state dict (timm keys, fc included) with non-default BatchNorm statistics."""
    torch.manual_seed(123)
    net = timm.create_model("resnet18")
    for name, buf in net.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buf.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18_random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("arch", ["unet", "deeplabv3"])
def test_segmenter_encoder_gets_the_weights_file(arch, resnet18_file):
    source = torch.load(resnet18_file)
    model = build(arch, weights=str(resnet18_file))
    encoder = model.net.encoder.model.state_dict()
    assert set(encoder) == {k for k in source if not k.startswith("fc.")}
    for key, value in encoder.items():
        assert torch.equal(value, source[key]), key
    untouched = build(arch).net.encoder.model.state_dict()
    assert not torch.equal(untouched["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])


@pytest.mark.parametrize("arch", ["classifier", "rmtl", "agn"])
def test_trunks_get_the_weights_file(arch, resnet18_file):
    source = torch.load(resnet18_file)
    trunk = build(arch, weights=str(resnet18_file)).component_modules()["feature extractor"]
    weights = trunk.state_dict()
    assert torch.equal(weights["layer4.1.conv2.weight"], source["layer4.1.conv2.weight"])
    assert torch.equal(weights["layer4.1.bn2.running_var"], source["layer4.1.bn2.running_var"])


def test_vit_position_embeddings_are_resampled_from_a_224_file(tmp_path):
    torch.manual_seed(1)
    vit224 = timm.create_model(TINY_VIT)
    torch.nn.init.normal_(vit224.pos_embed)
    path = tmp_path / "vit224.pth"
    torch.save(vit224.state_dict(), path)

    model = build_baseline("vit", backbone=TINY_VIT, weights=str(path), image_size=128)
    pos = model.trunk.pos_embed
    assert pos.shape == (1, 1 + 8 * 8, 192)
    expected = resample_abs_pos_embed(vit224.pos_embed, new_size=(8, 8), num_prefix_tokens=1)
    torch.testing.assert_close(pos.detach(), expected)
    assert torch.equal(pos[:, 0], vit224.pos_embed[:, 0])  # class token position untouched
    assert torch.equal(model.trunk.blocks[3].mlp.fc1.weight, vit224.blocks[3].mlp.fc1.weight)


def test_vit_rejects_other_input_sizes_and_bad_image_sizes():
    model = build("vit", 64)
    with pytest.raises(ConfigError, match="built for 64x64"):
        model(images(1, 128))
    with pytest.raises(ConfigError, match="patch size"):
        build("vit", 100)


def test_vit_reshape_transform_drops_prefix_tokens():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # 1 class token + 2x2 grid
    grid = vit_reshape_transform(tokens, 2, 2)
    assert grid.shape == (2, 3, 2, 2)
    assert torch.equal(grid[1, :, 0, 1], tokens[1, 2])  # token 2 = row 0, column 1
    with pytest.raises(ConfigError):
        vit_reshape_transform(tokens, 3, 3)


@pytest.mark.parametrize("arch", ["classifier", "vit", "rmtl", "agn"])
def test_gradcam_runs_on_the_declared_layer(arch):
    model = build(arch)
    with GradCAM(
        LogitsOnly(model), [model.gradcam_layer], reshape_transform=model.gradcam_reshape_transform
    ) as cam:
        maps = cam(input_tensor=images(2, 64), targets=[ClassifierOutputTarget(1)] * 2)
    assert maps.shape == (2, 64, 64)
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("arch", ["unet", "deeplabv3"])
def test_segmenters_have_no_gradcam_layer(arch):
    assert build(arch).gradcam_layer is None


def test_rmtl_mask_sizes_follow_the_authors_at_256():
    assert rmtl_upsample_sizes(256) == (16, 112, 256)
    assert rmtl_upsample_sizes(64) == (4, 28, 64)
    assert rmtl_upsample_sizes(512, map_size=64) == (32, 224, 64)
    model = build("rmtl", 64, map_size=32)
    assert model(images(2, 64)).lesion_logits.shape == (2, 1, 32, 32)
    ups = [m for m in model.mask_head.modules() if isinstance(m, torch.nn.Upsample)]
    assert [u.size for u in ups] == [(4, 4), (28, 28), (32, 32)]
    assert all(u.align_corners and u.mode == "bilinear" for u in ups)


def test_agn_gates_scale_the_pooled_features():
    """A closed gate (alpha ~ 0) removes its map from the classifier input."""
    model = build("agn").eval()
    x = images(2, 64)
    with torch.no_grad():
        for gate in model.gates:
            gate.psi.bias.fill_(-1e4)
        out = model(x)
        f2, f3, f4 = model.features(x)
        pooled = torch.cat([torch.zeros(2, f2.shape[1] + f3.shape[1]), f4.mean(dim=(2, 3))], dim=1)
        torch.testing.assert_close(out.logits, model.classifier(pooled))
    assert (out.lesion_logits < -1e3).all()


@pytest.mark.parametrize("arch", BASELINE_ARCHS)
def test_a_few_adam_steps_reduce_the_loss(arch):
    model = build(arch, 32)
    x = images(4, 32, seed=1)
    labels = torch.tensor([0, 1, 0, 1])
    masks = torch.zeros(4, 1, 32, 32)
    masks[:, :, 8:20, 10:24] = 1.0

    def loss_fn() -> torch.Tensor:
        out = model(x)
        loss = torch.zeros(())
        if out.logits is not None:
            loss = loss + F.cross_entropy(out.logits, labels)
        if out.lesion_logits is not None:
            target = F.adaptive_avg_pool2d(masks, out.lesion_logits.shape[-2:])
            loss = loss + F.binary_cross_entropy_with_logits(out.lesion_logits, target)
        return loss

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = loss_fn().item()
    assert final < losses[0], (losses, final)


@pytest.mark.parametrize(
    ("arch", "kwargs", "match"),
    [
        ("resnet", {}, "unknown baseline arch"),
        ("classifier", {"map_size": 8}, "unknown option"),
        ("classifier", {"backbone": "no_such_net"}, "model.backbone = .no_such_net.: unknown timm model"),
        ("classifier", {"backbone": TINY_VIT}, "use arch 'vit'"),
        ("vit", {"backbone": "resnet18"}, "vision transformer"),
        ("unet", {"size": 80}, "multiple of 32"),
        ("classifier", {"weights": "/no/such/file.pth"}, "file.pth"),
        ("rmtl", {"map_size": 0}, "map_size"),
    ],
)
def test_bad_configs_raise_config_errors(arch, kwargs, match):
    kwargs = dict(kwargs)
    size = kwargs.pop("size", 64)
    with pytest.raises(ConfigError, match=match):
        build(arch, size, **kwargs)


def test_baseline_options_lists_the_extras():
    assert baseline_options("classifier") == ("drop_rate", "timm_kwargs")
    assert baseline_options("rmtl") == ("map_size", "timm_kwargs")
    assert baseline_options("agn") == ("inter_channels", "timm_kwargs")
    assert baseline_options("unet") == ()


def test_registry_heads_match_what_the_models_return():
    """The registry's heads (used by the trainer and evaluator) are what each built model really outputs."""
    from lanet_core.models.registry import ARCHITECTURES

    for arch in BASELINE_ARCHS:
        want_logits, want_lesion = EXPECTED[arch]
        assert ARCHITECTURES[arch].class_head == (want_logits is not None), arch
        assert ARCHITECTURES[arch].lesion_head == (want_lesion is not None), arch
    assert ARCHITECTURES["lanet"].stage1 and not any(ARCHITECTURES[a].stage1 for a in BASELINE_ARCHS)


def test_registry_derives_the_per_architecture_tables():
    from lanet_core.config import ARCH_DEFAULTS, resolve_config
    from lanet_core.models.baselines import DEFAULT_BACKBONES
    from lanet_core.models.registry import ARCHITECTURES
    from lanet_core.study.experiments import method_name

    assert set(ARCH_DEFAULTS) == set(ARCHITECTURES) == {"lanet", *BASELINE_ARCHS}
    for arch in BASELINE_ARCHS:  # the config default and the builder default are one fact
        assert resolve_config({"model": {"arch": arch}})["model"]["backbone"] == DEFAULT_BACKBONES[arch]
    assert resolve_config({"model": {"arch": "unet"}})["data"]["train_images"] == "labelled"
    assert resolve_config({"model": {"arch": "rmtl"}, "train": {"stage1_epochs": 5}})["train"]["stage1_epochs"] == 0
    assert [method_name(a, "resnet50") for a in ("lanet", "classifier", "rmtl", "agn")] == \
        ["R50+LA-Net", "R50", "R50+RMTL", "AGN"]



@pytest.mark.parametrize("arch", ["lanet", *BASELINE_ARCHS])
def test_registry_round_trip_builds_every_architecture(arch):
    """Issue 33: every architecture, LA-Net included, is built by the registry from its declared options; the heads
    the entry declares are the heads the model has, and build_model equals build_architecture on the same options."""
    import torch

    from lanet_core.config import resolve_config
    from lanet_core.models.factory import build_architecture, build_model
    from lanet_core.models.registry import ARCHITECTURES

    entry = ARCHITECTURES[arch]
    bb = {"vit": TINY_VIT}.get(arch, "resnet18")
    cfg = resolve_config({"model": {"arch": arch, "backbone": bb}, "data": {"image_size": 64}})
    model = build_model(cfg)
    out = model.eval()(torch.zeros(1, 3, 64, 64))
    assert (out.logits is not None, out.lesion_logits is not None) == (entry.class_head, entry.lesion_head)
    torch.manual_seed(cfg["train"]["seed"])
    again = build_architecture(arch, backbone=bb, image_size=64, **{k: cfg["model"][k] for k in entry.config_options})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(Exception, match="unknown option"):
        build_architecture(arch, backbone=bb, image_size=64, no_such_option=1)
