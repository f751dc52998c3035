"""``lanet study``: train every run a profile needs (resumable, within a time budget), then execute the
study's notebooks with papermill into ``<output>/notebooks/``.

Training happens first, notebook by notebook, through the run cache; notebooks then render from the
cached records (re-executing one never retrains). ``--budget-minutes N`` stops cleanly after about N
minutes (the epoch in progress finishes and is checkpointed); the next call continues where it stopped.
``--render-only`` never trains (``make figures``). Each notebook's outcome and time go to
``<output>/notebooks/status.csv``; a failing notebook stops the study with its name, cell and error.

Notebooks are always rendered with ``train=False``: the training phase above has finished every run they read, so
``make study`` and ``make figures`` write the same executed notebook, and the train flag is no part of a notebook's
fingerprint (a cached ``make study`` re-executes nothing and changes no file). The kernels' own log lines (e.g.
"Kernel is running over TCP without encryption") go to a log beside the output, shown only when a notebook fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lanet_core.io import atomic_write_text
from lanet_core.errors import BudgetExhausted, ConfigError
from lanet_core.paths import project_root
from lanet_core.study.experiments import EXPERIMENTS, NOTEBOOK_EXPERIMENTS, experiment_runs
from lanet_core.study.profiles import Profile, load_profile, profile_path
from lanet_core.study.records import ensure_run, run_dir_of

log = logging.getLogger(__name__)

KERNEL = "lanet"


def notebooks_source_dir() -> Path:
    return project_root() / "notebooks"


def select_notebooks(profile: Profile, only: list[str] | None) -> list[str]:
    names = list(profile.notebooks)
    if not only:
        return names
    chosen = []
    for o in only:
        stem = Path(o).stem
        match = [n for n in names if n == stem or n.split("_", 1)[-1] == stem or n.startswith(stem)]
        if not match:
            raise ConfigError(f"--only {o!r}: no such notebook in profile {profile.name!r} ({names})")
        chosen += [m for m in match if m not in chosen]
    return chosen


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/8"`` -> ``(2, 8)``: this process trains every 8th unfinished run, starting at the third."""
    if not text:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected K/N with integers, e.g. 0/4") from None
    if not 0 <= k < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def shard_specs(specs: list, profile: Profile, shard: tuple[int, int]) -> list:
    """The k-th of n interleaved shares of the distinct runs in ``specs`` that are unfinished now."""
    unique, seen = {}, set()
    for spec in specs:
        d = run_dir_of(spec, profile)
        ident = d.name.rsplit("-", 1)[-1]  # the config hash: one run, whatever experiment names it
        if ident in seen:
            continue
        seen.add(ident)
        if not (d / "metrics.json").is_file():
            unique[ident] = spec
    return list(unique.values())[shard[0]::shard[1]]


_EXPERIMENT_CALL = re.compile(r"""\.experiment\(\s*["']([A-Za-z0-9_]+)["']""")


def notebook_experiments(nb: str, source: str | None = None) -> tuple[str, ...]:
    """The experiments notebook ``nb`` reads: its :data:`NOTEBOOK_EXPERIMENTS` entry, then every
    ``study.experiment("<name>")`` its source names (``source``: the ``.py`` text; read from the notebooks folder
    when not given). The notebooks render with ``train=False``, so whatever they read must be trained first."""
    if source is None:
        src = notebooks_source_dir() / f"{nb}.py"
        source = src.read_text() if src.is_file() else ""
    named = [e for e in _EXPERIMENT_CALL.findall(source) if e in EXPERIMENTS]
    return tuple(dict.fromkeys([*NOTEBOOK_EXPERIMENTS.get(nb, ()), *named]))


def study_specs(profile: Profile, notebooks: list[str]) -> list:
    """Every run the notebooks need, in notebook order (an experiment read by two notebooks listed once)."""
    seen: set[str] = set()
    specs = []
    for nb in notebooks:
        for exp in notebook_experiments(nb):
            if exp in seen:
                continue
            seen.add(exp)
            specs += experiment_runs(exp, profile)
    return specs


