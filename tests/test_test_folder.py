"""The suite cleans up after itself: each pytest process removes its session folder (tests/conftest.py) when it ends.

A run with the real data decodes ~0.8 GB of image packs into that folder; left behind, a few hundred runs filled
the disk and a CI install failed with "No space left on device".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_session_folder_is_writable(session_dir: Path) -> None:
    """Also the payload of the test below: it leaves a file in the session folder that cleanup must remove."""
    (session_dir / "payload.bin").write_bytes(b"x" * 1024)
    assert (session_dir / "payload.bin").stat().st_size == 1024


def _run_suite_slice(tmp: Path, workers: str, keep: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LANET_"))}
    env["TMPDIR"] = str(tmp)
    if keep:
        env["LANET_KEEP_TEST_DIR"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers,
           "tests/test_test_folder.py::test_session_folder_is_writable"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_each_pytest_process_removes_its_session_folder(tmp_path: Path, workers: str) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    run = _run_suite_slice(gone, workers, keep=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in gone.glob("lanet-tests-*")) == []

    kept = tmp_path / "kept"  # the same run asked to keep its folders shows the check can see them
    kept.mkdir()
    run = _run_suite_slice(kept, workers, keep=True)
    assert run.returncode == 0, run.stdout + run.stderr
    left = list(kept.glob("lanet-tests-*"))
    assert any((d / "payload.bin").exists() for d in left), left
    assert "lanet test folder kept" in run.stdout
