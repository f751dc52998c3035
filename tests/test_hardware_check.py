"""The results README's hardware accounting: study runs against the same configs trained again."""

import json
from types import SimpleNamespace

import pytest

from lanet_core.study.records import device_kind, device_name
from lanet_core.study.summary import hardware_check, hardware_check_summary


def _run(folder, name, device, metrics, gpu=None):
    d = folder / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test": metrics}))
    (d / "provenance.json").write_text(json.dumps({"device": device, "hardware": {"gpu": gpu},
                                                   "wall_seconds": {"stage1": 1800, "fit_call": 1e9}}))
    return d


def test_hardware_check_pairs_runs_by_name(tmp_path):
    out = tmp_path / "results"
    _run(out / "runs", "a-s0-111", "cpu", {"accuracy": 0.70, "auc": 0.80, "iou": None})
    _run(out / "runs", "b-s0-222", "cuda", {"accuracy": 0.60, "iou": 0.3}, gpu="NVIDIA H200")
    _run(out / "hardware_check" / "gpu_replicates" / "runs", "a-s0-111", "cuda", {"accuracy": 0.75, "auc": 0.80},
         gpu="NVIDIA H200")
    _run(out / "hardware_check" / "gpu_repeats" / "runs", "b-s0-222", "cuda", {"accuracy": 0.60, "iou": 0.25},
         gpu="NVIDIA H200")
    _run(out / "hardware_check" / "gpu_repeats" / "runs", "orphan-333", "cuda", {"accuracy": 0.1})  # no study run
    study = SimpleNamespace(profile=SimpleNamespace(output=out))
    check = hardware_check(study)
    assert sorted(set(check["run"])) == ["a-s0-111", "b-s0-222"]
    a = check[(check["run"] == "a-s0-111")].set_index("metric")
    assert list(a.index) == ["accuracy", "auc"]  # iou is missing on one side: no pair
    assert a.loc["accuracy", "difference"] == pytest.approx(0.05)
    assert a.loc["accuracy", "study_device"] == "cpu" and a.loc["accuracy", "check_device"] == "cuda: NVIDIA H200"
    summary = hardware_check_summary(check).set_index(["check", "metric"])
    assert summary.loc[("gpu_repeats", "accuracy"), "identical"] == 1
    assert summary.loc[("gpu_repeats", "iou"), "max_abs_difference"] == pytest.approx(0.05)
    assert summary.loc[("gpu_replicates", "auc"), "identical"] == 1
    assert hardware_check(SimpleNamespace(profile=SimpleNamespace(output=tmp_path / "none"))).empty


def test_device_name_and_kind():
    assert device_name({"device": "cpu"}) == "cpu" and device_name({}) == "?"
    assert device_name({}, default="cpu") == "cpu"
    assert device_name({"device": "cuda:0", "hardware": {"gpu": "NVIDIA H100"}}) == "cuda: NVIDIA H100"
    assert device_name({"device": "cuda:0"}) == "cuda: GPU"
    assert device_kind({"device": "cuda:0"}) == "gpu" and device_kind({"device": "cpu"}) == "cpu"
    assert device_kind({}) == ""