def train_with_executor(profile: Profile, notebooks: list[str], executor: str, jobs: int,
                        slurm=None, wait: bool = True, deadline: float | None = None) -> str:
    """Train the unfinished runs as submitit jobs (:mod:`lanet_core.study.executor`).

    Returns ``done`` (every run finished), ``budget`` (stopped cleanly at the deadline), ``submitted``
    (``wait=False``) or ``missing`` (runs failed or jobs crashed; reported on stderr)."""
    from lanet_core.study.executor import log_dir, submit, wait_for

    todo = shard_specs(study_specs(profile, notebooks), profile, (0, 1))
    if not todo:
        print("lanet study: every run is finished; nothing to submit", flush=True)
        return "done"
    jobs_ = submit(profile, todo, executor, jobs=jobs, slurm=slurm, deadline=deadline)
    ids = [str(j.job_id) for j in jobs_]
    print(f"lanet study: {len(todo)} unfinished runs submitted ({executor}): "
          f"{len(ids)} job(s) {ids[0]}{' .. ' + ids[-1] if len(ids) > 1 else ''}; logs in {log_dir(profile)}",
          flush=True)
    if not wait:
        print(f"lanet study: not waiting. When the jobs end: lanet study --profile {profile.name} --render-only",
              flush=True)
        return "submitted"
    reports, crashed = wait_for(jobs_, profile)
    trained = sum(len(r.trained) for r in reports)
    errors: dict[str, str] = {}
    for r in reports:  # one line per failed run, however many workers met it
        for label, err in r.failed:
            if label not in errors or errors[label].startswith("failed in another worker"):
                errors[label] = err
    failed = [f"{label}: {err}" for label, err in sorted(errors.items())]
    left = shard_specs(study_specs(profile, notebooks), profile, (0, 1))
    busy = sorted({label for r in reports for label in r.busy} & {s.label for s in left})
    if busy:
        print(f"lanet study: {len(busy)} run(s) held by another process (an inline study, another submission) "
              f"and not finished yet: {', '.join(busy[:5])}{' ...' if len(busy) > 5 else ''}", file=sys.stderr,
              flush=True)
    print(f"lanet study: jobs ended: {trained} runs trained, {len(failed)} failed, {len(crashed)} job(s) crashed, "
          f"{len(left)} runs unfinished", flush=True)
    for line in failed + crashed:
        print(f"  {line}", file=sys.stderr, flush=True)
    if left and any(r.stopped for r in reports) and not failed and not crashed:
        print("lanet study: the time budget ran out; run the same command again to continue.", flush=True)
        return "budget"
    return "missing" if left else "done"


def train_all(profile: Profile, notebooks: list[str], deadline: float | None,
              shard: tuple[int, int] | None = None) -> tuple[int, int]:
    """Train (or find finished) every run the notebooks need, in notebook order. Returns (done, total).

    ``shard=(k, n)`` trains only the k-th of n interleaved shares of the runs unfinished at the start, so that
    n processes (or machines sharing the run folder) train disjoint runs at once.
    """
    specs = study_specs(profile, notebooks)
    if shard is not None:
        unfinished = shard_specs(specs, profile, (0, 1))
        specs = unfinished[shard[0]::shard[1]]
        print(f"lanet study: shard {shard[0]}/{shard[1]}: {len(specs)} of {len(unfinished)} unfinished runs", flush=True)
    total, done = len(specs), 0
    t_all = time.time()
    for i, spec in enumerate(specs, 1):
        if deadline is not None and time.time() > deadline:
            raise BudgetExhausted(f"time budget reached: {done}/{total} runs finished")
        t0 = time.time()
        r = ensure_run(spec, profile, train=True, deadline=deadline)
        done += 1
        if not r.cached:
            print(f"[{i}/{total}] {spec.label}: {r.summary()} in {(time.time() - t0) / 60:.1f} min "
                  f"(study {(time.time() - t_all) / 60:.0f} min)", flush=True)
    return done, total


def _fingerprint(profile: Profile, nb: str, source: str, _memo: dict | None = None) -> str:
    """What notebook ``nb`` renders from, hashed: unchanged -> skip re-execution.

    Its source, the profile, the ``metrics.json`` of every run of every experiment it reads
    (:func:`notebook_experiments`), and the fingerprints of the notebooks whose tables it reads: the data audit
    (the profile's first notebook: its near-duplicate list feeds the leak-free tables) for every later notebook,
    and every other notebook for the summary (the profile's last, which reads every table). Neither the train
    flag nor the time enters: notebooks always render from the records (``train=False``)."""
    memo = {} if _memo is None else _memo
    h = hashlib.sha256(source.encode())
    h.update(profile.path.read_bytes() if profile.path else b"")
    for exp in notebook_experiments(nb, source):
        if exp not in memo:
            e = hashlib.sha256()
            for spec in experiment_runs(exp, profile):
                m = run_dir_of(spec, profile) / "metrics.json"
                e.update(m.read_bytes() if m.is_file() else b"missing")
            memo[exp] = e.hexdigest()
        h.update(memo[exp].encode())
    order = list(profile.notebooks)
    if nb in order and len(order) > 1:
        upstream = [n for n in order if n != nb] if nb == order[-1] else ([order[0]] if nb != order[0] else [])
        for other in upstream:
            key = f"notebook:{other}"
            if key not in memo:
                src = notebooks_source_dir() / f"{other}.py"
                memo[key] = _fingerprint(profile, other, src.read_text() if src.is_file() else "", memo)
            h.update(f"{other}={memo[key]}".encode())
    return h.hexdigest()[:16]


