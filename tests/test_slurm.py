"""A real scheduler (issue 15): single-node SLURM on this machine (Debian's slurm-wlm + munge), the smoke study's
input-size notebook trained as a SLURM job array through ``lanet study --executor slurm`` and rendered.

The fixture starts a private munged (own key and socket), slurmctld and slurmd from a generated slurm.conf in a
temp folder, on free ports, and stops them afterwards; nothing system-wide is changed. It skips, saying why,
where the daemons are not installed (`make test` installs them with apt-get where it runs as root: `make slurm`)
or cannot start. Accounting (slurmdbd) is not configured, so submitit's `sacct` calls warn and it falls back to
`squeue` and the result files; a real cluster has accounting.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from lanet_core.study import runner
from lanet_core.study.executor import SlurmOptions
from lanet_core.study.profiles import load_profile
from lanet_core.study.records import run_dir_of

pytestmark = [pytest.mark.smoke, pytest.mark.slurm]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [d for d in DAEMONS if not _which(d)]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): `make slurm` installs slurm-wlm and munge "
                    "with apt-get as root")
    if os.geteuid() != 0:
        pytest.skip("a private single-node SLURM needs root here (slurmd launches jobs as their user)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir()
    os.chmod(d / "munge", 0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = d / "munge" / "munge.sock"
    host = socket.gethostname()
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=lanettest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[Path] = []
    old = os.environ.get("SLURM_CONF")
    try:  # whatever happens (a skip included), the daemons started here are stopped in `finally`
        _start_daemons(d, env, key, sock, started)
        os.environ["SLURM_CONF"] = str(conf)
        yield d
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        for pid_file in reversed(started):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def _start_daemons(d: Path, env: dict, key: Path, sock: Path, started: list[Path]) -> None:
    """munged, slurmctld, slurmd (pid files appended to ``started`` as each starts); skip if they cannot run."""
    try:
        subprocess.run([_which("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={d / 'munge' / 'munged.pid'}", f"--log-file={d / 'munge' / 'munged.log'}",
                        f"--seed-file={d / 'munge' / 'munged.seed'}"], check=True, capture_output=True, timeout=30)
        started.append(d / "munge" / "munged.pid")
        for daemon in ("slurmctld", "slurmd"):
            started.append(d / f"{daemon}.pid")
            subprocess.run([_which(daemon)], env=env, check=True, capture_output=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"SLURM daemons could not start here: {exc}: {err.decode(errors='replace')[-400:]}")
    out = ""
    for _ in range(60):
        out = subprocess.run([_which("sinfo"), "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
        if out.strip() in ("idle", "mix", "alloc"):
            return
        time.sleep(0.5)
    logs = (d / "slurmctld.log").read_text()[-800:] if (d / "slurmctld.log").exists() else ""
    pytest.skip(f"the single-node SLURM did not come up (sinfo: {out.strip()!r}); slurmctld log: {logs}")


def test_smoke_notebook_trains_as_a_slurm_array_and_renders(slurm_cluster, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("LANET_RESULTS_DIR", str(tmp_path / "results"))
    prof = load_profile("smoke")
    specs = runner.study_specs(prof, ["07_input_size"])
    t0 = time.time()
    code = runner.run_study("smoke", only=["07_input_size"], executor="slurm",
                            slurm=SlurmOptions(cpus_per_job=1, time_minutes=15))
    out = capsys.readouterr().out
    print(out, f"slurm test: {time.time() - t0:.0f} s")
    assert code == 0, out
    assert "4 unfinished runs submitted (slurm): 4 job(s)" in out and "4 runs trained, 0 failed" in out
    for s in specs:
        assert (run_dir_of(s, prof) / "metrics.json").is_file(), s.label
    assert (prof.tables_dir / "fig10_11_input_size.csv").is_file()
    logs = sorted((prof.output / "logs" / "submitit").glob("*/*_log.out"))
    assert len(logs) == 4 and all("lanet worker" in p.read_text() for p in logs)
    # the array ran on SLURM: each task names itself by its SLURM_ARRAY_TASK_ID
    import re

    workers = {m for p in logs for m in re.findall(r"lanet worker (\w+):", p.read_text())}
    assert workers == {"0", "1", "2", "3"}
    # rerun: nothing left to submit
    assert runner.run_study("smoke", only=["07_input_size"], executor="slurm", train_only=True) == 0
    assert "nothing to submit" in capsys.readouterr().out
