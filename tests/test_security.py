"""Issue 26: untrusted checkpoints, writes outside the output folder, reads outside the data root, records rewritten
from a hand-edited config, copied run folders, and one clear line where a traceback used to be. Each test names the
numbered case of the issue it covers and fails on the behaviour the issue found."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from lanet_core.config import resolve_config
from lanet_core.errors import ConfigError, DataError, StorageError, TrainingDiverged
from lanet_core.runs import config_hash, evaluate_run_dir, run_dir_for, train_or_load

CFG = {
    "data": {"manifest": "phantom:n=24,size=64,seed=11", "image_size": 64, "augment": "none"},
    "model": {"backbone": "test_resnet"},
    "train": {"stage1_epochs": 1, "stage2_epochs": 1, "batch_size": 8, "progress": False, "amp": False},
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny finished run (phantoms, 2 epochs) shared by the tests that only read it or copy it."""
    root = tmp_path_factory.mktemp("runs")
    return train_or_load(resolve_config(CFG), runs_root=root)


def _copy_run(run, tmp_path: Path) -> Path:
    dst = tmp_path / "runs" / run.run_dir.name
    shutil.copytree(run.run_dir, dst)
    return dst


class _Payload:
    """A pickle that would create a marker file when unpickled (what `weights_only=False` executes)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------------------------------- case 1


def test_case1_a_checkpoint_cannot_run_code(tmp_path, finished_run) -> None:
    from lanet_core.inference import load_run_model
    from lanet_core.training.context import checkpoint_state

    run_dir = _copy_run(finished_run, tmp_path)
    marker = tmp_path / "pwned"
    best = run_dir / "checkpoints" / "best.pt"
    with open(best, "wb") as fh:
        pickle.dump({"model": _Payload(marker)}, fh)
    with pytest.raises(ConfigError, match="unreadable checkpoint"):
        checkpoint_state(best)
    with pytest.raises(ConfigError, match="unreadable checkpoint"):
        load_run_model(run_dir)  # the path of `lanet export` / `lanet predict`
    assert not marker.exists()


def test_case1_a_malicious_last_checkpoint_is_not_resumed(tmp_path) -> None:
    from lanet_core.training.context import RunContext
    from lanet_core.training.trainer import Trainer
    from lanet_core.data.sources import load_manifest

    cfg = resolve_config(CFG)
    rows, _, root = load_manifest(cfg["data"]["manifest"])
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with open(tmp_path / "run" / "checkpoints" / "last.pt", "wb") as fh:
        pickle.dump({"format": 1, "x": _Payload(marker)}, fh)
    assert Trainer(RunContext(cfg, rows, root), tmp_path / "run")._load_last() is None
    assert not marker.exists()


def test_checkpoints_load_with_weights_only(finished_run) -> None:
    ck = torch.load(finished_run.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert set(ck) >= {"model", "selected", "config"}


# ---------------------------------------------------------------------------------------------------- case 2, 10


def test_case2_predict_writes_only_inside_out(tmp_path, finished_run) -> None:
    from lanet_core.data.sources import load_manifest
    from lanet_core.inference import predict_images

    rows, _, root = load_manifest(CFG["data"]["manifest"])
    rows = rows[rows["split"] == "test"].head(2).copy()
    rows["image_id"] = ["../../../escaped_overlay", "/abs/name"]
    rows["image_path"] = [str(Path(root) / p) for p in rows["image_path"]]
    rows["mask_path"] = [str(Path(root) / p) if p else "" for p in rows["mask_path"]]
    man = tmp_path / "in" / "m.csv"
    man.parent.mkdir()
    rows.to_csv(man, index=False)
    out = tmp_path / "deep" / "er" / "out"
    predict_images(finished_run.run_dir, man, out)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")}
    assert all(w.startswith(("deep/er/out/overlays/", "deep/er/out/masks/")) for w in written), written
    assert len(written) == 4  # an overlay and a lesion mask per image (issue 30)


def test_case10_same_stem_images_are_kept_apart_and_a_tiny_image_is_flagged(tmp_path, finished_run) -> None:
    from lanet_core.inference import predict_images

    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(src / "scan.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(src / "scan.jpg")
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(src / "dot.png")
    df = predict_images(finished_run.run_dir, src, tmp_path / "out")
    assert df["image_id"].is_unique and len(df) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["dot.png", "scan.jpg.png", "scan.png.png"]
    assert "not meaningful" in df.set_index("image_id").loc["dot", "warning"]


# ---------------------------------------------------------------------------------------------------- case 3


def _outside_manifest(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest under a data root whose first image is ``../outside/secret.png`` (a valid image)."""
    from lanet_core.data.sources import load_manifest

    rows, _, root = load_manifest(CFG["data"]["manifest"])
    data = tmp_path / "data"
    shutil.copytree(root, data)
    (tmp_path / "outside").mkdir()
    shutil.copy(data / rows["image_path"].iat[0], tmp_path / "outside" / "secret.png")
    rows = rows.copy()
    rows.loc[rows.index[0], "image_path"] = "../outside/secret.png"
    man = data / "m.csv"
    rows.to_csv(man, index=False)
    return man, data


