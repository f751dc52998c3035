"""The whole smoke study through papermill (the CI proof that every notebook runs), plus runner behaviour."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lanet_core.models.backbones import local_weights_available
from lanet_core.study import runner
from lanet_core.study.profiles import load_profile

pytestmark = pytest.mark.smoke


def test_budget_stops_cleanly_then_continues(capsys):
    prof = load_profile("smoke")
    assert runner.run_study("smoke", only=["02_fully_labelled"], budget_minutes=1e-4, train_only=True) == 0
    assert "Stopped cleanly" in capsys.readouterr().out
    finished = list((prof.output / "runs").glob("*/metrics.json"))
    assert len(finished) <= 1  # the deadline had passed: at most the run in progress finished its epoch


def test_smoke_study_runs_every_notebook():
    prof = load_profile("smoke")
    assert runner.run_study("smoke") == 0
    status = pd.read_csv(prof.notebooks_dir / "status.csv")
    assert status["notebook"].tolist() == prof.notebooks
    assert (status["outcome"] == "ok").all()
    for nb in prof.notebooks:
        executed = json.loads((prof.notebooks_dir / f"{nb}.ipynb").read_text())
        # rendered from the records after the training phase: the same notebook as `make figures` writes
        assert executed["metadata"]["papermill"]["parameters"] == {"profile": "smoke", "train": False}
        assert "environment_variables" not in executed["metadata"]["papermill"]
    for table in ("data_counts", "busi_near_duplicates", "table5_busi_classification", "table6_busi_localisation",
                  "table3_busbra_partial_classification", "table7_busi_attention_classification", "fig8_9_label_ratio",
                  "fig10_11_input_size", "fig6_7_depth", "gradcam_localisation", "iou_threshold_sweep",
                  "pretraining_difference", "claims", "headline_busi"):
        if table == "pretraining_difference" and not local_weights_available(prof.pretrained["weights"]):
            continue  # no converted ImageNet MobileNetV2 here (needs ../shared/weights): only scratch runs exist
        for ext in ("csv", "md", "tex"):
            assert (prof.tables_dir / f"{table}.{ext}").is_file(), f"{table}.{ext}"
    for fig in ("fig4_examples", "fig_busi_fully_labelled", "fig12_gradcam_scores", "fig5_lesion_masks"):
        assert (prof.figures_dir / f"{fig}.png").is_file() and (prof.figures_dir / f"{fig}.pdf").is_file(), fig
    readme = (prof.output / "README.md").read_text()
    assert "The paper's claims, checked" in readme and "Table 5" in readme
    claims = pd.read_csv(prof.tables_dir / "claims.csv")
    assert claims["verdict"].notna().all() and len(claims) >= 15
    by_device = pd.read_csv(prof.tables_dir / "runs_by_device.csv")
    total = by_device[by_device["experiment"] == "all (unique runs)"]
    assert total["device"].tolist() == ["cpu"] and total["runs"].iloc[0] == len(list((prof.output / "runs").glob("*/metrics.json")))
    assert "## Hardware" in readme

    # a second call finds every notebook up to date and trains nothing
    before = {p: p.stat().st_mtime_ns for p in prof.notebooks_dir.glob("*.ipynb")}
    assert runner.run_study("smoke") == 0
    assert {p: p.stat().st_mtime_ns for p in prof.notebooks_dir.glob("*.ipynb")} == before

    # render-only re-executes from the records and gives the same tables
    table = (prof.tables_dir / "table5_busi_classification.csv").read_bytes()
    assert runner.run_study("smoke", only=["02_fully_labelled"], render_only=True) == 0
    assert (prof.tables_dir / "table5_busi_classification.csv").read_bytes() == table


def test_failing_notebook_is_named(tmp_path, monkeypatch, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "99_fail.py").write_text(
        '# %% tags=["parameters"]\nprofile: str = "smoke"\ntrain: bool = True\n\n# %%\nx = 1\n\n# %%\nraise ValueError("boom")\n'
    )
    prof_yaml = tmp_path / "p.yaml"
    spec = yaml.safe_load(Path(load_profile("smoke").path).read_text())
    spec.update(name="failing", output=str(tmp_path / "out"), notebooks=["99_fail"])
    prof_yaml.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(runner, "notebooks_source_dir", lambda: src)
    assert runner.run_study(str(prof_yaml), train_only=False) == 1
    err = capsys.readouterr().err
    assert "notebook 99_fail failed in cell" in err and "ValueError: boom" in err
    status = pd.read_csv(tmp_path / "out" / "notebooks" / "status.csv")
    assert status.loc[0, "outcome"] == "failed"


def test_shards_are_disjoint_and_cover_the_unfinished_runs(tmp_path):
    import dataclasses

    from lanet_core.errors import ConfigError
    from lanet_core.study.experiments import experiment_runs
    from lanet_core.study.records import run_dir_of

    prof = dataclasses.replace(load_profile("smoke"), output=tmp_path)  # nothing finished there
    specs = experiment_runs("fully_labelled", prof) + experiment_runs("depth", prof)  # depth reuses some runs
    everything = runner.shard_specs(specs, prof, (0, 1))
    dirs = [run_dir_of(s, prof) for s in everything]
    assert len(set(dirs)) == len(dirs)
    parts = [[run_dir_of(s, prof) for s in runner.shard_specs(specs, prof, (k, 3))] for k in range(3)]
    assert sorted(sum(parts, [])) == sorted(dirs) and all(parts)
    done = dirs[0]
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    assert done not in [run_dir_of(s, prof) for s in runner.shard_specs(specs, prof, (0, 1))]
    for bad in ("3/3", "x/2", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            runner.parse_shard(bad)
    with pytest.raises(ConfigError, match="--train-only"):
        runner.run_study("smoke", shard="0/2")


def test_failing_notebook_with_tmpdir_on_another_filesystem(tmp_path, monkeypatch, capsys):
    """$TMPDIR on tmpfs (another filesystem than the output): the executed notebook is still kept, and the
    notebook's own error (not a cross-device rename error) is what the user sees."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to put $TMPDIR on")
    tmpdir = shm / f"lanet-test-{tmp_path.name}"
    tmpdir.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "98_fail.py").write_text(
        '# %% tags=["parameters"]\nprofile: str = "smoke"\ntrain: bool = True\n\n# %%\nraise ValueError("boom98")\n'
    )
    prof_yaml = tmp_path / "p.yaml"
    spec = yaml.safe_load(Path(load_profile("smoke").path).read_text())
    spec.update(name="failing", output=str(tmp_path / "out"), notebooks=["98_fail"])
    prof_yaml.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(runner, "notebooks_source_dir", lambda: src)
    assert runner.run_study(str(prof_yaml), train_only=False) == 1
    err = capsys.readouterr().err
    assert "ValueError: boom98" in err and "cross-device" not in err
    assert (tmp_path / "out" / "notebooks" / "98_fail.ipynb").is_file()


