"""Test environment: offline hub, no progress bars, caches and results in a per-session temp folder.

The folder ``$TMPDIR/lanet-tests-<main|gwN>-*`` (one per pytest process: the controller and each xdist worker) holds
the decoded image cache of the real data when it is present (up to ~0.8 GB). It is removed when that process's pytest
ends (``pytest_unconfigure``), pass, fail or Ctrl-C. A process killed before that (SIGTERM from a CI timeout, SIGKILL,
a crash) leaves its folder behind, so each process holds an exclusive ``flock`` on ``<folder>/.owner.lock`` while it
lives, and every new one removes the folders whose lock is free: the kernel drops the lock when its owner dies, however
it dies. ``LANET_KEEP_TEST_DIR=1`` keeps the folders (they get no lock, so no later run removes them). Before this,
~200 left-behind folders (24 GB) filled the disk under a CI install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock, no sweep (pytest_unconfigure still cleans up)
    fcntl = None

_PREFIX = "lanet-tests-"
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... in an xdist worker; None in the controller
_KEEP = os.environ.get("LANET_KEEP_TEST_DIR", "") not in ("", "0")


def _sweep_orphans(parent: Path) -> None:
    """Remove session folders under ``parent`` whose owner lock is free (their pytest died without cleaning up).

    A folder without ``.owner.lock`` is left alone: a kept one, one from before the lock, or one being created.
    """
    for folder in parent.glob(f"{_PREFIX}*"):
        try:
            fd = os.open(folder / ".owner.lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner is alive
            os.close(fd)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _claim(folder: Path) -> int:
    """Lock ``folder/.owner.lock`` for this process's life; returns the descriptor (kept open, never closed).

    The lock is taken on a private name and then renamed into place, so a sweep never sees an unlocked owner file.
    """
    private = folder / f".owner.lock.{os.getpid()}"
    fd = os.open(private, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(private, folder / ".owner.lock")
    return fd


if fcntl is not None:
    _sweep_orphans(Path(tempfile.gettempdir()))
_SESSION = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_WORKER or 'main'}-"))
_OWNER_LOCK = _claim(_SESSION) if fcntl is not None and not _KEEP else None
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TQDM_DISABLE"] = "1"
os.environ["LANET_CACHE_DIR"] = str(_SESSION / "cache")
os.environ["LANET_RESULTS_DIR"] = str(_SESSION / "results")
os.environ.setdefault("MPLBACKEND", "Agg")
if _WORKER:  # one thread per worker: `make test` runs one worker per core
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

import pytest  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's session folder (after every session fixture's teardown) unless asked to keep it."""
    if _KEEP:  # xdist does not relay a worker's stdout: the controller names its own folder and the workers' pattern
        print(f"\nlanet test folders kept: {_SESSION} (xdist workers': {_SESSION.parent}/{_PREFIX}gw*)")
        return
    shutil.rmtree(_SESSION, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION


@pytest.fixture(scope="session")
def phantom_dir(session_dir: Path) -> Path:
    """A small phantom dataset (64 px images) with its manifest, generated once per test session."""
    from lanet_core.data.phantoms import generate_phantom_dataset

    out = session_dir / "phantoms64"
    if not (out / "manifest.csv").exists():
        generate_phantom_dataset(out, n_images=48, image_size=64, seed=0)
    return out
