"""The study's notebooks: paired, stripped, parameterised, and free of model or training code."""

import ast
import json
from pathlib import Path

import jupytext
import pytest

from lanet_core.study.experiments import NOTEBOOK_EXPERIMENTS
from lanet_core.study.profiles import load_profile

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NB_DIR.glob("*.py"))
EXPLORATION = ["00_explorer"]  # interactive notebooks beside the study: not rendered by `lanet study`


def test_every_profile_lists_the_same_existing_notebooks():
    names = [p.stem for p in SOURCES if p.stem not in EXPLORATION]
    assert names == list(NOTEBOOK_EXPERIMENTS)
    for prof in ("smoke", "cpu", "paper"):
        assert load_profile(prof).notebooks == names
    assert all((NB_DIR / f"{n}.py").is_file() for n in EXPLORATION)


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_stripped(src):
    ipynb = src.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run `make sync`"
    raw = json.loads(ipynb.read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{ipynb.name} has outputs"
    a = [(c.cell_type, c.source.strip()) for c in jupytext.read(src).cells]
    b = [(c.cell_type, c.source.strip()) for c in jupytext.read(ipynb).cells]
    assert a == b, f"{src.name} and {ipynb.name} differ: run `make sync`"
    assert raw["metadata"]["kernelspec"]["name"] == "lanet"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_parameters_cell_and_no_model_code(src):
    nb = jupytext.read(src)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile: str" in params[0].source and "train: bool" in params[0].source
    # opened and run as it is, a notebook renders the committed cpu results and trains nothing
    defaults: dict = {}
    exec(params[0].source, {}, defaults)
    assert defaults["profile"] == "cpu" and defaults["train"] is False, f"{src.name}: parameters {defaults}"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    tree = ast.parse(code)
    defined = [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert not defined, f"{src.name} defines {[d.name for d in defined]}: put it in lanet_core"
    for banned in (".backward(", "torch.optim", "nn.Module", "train_epoch"):
        assert banned not in code, f"{src.name} contains {banned!r}"


def test_executed_copies_are_stripped_of_volatile_metadata(tmp_path):
    """Re-rendering unchanged records must give a byte-identical executed notebook (no times, random ids)."""
    import json

    from lanet_core.study.runner import _strip_volatile

    def executed(cell_id: str, start: str):
        # the kernel splits one cell's stdout into chunks wherever timing falls
        # and interleaves stderr (warnings, logging) with it
        chunks = [["a\n", "b\n"], ["c\n"]] if start.startswith("2026-01") else [["a\n"], ["b\n", "c\n"]]
        outputs = [{"output_type": "stream", "name": "stdout", "text": t} for t in chunks]
        warn = {"output_type": "stream", "name": "stderr", "text": "w\n"}
        outputs = [warn] + outputs if start.startswith("2026-01") else outputs[:1] + [warn] + outputs[1:]
        return {"cells": [{"cell_type": "code", "id": cell_id, "source": "1", "outputs": outputs, "execution_count": 1,
                           "metadata": {"papermill": {"start_time": start}, "execution": {"t": start}}}],
                "metadata": {"papermill": {"start_time": start, "duration": 1.5, "parameters": {"profile": "smoke"}}},
                "nbformat": 4, "nbformat_minor": 5}

    a, b = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    a.write_text(json.dumps(executed("3f2a9c1b", "2026-01-01T00:00")))
    b.write_text(json.dumps(executed("77aa0e12", "2026-02-02T11:11")))
    _strip_volatile(a)
    _strip_volatile(b)
    assert a.read_bytes() == b.read_bytes()
    nb = json.loads(a.read_text())
    assert nb["metadata"]["papermill"] == {"parameters": {"profile": "smoke"}}  # parameters are kept
    assert nb["cells"][0]["id"] == "cell-000"
    assert nb["cells"][0]["outputs"] == [{"name": "stdout", "output_type": "stream", "text": ["a\n", "b\n", "c\n"]},
                                         {"name": "stderr", "output_type": "stream", "text": ["w\n"]}]


def test_setup_defaults_render_the_committed_results():
    import inspect

    from lanet_core.study.notebook import setup

    params = inspect.signature(setup).parameters
    assert params["profile"].default == "cpu" and params["train"].default is False


# ---------------------------------------------------------------------------- a clean tree after JupyterLab saves
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_header_keeps_the_jupytext_version_out(src):
    """JupyterLab (jupytext) rewrites the .py on save: with this filter in the header it writes the same bytes."""
    import jupytext as jt

    nb = jt.read(src)
    assert nb.metadata["jupytext"]["notebook_metadata_filter"] == JUPYTEXT_FILTER
    assert jt.writes(nb, fmt="py:percent") == src.read_text(), f"{src.name}: saving would rewrite it"
    raw = json.loads(src.with_suffix(".ipynb").read_text())
    assert raw["metadata"]["jupytext"].get("notebook_metadata_filter") == JUPYTEXT_FILTER


JUPYTEXT_FILTER = "-jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version"


def test_jupytext_config_of_the_notebooks_folder():
    import tomllib

    cfg = tomllib.loads((NB_DIR / "jupytext.toml").read_text())
    assert cfg == {"formats": "ipynb,py:percent", "notebook_metadata_filter": JUPYTEXT_FILTER}


@pytest.mark.parametrize("src", SOURCES[:3], ids=lambda p: p.stem)
def test_save_hook_stores_a_run_notebook_as_committed(src):
    """What JupyterLab saves after Run All (outputs, counts, timing metadata, language_info, widget state) is
    stripped by the save hook back to the committed bytes."""
    import nbformat

    from lanet_core.jupyter_hooks import strip_paired_notebook

    ipynb = src.with_suffix(".ipynb")
    committed = ipynb.read_text()
    nb = json.loads(committed)
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for i, cell in enumerate(nb["cells"]):
        cell["metadata"]["trusted"] = True
        if cell["cell_type"] == "code":
            cell["execution_count"] = i + 1
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x\n"]}]
            cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    model = {"type": "notebook", "content": nb}
    strip_paired_notebook(model, path=f"notebooks/{ipynb.name}")
    assert nbformat.writes(nbformat.from_dict(model["content"])) + "\n" == committed


def test_save_hook_leaves_unpaired_notebooks_and_text_files_alone():
    from lanet_core.jupyter_hooks import strip_paired_notebook

    executed = {"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "source": "1", "execution_count": 1,
                           "outputs": [{"output_type": "stream", "name": "stdout", "text": "1"}]}],
                "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    before = json.dumps(executed)
    strip_paired_notebook({"type": "notebook", "content": executed}, path="results/notebooks/02.ipynb")
    assert json.dumps(executed) == before  # not paired: an executed copy keeps its outputs
    text = {"type": "file", "format": "text", "content": "# %%\n1\n"}
    strip_paired_notebook(text, path="notebooks/02.py")
    assert text["content"] == "# %%\n1\n"


def test_save_hook_install_keeps_other_settings(tmp_path):
    from lanet_core import jupyter_hooks

    path = jupyter_hooks.config_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ServerApp": {"open_browser": False}}))
    assert not jupyter_hooks.installed(tmp_path)
    assert jupyter_hooks.install(tmp_path) == path
    cfg = json.loads(path.read_text())
    assert cfg == {"ServerApp": {"open_browser": False}, "ContentsManager": {"pre_save_hook": jupyter_hooks.HOOK}}
    assert jupyter_hooks.installed(tmp_path)
    mtime = path.stat().st_mtime_ns
    jupyter_hooks.install(tmp_path)
    assert path.stat().st_mtime_ns == mtime


def test_make_install_configures_the_save_hook():
    text = (NB_DIR.parent / "Makefile").read_text()
    assert "SAVE_HOOK := $(VENV)/etc/jupyter/jupyter_server_config.json" in text
    assert "install: $(STAMP) $(SAVE_HOOK)" in text and "-m lanet_core.jupyter_hooks install" in text


# ---------------------------------------------------------------------------- the runner: render, do not retrain
def _tiny_study(tmp_path, monkeypatch, source: str):
    """A one-notebook study in ``tmp_path`` (its own profile and output), run by the real runner."""
    import yaml

    from lanet_core.study import runner

    src = tmp_path / "nbs"
    src.mkdir()
    (src / "97_tiny.py").write_text(source)
    spec = yaml.safe_load(Path(load_profile("smoke").path).read_text())
    spec.update(name="tiny", output=str(tmp_path / "out"), notebooks=["97_tiny"])
    prof_yaml = tmp_path / "tiny.yaml"
    prof_yaml.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(runner, "notebooks_source_dir", lambda: src)
    return runner, str(prof_yaml), tmp_path / "out"


TINY = ('# %% tags=["parameters"]\nprofile: str = "cpu"\ntrain: bool = False\n\n'
        '# %%\nprint("train", train)\n')


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_cached_study_rerun_with_training_allowed_executes_nothing_and_changes_no_file(tmp_path, monkeypatch, capfd):
    """`make study` (training allowed) on an up-to-date study: "up to date", no notebook executed, no file changed;
    the executed copy records train=False, so `make study` and `make figures` render the same bytes; the kernel's
    own warnings do not reach the terminal."""
    runner, prof, out = _tiny_study(tmp_path, monkeypatch, TINY)
    assert runner.run_study(prof) == 0
    first = capfd.readouterr()
    assert "97_tiny: executing" in first.out
    executed = json.loads((out / "notebooks" / "97_tiny.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["train"] is False
    assert "lanet" in executed["metadata"] and "jupytext" not in executed["metadata"]
    assert "train False" in "".join(executed["cells"][-1]["outputs"][0]["text"])
    for noise in ("without encryption", "KeyboardInterrupt", "IPKernelApp"):
        assert noise not in first.out + first.err
    before = _tree(out)
    assert runner.run_study(prof) == 0
    again = capfd.readouterr().out
    assert "97_tiny: up to date" in again and "executing" not in again
    assert _tree(out) == before
    # a fresh clone has the executed copy but perhaps an older status.csv: the copy's own record suffices
    (out / "notebooks" / "status.csv").unlink()
    assert runner.run_study(prof) == 0
    assert "97_tiny: up to date" in capfd.readouterr().out
    # render-only (make figures) re-executes and writes the same bytes
    rendered = (out / "notebooks" / "97_tiny.ipynb").read_bytes()
    assert runner.run_study(prof, render_only=True) == 0
    assert (out / "notebooks" / "97_tiny.ipynb").read_bytes() == rendered


def test_fingerprint_follows_what_a_notebook_reads(tmp_path, monkeypatch):
    import dataclasses

    from lanet_core.study import runner

    src = tmp_path / "nbs"
    src.mkdir()
    prof = dataclasses.replace(load_profile("smoke"), output=tmp_path / "out")
    names = prof.notebooks
    for nb in names:
        (src / f"{nb}.py").write_text(f"# {nb}\n")
    monkeypatch.setattr(runner, "notebooks_source_dir", lambda: src)
    fp = {nb: runner._fingerprint(prof, nb, (src / f"{nb}.py").read_text()) for nb in names}
    # the data audit (first) feeds every later notebook; the summary (last) reads every table
    (src / f"{names[0]}.py").write_text("# changed audit\n")
    fp2 = {nb: runner._fingerprint(prof, nb, (src / f"{nb}.py").read_text()) for nb in names}
    assert all(fp2[nb] != fp[nb] for nb in names)
    (src / f"{names[0]}.py").write_text(f"# {names[0]}\n")
    (src / "07_input_size.py").write_text("# changed\n")
    fp3 = {nb: runner._fingerprint(prof, nb, (src / f"{nb}.py").read_text()) for nb in names}
    assert {nb for nb in names if fp3[nb] != fp[nb]} == {"07_input_size", names[-1]}
    # a finished run of an experiment a notebook reads changes its fingerprint, and only where it is read
    from lanet_core.study.experiments import experiment_runs
    from lanet_core.study.records import run_dir_of

    (src / "07_input_size.py").write_text("# 07_input_size\n")
    d = run_dir_of(experiment_runs("depth", prof)[0], prof)
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{}")
    fp4 = {nb: runner._fingerprint(prof, nb, (src / f"{nb}.py").read_text()) for nb in names}
    assert {nb for nb in names if fp4[nb] != fp[nb]} == {"08_depth", names[-1]}
    # the train flag is no input: the runner always renders from the records
    import inspect

    assert "train" not in inspect.signature(runner._fingerprint).parameters


def test_notebook_experiments_include_the_ones_its_source_reads():
    from lanet_core.study.runner import notebook_experiments

    src = (NB_DIR / "04_partial_labels.py").read_text()
    exps = notebook_experiments("04_partial_labels", src)
    assert exps[:3] == NOTEBOOK_EXPERIMENTS["04_partial_labels"] and "fully_labelled" in exps
    assert notebook_experiments("x", 'study.experiment("not_an_experiment")') == ()
