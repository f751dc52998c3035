"""The local-weights path for machines without internet: a state-dict file in, the same tensors out."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
import torchvision

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import create_feature_extractor, create_model_with_weights


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A random torchvision-format resnet18 state dict (fc included), as torchvision's file would hold."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["bn1.running_mean"] = torch.randn(64)  # non-default statistics, to see them loaded
    return state


@pytest.fixture(params=[".pth", ".safetensors"])
def resnet18_file(request, resnet18_state, tmp_path) -> Path:
    path = tmp_path / f"resnet18-random{request.param}"
    if request.param == ".pth":
        torch.save(resnet18_state, path)
    else:
        safetensors.torch.save_file(resnet18_state, str(path))
    return path


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor], skip: str | None = None) -> int:
    """Every entry of ``model`` (but ``skip.*``) equals the file's; returns the number compared."""
    n = 0
    for key, value in model.state_dict().items():
        if skip and key.startswith(f"{skip}."):
            continue
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
        n += 1
    return n


def test_feature_extractor_from_local_file(resnet18_file, resnet18_state):
    fe = create_feature_extractor("resnet18", weights=resnet18_file)
    assert _assert_loaded(fe, resnet18_state) == len(resnet18_state) - 2  # all but fc.weight, fc.bias
    assert fe.feature_info.channels()[-4:] == [64, 128, 256, 512]


def test_classifier_with_new_head_from_local_file(resnet18_file, resnet18_state):
    model = create_model_with_weights("resnet18", resnet18_file, num_classes=2)
    assert tuple(model.fc.weight.shape) == (2, 512)
    assert _assert_loaded(model, resnet18_state, skip="fc") == len(resnet18_state) - 2


def test_full_classifier_from_local_file(resnet18_file, resnet18_state):
    model = create_model_with_weights("resnet18", resnet18_file)
    assert _assert_loaded(model, resnet18_state) == len(resnet18_state)


def test_missing_file_is_a_config_error(tmp_path):
    missing = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(ConfigError, match="resnet18-f37072fd.pth"):
        create_feature_extractor("resnet18", weights=missing)
    with pytest.raises(ConfigError, match="existing file"):
        create_model_with_weights("resnet18", missing, num_classes=2)


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory) -> Path:
    """A state dict of another architecture."""
    path = tmp_path_factory.mktemp("other") / "mobilenetv2_035.safetensors"
    safetensors.torch.save_file(timm.create_model("mobilenetv2_035").state_dict(), str(path))
    return path


@pytest.mark.parametrize(
    "build",
    [
        lambda p: create_feature_extractor("resnet18", weights=p),
        lambda p: create_model_with_weights("resnet18", p, num_classes=2),
        lambda p: create_model_with_weights("resnet18", p),
    ],
    ids=["features", "new-head", "full"],
)
def test_wrong_architecture_is_a_config_error(build, mobilenet_file):
    with pytest.raises(ConfigError, match=r"mobilenetv2_035\.safetensors.*resnet18"):
        build(mobilenet_file)


def test_truncated_file_is_a_config_error(resnet18_state, tmp_path):
    """timm loads feature extractors non-strictly: a file lacking layer4 must still be refused."""
    path = tmp_path / "no-layer4.safetensors"
    safetensors.torch.save_file({k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}, str(path))
    with pytest.raises(ConfigError, match="missing from the file.*layer4"):
        create_feature_extractor("resnet18", weights=path)


def test_extra_backbone_tensors_are_a_config_error(resnet18_state, tmp_path):
    """A deeper network's file (extra blocks) must not load silently into resnet18 with a new head."""
    state = dict(resnet18_state)
    state.update({k.replace("layer1.1.", "layer1.2."): v for k, v in resnet18_state.items() if k.startswith("layer1.1.")})
    path = tmp_path / "deeper.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="unknown to the model.*layer1.2"):
        create_model_with_weights("resnet18", path, num_classes=2)


def test_wrong_shapes_are_a_config_error(resnet18_state, tmp_path):
    state = dict(resnet18_state, **{"conv1.weight": torch.zeros(64, 1, 7, 7)})  # a 1-channel stem
    path = tmp_path / "gray.safetensors"
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(ConfigError, match="gray.safetensors"):
        create_model_with_weights("resnet18", path, num_classes=2, in_chans=3)


def test_imagenet_without_hub_names_the_local_file_option(monkeypatch, tmp_path):
    # huggingface_hub reads HF_HUB_OFFLINE at import: patch the module constant it consults at call time,
    # and point its cache at an empty folder so no earlier download can satisfy the request.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"model\.weights=/path/to/file"):
        create_model_with_weights("resnet18", "imagenet", num_classes=2)
    with pytest.raises(ConfigError, match="resnet18.tv_in1k"):
        create_feature_extractor("resnet18", weights="imagenet:tv_in1k")
    assert time.monotonic() - start < 60  # failed at once (retries against an unreachable hub take minutes); loose for loaded CI machines


def test_imagenet_tag_loads_through_timms_hub_code_from_a_staged_cache(monkeypatch, tmp_path):
    """``weights: imagenet:tv_in1k`` (the paper profile's spec) through timm's real pretrained loader and
    huggingface_hub: a file staged in the hub cache layout stands in for the download, offline. A user with
    internet runs exactly this code; only the file comes from the network instead."""
    cache = tmp_path / "hub"
    repo = cache / "models--timm--resnet18.tv_in1k"
    rev = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    torch.manual_seed(3)
    state = timm.create_model("resnet18", pretrained=False).state_dict()  # timm key names, as the hub file
    state["bn1.running_mean"] = torch.randn(64)
    safetensors.torch.save_file(state, str(snap / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    calls = []
    real = timm.models._builder.load_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs.get("pretrained_cfg") or (args[1] if len(args) > 1 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(timm.models._builder, "load_pretrained", spy)
    fex = create_feature_extractor("resnet18", weights="imagenet:tv_in1k")
    assert calls and calls[0]["hf_hub_id"].startswith("timm/resnet18.tv_in1k")
    got = {k.replace("body.", ""): v for k, v in fex.state_dict().items()}
    torch.testing.assert_close(got["bn1.running_mean"], state["bn1.running_mean"], rtol=0, atol=0)
    clf = create_model_with_weights("resnet18", "imagenet:tv_in1k", num_classes=2)  # new 2-class head
    torch.testing.assert_close(clf.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"], rtol=0, atol=0)
