"""Training through submitit (issue 15): local executor end to end on the smoke profile, claims shared by jobs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lanet_core.errors import ConfigError
from lanet_core.runs import run_claim
from lanet_core.study import runner
from lanet_core.study.executor import train_specs
from lanet_core.study.profiles import load_profile
from lanet_core.study.records import run_dir_of

pytestmark = pytest.mark.smoke


@pytest.fixture
def own_results(monkeypatch, tmp_path) -> Path:
    """A results folder of this test alone (the jobs are subprocesses: they inherit the environment)."""
    monkeypatch.setenv("LANET_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def test_local_executor_trains_every_run_then_renders(own_results, capsys) -> None:
    prof = load_profile("smoke")
    specs = runner.study_specs(prof, ["07_input_size"])
    assert len({run_dir_of(s, prof) for s in specs}) == 4  # 2 sizes x 2 seeds
    assert runner.run_study("smoke", only=["07_input_size"], executor="local", jobs=2) == 0
    out = capsys.readouterr().out
    assert "4 unfinished runs submitted (local): 2 job(s)" in out and "4 runs trained, 0 failed" in out
    for s in specs:
        assert (run_dir_of(s, prof) / "metrics.json").is_file(), s.label
    assert (prof.tables_dir / "fig10_11_input_size.csv").is_file()
    assert pd.read_csv(prof.notebooks_dir / "status.csv")["outcome"].tolist() == ["ok"]
    logs = list((prof.output / "logs" / "submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # one log per worker, where the README says
    # a rerun submits nothing
    assert runner.run_study("smoke", only=["07_input_size"], executor="local", jobs=2, train_only=True) == 0
    assert "nothing to submit" in capsys.readouterr().out


def test_worker_skips_a_run_another_process_holds(own_results) -> None:
    prof = load_profile("smoke")
    spec = runner.study_specs(prof, ["07_input_size"])[0]
    with run_claim(run_dir_of(spec, prof)):  # as if another job were training it
        rep = train_specs("smoke", [spec], worker="w")
    assert rep.busy == [spec.label] and not rep.trained and not rep.failed
    assert not (run_dir_of(spec, prof) / "metrics.json").exists()


def test_worker_reports_a_failing_run_and_goes_on(own_results) -> None:
    prof = load_profile("smoke")
    good = runner.study_specs(prof, ["07_input_size"])[0]
    bad = type(good)(good.experiment, "broken", 0, {**good.config, "data": {**good.config["data"],
                                                                             "manifest": "no/such.csv"}}, {}, ())
    rep = train_specs("smoke", [bad, good], worker="w")
    assert [label for label, _ in rep.failed] == [bad.label] and "no/such.csv" in rep.failed[0][1]
    assert rep.trained == [good.label]


def test_a_run_one_worker_failed_on_is_not_retried_by_the_others(own_results, monkeypatch) -> None:
    import lanet_core.study.records as records
    from lanet_core.study.executor import FAILED_MARK

    prof = load_profile("smoke")
    spec = runner.study_specs(prof, ["07_input_size"])[0]
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(records, "ensure_run", boom)
    run_dir_of(spec, prof).mkdir(parents=True)  # the run had started (its folder exists)
    first = train_specs("smoke", [spec], worker="a")
    second = train_specs("smoke", [spec], worker="b")
    assert len(calls) == 1  # the second worker saw the mark and skipped it
    assert "out of memory" in first.failed[0][1] and second.failed[0][1].startswith("failed in another worker")
    assert (run_dir_of(spec, prof) / FAILED_MARK).is_file()


def test_no_run_folder_is_created_for_a_failure_mark(own_results, monkeypatch) -> None:
    import lanet_core.study.records as records

    prof = load_profile("smoke")
    spec = runner.study_specs(prof, ["07_input_size"])[0]
    monkeypatch.setattr(records, "ensure_run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bad")))
    rep = train_specs("smoke", [spec], worker="a")
    assert rep.failed and not run_dir_of(spec, prof).exists()


def test_executor_refuses_shards() -> None:
    with pytest.raises(ConfigError, match="inline training only"):
        runner.run_study("smoke", only=["07_input_size"], executor="local", shard="0/2", train_only=True)


def test_worker_stops_at_the_deadline(own_results) -> None:
    prof = load_profile("smoke")
    specs = runner.study_specs(prof, ["07_input_size"])
    rep = train_specs("smoke", specs, worker="w", deadline=0.0)  # long past
    assert rep.stopped and not rep.trained
    assert not any((run_dir_of(s, prof) / "metrics.json").exists() for s in specs)


def test_budget_with_the_local_executor_stops_cleanly(own_results, capsys) -> None:
    assert runner.run_study("smoke", only=["07_input_size"], executor="local", jobs=1, budget_minutes=1e-6) == 0
    assert "time budget ran out" in capsys.readouterr().out
