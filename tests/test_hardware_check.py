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


def test_unfinished_experiments_counts_unique_runs_and_complete_folds(tmp_path, monkeypatch):
    """The results README says which experiments still miss runs and which folds are complete (issue 28)."""
    import lanet_core.study.experiments as ex
    import lanet_core.study.records as rec
    from lanet_core.study.summary import _unfinished_md, unfinished_experiments

    def spec(name, **group):
        return SimpleNamespace(name=name, group=group)

    plan = {
        "done_exp": [spec("a")],
        "cv_exp": [spec("f1-x", boxed=20, fold=1), spec("f1-shared", boxed=20, fold=1),
                   spec("f2-x", boxed=20, fold=2), spec("f1-y", boxed=5, fold=1), spec("f1-shared", boxed=5, fold=1)],
        "plain_exp": [spec("p"), spec("q")],
    }
    monkeypatch.setattr(ex, "EXPERIMENTS", {k: None for k in plan})
    monkeypatch.setattr(ex, "experiment_runs", lambda exp, profile: plan[exp])
    monkeypatch.setattr(rec, "run_dir_of", lambda s, profile: tmp_path / s.name)
    for name in ("a", "f1-x", "f1-shared", "p"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text("{}")
    todo = unfinished_experiments(SimpleNamespace(profile=None)).set_index("experiment")
    assert list(todo.index) == ["cv_exp", "plain_exp"]  # a finished experiment is not listed
    assert (todo.loc["cv_exp", "finished"], todo.loc["cv_exp", "planned"]) == (2, 4)  # the shared run counts once
    assert todo.loc["cv_exp", "complete folds"] == "1 (20 % boxed)"  # fold 2 and the 5 % fold 1 miss a run
    assert todo.loc["plain_exp", "complete folds"] == ""
    md = _unfinished_md(todo.reset_index(), "cpu")[0]
    assert md.startswith("Still to train: cv_exp 2 of 4 runs (complete folds: 1 (20 % boxed)); plain_exp 1 of 2 runs.")
    assert "--profile cpu --plan" in md
    assert _unfinished_md(todo.iloc[:0].reset_index(), "cpu") == []
