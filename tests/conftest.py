"""Test environment: offline hub, no progress bars, caches and results in a per-session temp folder."""

from __future__ import annotations

import os
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
