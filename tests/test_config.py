import re

import pytest

from lanet_core.config import DEFAULTS, identity, load_config, parse_override, resolve_config, with_overrides
from lanet_core.errors import ConfigError
from lanet_core.runs import config_hash


def test_defaults_resolve_to_the_authors_preset():
    cfg = resolve_config({})
    assert cfg["train"]["lr"] == 1e-4 and cfg["train"]["batch_size"] == 12
    assert cfg["loss"] == {"lam": 0.5, "alpha": 0.1, "tau": 0.8, "pseudo": "paper", "target_downsample": "area"}
    assert cfg["train"]["select_on"] == "val"


def test_paper_preset_and_override_order():
    cfg = resolve_config({"train": {"preset": "paper"}})
    assert (cfg["train"]["lr"], cfg["train"]["batch_size"]) == (1e-3, 8)
    cfg = resolve_config({"train": {"preset": "paper", "lr": 5e-4}}, ["train.batch_size=4"])
    assert (cfg["train"]["lr"], cfg["train"]["batch_size"]) == (5e-4, 4)


def test_arch_defaults():
    assert resolve_config({"model": {"arch": "classifier"}})["train"]["stage1_epochs"] == 0
    assert resolve_config({"model": {"arch": "unet"}})["data"]["train_images"] == "labelled"
    assert resolve_config({"model": {"arch": "vit"}})["model"]["backbone"].startswith("vit_")


def test_override_parsing():
    assert parse_override("train.lr=1e-4") == {"train": {"lr": 1e-4}}
    assert parse_override("model.use_cam=false") == {"model": {"use_cam": False}}
    assert parse_override("eval.sweep=[0.3, 0.5]") == {"eval": {"sweep": [0.3, 0.5]}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("train.lr")


@pytest.mark.parametrize(
    "user, message",
    [
        ({"model": {"archx": "lanet"}}, "unknown config key 'model.archx'"),
        ({"model": {"arch": "resnet"}}, "model.arch"),
        ({"data": {"image_size": 100}}, "data.image_size"),
        ({"loss": {"pseudo": "maybe"}}, "loss.pseudo"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number"),
    ],
)
def test_bad_configs_name_the_key(user, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(user)


def test_yaml_file_and_error_names_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  arch: lanet\n  use_sam: false\n")
    assert load_config(p)["model"]["use_sam"] is False
    p.write_text("model:\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)


def test_identity_and_hash():
    a = resolve_config({"name": "a"})
    b = resolve_config({"name": "b", "data": {"num_workers": 4}, "train": {"progress": False}})
    assert identity(a) == identity(b)
    assert config_hash(a, "x") == config_hash(b, "x")
    assert config_hash(a, "x") != config_hash(a, "y")  # the manifest's contents are part of the identity
    c = with_overrides(a, **{"train.seed": 1})
    assert config_hash(a, "x") != config_hash(c, "x")
    assert set(DEFAULTS) == set(a)


@pytest.mark.parametrize("override,message", [
    ('model.use_cam="false"', "model.use_cam = 'false' is str; expected true or false"),
    ("model.use_cam=Flase", "model.use_cam = 'Flase'"),
    ("model.use_cam=maybe", "expected true or false"),
    ("train.seed=1.5", "train.seed = 1.5 is float; expected an integer"),
    ("model.cam_reduction=abc", "model.cam_reduction = 'abc' is str; expected an integer"),
    ("data.image_size=100", "must be a multiple of 32"),
    ("train.amp=1", "train.amp = 1: expected auto, true or false"),
    ("model.fusion_stride=4", "model.fusion_stride = 4 is not one of [8, 16, 32]"),
    ("train.batch_size=0", "train.batch_size = 0 is out of range (>= 1)"),
])
def test_typed_config_names_key_value_and_what_is_allowed(override, message):
    from lanet_core.config import resolve_config
    from lanet_core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config({}, [override])


def test_unknown_backbone_names_the_key():
    from lanet_core.config import resolve_config
    from lanet_core.errors import ConfigError
    from lanet_core.models.factory import build_model

    for arch in ("lanet", "unet"):
        with pytest.raises(ConfigError, match="model.backbone = 'resnet_nope'"):
            build_model(resolve_config({"model": {"arch": arch, "backbone": "resnet_nope"}, "data": {"image_size": 64}}))


def test_resolve_with_sources_names_each_layer(tmp_path) -> None:
    """`lanet resolve`: every value with the layer it came from (issue 15)."""
    from lanet_core.config import format_sources, resolve_config, resolve_with_sources

    user = {"model": {"arch": "rmtl"}, "train": {"preset": "paper", "stage1_epochs": 7, "seed": 3}}
    base = {"data": {"image_size": 128}, "train": {"amp": False}}
    cfg, src = resolve_with_sources(user, ["train.lr=3e-4"], user_layers=[("profile cpu (base)", base), ("file x", user)])
    assert cfg == resolve_config({**user, "data": base["data"], "train": {**base["train"], **user["train"]}},
                                 ["train.lr=3e-4"])
    assert src["train.lr"] == "--set" and src["train.batch_size"] == "preset paper"
    assert src["data.image_size"] == "profile cpu (base)" and src["train.seed"] == "file x"
    assert src["data.train_images"] == "arch rmtl" and src["model.use_cam"] == "default"
    assert src["train.stage1_epochs"].startswith("rule") and cfg["train"]["stage1_epochs"] == 0
    text = format_sources(cfg, src)
    assert "train.lr = 0.0003" in text and "# --set" in text


def test_resolve_sources_stage1_rule_sees_set_overrides() -> None:
    from lanet_core.config import resolve_with_sources

    cfg, src = resolve_with_sources({"model": {"arch": "classifier"}}, ["train.stage1_epochs=5"])
    assert cfg["train"]["stage1_epochs"] == 0 and src["train.stage1_epochs"].startswith("rule")