def test_case3_manifest_paths_outside_the_data_root_are_refused(tmp_path, monkeypatch) -> None:
    from lanet_core.data.dataset import ImageCache
    from lanet_core.data.validate import validate_manifest

    man, data = _outside_manifest(tmp_path)
    problems = [str(p) for p in validate_manifest(man, data_root=data) if p.severity == "error"]
    assert any("leaves the data root" in p and "secret.png" in p for p in problems), problems
    cfg = resolve_config({**CFG, "data": {**CFG["data"], "manifest": str(man), "root": str(data)}})
    with pytest.raises(DataError, match="leaves the data root"):
        train_or_load(cfg, runs_root=tmp_path / "runs")
    row = pd.read_csv(man, keep_default_na=False).iloc[0]
    with pytest.raises(DataError, match="leaves the data root"):
        ImageCache(data, 64, packs=False).get(row)
    absolute = row.copy()
    absolute["image_path"] = str(tmp_path / "outside" / "secret.png")
    with pytest.raises(DataError, match="outside the data root"):
        ImageCache(data, 64, packs=False).get(absolute)
    monkeypatch.setenv("LANET_ALLOW_OUTSIDE_DATA_ROOT", "1")  # the explicit option
    assert ImageCache(data, 64, packs=False).get(row)["image"].shape == (64, 64, 3)
    assert not [p for p in validate_manifest(man, data_root=data) if "data root" in str(p)]


# ---------------------------------------------------------------------------------------------------- case 4, 5, 6


def test_case4_a_hand_edited_config_never_rewrites_the_records(tmp_path, finished_run) -> None:
    from lanet_core.inference import export_onnx

    run_dir = _copy_run(finished_run, tmp_path)
    before = {f: (run_dir / f).read_bytes() for f in ("metrics.json", "per_image.csv")}
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["data"]["image_size"] = 96
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    for call in (lambda: evaluate_run_dir(run_dir), lambda: evaluate_run_dir(run_dir, force=True),
                 lambda: export_onnx(run_dir, tmp_path / "export")):
        with pytest.raises(ConfigError, match=r"data\.image_size: 64 -> 96"):
            call()
    assert {f: (run_dir / f).read_bytes() for f in before} == before
    assert not (tmp_path / "export").exists()


def test_case5_a_copied_folder_is_not_the_run(tmp_path, finished_run) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    root = run_dir.parent
    h = run_dir.name.rsplit("-", 1)[1]
    shutil.copytree(run_dir, root / f"aaa-backup-{h}")  # sorts first: was taken for the run
    (root / f"0stray-{h}").write_text("not a run")  # a file of such a name: was FileExistsError
    cfg = resolve_config(CFG)
    sha = finished_run.run_dir.joinpath("provenance.json").read_text()
    import json

    manifest_sha = json.loads(sha)["manifest_sha256"]
    assert run_dir_for(cfg, manifest_sha, root) == run_dir
    other = resolve_config({**CFG, "name": "another-experiment"})  # same identity, another name: reuses the run
    assert run_dir_for(other, manifest_sha, root) == run_dir
    shutil.rmtree(run_dir)
    fresh = run_dir_for(cfg, manifest_sha, root)
    assert fresh == root / f"{cfg['name']}-{h}" and not fresh.exists()