def kernel_name() -> str:
    from jupyter_client.kernelspec import find_kernel_specs

    return KERNEL if KERNEL in find_kernel_specs() else "python3"


def execute_notebook(profile: Profile, nb: str, *, train: bool, fingerprint: str | None = None) -> Path:
    """Execute ``notebooks/<nb>.py`` (jupytext percent source) with papermill into the profile's output.

    ``train`` is passed to the notebook as its parameter (the study runner passes ``False``: it has trained
    first). ``fingerprint`` (:func:`_fingerprint`) is recorded in the executed copy's metadata when it succeeds.
    The kernel's own stdout/stderr (its start-up and shutdown log lines, not the cells' output) go to a log file
    that is printed only when the notebook fails."""
    import jupytext
    import papermill as pm

    src = notebooks_source_dir() / f"{nb}.py"
    if not src.is_file():
        raise ConfigError(f"notebook source {src} not found")
    out = profile.notebooks_dir / f"{nb}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(src)
    os.environ["LANET_STUDY_RUNNER"] = "1"  # the kernel inherits it: notebooks know the runner executes them
    notebook.metadata.setdefault("kernelspec", {"name": KERNEL, "display_name": "Python (lanet)", "language": "python"})
    notebook.metadata.setdefault("language_info", {"name": "python"})
    notebook.metadata.pop("jupytext", None)  # an executed copy is no pair of the source: opened, it must not write a .py
    # temporary files beside the output (not in $TMPDIR, which may be another filesystem: rename would fail
    # with "Invalid cross-device link"), unique per writer; a notebook error is never masked by the cleanup
    with tempfile.TemporaryDirectory(prefix=f".{nb}.", dir=out.parent) as tmp:
        tmp_in = Path(tmp) / f"{nb}.ipynb"
        jupytext.write(notebook, tmp_in)
        tmp_out = Path(tmp) / f"{nb}.out.ipynb"
        kernel_log = Path(tmp) / "kernel.log"
        error: BaseException | None = None
        try:
            with open(kernel_log, "wb") as log_fh:
                pm.execute_notebook(
                    str(tmp_in), str(tmp_out), parameters={"profile": profile_argument(profile), "train": train},
                    kernel_name=kernel_name(), progress_bar=False, cwd=str(notebooks_source_dir()),
                    kernel_manager_class=_quiet_kernel_manager(log_fh),
                )
        except BaseException as exc:  # keep the executed copy (it shows the failing cell), then re-raise
            error = exc
            _show_kernel_log(nb, kernel_log)
        try:
            if tmp_out.exists():
                _strip_volatile(tmp_out, fingerprint=fingerprint if error is None else None)
                os.replace(tmp_out, out)
        except OSError as exc:
            if error is None:
                raise
            log.warning("%s: could not keep the executed notebook (%s)", nb, exc)
        if error is not None:
            raise error
    return out


def _quiet_kernel_manager(log_fh):
    """A kernel manager class whose kernel writes its process-level stdout/stderr to ``log_fh`` instead of this
    terminal: ipykernel logs "Kernel is running over TCP without encryption" at every start and "KeyboardInterrupt
    caught in kernel" at shutdown. The cells' outputs travel over the kernel's channels and are not affected."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):  # type: ignore[override]
            kw.setdefault("stdout", log_fh)
            kw.setdefault("stderr", log_fh)
            return await super().start_kernel(**kw)

    return QuietKernelManager


def _show_kernel_log(nb: str, path: Path) -> None:
    """The kernel's own log of a failed notebook on stderr (a kernel that died says why there)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    lines = [ln for ln in text.splitlines() if not any(n in ln for n in _KERNEL_NOISE)]
    if lines:
        tail = "\n".join(lines[-20:])
        print(f"lanet study: {nb}: the kernel's log:\n{tail}", file=sys.stderr, flush=True)


_KERNEL_NOISE = ("Kernel is running over TCP without encryption", "KeyboardInterrupt caught in kernel")


