"""Image packs: a run trained from a pack, without the image files, equals the run trained from the files."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from lanet_core.cli import main as cli_main
from lanet_core.data.dataset import ImageCache
from lanet_core.data.manifest import read_manifest
from lanet_core.data.dataset import build_pack
from lanet_core.data.packs import PACK_ENV, ImagePacks, portable_key
from lanet_core.errors import DataError
from lanet_core.runs import train_or_load
from tests.test_trainer import tiny_cfg


@pytest.fixture
def data_copy(phantom_dir, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(phantom_dir, dst)
    return dst


def test_portable_key_ignores_machine_but_not_content_fields():
    row = {"image_path": "a.png", "mask_path": "a_mask.png", "bbox": "1 2 3 4"}
    assert portable_key(row, 64, "squash") == portable_key(dict(row), 64, "squash")
    assert portable_key(row, 64, "squash") != portable_key(row, 32, "squash")
    assert portable_key(row, 64, "squash") != portable_key(row, 64, "shorter_side_crop")
    assert portable_key(row, 64, "squash") != portable_key({**row, "bbox": "1 2 3 5"}, 64, "squash")


def test_pack_serves_identical_arrays_when_files_are_gone(data_copy, tmp_path, monkeypatch):
    rows = read_manifest(data_copy / "manifest.csv")
    pack = tmp_path / "p.npz"
    meta = build_pack(rows, data_copy, [32], "squash", pack, cache_root=tmp_path / "c0")
    assert len(meta["entries"]) == len(rows) and set(meta["source_sha256"]) >= set(rows["image_path"])
    direct = ImageCache(data_copy, 32, root=tmp_path / "c1", packs=False)
    want = [direct.get(r) for _, r in rows.iterrows()]
    shutil.rmtree(data_copy)
    # without packs: a clear error naming the row; with them: the same arrays, nothing decoded
    with pytest.raises(DataError, match=rf"image_id {rows.iloc[0]['image_id']!r}: file not found"):
        ImageCache(data_copy, 32, root=tmp_path / "c2", packs=False).get(rows.iloc[0])
    monkeypatch.setenv(PACK_ENV, str(pack))
    served = ImageCache(data_copy, 32, root=tmp_path / "c2")
    for (_, r), w in zip(rows.iterrows(), want):
        got = served.get(r)
        assert sorted(got) == sorted(w) and all(np.array_equal(got[k], w[k]) for k in w)
    assert served.decoded == 0 and served.from_packs == len(rows)
    with pytest.raises(DataError, match="not in the image packs .* at 64 px"):
        ImageCache(data_copy, 64, root=tmp_path / "c3").get(rows.iloc[0])


def test_bad_pack_is_named(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(DataError, match="not a lanet image pack"):
        ImagePacks([bad])
    with pytest.raises(DataError, match="does not exist"):
        ImagePacks([tmp_path / "missing.npz"])


def test_run_from_pack_equals_run_from_files(data_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LANET_DATA_ROOT", str(data_copy))
    monkeypatch.setenv("LANET_CACHE_DIR", str(tmp_path / "cache"))
    manifest = tmp_path / "manifest.csv"
    shutil.copy(data_copy / "manifest.csv", manifest)
    cfg = tiny_cfg(data_copy)
    cfg["data"]["manifest"], cfg["data"]["root"] = str(manifest), "auto"
    from_files = train_or_load(cfg, runs_root=tmp_path / "runs_files")

    pack = tmp_path / "busi32.npz"
    assert cli_main(["pack", "--manifest", str(manifest), "--size", "32", "--out", str(pack)]) == 0
    assert "wrote" in capsys.readouterr().out
    shutil.rmtree(data_copy)
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(Exception, match="no data root holds"):
        train_or_load(cfg, runs_root=tmp_path / "runs_pack")
    monkeypatch.setenv(PACK_ENV, str(pack))
    from_pack = train_or_load(cfg, runs_root=tmp_path / "runs_pack")
    assert from_pack.run_dir.name == from_files.run_dir.name  # the same config identity
    assert from_pack.metrics["test"] == from_files.metrics["test"]
    prov = json.loads((from_pack.run_dir / "provenance.json").read_text())
    assert prov["image_packs"] == [str(pack)]
    a = pd.read_csv(from_files.run_dir / "per_image.csv")
    b = pd.read_csv(from_pack.run_dir / "per_image.csv")
    pd.testing.assert_frame_equal(a, b)


def test_git_commit_override_for_copies_without_git(monkeypatch):
    from lanet_core.runs import git_state

    monkeypatch.delenv("LANET_GIT_DIRTY", raising=False)
    monkeypatch.setenv("LANET_GIT_COMMIT", "abc123")
    assert git_state() == {"git_commit": "abc123", "git_dirty": False}
    monkeypatch.setenv("LANET_GIT_DIRTY", "1")
    assert git_state()["git_dirty"] is True
