"""The run cache: a run is identified by the hash of its resolved config (plus its manifest's contents).

``results/runs/<name>-<hash>/`` holds:

* ``config.yaml``: the resolved config;
* ``provenance.json``: git commit, package versions, hardware, seed, manifest checksum, wall times;
* ``history.csv``: one row per epoch (losses, validation metrics, images/s, selection flag);
* ``metrics.json``: the selected epoch and the test metrics (plus validation metrics of the selection);
* ``per_image.csv``: one row per test image (probabilities, predictions, IoU/Dice, predicted box, ...);
* ``lesion_maps.npz``: the test lesion maps (uint8, at most 64 x 64) for figures;
* ``checkpoints/`` (git-ignored): ``last.pt`` while training (resume), ``best.pt`` after.

``metrics.json`` is written last; its presence marks a finished run. Training a finished config again
returns the cached result at once; an interrupted run resumes from ``checkpoints/last.pt``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
import yaml

from lanet_core.config import dump_config, identity, resolve_config
from lanet_core.io import atomic_write_bytes, atomic_write_text, file_sha256, record_csv, record_json, remove_orphan_temps
from lanet_core.data.packs import configured_packs
from lanet_core.data.sources import load_manifest
from lanet_core.errors import ConfigError, LanetError
from lanet_core.evaluation import lesion_map_archive, summary_metrics
from lanet_core.paths import project_root, results_dir
from lanet_core import precision

log = logging.getLogger(__name__)

# Bump when a change to the code changes what a config means (invalidates every cached run).
RUN_FORMAT_VERSION = 1
PACKAGES = ("torch", "torchvision", "timm", "segmentation-models-pytorch", "grad-cam", "numpy", "scipy",
            "pandas", "scikit-learn", "scikit-image", "pillow")


def config_hash(cfg: Mapping[str, Any], manifest_sha256: str) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of the run's identity and its manifest's checksum."""
    payload = {"format": RUN_FORMAT_VERSION, "config": identity(cfg), "manifest_sha256": manifest_sha256}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def runs_dir() -> Path:
    return results_dir() / "runs"


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return keep.strip("-") or "run"


def _is_run_folder_of(path: Path, h: str) -> bool:
    """``path`` (named ``<prefix>-<h>``) is a run of hash ``h``: a folder whose prefix is the slug of the ``name``
    in its own ``config.yaml``. A copy (``backup-<h>``), a stray file or a folder without a readable config is not."""
    if not path.is_dir():
        return False
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(cfg, dict) and path.name == f"{_slug(str(cfg.get('name', '')))}-{h}"


def run_dir_for(cfg: Mapping[str, Any], manifest_sha256: str, root: Path | None = None) -> Path:
    """``<results>/runs/<name>-<hash>``, looked up by exact identity.

    The same resolved config under another experiment's name (``name`` is not part of the identity) reuses the
    folder that trained it: ``<its name>-<hash>``, recognised by the name in its own ``config.yaml``. A copied
    folder (``backup-<hash>``) or a stray file of such a name is never taken for the run.
    """
    root = Path(root) if root is not None else runs_dir()
    h = config_hash(cfg, manifest_sha256)
    own = root / f"{_slug(cfg['name'])}-{h}"
    if own.is_dir() or not root.is_dir():
        return own
    existing = sorted(p for p in root.glob(f"*-{h}") if _is_run_folder_of(p, h))
    return existing[0] if existing else own


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, Mapping):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose value differs between two configs, as ``key: old -> new``."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")]


