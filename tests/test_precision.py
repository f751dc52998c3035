"""Precision by capability: bf16 autocast only where the CPU (or GPU) runs bf16 natively."""

from __future__ import annotations

import pytest
import torch

from lanet_core import precision
from lanet_core.config import resolve_config
from lanet_core.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.parametrize("avx512_bf16,amx,expected", [(False, False, False), (True, False, True), (False, True, True)])
def test_auto_follows_the_cpu_capability(monkeypatch, avx512_bf16, amx, expected) -> None:
    monkeypatch.setattr(precision, "cpu_capability", lambda: {"isa": "X", "avx512_bf16": avx512_bf16, "amx": amx})
    assert precision.resolve_amp("auto", CPU) is expected
    assert precision.resolve_channels_last("auto", CPU, expected) is expected


@pytest.mark.parametrize("native", [False, True])
def test_explicit_values_force(monkeypatch, native) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert precision.resolve_amp(True, CPU) is True
    assert precision.resolve_amp(False, CPU) is False
    assert precision.resolve_channels_last(True, CPU, False) is True
    assert precision.resolve_channels_last(False, CPU, True) is False


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="train.amp"):
        precision.resolve_amp("maybe", CPU)
    with pytest.raises(ConfigError, match="train.amp"):
        resolve_config({"train": {"amp": "maybe"}})


def test_capability_reports_real_fields() -> None:
    cap = precision.cpu_capability()
    assert set(cap) == {"isa", "avx512_bf16", "amx"}
    assert isinstance(cap["avx512_bf16"], bool)


def test_trainer_uses_and_provenance_records_the_resolved_precision(monkeypatch, tmp_path) -> None:
    from lanet_core.runs import train_or_load

    monkeypatch.setattr(precision, "cpu_capability", lambda: {"isa": "AVX2", "avx512_bf16": False, "amx": False})
    cfg = resolve_config({
        "data": {"manifest": "phantom:n=24,size=64,seed=0", "image_size": 64, "augment": "none"},
        "model": {"backbone": "test_resnet"},
        "train": {"stage1_epochs": 1, "stage2_epochs": 1, "batch_size": 8, "progress": False},
    })
    res = train_or_load(cfg, runs_root=tmp_path)
    import json

    prov = json.loads((res.run_dir / "provenance.json").read_text())
    assert prov["amp"] is False and prov["precision"] == "fp32" and prov["channels_last"] is False
    assert prov["cpu_capability"]["isa"] == "AVX2"
