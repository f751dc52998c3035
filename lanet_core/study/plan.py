"""``lanet study --plan``: every run a profile will train, its identity and state, and the compute it needs,
before any compute is spent.

Throughput (training images/s) comes from *measurements*: the median ``images_per_s`` of finished runs of the
same architecture, backbone, input size and lesion-map stride on the same kind of device (their
``history.csv``), else ``lanet bench`` records in ``results/benchmarks/``, else R18+LA-Net's measured rate
scaled by the pixel count (an assumption, marked ``assumed``). Hours = epochs x training images / rate x the
evaluation overhead: the median ratio of a finished run's wall time (fit and test pass, ``provenance.json``) to
its training seconds (``history.csv``), measured per experiment and configuration on the same kind of device (so
the BUS-BRA CV runs, whose validation and test sets are large, are priced with their own ~25 %), else per
experiment, else :data:`EVAL_OVERHEAD`. A partly trained run is priced for the training images its checkpoint has not
finished yet (:func:`trained_epochs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lanet_core.models.geometry import fusion_stride
from lanet_core.paths import results_dir
from lanet_core.runs import load_result, prepare_run
from lanet_core.study.experiments import NOTEBOOK_EXPERIMENTS, experiment_runs
from lanet_core.study.records import device_name
from lanet_core.study.profiles import Profile
from lanet_core.training.stages import plan_stages

#: Wall time over training time where no finished run measures it (validation and test passes, pseudo-labels).
EVAL_OVERHEAD = 1.10


def _key(cfg: dict) -> tuple:
    m = cfg["model"]
    return (m["arch"], m["backbone"], int(cfg["data"]["image_size"]), fusion_stride(m))


@dataclass(frozen=True)
class Measured:
    """What finished runs on one device measure: ``rates`` (median training images/s per configuration key,
    :func:`_key`) and ``overheads`` (median wall time / training time per ``(experiment, key)``)."""

    rates: dict[tuple, float]
    overheads: dict[tuple, float]

    def overhead(self, experiment: str, key: tuple) -> tuple[float, str]:
        """The overhead for a run and where it comes from: this experiment and configuration, else the
        experiment's median, else :data:`EVAL_OVERHEAD` (assumed)."""
        if (experiment, key) in self.overheads:
            return self.overheads[(experiment, key)], "measured (experiment, configuration)"
        same = [v for (e, _), v in self.overheads.items() if e == experiment]
        if same:
            return float(np.median(same)), "measured (experiment)"
        return EVAL_OVERHEAD, "assumed"


def _wall_seconds(walls: dict) -> float:
    """A run's wall time from ``provenance.json``'s ``wall_seconds``: its stages (summed over resumed sessions) or,
    where larger, the fit call of an uninterrupted run (which also holds set-up and checkpointing), plus the test
    pass."""
    stages = sum(float(v) for k, v in walls.items() if k not in ("fit_call", "test_eval"))
    return max(stages, float(walls.get("fit_call", 0.0))) + float(walls.get("test_eval", 0.0))


def trained_epochs(run_dir: Path) -> dict[str, int]:
    """Epochs per stage (``{"stage1": 12, "stage2": 3}``) a partly trained run has finished, from the history its
    ``checkpoints/last.pt`` records; ``{}`` where there is no checkpoint the trainer would resume from (missing,
    unreadable or of another format: the run restarts, :meth:`Trainer._load_last`). Read ``weights_only`` (no
    unpickling), memory-mapped where the file allows."""
    import torch

    from lanet_core.training.trainer import CHECKPOINT_FORMAT

    path = Path(run_dir) / "checkpoints" / "last.pt"
    if not path.is_file():
        return {}
    try:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a file torch cannot memory-map (legacy, non-zip): read it whole
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return {}
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        return {}
    epochs: dict[str, int] = {}
    for h in ck.get("history") or []:
        stage = str(h.get("stage", ""))
        epochs[stage] = epochs.get(stage, 0) + 1
    return epochs


