"""``lanet study --plan``: every run a profile will train, its identity and state, and the compute it needs,
before any compute is spent.

Throughput (training images/s) comes from *measurements*: the median ``images_per_s`` of finished runs of the
same architecture, backbone, input size and lesion-map stride on the same kind of device (their
``history.csv``), else ``lanet bench`` records in ``results/benchmarks/``, else R18+LA-Net's measured rate
scaled by the pixel count (an assumption, marked ``assumed``). Hours = epochs x training images / rate, plus
10 % for validation passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lanet_core.models.geometry import fusion_stride
from lanet_core.paths import results_dir
from lanet_core.runs import load_result, prepare_run
from lanet_core.study.experiments import NOTEBOOK_EXPERIMENTS, experiment_runs
from lanet_core.study.profiles import Profile

EVAL_OVERHEAD = 1.10


def _device_kind(prov: dict) -> str:
    dev = str(prov.get("device", "cpu"))
    return f"cuda: {prov.get('hardware', {}).get('gpu', 'GPU')}" if dev.startswith("cuda") else "cpu"


def _key(cfg: dict) -> tuple:
    m = cfg["model"]
    return (m["arch"], m["backbone"], int(cfg["data"]["image_size"]), fusion_stride(m))


def measured_rates(runs_root: Path, device: str = "cpu") -> dict[tuple, float]:
    """Median training images/s of finished runs per (arch, backbone, size, stride) on ``device``."""
    rates: dict[tuple, list[float]] = {}
    for metrics in sorted(Path(runs_root).glob("*/metrics.json")):
        d = metrics.parent
        try:
            prov = json.loads((d / "provenance.json").read_text())
            cfg = load_result(d).config
            hist = pd.read_csv(d / "history.csv")
        except Exception:  # a damaged or partial record does not stop a plan
            continue
        if _device_kind(prov) != device or "images_per_s" not in hist:
            continue
        rates.setdefault(_key(cfg), []).extend(hist["images_per_s"].dropna().tolist())
    return {k: float(np.median(v)) for k, v in rates.items() if v}


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


def study_plan(profile: Profile, notebooks: list[str], device: str = "cpu") -> pd.DataFrame:
    """One row per unique run of the notebooks' experiments: what, identity, state, estimated hours."""
    from lanet_core.data.sources import load_manifest

    measured = measured_rates(profile.output / "runs", device)
    benched = bench_rates()
    ref = measured.get(("lanet", "resnet18", 128, 32)) or benched.get(("lanet", "resnet18", 128, 32)) or 20.0
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
                images2 = len(train) if cfg["data"]["train_images"] == "all" else labelled
                t = cfg["train"]
                images = t["stage1_epochs"] * labelled + t["stage2_epochs"] * images2
                key = _key(cfg)
                if key in measured:
                    rate, source = measured[key], "measured (runs)"
                elif key in benched:
                    rate, source = benched[key], "measured (bench)"
                else:
                    rate, source = ref * (128 / key[2]) ** 2, "assumed (R18+LA-Net rate x pixels)"
                state = "finished" if (run_dir / "metrics.json").is_file() else (
                    "partial" if (run_dir / "checkpoints" / "last.pt").is_file() else "to train")
                rows.append({
                    "experiment": spec.experiment, "method": spec.method, "seed": spec.seed,
                    **{k: spec.group.get(k, "") for k in ("fold", "ratio", "target", "regime")},
                    "image_size": key[2], "backbone": key[1], "epochs": t["stage1_epochs"] + t["stage2_epochs"],
                    "config_hash": run_dir.name.rsplit("-", 1)[1], "state": state,
                    "images_per_s": round(rate, 1), "rate_source": source,
                    "est_hours": round(0 if state == "finished" else images / rate * EVAL_OVERHEAD / 3600, 4),
                })
    return pd.DataFrame(rows)


def print_plan(plan: pd.DataFrame, device: str = "cpu") -> None:
    with pd.option_context("display.width", 200, "display.max_rows", 2000, "display.max_columns", 30):
        print(plan.to_string(index=False))
    todo = plan[plan["state"] != "finished"]
    print(f"\n{len(plan)} unique runs: {int((plan['state'] == 'finished').sum())} finished, "
          f"{int((plan['state'] == 'partial').sum())} partial, {int((plan['state'] == 'to train').sum())} to train; "
          f"estimated {todo['est_hours'].sum():.1f} {device}-hours for what is missing "
          f"({int(todo['rate_source'].str.startswith('assumed').sum())} of them at an assumed rate)")