def test_case6_an_interrupted_force_keeps_the_old_checkpoint(tmp_path, finished_run) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    best = (run_dir / "checkpoints" / "best.pt").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        train_or_load(resolve_config(CFG), runs_root=run_dir.parent, force=True, stop_after_epochs=1)
    assert (run_dir / "checkpoints" / "best.pt").read_bytes() == best


# ---------------------------------------------------------------------------------------------------- case 7


def test_case7_a_profile_given_by_path_is_the_profile_the_notebooks_load(tmp_path) -> None:
    from lanet_core.paths import project_root
    from lanet_core.study.profiles import load_profile
    from lanet_core.study.runner import profile_argument

    raw = yaml.safe_load((project_root() / "configs" / "profiles" / "smoke.yaml").read_text())
    raw.update(seeds=[5], output=str(tmp_path / "custom-out"))
    custom = tmp_path / "custom.yaml"
    custom.write_text(yaml.safe_dump(raw))
    prof = load_profile(str(custom))
    assert prof.name == "smoke"  # shadows the built-in name
    arg = profile_argument(prof)
    assert arg == str(custom.resolve())
    again = load_profile(arg)  # what the notebook's setup(profile) loads
    assert again.seeds == [5] and again.output == tmp_path / "custom-out"
    assert profile_argument(load_profile("smoke")) == "smoke"


# ---------------------------------------------------------------------------------------------------- case 8


def test_case8_the_validation_stamp_covers_the_files(tmp_path, monkeypatch) -> None:
    from lanet_core.data.sources import load_manifest
    from lanet_core.data.validate import ensure_manifest_valid

    monkeypatch.setenv("LANET_CACHE_DIR", str(tmp_path / "cache"))
    rows, mpath, root = load_manifest(CFG["data"]["manifest"])
    data = tmp_path / "data"
    shutil.copytree(root, data)
    man = data / Path(mpath).name
    shutil.copy(mpath, man)
    ensure_manifest_valid(man, data)  # clean: stamped
    row = rows[rows["location_label"] == "mask"].iloc[0]
    mask = data / row["mask_path"]
    shape = np.asarray(Image.open(mask)).shape
    Image.fromarray(np.zeros(shape, dtype=np.uint8)).save(mask)  # an all-zero mask swapped in after validation
    with pytest.raises(DataError, match="all zero"):
        ensure_manifest_valid(man, data)


# ---------------------------------------------------------------------------------------------------- case 9