def measurements(runs_root: Path, device: str = "cpu") -> Measured:
    """Rates and evaluation overheads of the finished runs under ``runs_root`` trained on ``device``. A run's
    experiment is its directory name up to the first ``-``; a damaged or partial record is skipped (a plan is an
    estimate, never stopped by one bad record)."""
    rates: dict[tuple, list[float]] = {}
    overheads: dict[tuple, list[float]] = {}
    for metrics in sorted(Path(runs_root).glob("*/metrics.json")):
        d = metrics.parent
        try:
            prov = json.loads((d / "provenance.json").read_text())
            cfg = load_result(d).config
            hist = pd.read_csv(d / "history.csv")
            key = _key(cfg)
        except Exception:  # a damaged or partial record does not stop a plan
            continue
        if device_name(prov, default="cpu") != device or "images_per_s" not in hist:
            continue
        rates.setdefault(key, []).extend(hist["images_per_s"].dropna().tolist())
        train_s = float(hist["train_seconds"].sum()) if "train_seconds" in hist else 0.0
        walls = prov.get("wall_seconds") or {}
        wall = _wall_seconds(walls) if isinstance(walls, dict) else 0.0
        if train_s > 0 and wall > 0:
            overheads.setdefault((d.name.split("-", 1)[0], key), []).append(wall / train_s)
    return Measured({k: float(np.median(v)) for k, v in rates.items() if v},
                    {k: float(np.median(v)) for k, v in overheads.items()})


def _merged(found: list[Measured]) -> Measured:
    """One :class:`Measured` from several run roots; a later root's measurement of a key replaces an earlier one's."""
    return Measured({k: v for m in found for k, v in m.rates.items()},
                    {k: v for m in found for k, v in m.overheads.items()})


def bench_rates() -> dict[tuple, float]:
    out = {}
    for path in sorted((results_dir() / "benchmarks").glob("bench_*.csv")):
        if path.stem.endswith("_data"):
            continue
        df = pd.read_csv(path)
        if "device" not in df or "train_img_per_s" not in df:
            continue
        for r in df[df["device"].astype(str).str.startswith("cpu")].itertuples():
            out.setdefault((r.arch, r.backbone, int(r.image_size), 32), float(r.train_img_per_s))
    return out


def gpu_kinds(runs_root: Path) -> list[str]:
    """The GPU kinds (``"cuda: <name>"``) finished runs were trained on, most runs first."""
    counts: dict[str, int] = {}
    for prov_path in sorted(Path(runs_root).glob("*/provenance.json")):
        try:
            kind = device_name(json.loads(prov_path.read_text()), default="cpu")
        except (OSError, ValueError):
            continue
        if kind.startswith("cuda"):
            counts[kind] = counts.get(kind, 0) + 1
    return sorted(counts, key=lambda k: -counts[k])


