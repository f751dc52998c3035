"""Reliability (issue 16): run claims under concurrency, no half-made run folders, --force keeps the old
record until the new one is complete."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
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
    # (the second process either waited on the claim, printing "waiting for it", or arrived after the first finished)
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


def _manifest(tmp_path: Path, mutate) -> Path:
    from lanet_core.data.sources import load_manifest

    rows, mpath, root = load_manifest("phantom:n=24,size=64,seed=11")
    rows = rows.copy()
    rows["image_path"] = [str(Path(root) / p) for p in rows["image_path"]]
    rows["mask_path"] = [str(Path(root) / p) if isinstance(p, str) and p else "" for p in rows["mask_path"]]
    rows = mutate(rows)
    out = tmp_path / "m.csv"
    rows.to_csv(out, index=False)
    return out


@pytest.mark.parametrize("mutate,message", [
    (lambda r: pd.concat([r, r.iloc[[0]]]), "duplicate"),
    (lambda r: r.assign(label=["benign"] + ["malgnant"] + list(r["label"][2:])), "malgnant"),
    (lambda r: r.assign(image_path=list(r["image_path"][:-1]) + ["/nope/missing.png"]), "missing.png"),
    (lambda r: r.iloc[0:0], "no rows|empty"),
], ids=["duplicate-id", "unknown-label", "missing-test-image", "empty"])
def test_train_validates_every_split_before_the_first_epoch(tmp_path, mutate, message) -> None:
    from lanet_core.errors import DataError

    man = _manifest(tmp_path, mutate)
    cfg = resolve_config({**CFG, "data": {**CFG["data"], "manifest": str(man), "root": "/"}})
    with pytest.raises(DataError, match=message):
        train_or_load(cfg, runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing trained, no folder


def test_evaluate_refuses_a_changed_manifest_and_names_corrupt_files(tmp_path) -> None:
    from lanet_core.errors import ConfigError
    from lanet_core.runs import evaluate_run_dir, load_result

    man = _manifest(tmp_path, lambda r: r)
    cfg = resolve_config({**CFG, "data": {**CFG["data"], "manifest": str(man), "root": "/"}})
    run = train_or_load(cfg, runs_root=tmp_path / "runs")
    before = (run.run_dir / "metrics.json").read_bytes()
    rows = pd.read_csv(man, keep_default_na=False)
    rows[rows["split"] != "test"].to_csv(man, index=False)  # drop the test images: another dataset now
    pd.concat([rows[rows["split"] != "test"], rows[rows["split"] == "test"].iloc[:4]]).to_csv(man, index=False)
    with pytest.raises(ConfigError, match="manifest .* changed since this run was trained"):
        evaluate_run_dir(run.run_dir)
    assert (run.run_dir / "metrics.json").read_bytes() == before
    (run.run_dir / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="best.pt: unreadable checkpoint"):
        evaluate_run_dir(run.run_dir, force=True)
    (run.run_dir / "metrics.json").write_text('{"run": "tru')
    with pytest.raises(ConfigError, match="metrics.json: unreadable run record"):
        load_result(run.run_dir)


def test_provenance_records_every_call_after_a_resume(tmp_path) -> None:
    cfg = resolve_config(CFG)
    with pytest.raises(KeyboardInterrupt):
        train_or_load(cfg, runs_root=tmp_path, stop_after_epochs=1, keep_last_checkpoint=True)
    r = train_or_load(cfg, runs_root=tmp_path)
    calls = json.loads((r.run_dir / "provenance.json").read_text())["calls"]
    assert len(calls) == 2 and all(c["start_utc"] and c["end_utc"] and c["device"] == "cpu" for c in calls)


def test_a_second_process_waits_for_the_claim(tmp_path) -> None:
    import time

    from lanet_core.runs import prepare_run

    cfg = resolve_config(CFG)
    run_dir = prepare_run(cfg, tmp_path)[3]
    script = ("import json, sys\nfrom lanet_core.config import resolve_config\nfrom lanet_core.runs import train_or_load\n"
              "r = train_or_load(resolve_config(json.loads(sys.argv[1])), runs_root=sys.argv[2])\nprint('DONE', r.cached)")
    with run_claim(run_dir):
        p = subprocess.Popen([sys.executable, "-u", "-c", script, json.dumps(CFG), str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)
        assert p.poll() is None  # blocked on the claim, not training
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert "waiting for it" in out and "DONE False" in out


def test_validate_checks_every_row_when_the_first_image_is_missing(tmp_path, monkeypatch) -> None:
    from lanet_core.data.sources import load_manifest
    from lanet_core.data.validate import validate_manifest

    rows, _, root = load_manifest("phantom:n=24,size=64,seed=11")
    rows = rows.copy()
    rows.loc[0, "image_path"] = "images/nope_first.png"
    rows.loc[5, "image_path"] = "images/nope_sixth.png"
    man = tmp_path / "m.csv"
    rows.to_csv(man, index=False)
    monkeypatch.setenv("LANET_DATA_ROOT", str(root))
    problems = validate_manifest(man)
    text = "\n".join(str(p) for p in problems.errors)
    assert "nope_first.png" in text and "nope_sixth.png" in text  # both rows named, the check went on
    assert "LANET_DATA_ROOT" not in text  # no data-root hint: the root exists


def test_nondeterministic_ops_are_recorded_by_name(tmp_path, monkeypatch) -> None:
    """An op without a deterministic kernel (on CUDA: e.g. adaptive pooling's backward) warns; the run records it."""
    import warnings

    from lanet_core.training import loop

    orig = loop._epoch

    def noisy(*a, **k):
        warnings.warn("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but you set "
                      "'torch.use_deterministic_algorithms(True, warn_only=True)'", UserWarning)
        return orig(*a, **k)

    monkeypatch.setattr(loop, "_epoch", noisy)
    r = train_or_load(resolve_config(CFG), runs_root=tmp_path)
    prov = json.loads((r.run_dir / "provenance.json").read_text())
    assert prov["deterministic"]["algorithms"] is True
    assert prov["deterministic"]["nondeterministic_ops"] == ["adaptive_avg_pool2d_backward_cuda"]