def test_plan_lists_every_unique_run_without_training(tmp_path, capsys):
    import dataclasses

    from lanet_core.study.plan import study_plan

    prof = dataclasses.replace(load_profile("smoke"), output=tmp_path)
    plan = study_plan(prof, prof.notebooks)
    assert len(plan) == plan["config_hash"].nunique() > 20
    assert set(plan["state"]) == {"to train"} and plan["est_hours"].sum() > 0
    assert set(plan["overhead_source"]) == {"assumed"} and (plan["eval_overhead"] == 1.1).all()  # nothing measured
    assert not any(tmp_path.glob("runs/*/metrics.json"))  # nothing trained
    assert runner.run_study("smoke", plan=True) == 0
    assert "unique runs" in capsys.readouterr().out


def test_plan_prices_evaluation_with_the_overhead_finished_runs_measured(tmp_path):
    """A run's wall time over its training seconds is the evaluation overhead its experiment is priced with (the
    BUS-BRA CV runs took ~25 % over training, not the flat 10 % once assumed); without a finished run, 10 %."""
    import json
    import shutil

    import pandas as pd

    from lanet_core.study import plan as P

    committed = Path(__file__).resolve().parents[1] / "results" / "runs"  # the tests' results dir is a temp folder
    src = sorted(committed.glob("partial_labels_cv-*/metrics.json"))[0].parent
    run = tmp_path / src.name
    run.mkdir()
    for name in ("config.yaml", "metrics.json"):
        shutil.copy(src / name, run / name)
    prov = json.loads((src / "provenance.json").read_text())
    prov["device"] = "cpu"
    prov["wall_seconds"] = {"stage1": 60.0, "stage2": 240.0, "test_eval": 30.0, "fit_call": 310.0}
    (run / "provenance.json").write_text(json.dumps(prov))
    pd.DataFrame({"stage": ["stage1", "stage2"], "epoch": [1, 1], "train_seconds": [50.0, 200.0],
                  "images_per_s": [10.0, 12.0]}).to_csv(run / "history.csv", index=False)
    m = P.measurements(tmp_path, "cpu")
    (key, overhead), = m.overheads.items()
    assert key[0] == "partial_labels_cv" and overhead == pytest.approx(340 / 250)  # fit call (set-up too) + test
    assert P._wall_seconds({"stage1": 60.0, "stage2": 240.0, "test_eval": 30.0, "fit_call": 100.0}) == 330  # resumed
    assert m.rates[key[1]] == pytest.approx(11.0)
    assert m.overhead("partial_labels_cv", key[1]) == (pytest.approx(1.36), "measured (experiment, configuration)")
    assert m.overhead("partial_labels_cv", ("other",))[1] == "measured (experiment)"
    assert m.overhead("fully_labelled", key[1]) == (P.EVAL_OVERHEAD, "assumed")
    assert P.measurements(tmp_path, "cuda: NVIDIA H200").overheads == {}  # another device measures nothing here


def test_plan_prices_a_partial_run_for_what_its_checkpoint_has_not_trained(tmp_path):
    """A run interrupted after 3 stage-1 epochs and 1 stage-2 epoch counts them per stage (the plan prices the rest
    in its own units); a damaged checkpoint or one of another format (both restart the run) counts nothing."""
    import torch

    from lanet_core.study.plan import trained_epochs
    from lanet_core.training.trainer import CHECKPOINT_FORMAT

    ck = tmp_path / "run" / "checkpoints"
    ck.mkdir(parents=True)
    assert trained_epochs(tmp_path / "run") == {}
    history = [{"stage": "stage1", "train_images": 248}] * 3 + [{"stage": "stage2"}]
    torch.save({"format": CHECKPOINT_FORMAT, "history": history}, ck / "last.pt")
    assert trained_epochs(tmp_path / "run") == {"stage1": 3, "stage2": 1}
    torch.save({"format": CHECKPOINT_FORMAT + 1, "history": history}, ck / "last.pt")
    assert trained_epochs(tmp_path / "run") == {}
    (ck / "last.pt").write_bytes(b"not a checkpoint")
    assert trained_epochs(tmp_path / "run") == {}