def study_plan(profile: Profile, notebooks: list[str], device: str = "cpu") -> pd.DataFrame:
    """One row per unique run of the notebooks' experiments: what, identity, state, estimated hours.

    ``est_hours`` is for ``device`` (rates measured on it, else assumed); where committed runs carry measured GPU
    rates, ``est_gpu_hours`` is the same run on that GPU (rates from the runs trained there, else the CPU rate scaled
    by the median GPU/CPU ratio of the configurations measured on both), so a GPU protocol is not priced in CPU hours.
    """
    from lanet_core.data.sources import load_manifest

    # rates of a configuration do not depend on the profile: the profile's own runs first, then the main results'
    roots = list(dict.fromkeys([profile.output / "runs", results_dir() / "runs"]))
    costs = _merged([measurements(r, device) for r in reversed(roots)])  # the profile's own runs override
    measured = costs.rates
    benched = bench_rates()
    ref = measured.get(("lanet", "resnet18", 128, 32)) or benched.get(("lanet", "resnet18", 128, 32)) or 20.0
    gpus = [g for r in roots for g in gpu_kinds(r)]
    gpu = gpus[0] if gpus else None
    gpu_costs = _merged([measurements(r, gpu) for r in reversed(roots)] if gpu else [])
    gpu_rates = gpu_costs.rates
    both = [gpu_rates[k] / measured[k] for k in gpu_rates if k in measured]
    speedup = float(np.median(both)) if both else None
    manifests: dict[str, pd.DataFrame] = {}
    rows, seen = [], set()
    for nb in notebooks:
        for exp in NOTEBOOK_EXPERIMENTS.get(nb, ()):
            for spec in experiment_runs(exp, profile):
                cfg, _, _, run_dir, _ = prepare_run(spec.config, profile.output / "runs")
                h = run_dir.name.rsplit("-", 1)[1]  # one run can serve several experiments (same identity)
                if h in seen:
                    continue
                seen.add(h)
                man = cfg["data"]["manifest"]
                if man not in manifests:
                    manifests[man] = load_manifest(man, cfg["data"]["root"])[0]
                df = manifests[man]
                train = df[df["split"] == "train"]
                labelled = int((train["location_label"] != "none").sum())
                t = cfg["train"]
                stages = plan_stages(cfg)  # the stages the trainer runs, as it runs them
                per_epoch = {st.name: len(train) if st.training_images == "all" else labelled for st in stages}
                images = sum(st.epochs * per_epoch[st.name] for st in stages)
                key = _key(cfg)
                if key in measured:
                    rate, source = measured[key], "measured (runs)"
                elif key in benched:
                    rate, source = benched[key], "measured (bench)"
                else:
                    rate, source = ref * (128 / key[2]) ** 2, "assumed (R18+LA-Net rate x pixels)"
                overhead, overhead_source = costs.overhead(spec.experiment, key)
                state = "finished" if (run_dir / "metrics.json").is_file() else (
                    "partial" if (run_dir / "checkpoints" / "last.pt").is_file() else "to train")
                if state == "partial":  # what its checkpoint has not trained yet, in the plan's own units
                    done = trained_epochs(run_dir)
                    images = max(images - sum(n * per_epoch.get(name, 0) for name, n in done.items()), 0)
                row = {
                    "experiment": spec.experiment, "method": spec.method, "seed": spec.seed,
                    **{k: spec.group.get(k, "") for k in ("fold", "ratio", "target", "regime", "boxed")},
                    "image_size": key[2], "backbone": key[1], "epochs": t["stage1_epochs"] + t["stage2_epochs"],
                    "config_hash": run_dir.name.rsplit("-", 1)[1], "state": state,
                    "images_per_s": round(rate, 1), "rate_source": source,
                    "eval_overhead": round(overhead, 3), "overhead_source": overhead_source,
                    "est_hours": round(0 if state == "finished" else images / rate * overhead / 3600, 4),
                }
                if gpu:
                    g_rate = gpu_rates.get(key) or (rate * speedup if speedup else None)
                    g_over, g_source = gpu_costs.overhead(spec.experiment, key)
                    g_over = overhead if g_source == "assumed" else g_over  # else the CPU's measured overhead
                    row["gpu"] = gpu
                    row["est_gpu_hours"] = (np.nan if g_rate is None else
                                            round(0 if state == "finished" else images / g_rate * g_over / 3600, 4))
                    row["gpu_rate_source"] = ("measured (runs)" if key in gpu_rates else
                                              f"cpu rate x {speedup:.1f} (median GPU/CPU)" if speedup else "none")
                rows.append(row)
    return pd.DataFrame(rows)


PLAN_COLUMNS = ("experiment", "method", "seed", "fold", "ratio", "boxed", "image_size", "config_hash", "state",
                "est_hours", "est_gpu_hours")


def print_plan(plan: pd.DataFrame, device: str = "cpu") -> None:
    """The plan in at most 120 columns (group columns only where used) and one summary per device."""
    cols = [c for c in PLAN_COLUMNS if c in plan and (plan[c].astype(str) != "").any()]
    shown = plan[cols].rename(columns={"est_hours": f"est {device} h", "est_gpu_hours": "est gpu h",
                                       "image_size": "px", "config_hash": "hash"})
    shown["method"] = shown["method"].str.slice(0, 28)
    with pd.option_context("display.width", 120, "display.max_rows", 5000, "display.max_columns", 30):
        print(shown.to_string(index=False))
    todo = plan[plan["state"] != "finished"]
    print(f"\n{len(plan)} unique runs: {int((plan['state'] == 'finished').sum())} finished, "
          f"{int((plan['state'] == 'partial').sum())} partial, {int((plan['state'] == 'to train').sum())} to train.")
    print(f"On {device}: estimated {todo['est_hours'].sum():.1f} {device}-hours for what is missing "
          f"({int(todo['rate_source'].str.startswith('assumed').sum())} runs at an assumed rate,\n"
          f"  {int((todo.get('overhead_source', pd.Series('assumed', index=todo.index)) == 'assumed').sum())} at the "
          f"assumed evaluation overhead x{EVAL_OVERHEAD:.2f}; a partly trained run for what its checkpoint has not "
          "trained).")
    if "est_gpu_hours" in plan and len(todo):
        print(f"On {plan['gpu'].iloc[0]}: estimated {todo['est_gpu_hours'].sum():.1f} gpu-hours "
              f"({int((todo['gpu_rate_source'] == 'measured (runs)').sum())} runs at rates measured there, the others "
              f"scaled from the CPU rate).")