def profile_argument(profile: Profile) -> str:
    """What a notebook's ``profile`` parameter must be to load exactly ``profile``: the built-in name when the
    profile is ``configs/profiles/<name>.yaml``, else its file path (a custom file whose ``name`` shadows a
    built-in profile must not render the built-in one)."""
    if profile.path is None:
        return profile.name
    try:
        builtin = profile_path(profile.name)
    except ConfigError:
        builtin = None
    if builtin is not None and Path(builtin).resolve() == Path(profile.path).resolve():
        return profile.name
    return str(Path(profile.path).resolve())


def _merge_streams(outputs: list[dict]) -> list[dict]:
    """Each run of consecutive stream outputs becomes one stdout then one stderr output.

    The kernel splits a cell's streams into chunks, and interleaves stdout and stderr, wherever timing falls;
    grouping them makes re-rendered notebooks byte-identical (order between the two streams is not kept).
    """
    merged: list[dict] = []
    block: dict[str, str] = {}

    def flush() -> None:
        for name in ("stdout", "stderr"):
            if name in block:
                merged.append({"name": name, "output_type": "stream", "text": block[name].splitlines(keepends=True)})
        block.clear()

    for out in outputs:
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            block[out.get("name", "stdout")] = block.get(out.get("name", "stdout"), "") + text
            continue
        flush()
        merged.append(out)
    flush()
    return merged


def _strip_volatile(path: Path, fingerprint: str | None = None) -> None:
    """Drop machine- and time-specific papermill metadata (env vars, temp paths, timestamps, durations) from an
    executed copy, so re-rendering unchanged records gives an unchanged notebook (times go to status.csv);
    ``fingerprint``: recorded as ``metadata.lanet.fingerprint`` (the copy says what it was rendered from)."""
    nb = json.loads(path.read_text())
    if fingerprint is not None:
        nb.setdefault("metadata", {})["lanet"] = {"fingerprint": fingerprint}
    pmeta = nb.get("metadata", {}).get("papermill", {})
    for key in ("environment_variables", "input_path", "output_path", "start_time", "end_time", "duration"):
        pmeta.pop(key, None)
    for i, cell in enumerate(nb.get("cells", [])):
        if "id" in cell:
            cell["id"] = f"cell-{i:03d}"  # jupytext draws random cell ids on every conversion
        if cell.get("outputs"):
            cell["outputs"] = _merge_streams(cell["outputs"])  # the kernel splits stdout where timing falls
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _status_path(profile: Profile) -> Path:
    return profile.notebooks_dir / "status.csv"


_STATUS_LOCK = threading.Lock()


def _record(profile: Profile, nb: str, outcome: str, seconds: float, fingerprint: str) -> None:
    with _STATUS_LOCK:
        _record_locked(profile, nb, outcome, seconds, fingerprint)


def _record_locked(profile: Profile, nb: str, outcome: str, seconds: float, fingerprint: str) -> None:
    path = _status_path(profile)
    df = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["notebook", "outcome", "seconds", "finished_utc", "fingerprint"])
    df = df[df["notebook"] != nb]
    row = {"notebook": nb, "outcome": outcome, "seconds": round(seconds, 1),
           "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "fingerprint": fingerprint}
    df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
    order = {n: i for i, n in enumerate(profile.notebooks)}
    df = df.sort_values("notebook", key=lambda s: s.map(order).fillna(999))
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def _last_fingerprint(profile: Profile, nb: str) -> str | None:
    path = _status_path(profile)
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype=str)
    hit = df[(df["notebook"] == nb) & (df["outcome"] == "ok")]
    return None if hit.empty else hit["fingerprint"].iloc[0]


def _executed_fingerprint(path: Path) -> str | None:
    """The fingerprint an executed copy records (``metadata.lanet.fingerprint``), None if absent or unreadable."""
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("lanet", {}).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def up_to_date(profile: Profile, nb: str, fingerprint: str) -> bool:
    """The executed copy exists and was rendered from what ``fingerprint`` hashes: recorded in the copy itself
    (so a clone holding the committed copies needs nothing else) or in ``status.csv``."""
    out = profile.notebooks_dir / f"{nb}.ipynb"
    if not out.is_file():
        return False
    return _executed_fingerprint(out) == fingerprint or _last_fingerprint(profile, nb) == fingerprint


