"""Training a study's runs as scheduler jobs through ``submitit``: a SLURM job array, or local subprocesses.

``lanet study --executor slurm`` submits one array task per unfinished run; ``--executor local --jobs N`` starts
N worker processes on this machine (one GPU each where there are several). Every task goes through the same
path as an inline study: :func:`lanet_core.study.records.ensure_run`, which claims the run directory with an
OS lock (:func:`lanet_core.runs.run_claim`) and writes every record atomically. A run that another task or
process is training is skipped, not duplicated; a run that fails is reported with its error and log, and the
others go on. Rerunning the command submits only what is still unfinished.

Logs: ``<profile output>/logs/submitit/<job id>_*`` (stdout, stderr, pickled result), git-ignored.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lanet_core.errors import ConfigError
from lanet_core.study.experiments import RunSpec
from lanet_core.study.profiles import Profile, load_profile

EXECUTORS = ("inline", "local", "slurm")


@dataclass
class SlurmOptions:
    """``sbatch`` settings of each array task (``None`` = the cluster's default)."""

    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    time_minutes: int = 24 * 60
    array_parallelism: int = 32
    mem_gb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # any other submitit ``slurm_*`` parameter


@dataclass
class TaskReport:
    """What one job did: run labels trained, found finished, left to another process, or failed (label, error)."""

    worker: str
    trained: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False  # the time budget ran out


def log_dir(profile: Profile) -> Path:
    return profile.output / "logs" / "submitit"


FAILED_MARK = ".failed"  # in a run directory: a worker of this submission failed on it (the others skip it)


def train_specs(profile_ref: str, specs: Sequence[RunSpec], worker: str = "",
                deadline: float | None = None, threads: int | None = None) -> TaskReport:
    """The body of every job: train (or find finished) each run; a run claimed by another process is skipped,
    and so is one another worker of the same submission failed on (``.failed``, cleared at each submission).

    ``profile_ref``: the profile's name or YAML path (the job reloads it, so only plain data is pickled).
    ``deadline`` (epoch seconds, ``--budget-minutes``): start no run after it, and stop the one in progress at
    the next epoch boundary. ``threads``: torch CPU threads of this worker (so N workers share the cores).
    """
    from lanet_core.errors import BudgetExhausted
    from lanet_core.io import atomic_write_text
    from lanet_core.runs import RunBusy
    from lanet_core.study.records import ensure_run, run_dir_of

    if threads:
        import torch

        torch.set_num_threads(int(threads))
    prof = load_profile(profile_ref)
    rep = TaskReport(worker=worker or os.environ.get("SLURM_ARRAY_TASK_ID", str(os.getpid())))
    for spec in specs:
        t0 = time.time()
        if deadline is not None and t0 > deadline:
            print(f"lanet worker {rep.worker}: time budget reached before {spec.label}; stopped", flush=True)
            rep.stopped = True
            break
        mark = None
        try:
            mark = run_dir_of(spec, prof) / FAILED_MARK
            if mark.is_file():
                print(f"lanet worker {rep.worker}: {spec.label}: another worker failed on it; skipped", flush=True)
                rep.failed.append((spec.label, "failed in another worker: " + mark.read_text().strip()))
                continue
            r = ensure_run(spec, prof, train=True, wait=False, deadline=deadline)
        except BudgetExhausted as exc:
            print(f"lanet worker {rep.worker}: {exc}; stopped", flush=True)
            rep.stopped = True
            break
        except RunBusy as exc:
            print(f"lanet worker {rep.worker}: {spec.label}: {exc}; left to it", flush=True)
            rep.busy.append(spec.label)
            continue
        except Exception as exc:  # noqa: BLE001 - reported per run; the other runs go on
            traceback.print_exc()
            rep.failed.append((spec.label, f"{type(exc).__name__}: {exc}"))
            if mark is not None and mark.parent.is_dir():  # never create a run folder just for the mark
                try:
                    atomic_write_text(mark, f"{type(exc).__name__}: {exc}\n")
                except OSError:
                    pass
            continue
        (rep.cached if r.cached else rep.trained).append(spec.label)
        print(f"lanet worker {rep.worker}: {spec.label}: {r.summary()} "
              f"({'finished before' if r.cached else f'{(time.time() - t0) / 60:.1f} min'})", flush=True)
    return rep


def _gpu_ids() -> list[int]:
    """The GPUs this process may use, as numbers for the job's CUDA_VISIBLE_DEVICES (the parent's own
    CUDA_VISIBLE_DEVICES list where set, so workers never land on GPUs the user excluded)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if any(not v.isdigit() for v in ids):
            raise ConfigError(f"--executor local: CUDA_VISIBLE_DEVICES={visible!r} holds non-numeric ids (GPU UUIDs "
                              "or MIG devices); submitit's local executor needs numeric indices to give each worker "
                              "one GPU: set CUDA_VISIBLE_DEVICES=0,1,... or run inline")
        return [int(v) for v in ids]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001
        return []


def submit(profile: Profile, specs: Sequence[RunSpec], executor: str, *, jobs: int = 2,
           slurm: SlurmOptions | None = None, deadline: float | None = None) -> list:
    """Submit ``specs`` (unfinished, distinct runs) and return the submitit jobs.

    ``local``: ``jobs`` workers, each given every run in a different order (worker k starts at run k), so they
    share the queue through the run claims. ``slurm``: one array task per run.
    """
    import submitit

    if executor not in ("local", "slurm"):
        raise ConfigError(f"--executor {executor!r}: one of {EXECUTORS}")
    from lanet_core.study.records import run_dir_of

    folder = log_dir(profile) / "%j"
    ref = str(profile.path) if profile.path else profile.name
    specs = list(specs)
    if not specs:
        return []
    for s in specs:  # a new submission retries the runs an earlier one failed on
        try:
            (run_dir_of(s, profile) / FAILED_MARK).unlink(missing_ok=True)
        except Exception:  # noqa: BLE001 - a spec that cannot even be resolved fails (and is reported) in its job
            pass
    if executor == "local":
        n = max(1, min(jobs, len(specs)))
        gpus = _gpu_ids()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = None if os.environ.get("OMP_NUM_THREADS") else max(1, cores // n)
        out = []
        for k in range(n):
            ex = submitit.LocalExecutor(folder=folder)
            params: dict[str, Any] = {"timeout_min": 7 * 24 * 60}
            if gpus:
                params.update(gpus_per_node=1, visible_gpus=(gpus[k % len(gpus)],))
            ex.update_parameters(**params)
            order = specs[k::n] + [s for i, s in enumerate(specs) if i % n != k]
            out.append(ex.submit(train_specs, ref, order, f"local-{k}", deadline, threads))
        return out
    opts = slurm or SlurmOptions()
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {"timeout_min": int(opts.time_minutes), "cpus_per_task": int(opts.cpus_per_job),
              "slurm_array_parallelism": int(opts.array_parallelism), "name": f"lanet-{profile.name}"}
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.gpus_per_job:
        params["gpus_per_node"] = int(opts.gpus_per_job)
    if opts.mem_gb:
        params["mem_gb"] = float(opts.mem_gb)
    params.update(opts.extra)
    ex.update_parameters(**params)
    n = len(specs)
    return ex.map_array(train_specs, [ref] * n, [[s] for s in specs], [""] * n, [deadline] * n,
                        [int(opts.cpus_per_job)] * n)


def wait_for(jobs: list, profile: Profile) -> tuple[list[TaskReport], list[str]]:
    """Block until every job ends. Returns the reports and one line per job that crashed (with its log)."""
    reports, crashed = [], []
    try:
        for job in jobs:
            try:
                reports.append(job.result())
            except Exception as exc:  # noqa: BLE001 - a crashed job (killed, out of memory, time limit)
                first = str(exc).strip().splitlines()
                crashed.append(f"job {job.job_id}: {first[0] if first else type(exc).__name__} "
                               f"(log: {log_dir(profile) / str(job.job_id)})")
    except KeyboardInterrupt:  # Ctrl-C: cancel what was submitted rather than leave it training unattended
        for job in jobs:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001
                pass
        print(f"lanet study: interrupted; {len(jobs)} job(s) cancelled (finished runs are kept)", flush=True)
        raise
    return reports, crashed
