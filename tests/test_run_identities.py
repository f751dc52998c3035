"""Committed run records keep their identity: no code change may silently retrain a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lanet_core.config import identity, resolve_config
from lanet_core.io import file_sha256
from lanet_core.paths import project_root
from lanet_core.runs import config_hash
from lanet_core.study.experiments import EXPERIMENTS, PRETRAINED_REBUILT
from lanet_core.study.profiles import load_profile

RUNS = project_root() / "results" / "runs"
RUN_DIRS = sorted(p for p in RUNS.glob("*") if (p / "metrics.json").is_file())


def test_there_are_committed_runs() -> None:
    assert len(RUN_DIRS) >= 100


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=[p.name for p in RUN_DIRS])
def test_committed_record_hash_matches_its_directory(run_dir: Path) -> None:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    prov = json.loads((run_dir / "provenance.json").read_text())
    # re-resolving the stored config (today's defaults, aliases and late keys) must give the same identity
    resolved = resolve_config(cfg)
    h = config_hash(resolved, prov["manifest_sha256"])
    assert run_dir.name.endswith("-" + h), f"{run_dir.name}: config now hashes to {h}"


def test_cpu_profile_specs_find_their_committed_records() -> None:
    """Every run the cpu profile asks for that existed before is found (the profile's text changed, not its runs)."""
    prof = load_profile("cpu")
    committed = {p.name.rsplit("-", 1)[1] for p in RUN_DIRS}
    missing = []
    for exp in ("fully_labelled", "attention_ablation", "label_ratio", "input_size", "depth", "partial_labels",
                "sensitivity", "pretraining"):
        for spec in EXPERIMENTS[exp](prof):
            if "LA-Net-fine" in spec.method or str(spec.group.get("init")).startswith(PRETRAINED_REBUILT):  # new runs
                continue
            sha = file_sha256(project_root() / spec.config["data"]["manifest"])
            if config_hash(spec.config, sha) not in committed:
                missing.append(spec.label)
    assert not missing, f"profile runs without a committed record: {missing[:5]}"


def test_precision_auto_and_true_share_an_identity() -> None:
    a = resolve_config({"train": {"amp": "auto", "channels_last": "auto"}})
    b = resolve_config({"train": {"amp": True, "channels_last": True}})
    c = resolve_config({"train": {"amp": False}})
    assert identity(a) == identity(b)
    assert identity(a) != identity(c)


def test_pretrained_fine_tuning_runs(monkeypatch) -> None:
    """Issue 13: the converted weights fine-tuned with rebuilt BN at ImageNet resolution and the paper's lr."""
    import lanet_core.study.experiments as ex

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    prof = load_profile("cpu")
    ft = [s for s in ex.EXPERIMENTS["pretraining"](prof) if s.group["init"] == PRETRAINED_REBUILT]
    assert {s.method for s in ft} == {"MNV2", "MNV2+LA-Net", "MNV2+LA-Net-fine"}
    assert len(ft) == 9 and {s.seed for s in ft} == {0, 1, 2}
    variant = [s for s in ex.EXPERIMENTS["pretraining"](prof) if s.group["init"] == PRETRAINED_REBUILT + ", fex lr x0.1"]
    assert [s.method for s in variant] == ["MNV2", "MNV2+LA-Net", "MNV2+LA-Net-fine"] * 3
    assert [s.seed for s in variant] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(s.config["train"]["backbone_lr_scale"] == 0.1 and s.config["train"]["lr"] == 1e-3 for s in variant)
    for s in ft:
        c = s.config
        assert c["model"]["bn_rebuild"] is True and c["model"]["weights"].startswith("local:")
        assert c["train"]["lr"] == 1e-3 and c["data"]["image_size"] == 224 == s.group["image_size"]
        assert (c["train"]["stage1_epochs"] if s.method != "MNV2" else 4) == 4 and c["train"]["stage2_epochs"] == 12
        assert c["model"]["fusion_stride"] == (8 if s.method.endswith("-fine") else 32)
        assert c["model"]["head_init"] == ("torch" if s.method == "MNV2" else "timm")
    old = [s for s in ex.EXPERIMENTS["pretraining"](prof) if not s.group["init"].startswith(PRETRAINED_REBUILT)]
    assert all(s.config["train"]["lr"] == 1e-4 and not s.config["model"]["bn_rebuild"] for s in old)


def test_cross_validation_pretrained_runs(monkeypatch) -> None:
    """Issue 13: the ImageNet MobileNetV2 in the cross-validation is the fixed-split regime it names, fold by fold
    (only the manifest and the name differ); without the weights there are no such runs; an unknown regime errors."""
    import dataclasses

    import lanet_core.study.experiments as ex
    from lanet_core.errors import ConfigError

    prof = load_profile("cpu")
    monkeypatch.setattr(ex, "local_weights_available", lambda w: False)
    without = ex.EXPERIMENTS["cross_validation"](prof)
    assert not [s for s in without if s.method.endswith(ex.IMAGENET)]
    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    specs = ex.EXPERIMENTS["cross_validation"](prof)
    assert {s.config["name"] for s in without} <= {s.config["name"] for s in specs}  # the scratch runs unchanged
    pt = [s for s in specs if s.method.endswith(ex.IMAGENET)]
    assert sorted({s.method for s in pt}) == ["MNV2 (ImageNet)", "MNV2+LA-Net (ImageNet)",
                                              "MNV2+LA-Net-fine (ImageNet)"]
    seeds = prof.cross_validation["seeds"]  # issue 27: repeated CV, every fold at every seed
    assert sorted(s.group["fold"] for s in pt) == sorted(list(range(1, 6)) * 3 * len(seeds))
    assert sorted({s.seed for s in pt}) == sorted(seeds)
    fixed = {(s.method, s.seed): s.config for s in ex.EXPERIMENTS["pretraining"](prof)
             if s.group["init"] == PRETRAINED_REBUILT + ", fex lr x0.1"}
    for s in pt:
        ref = fixed[(s.method[: -len(ex.IMAGENET)], s.seed)]
        strip = lambda c: {**c, "name": None, "data": {**c["data"], "manifest": None}}  # noqa: E731
        assert strip(s.config) == strip(ref), s.label
        assert s.config["data"]["manifest"].endswith(f"busi_cv5_fold{s.group['fold']}.csv")
    names = [s.config["name"] for s in specs]
    assert len(set(names)) == len(names)
    from types import SimpleNamespace

    from lanet_core.study.claims import claim_names

    filled = claim_names(SimpleNamespace(profile=prof))  # the claims' arms are these runs' method names
    assert {filled["pt_vanilla"], filled["pt_lanet"], filled["pt_lanet_fine"]} == {s.method for s in pt}
    bad = dataclasses.replace(prof, cross_validation={**prof.cross_validation, "pretrained": {"regime": "nope"}})
    with pytest.raises(ConfigError, match="nope"):
        ex.EXPERIMENTS["cross_validation"](bad)


@pytest.mark.parametrize("profile", ["cpu", "paper", "smoke"])
def test_table_columns_agree_with_the_run_configs(profile) -> None:
    """A spec's table columns (image size, ratio, backbone) are the values its config really trains with."""
    prof = load_profile(profile)
    for exp, build in EXPERIMENTS.items():
        for spec in build(prof):
            if "image_size" in spec.group:
                assert spec.group["image_size"] == spec.config["data"]["image_size"], spec.label
            if "backbone" in spec.group:
                from lanet_core.study.experiments import short

                assert spec.group["backbone"] == short(spec.config["model"]["backbone"]), spec.label


def test_repeated_cv_adds_seeds_and_keeps_seed_0() -> None:
    """Issue 27: seeds 1-2 on every fold for the headline methods, U-Net at seed 0 only; seed 0's runs are the
    committed ones (same identities)."""
    import lanet_core.study.experiments as ex

    prof = load_profile("cpu")
    specs = ex.EXPERIMENTS["cross_validation"](prof)
    unet = [s for s in specs if s.method == "U-Net"]
    assert unet and {s.seed for s in unet} == {0}
    r18 = [s for s in specs if s.method == "R18+LA-Net"]
    assert sorted((s.seed, s.group["fold"]) for s in r18) == [(k, f) for k in (0, 1, 2) for f in range(1, 6)]
    committed = {p.name.rsplit("-", 1)[1] for p in RUN_DIRS}
    seed0 = [s for s in specs if s.seed == 0 and not s.method.endswith(ex.IMAGENET)]
    for s in seed0:
        sha = file_sha256(project_root() / s.config["data"]["manifest"])
        assert config_hash(s.config, sha) in committed, s.label
