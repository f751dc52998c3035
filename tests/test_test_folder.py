"""The suite cleans up after itself (tests/conftest.py): each pytest process removes its session folder when it ends,
and a folder left by a process that was killed is removed by the next run, once its owner lock is free.

A run with the real data decodes up to ~0.8 GB of images into each folder; left behind, a few hundred runs filled
the disk and a CI install failed with "No space left on device".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = "tests/test_test_folder.py::test_session_folder_is_writable"


def test_session_folder_is_writable(session_dir: Path) -> None:
    """Also the payload of the tests below: it leaves a file in the session folder that cleanup must remove.

    With ``LANET_TEST_HANG_READY`` set (only by the kill test below) it then says so in that file and waits to be killed.
    """
    (session_dir / "payload.bin").write_bytes(b"x" * 1024)
    assert (session_dir / "payload.bin").stat().st_size == 1024
    ready = os.environ.get("LANET_TEST_HANG_READY")
    if ready:
        Path(ready).write_text("ready")
        time.sleep(120)


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LANET_"))}
    env["TMPDIR"] = str(tmp)
    env.update(extra)
    return env


def _pytest(workers: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers, PAYLOAD]


def _run_suite_slice(tmp: Path, workers: str, **extra: str) -> subprocess.CompletedProcess:
    run = subprocess.run(_pytest(workers), cwd=ROOT, env=_env(tmp, **extra), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("lanet-tests-*"))


@pytest.mark.parametrize("workers", ["0", "2"])
def test_each_pytest_process_removes_its_session_folder(tmp_path: Path, workers: str) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    _run_suite_slice(gone, workers)
    assert _folders(gone) == []

    kept = tmp_path / "kept"  # the same run asked to keep its folders shows the check can see them
    kept.mkdir()
    run = _run_suite_slice(kept, workers, LANET_KEEP_TEST_DIR="1")
    left = [kept / name for name in _folders(kept)]
    assert any((d / "payload.bin").exists() for d in left), left
    assert len(left) == (1 if workers == "0" else 1 + int(workers)), left  # controller + one per worker
    assert "lanet test folders kept" in run.stdout
    assert not any((d / ".owner.lock").exists() for d in left)  # kept folders carry no lock: no sweep removes them


def test_a_killed_run_leaves_its_folder_and_the_next_run_removes_it(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")  # POSIX only, as the owner lock and its sweep in conftest.py
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ready = tmp_path / "ready"
    proc = subprocess.Popen(_pytest("0"), cwd=ROOT, env=_env(tmp, LANET_TEST_HANG_READY=str(ready)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), "the payload test never started"
    finally:
        proc.send_signal(signal.SIGTERM)  # what a CI timeout sends: Python dies without running pytest_unconfigure
        proc.wait(timeout=60)
    (orphan,) = _folders(tmp)
    assert (tmp / orphan / "payload.bin").exists()

    unlocked = tmp / "lanet-tests-old-x"  # no owner lock (kept, or older than the lock): never swept
    unlocked.mkdir()
    alive = tmp / "lanet-tests-gw0-alive"  # its owner holds the lock: a concurrent run's folder
    alive.mkdir()
    fd = os.open(alive / ".owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        _run_suite_slice(tmp, "0")
    finally:
        os.close(fd)
    assert _folders(tmp) == sorted([unlocked.name, alive.name])  # the orphan is gone, and the new run's own folder
