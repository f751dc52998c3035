"""Reliability (issue 16): run claims under concurrency, no half-made run folders, --force keeps the old
record until the new one is complete."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lanet_core.config import resolve_config
from lanet_core.runs import RunBusy, run_claim, train_or_load

CFG = {
    "data": {"manifest": "phantom:n=24,size=64,seed=11", "image_size": 64, "augment": "none"},
    "model": {"backbone": "test_resnet"},
    "train": {"stage1_epochs": 1, "stage2_epochs": 2, "batch_size": 8, "progress": False, "amp": False},
}


def test_two_processes_train_one_run_once(tmp_path) -> None:
    script = textwrap.dedent(f"""
        import json, sys, torch
        torch.set_num_threads(1)
        from lanet_core.config import resolve_config
        from lanet_core.runs import train_or_load
        r = train_or_load(resolve_config(json.loads(sys.argv[1])), runs_root=sys.argv[2])
        print("RESULT", r.cached, r.run_dir.name)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, json.dumps(CFG), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [next(line for line in o[0].splitlines() if line.startswith("RESULT")) for o in outs]
    assert len({r.split()[2] for r in results}) == 1
    # exactly one trained it; the other waited for the claim and got the finished record
    assert sorted(r.split()[1] for r in results) == ["False", "True"]
    assert any("waiting for it" in o[0] for o in outs)
    run_dir = tmp_path / results[0].split()[2]
    assert len((run_dir / "history.csv").read_text().strip().splitlines()) == 1 + 3  # header + 3 epochs, once


def test_a_held_claim_is_reported(tmp_path) -> None:
    with run_claim(tmp_path / "r"):
        script = ("import sys\nfrom lanet_core.runs import run_claim, RunBusy\ntry:\n"
                  "    with run_claim(sys.argv[1], wait=False): print('GOT')\nexcept RunBusy as e: print('BUSY', e)")
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r")], capture_output=True, text=True).stdout
    assert out.startswith("BUSY") and "pid" in out
    with run_claim(tmp_path / "r", wait=False):  # released: free again
        pass


def test_failed_run_leaves_no_folder(tmp_path) -> None:
    bad = resolve_config({**CFG, "model": {"backbone": "test_resnet", "arch": "lanet"},
                          "train": {**CFG["train"], "batch_size": 8}})
    bad["model"]["backbone"] = "no_such_timm_model"
    with pytest.raises(Exception):
        train_or_load(bad, runs_root=tmp_path)
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_force_keeps_the_finished_record_until_the_new_one_is_complete(tmp_path) -> None:
    cfg = resolve_config(CFG)
    first = train_or_load(cfg, runs_root=tmp_path)
    before = (first.run_dir / "metrics.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        train_or_load(cfg, runs_root=tmp_path, force=True, stop_after_epochs=1)  # interrupted retrain
    assert (first.run_dir / "metrics.json").read_bytes() == before
    again = train_or_load(cfg, runs_root=tmp_path)
    assert again.cached and again.metrics == first.metrics
