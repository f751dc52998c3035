"""Data-root lookup order: $LANET_DATA_ROOT, then <project>/data, then <project>/../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanet_core import paths
from lanet_core.paths import DataRootNotFound, cache_dir, data_root_candidates, find_data_root, results_dir

NEED = "BUSI/Dataset_BUSI_with_GT/benign"


@pytest.fixture
def layout(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """A fake project at tmp/work/proj with empty candidate roots: env, ./data and ../shared/data."""
    project = tmp_path / "work" / "proj"
    project.mkdir(parents=True)
    monkeypatch.setattr(paths, "project_root", lambda: project)
    monkeypatch.delenv("LANET_DATA_ROOT", raising=False)
    roots = {"env": tmp_path / "env", "local": project / "data", "shared": tmp_path / "work" / "shared" / "data"}
    for root in roots.values():
        root.mkdir(parents=True)
    return roots


def _fill(root: Path) -> Path:
    (root / NEED).mkdir(parents=True)
    return root


def test_candidates_in_order(layout, monkeypatch):
    assert data_root_candidates() == [layout["local"], layout["shared"].resolve()]
    monkeypatch.setenv("LANET_DATA_ROOT", str(layout["env"]))
    assert data_root_candidates() == [layout["env"], layout["local"], layout["shared"].resolve()]


def test_env_wins_over_local_and_shared(layout, monkeypatch):
    for root in layout.values():
        _fill(root)
    monkeypatch.setenv("LANET_DATA_ROOT", str(layout["env"]))
    assert find_data_root([NEED]) == layout["env"]


def test_local_data_before_shared(layout, monkeypatch):
    _fill(layout["local"])
    _fill(layout["shared"])
    monkeypatch.setenv("LANET_DATA_ROOT", str(layout["env"]))  # set, but it lacks the files
    assert find_data_root([NEED]) == layout["local"]


def test_shared_is_the_last_resort(layout):
    _fill(layout["shared"])
    assert find_data_root([NEED]) == layout["shared"].resolve()


def test_no_requirement_takes_the_first_existing_folder(layout, monkeypatch):
    monkeypatch.setenv("LANET_DATA_ROOT", str(layout["env"] / "missing"))
    assert find_data_root() == layout["local"]


def test_clear_error_lists_every_place_tried(layout, monkeypatch):
    monkeypatch.setenv("LANET_DATA_ROOT", str(layout["env"]))
    with pytest.raises(DataRootNotFound) as err:
        find_data_root([NEED])
    msg = str(err.value)
    tried = [str(layout["env"]), str(layout["local"]), str(layout["shared"].resolve())]
    assert f"no data root holds {NEED}. Tried, in order: " + "; ".join(tried) in msg
    assert "lanet download busi" in msg and "LANET_DATA_ROOT" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_cache_and_results_dirs_follow_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LANET_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    monkeypatch.setenv("LANET_RESULTS_DIR", str(tmp_path / "res"))
    assert results_dir() == tmp_path / "res"


def test_absolute_manifest_paths_need_no_data_root(tmp_path, monkeypatch):
    from lanet_core import paths

    img = tmp_path / "x.png"
    img.write_bytes(b"png")
    monkeypatch.setattr(paths, "data_root_candidates", lambda: [tmp_path / "nowhere"])  # e.g. no ../shared
    assert paths.find_data_root([str(img)]) == Path(img.anchor)
    import pytest

    with pytest.raises(paths.DataRootNotFound):
        paths.find_data_root([str(tmp_path / "missing.png")])