def _execute_one(prof: Profile, nb: str, *, force: bool, render_only: bool) -> bool:
    """Execute one notebook unless up to date; returns False (and prints where) if it failed."""
    import papermill as pm

    src = notebooks_source_dir() / f"{nb}.py"
    fp = _fingerprint(prof, nb, src.read_text() if src.is_file() else "")
    if not (force or render_only) and up_to_date(prof, nb, fp):
        print(f"  {nb}: up to date", flush=True)
        return True
    t = time.time()
    print(f"  {nb}: executing ...", flush=True)
    try:
        # train=False whatever the call: the runs were trained above (render-only: not at all), so the executed copy
        # is the same for `make study` and `make figures`
        execute_notebook(prof, nb, train=False, fingerprint=fp)
    except pm.PapermillExecutionError as exc:
        _record(prof, nb, "failed", time.time() - t, fp)
        cell = exc.source.strip().splitlines()
        print(
            f"lanet study: notebook {nb} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n  cell begins: {cell[0] if cell else ''}\n"
            f"  executed copy with the traceback: {prof.notebooks_dir / (nb + '.ipynb')}",
            file=sys.stderr, flush=True,
        )
        return False
    _record(prof, nb, "ok", time.time() - t, fp)
    print(f"  {nb}: ok in {time.time() - t:.1f} s", flush=True)
    return True


def _execute_batch(prof: Profile, notebooks: list[str], *, force: bool, render_only: bool, jobs: int) -> bool:
    """Execute notebooks, ``jobs`` at a time; True if any failed."""
    if jobs <= 1 or len(notebooks) <= 1:
        return not all(_execute_one(prof, nb, force=force, render_only=render_only) for nb in notebooks)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        oks = list(pool.map(lambda nb: _execute_one(prof, nb, force=force, render_only=render_only), notebooks))
    return not all(oks)


def run_study(profile: str = "cpu", only: list[str] | None = None, force: bool = False,
              budget_minutes: float | None = None, render_only: bool = False, train_only: bool = False,
              jobs: int = 2, shard: str | None = None, plan: bool = False, executor: str = "inline",
              slurm=None, wait: bool = True) -> int:
    """The study runner behind ``lanet study`` / ``make study`` / ``make figures``. Returns an exit code.

    ``executor``: ``inline`` trains in this process (``--budget-minutes``, ``--shard`` apply); ``local`` / ``slurm``
    train the unfinished runs as submitit jobs (``jobs`` local workers / one SLURM array task per run,
    ``slurm``: :class:`lanet_core.study.executor.SlurmOptions`), then render once they have all finished.
    """
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)
    prof = load_profile(profile)
    notebooks = select_notebooks(prof, only)
    if plan:
        from lanet_core.study.plan import print_plan, study_plan

        print_plan(study_plan(prof, notebooks))
        return 0
    shard_kn = parse_shard(shard)
    if shard_kn is not None and not train_only:
        raise ConfigError("--shard trains a share of the runs: use it with --train-only, then render once")
    if executor != "inline" and shard_kn is not None:
        raise ConfigError(f"--executor {executor}: --shard applies to inline training only (the executor splits "
                          "the runs among its jobs)")
    deadline = time.time() + 60 * budget_minutes if budget_minutes else None
    print(f"lanet study: profile {prof.name} ({prof.description.strip().splitlines()[0] if prof.description else ''}); "
          f"output {prof.output}", flush=True)
    t0 = time.time()
    if not render_only and executor != "inline":
        state = train_with_executor(prof, notebooks, executor, jobs, slurm=slurm, wait=wait, deadline=deadline)
        if state == "missing":
            print("lanet study: runs are missing (see above); notebooks not rendered. Fix, then rerun the "
                  "same command: it submits only what is missing.", file=sys.stderr, flush=True)
            return 1
        if state != "done" or train_only:
            return 0
    elif not render_only:
        try:
            done, total = train_all(prof, notebooks, deadline, shard_kn)
        except BudgetExhausted as exc:
            print(f"lanet study: {exc}. Stopped cleanly after {(time.time() - t0) / 60:.1f} min; "
                  "run the same command again to continue.", flush=True)
            return 0
        print(f"lanet study: all {total} runs finished ({(time.time() - t0) / 60:.1f} min in this call)", flush=True)
        if train_only:
            return 0
    # 01_data_audit first (the leak-free companions read its near-duplicate list), 12_summary last (it reads
    # every table); the notebooks in between are independent and run `jobs` at a time.
    first = [nb for nb in notebooks if nb == prof.notebooks[0]]
    last = [nb for nb in notebooks if nb == prof.notebooks[-1] and nb not in first]
    middle = [nb for nb in notebooks if nb not in first + last]
    for batch in (first, middle, last):
        failed = _execute_batch(prof, batch, force=force, render_only=render_only, jobs=jobs)
        if failed:
            return 1
    print(f"lanet study: done in {(time.time() - t0) / 60:.1f} min; tables in {prof.tables_dir}, figures in {prof.figures_dir}",
          flush=True)
    return 0
