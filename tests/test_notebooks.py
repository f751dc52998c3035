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


def test_every_profile_lists_the_same_existing_notebooks():
    names = [p.stem for p in SOURCES]
    assert names == list(NOTEBOOK_EXPERIMENTS)
    for prof in ("smoke", "cpu", "paper"):
        assert load_profile(prof).notebooks == names


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