def test_case9_non_finite_lr_and_loss_stop_the_run(tmp_path, monkeypatch) -> None:
    from lanet_core.config import parse_override
    import lanet_core.training.loop as loop

    for text in ("train.lr=.inf", "train.lr=.nan"):
        with pytest.raises(ConfigError, match="train.lr"):
            resolve_config(CFG, [text])
    real = loop.stage_loss

    def nan_loss(*a, **k):
        parts = real(*a, **k)
        parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(loop, "stage_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match="not finite"):
        train_or_load(resolve_config(CFG), runs_root=tmp_path)
    assert not list(tmp_path.rglob("metrics.json"))
    assert parse_override  # (imported: the override parser is what `--set` uses)


# ---------------------------------------------------------------------------------------------------- case 11


def test_case11_unfinished_runs_are_counted_once_per_identity(tmp_path) -> None:
    from types import SimpleNamespace

    from lanet_core.study import runner

    a = resolve_config({**CFG, "name": "exp-a"})
    b = resolve_config({**CFG, "name": "exp-b"})  # the same run under another experiment's name
    specs = [SimpleNamespace(config=a, label="a"), SimpleNamespace(config=b, label="b")]
    dirs = {"a": tmp_path / "exp-a-123456789abc", "b": tmp_path / "exp-b-123456789abc"}
    orig = runner.run_dir_of
    try:
        runner.run_dir_of = lambda spec, profile: dirs[spec.label]
        assert len(runner.shard_specs(specs, None, (0, 1))) == 1
    finally:
        runner.run_dir_of = orig


# ---------------------------------------------------------------------------------------------------- case 12


def test_case12_orphan_temps_are_cleaned_and_a_full_disk_is_one_clear_error(tmp_path, monkeypatch) -> None:
    cfg = resolve_config(CFG)
    from lanet_core.runs import prepare_run

    _, _, _, run_dir, _ = prepare_run(cfg, tmp_path)
    (run_dir / "checkpoints").mkdir(parents=True)
    orphan = run_dir / "checkpoints" / ".last.pt.999.123.tmp"
    orphan.write_bytes(b"x" * 1000)
    calls = {"n": 0}
    real = torch.save

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1234 vs 1200")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(StorageError, match="disk is full"):
        train_or_load(cfg, runs_root=tmp_path)
    assert calls["n"] == 1
    assert not orphan.exists(), "the orphan of a killed writer was not cleaned on the next start"
    assert not list(run_dir.rglob("*.tmp")), "the failed write left its temp file"
    monkeypatch.setattr(torch, "save", real)


def test_storage_errors_are_one_line_in_the_cli(monkeypatch, capsys) -> None:
    from lanet_core import cli
    from lanet_core.io import atomic_write_text, storage_error

    assert "read-only" in str(storage_error(OSError(errno.EROFS, "Read-only file system"), "/x"))
    assert storage_error(OSError(errno.ENOENT, "nope"), "/x") is None

    def readonly(args):
        raise OSError(errno.EROFS, "Read-only file system", "/results/runs/x")

    monkeypatch.setattr(cli, "_cmd_validate", readonly)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), readonly))
    assert cli.main(["validate", "m.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only file system" in err[0] and "/results/runs/x" in err[0]
    assert atomic_write_text  # (the writer every record goes through raises StorageError, tested above)


def _with_func(parser, func):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


# ---------------------------------------------------------------------------------------------------- raw tracebacks


def test_evaluate_names_a_truncated_metrics_json(tmp_path, finished_run) -> None:
    run_dir = _copy_run(finished_run, tmp_path)
    (run_dir / "metrics.json").write_text('{"run": "tru')
    with pytest.raises(ConfigError, match="metrics.json: unreadable run record"):
        evaluate_run_dir(run_dir)


def test_a_decompression_bomb_is_a_data_error(tmp_path, monkeypatch) -> None:
    from lanet_core.data.images import image_size, read_image

    Image.fromarray(np.zeros((300, 300), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 300x300 > 2x the limit: PIL raises
    for fn in (read_image, image_size):
        with pytest.raises(DataError, match="too large to decode safely"):
            fn(tmp_path / "big.png")


@pytest.mark.parametrize("card,message", [
    ('{"image_size": 64, "resi', "unreadable model card"),
    ('{"resize": "squash"}', "lacks image_size"),
    ('{"image_size": 96, "resize": "squash", "normalize": "x", "outputs": [], "lesion_threshold": 0.5, '
     '"align_corners": false}', "does not match the ONNX model's input 64x64"),
], ids=["truncated", "missing-size", "size-mismatch"])
def test_model_card_problems_are_named(tmp_path, card, message) -> None:
    from types import SimpleNamespace

    from lanet_core.inference import read_model_card

    (tmp_path / "model.json").write_text(card)
    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(shape=["batch", 3, 64, 64])])
    with pytest.raises(ConfigError, match=message):
        read_model_card(tmp_path / "model.json", session)


def test_a_python_tag_in_a_profile_is_refused(tmp_path) -> None:
    from lanet_core.study.profiles import load_profile

    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['touch pwned']\nseeds: [0]\n")
    with pytest.raises(ConfigError, match="not a valid profile YAML"):
        load_profile(str(bad))
    assert not Path("pwned").exists()
