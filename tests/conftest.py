"""Test environment: offline hub, no progress bars, caches and results in a per-session temp folder.

The folder (one per pytest process: the controller and each xdist worker) holds decoded image packs of the real
data when it is present (~0.8 GB) and is removed when that process's pytest ends (``pytest_unconfigure``), pass or
fail; set ``LANET_KEEP_TEST_DIR=1`` to keep it for inspection. It used to stay behind after every run, and ~200 of
them filled the disk under a CI install.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION = Path(tempfile.mkdtemp(prefix="lanet-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TQDM_DISABLE"] = "1"
os.environ["LANET_CACHE_DIR"] = str(_SESSION / "cache")
os.environ["LANET_RESULTS_DIR"] = str(_SESSION / "results")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: `make test` runs one worker per core
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

import pytest  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's session folder (after every session fixture's teardown) unless asked to keep it."""
    if os.environ.get("LANET_KEEP_TEST_DIR", "") not in ("", "0"):
        print(f"\nlanet test folder kept: {_SESSION}")
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