def _committed_config(path: Path) -> dict | None:
    """The config as committed in git (``HEAD``), if the file is tracked there."""
    try:
        rel = path.resolve().relative_to(project_root().resolve())
        out = subprocess.run(["git", "show", f"HEAD:{rel.as_posix()}"], cwd=project_root(), capture_output=True,
                             text=True, timeout=10)
    except (ValueError, OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        cfg = yaml.safe_load(out.stdout)
    except yaml.YAMLError:
        return None
    return cfg if isinstance(cfg, dict) else None


def verify_run_identity(run_dir: Path, cfg: Mapping[str, Any]) -> None:
    """Refuse a run folder whose ``config.yaml`` no longer hashes to the folder's name (hand-edited or swapped):
    evaluating, exporting or predicting from it would rewrite or describe the records with another config.

    The error names the keys that changed (against the config stored in the checkpoint, or the committed one)."""
    run_dir = Path(run_dir)
    prov = read_provenance(run_dir)
    sha = prov.get("manifest_sha256")
    folder_hash = run_dir.name.rsplit("-", 1)[-1]
    if not sha:
        raise ConfigError(f"{run_dir}: no provenance.json with the manifest checksum; the run's identity cannot be "
                          "checked. Restore the run folder from git or retrain it")
    resolved = resolve_config(cfg)
    now = config_hash(resolved, sha)
    if now == folder_hash and prov.get("config_hash", now) == now:
        return
    before = _checkpoint_config(run_dir) or _committed_config(run_dir / "config.yaml")
    diff = changed_keys(identity(resolve_config(before)), identity(resolved)) if before else []
    what = ("; changed: " + ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")) if diff else ""
    raise ConfigError(f"{run_dir / 'config.yaml'} hashes to {now}, but the run {run_dir.name} was trained as "
                      f"{folder_hash}{what}. The records belong to the config that trained them: restore "
                      f"config.yaml (git checkout -- {run_dir / 'config.yaml'}), or train the edited config as its "
                      "own run (lanet train <edited config>)")


def _checkpoint_config(run_dir: Path) -> dict | None:
    """The resolved config stored in ``best.pt`` (checkpoints written since the config was stored there)."""
    path = Path(run_dir) / "checkpoints" / "best.pt"
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    cfg = ck.get("config") if isinstance(ck, dict) else None
    return cfg if isinstance(cfg, dict) else None


def git_state() -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` of the code that runs; ``$LANET_GIT_COMMIT`` (with ``$LANET_GIT_DIRTY``)
    overrides them for a copy of the working tree whose ``.git`` is absent or stale (e.g. one sent to a lent GPU
    machine: the sender names the commit it sent)."""
    if os.environ.get("LANET_GIT_COMMIT"):
        return {"git_commit": os.environ["LANET_GIT_COMMIT"], "git_dirty": bool(os.environ.get("LANET_GIT_DIRTY"))}
    root = project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", False
    return {"git_commit": sha or None, "git_dirty": dirty}


def hardware() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "hostname": socket.gethostname()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class RunResult:
    """A finished run: its directory, config and test metrics (per-image records loaded on demand)."""

    run_dir: Path
    config: dict
    metrics: dict
    cached: bool = False
    _per_image: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def test(self) -> dict[str, Any]:
        return self.metrics["test"]

    @property
    def per_image(self) -> pd.DataFrame:
        if self._per_image is None:
            self._per_image = pd.read_csv(self.run_dir / "per_image.csv", keep_default_na=True)
        return self._per_image

    def summary(self) -> str:
        t = self.test
        parts = [f"{self.run_dir.name}{' (cached)' if self.cached else ''}:"]
        for k, scale in (("accuracy", 100), ("auc", 100), ("f1_macro", 100), ("iou", 1), ("dice", 1), ("iou_box", 1)):
            v = t.get(k)
            if v is not None and np.isfinite(v):
                parts.append(f"{k}={v * scale:.1f}" if scale == 100 else f"{k}={v:.3f}")
        return " ".join(parts)


def load_result(run_dir: Path) -> RunResult | None:
    """The finished run in ``run_dir``, or ``None`` if it has not finished."""
    mpath = Path(run_dir) / "metrics.json"
    if not mpath.is_file():
        return None
    try:
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{Path(run_dir) / 'config.yaml'}: unreadable run record ({exc}); restore it from git") from None
    return RunResult(Path(run_dir), config, read_record(mpath), cached=True)


def prepare_run(cfg: Mapping[str, Any], runs_root: Path | None = None) -> tuple[dict, pd.DataFrame, Path, Path, str]:
    """(resolved config, manifest rows, data root, run dir, manifest checksum) for a config."""
    cfg = resolve_config(cfg) if "data" not in cfg or "eval" not in cfg else dict(cfg)
    d = cfg["data"]
    rows, mpath, data_root = load_manifest(d["manifest"], d["root"])
    sha = file_sha256(mpath)
    return cfg, rows, data_root, run_dir_for(cfg, sha, runs_root), sha


class RunBusy(LanetError):
    """Another process holds the run's claim."""


CLAIM_FILE = ".claim"


@contextlib.contextmanager
def run_claim(run_dir: Path, *, wait: bool = True):
    """Exclusive claim of a run directory while it trains: ``fcntl.flock`` on ``<run_dir>/.claim``.

    The operating system drops the lock when its owner exits or is killed, so a crashed owner never leaves a
    run stuck; the file records who holds it (pid, host, time) for the waiting process's message.
    """
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / CLAIM_FILE, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if not wait:
                raise RunBusy(f"{run_dir.name} is being trained by {holder}") from None
            print(f"lanet: {run_dir.name} is being trained by {holder}; waiting for it", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        fh.flush()
        yield
    finally:
        try:
            fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            fh.close()


def train_or_load(
    cfg: Mapping[str, Any],
    *,
    force: bool = False,
    deadline: float | None = None,
    stop_after_epochs: int | None = None,
    keep_last_checkpoint: bool = False,
    runs_root: Path | None = None,
    wait: bool = True,
) -> RunResult:
    """Return the finished run of ``cfg``, training it first (or resuming it) if needed.

    ``runs_root``: the folder of run directories (default ``<results>/runs``). The run is claimed first
    (:func:`run_claim`): a second process asking for the same run waits for it (``wait=False``: raises
    :class:`RunBusy`) and then returns the finished record. ``force`` retrains, keeping the finished record until
    the new one replaces it.
    """
    cfg, rows, data_root, run_dir, sha = prepare_run(cfg, runs_root)
    if not force:
        done = load_result(run_dir)
        if done is not None:
            return done
    _check_manifest(cfg)  # the same checks as `lanet validate`, on every split, before anything is created
    fresh = not run_dir.exists()
    with run_claim(run_dir, wait=wait):
        if not force:  # another process may have finished it while we waited for the claim
            done = load_result(run_dir)
            if done is not None:
                return done
        else:  # retrain from scratch; the finished record and best.pt stay until the new ones replace them
            (run_dir / "checkpoints" / "last.pt").unlink(missing_ok=True)
        for orphan in remove_orphan_temps(run_dir):  # we hold the claim: no other writer is active
            log.info("removed %s, left by an interrupted writer", orphan)
        if not (run_dir / "config.yaml").is_file() or force:
            atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
        try:
            return _train_and_record(cfg, rows, data_root, run_dir, sha, deadline=deadline,
                                     stop_after_epochs=stop_after_epochs, keep_last_checkpoint=keep_last_checkpoint)
        except BaseException:
            # a run that failed before its first checkpoint leaves no folder that looks like a run
            if fresh and not (run_dir / "checkpoints" / "last.pt").exists() and not (run_dir / "metrics.json").exists():
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _check_manifest(cfg: Mapping[str, Any]) -> None:
    from lanet_core.data.validate import ensure_manifest_valid

    d = cfg["data"]
    _, mpath, data_root = load_manifest(d["manifest"], d["root"])
    # with image packs the source files may be absent by design: the table checks still run
    ensure_manifest_valid(mpath, data_root, check_files=not configured_packs())


def _stop_after(n: int | None):
    """An ``on_epoch_end`` hook that interrupts training after ``n`` epochs of this call (tests of resume)."""
    if n is None:
        return None
    done = [0]

    def hook(row: dict) -> None:
        done[0] += 1
        if done[0] >= n:
            raise KeyboardInterrupt(f"stopped after {done[0]} epoch(s) (stop_after_epochs)")

    return hook


def _train_and_record(cfg, rows, data_root, run_dir, sha, *, deadline, stop_after_epochs, keep_last_checkpoint) -> RunResult:
    from lanet_core.training.context import RunContext
    from lanet_core.training.evaluator import evaluate_with_tuned_threshold
    from lanet_core.training.trainer import Trainer

    started = datetime.now(timezone.utc)
    ctx = RunContext(cfg, rows, data_root)
    fit = Trainer(ctx, run_dir).fit(deadline=deadline, on_epoch_end=_stop_after(stop_after_epochs))
    t_eval = time.time()
    tuned, per, pred, eval_rows = evaluate_with_tuned_threshold(ctx, fit.model)
    alternatives = evaluate_alternatives(ctx, fit)
    fit.wall["test_eval"] = time.time() - t_eval
    result = write_records(run_dir, cfg, ctx, fit, per, pred, eval_rows, sha, data_root, started,
                           lesion_threshold=tuned, alternatives=alternatives)
    if not keep_last_checkpoint:
        (run_dir / "checkpoints" / "last.pt").unlink(missing_ok=True)
    return result


def evaluate_alternatives(ctx, fit) -> dict[str, dict[str, Any]]:
    """Test metrics of the epochs the *other* selection criteria picked (``FitResult.alternatives``), each with
    its own validation-tuned threshold: reported beside the run's result, never replacing it."""
    from lanet_core.training.evaluator import evaluate_with_tuned_threshold

    out: dict[str, dict[str, Any]] = {}
    if not fit.alternatives:
        return out
    model = fit.model
    selected = copy.deepcopy(model.state_dict())
    for crit, alt in fit.alternatives.items():
        model.load_state_dict(alt["state"])
        tuned, per, _, _ = evaluate_with_tuned_threshold(ctx, model)
        out[crit] = {"stage": alt["stage"], "epoch": alt["epoch"], "key": alt["key"], "lesion_threshold": tuned,
                     "test": summary_metrics(per)}
    model.load_state_dict(selected)
    return out


def write_records(run_dir, cfg, ctx, fit, per, pred, eval_rows, manifest_sha, data_root, started, *,
                  lesion_threshold: dict | None = None, alternatives: dict | None = None) -> RunResult:
    """Write history, per-image records, lesion maps, provenance, and ``metrics.json`` last.

    ``ctx``: the run's :class:`~lanet_core.training.context.RunContext` (device, precision); ``fit``: the
    :class:`~lanet_core.training.trainer.FitResult` of training; ``per``/``pred``/``eval_rows``: the test pass.
    """
    history = pd.DataFrame(fit.history)
    atomic_write_text(run_dir / "history.csv", record_csv(history))
    atomic_write_text(run_dir / "per_image.csv", record_csv(per))
    maps = lesion_map_archive(pred, eval_rows, cfg["eval"]["map_store_size"])
    if maps:
        buf = io.BytesIO()
        np.savez_compressed(buf, **maps)
        atomic_write_bytes(run_dir / "lesion_maps.npz", buf.getvalue())
    sel = fit.selected
    sel_row = history[(history["stage"] == sel["stage"]) & (history["epoch"] == sel["epoch"])].iloc[0].to_dict()
    prov = {
        **git_state(),
        "config_hash": config_hash(cfg, manifest_sha),
        "run_format": RUN_FORMAT_VERSION,
        "seed": cfg["train"]["seed"],
        "manifest": cfg["data"]["manifest"],
        "manifest_sha256": manifest_sha,
        "data_root": str(data_root),
        "image_packs": [str(x) for x in configured_packs()] or None,
        "model_selection": fit.selection_rule,
        "bn_frozen": fit.bn_frozen,
        "device": str(ctx.device),
        "amp": ctx.amp,
        "channels_last": ctx.channels_last,
        "precision": precision.precision_name(ctx.amp),
        "deterministic": {"algorithms": ctx.deterministic,
                          "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG") if ctx.device.type == "cuda" else None,
                          "nondeterministic_ops": fit.nondeterministic_ops},
        "cpu_capability": precision.cpu_capability(),
        "packages": package_versions(),
        "hardware": hardware(),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": {k: round(v, 2) for k, v in fit.wall.items()},
        "calls": fit.calls,  # every (resumed) training call: start, end, device, host, threads
        "epochs_trained": len(history),
    }
    atomic_write_text(run_dir / "provenance.json", record_json(prov))
    metrics = {
        "run": run_dir.name,
        "config_hash": prov["config_hash"],
        "selected": {**sel, "selected_on": fit.select_split,
                     "metrics": {k: v for k, v in sel_row.items() if k.startswith(fit.select_split)}},
        "test": summary_metrics(per),
    }
    if lesion_threshold is not None:
        metrics["lesion_threshold"] = lesion_threshold
    if alternatives:
        metrics["selection_alternatives"] = alternatives
    atomic_write_text(run_dir / "metrics.json", record_json(metrics))
    return RunResult(run_dir, dict(cfg), json.loads(record_json(metrics)), cached=False)


def read_record(path: Path) -> dict:
    """A JSON run record; a damaged one is named with what to do (never a bare JSONDecodeError)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable run record ({exc}); restore it from git "
                          f"(git checkout -- {path}) or retrain the run") from None


def read_provenance(run_dir: Path) -> dict:
    """A run's ``provenance.json`` (``{}`` when the run has none yet; a damaged one is a named error)."""
    path = Path(run_dir) / "provenance.json"
    return read_record(path) if path.is_file() else {}


def evaluate_run_dir(run_dir: Path, split: str = "test", force: bool = False) -> RunResult:
    """Re-evaluate a run from ``checkpoints/best.pt`` on ``split`` (the test split rewrites the records)."""
    from lanet_core.training.context import RunContext
    from lanet_core.training.evaluator import evaluate_with_tuned_threshold

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{cfg_path}: not valid YAML ({exc}); restore it from git") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path}: not a config mapping; restore it from git")
    verify_run_identity(run_dir, cfg)  # never rewrite records from a config that no longer hashes to the folder
    cfg, rows, data_root, _, sha = prepare_run(cfg)
    prov = read_provenance(run_dir)
    recorded_sha, recorded_hash = prov.get("manifest_sha256"), prov.get("config_hash")
    if not force:
        if recorded_sha and recorded_sha != sha:
            raise ConfigError(f"{run_dir.name}: the manifest {cfg['data']['manifest']} changed since this run was trained "
                              f"(sha256 {sha[:12]} now, {recorded_sha[:12]} recorded); evaluating would overwrite the "
                              "training record with numbers from other data. Retrain, or pass --force")
        if recorded_hash and not run_dir.name.endswith(recorded_hash):
            raise ConfigError(f"{run_dir.name}: config hash {recorded_hash} recorded does not match the folder; pass --force")
    ctx = RunContext(cfg, rows, data_root)
    model = ctx.load_model(run_dir / "checkpoints" / "best.pt")
    tuned, per, _, _ = evaluate_with_tuned_threshold(ctx, model, split)
    if split != cfg["eval"]["split"]:
        metrics = {"run": run_dir.name, "split": split, "test": summary_metrics(per)}
        return RunResult(run_dir, cfg, json.loads(record_json(metrics)), _per_image=per)
    old = read_record(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    metrics = {**old, "test": summary_metrics(per)}
    if tuned is not None:
        metrics["lesion_threshold"] = tuned
    atomic_write_text(run_dir / "per_image.csv", record_csv(per))
    atomic_write_text(run_dir / "metrics.json", record_json(metrics))
    return RunResult(run_dir, cfg, json.loads(record_json(metrics)))
