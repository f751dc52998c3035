"""``lanet bench``: training and inference images/s and peak memory, end to end through the real data path.

Each (architecture, backbone, size) is measured in a fresh subprocess so peak memory is its own:
the manifest's training rows go through the cached dataset, the paper augmentation and a DataLoader
into ``steps`` optimiser steps (after 2 warm-up steps), then ``steps`` no-grad forward passes. Peak
memory is the process's maximum resident set size on CPU (``ru_maxrss``) or
``torch.cuda.max_memory_allocated`` on GPU. The data-path timing (cold decode vs warm cache) is reported
once per size. Timings never enter unit tests.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from lanet_core.config import load_config
from lanet_core.precision import cpu_capability, native_bf16, precision_name

PRECISIONS = {"fp32": ["train.amp=false", "train.channels_last=false"],
              "bf16": ["train.amp=true", "train.channels_last=true"],
              "auto": ["train.amp=auto", "train.channels_last=auto"]}


def _itr(loader):
    while True:
        yield from loader


def bench_one(cfg: dict, steps: int = 10, warmup: int = 2) -> dict[str, Any]:
    """Measure one config in this process (call through :func:`run_benchmark` for clean peak memory)."""
    from lanet_core.evaluation import autocast_for
    from lanet_core.training.context import RunContext
    from lanet_core.training.loop import build_optimizer, train_step
    from lanet_core.training.stages import plan_stages

    ctx = RunContext.from_config(cfg)
    model = ctx.build_model()
    stage = plan_stages(ctx.cfg)[-1]
    ds = ctx.dataset(ctx.rows_for("train", "all"), train=True)
    ds.warm()
    opt = build_optimizer(ctx.cfg, model)
    it = _itr(ctx.loader(ds, True, 0))
    dev = ctx.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()

    def step(b: dict) -> int:
        """The training loop's own step (:func:`lanet_core.training.loop.train_step`)."""
        return train_step(ctx, model, opt, stage, {k: v.to(dev) for k, v in b.items()})[0]

    def timed(batches) -> float:
        """images/s over ``steps`` steps after ``warmup`` steps; ``batches`` yields batches."""
        n, t0 = 0, 0.0
        for i in range(warmup + steps):
            if i == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0, n = time.perf_counter(), 0
            n += step(next(batches))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t0)

    # the bare model step: one fixed batch, no data path
    fixed = next(it)
    step_ips = timed(iter(lambda: fixed, None))
    # the real data path: cache -> augmentation -> DataLoader -> step
    train_ips = timed(it)
    model.eval()
    n = 0
    with torch.no_grad():
        for i in range(warmup + steps):
            if i == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0, n = time.perf_counter(), 0
            x = ctx.model_input(next(it)["image"].to(dev))
            with autocast_for(dev, ctx.amp):
                model(x)
            n += len(x)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    infer_ips = n / (time.perf_counter() - t0)
    return {
        "arch": cfg["model"]["arch"],
        "backbone": cfg["model"]["backbone"],
        "image_size": cfg["data"]["image_size"],
        "batch_size": cfg["train"]["batch_size"],
        "device": str(dev) + (f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""),
        "threads": torch.get_num_threads(),
        "precision": precision_name(ctx.amp),
        "channels_last": ctx.channels_last,
        "train_img_per_s": round(train_ips, 2),
        "step_img_per_s": round(step_ips, 2),
        "data_path_share": round(max(0.0, 1 - train_ips / step_ips), 3),
        "infer_img_per_s": round(infer_ips, 2),
        "peak_mem_mib": round(peak, 1),
        "peak_mem_kind": "cuda max allocated" if dev.type == "cuda" else "process max RSS",
    }


def _cpu_name() -> str:
    from lanet_core.runs import hardware

    return hardware()["cpu"]


def data_pass(cfg: dict) -> dict[str, Any]:
    """Time a cold pass (decode + resize + write the cache) and a warm pass (read the cache) over all rows."""
    from lanet_core.data.dataset import ImageCache, LesionDataset
    from lanet_core.data.sources import load_manifest

    rows, _, data_root = load_manifest(cfg["data"]["manifest"], cfg["data"]["root"])
    size, policy = cfg["data"]["image_size"], cfg["data"]["resize"]
    with tempfile.TemporaryDirectory() as tmp:
        cold_cache = ImageCache(data_root, size, policy, root=Path(tmp))
        t0 = time.perf_counter()
        decoded = LesionDataset(rows, data_root, size, cache=cold_cache).warm()
        cold = time.perf_counter() - t0
        warm_cache = ImageCache(data_root, size, policy, root=Path(tmp))
        t0 = time.perf_counter()
        redecoded = LesionDataset(rows, data_root, size, cache=warm_cache).warm()
        warm = time.perf_counter() - t0
        nbytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.npz"))
    return {"image_size": size, "images": len(rows), "decoded_cold": decoded, "decoded_warm": redecoded,
            "cold_s": round(cold, 2), "warm_s": round(warm, 2), "cache_mib": round(nbytes / 2**20, 1)}


def run_benchmark(
    config: str = "configs/busi_lanet_r18.yaml",
    overrides: Sequence[str] = (),
    sizes: Sequence[int] = (128, 256),
    archs: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    batch_size: int | None = None,
    steps: int = 10,
    out_csv: Path | None = None,
    precisions: Sequence[str] = ("fp32", "bf16"),
) -> pd.DataFrame:
    """Bench every (arch, backbone, size, precision); prints a table, optionally appends to ``out_csv``.

    ``precisions``: ``fp32`` and ``bf16`` force the precision (side by side on this machine); ``auto`` is what
    a run with ``train.amp: auto`` uses here.
    """
    base = load_config(config, overrides)
    cap = cpu_capability()
    print(f"cpu capability: {json.dumps(cap)}; native bf16 on CPU: {native_bf16(torch.device('cpu'))}", flush=True)
    archs = archs or [base["model"]["arch"]]
    backbones = backbones or [base["model"]["backbone"]]
    results, passes = [], []
    for size in sizes:
        cfg = load_config(config, [*overrides, f"data.image_size={size}"])
        passes.append(data_pass(cfg))
        print("data path:", json.dumps(passes[-1]), flush=True)
        for arch in archs:
            for bb, prec in ((b, p) for b in backbones for p in precisions):
                extra = [f"data.image_size={size}", f"model.arch={arch}", f"model.backbone={bb}", "train.progress=false",
                         *PRECISIONS[prec]]
                if batch_size:
                    extra.append(f"train.batch_size={batch_size}")
                cfg = load_config(config, [*overrides, *extra])
                proc = subprocess.run(
                    [sys.executable, "-m", "lanet_core.bench", json.dumps(cfg), str(steps)],
                    capture_output=True, text=True,
                )
                if proc.returncode != 0:
                    print(f"bench {arch}/{bb}/{size}/{prec} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.update(cpu=_cpu_name(), cpu_isa=cap["isa"], cpu_native_bf16=bool(cap["avx512_bf16"] or cap["amx"]))
                results.append(res)
                print(json.dumps(res), flush=True)
    df = pd.DataFrame(results)
    if len(df):
        print(df.to_string(index=False))
    if out_csv is not None and len(df):
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out_csv, mode="a", header=not out_csv.exists(), index=False)
        pd.DataFrame(passes).to_csv(out_csv.with_name(out_csv.stem + "_data.csv"), mode="a",
                                    header=not out_csv.with_name(out_csv.stem + "_data.csv").exists(), index=False)
    return df


if __name__ == "__main__":  # subprocess entry: python -m lanet_core.bench '<config json>' STEPS
    print(json.dumps(bench_one(json.loads(sys.argv[1]), int(sys.argv[2]))))


def inference_latency(config: str = "configs/busi_lanet_r18.yaml", overrides: Sequence[str] = (),
                      sizes: Sequence[int] = (128, 256), threads: int = 2, runs: int = 50,
                      quantize: bool = True, out_csv: Path | None = None) -> pd.DataFrame:
    """Batch-1 latency on this CPU: PyTorch eager (fp32; bf16 autocast where native) vs ONNX Runtime (fp32, and
    int8 with static QDQ quantisation calibrated on random inputs: latency only, accuracy is checked separately)
    for the config's (untrained) model at each size. Prints and returns one row per (size, engine)."""
    from lanet_core.inference import export_model, latency, quantize_onnx
    from lanet_core.models.factory import build_model

    cap = cpu_capability()
    rows = []
    for size in sizes:
        cfg = load_config(config, [*overrides, f"data.image_size={size}"])
        model = build_model(cfg).eval().float()
        rows.append({**latency(model, size, runs=runs, threads=threads), "precision": "fp32"})
        if native_bf16(torch.device("cpu")):
            from lanet_core.evaluation import autocast_for

            class _BF16(torch.nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.m = m.to(memory_format=torch.channels_last)

                def forward(self, x):
                    with autocast_for(torch.device("cpu"), True):
                        return self.m(x.contiguous(memory_format=torch.channels_last))

            rows.append({**latency(_BF16(model), size, runs=runs, threads=threads), "precision": "bf16-autocast"})
        with tempfile.TemporaryDirectory() as tmp:
            path = export_model(model, size, Path(tmp) / "model.onnx")
            rows.append({**latency(path, size, runs=runs, threads=threads, engine="onnxruntime"), "precision": "fp32"})
            if quantize:
                q = quantize_onnx(path, Path(tmp) / "model_int8.onnx", size)
                rows.append({**latency(q, size, runs=runs, threads=threads, engine="onnxruntime"), "precision": "int8 (QDQ)"})
    df = pd.DataFrame(rows)
    df.insert(0, "model", f"{cfg['model']['arch']}/{cfg['model']['backbone']}/stride{cfg['model']['fusion_stride']}")
    df["cpu"], df["cpu_isa"], df["cpu_native_bf16"] = _cpu_name(), cap["isa"], bool(cap["avx512_bf16"] or cap["amx"])
    df["torch"], df["onnxruntime"] = torch.__version__, _ort_version()
    print(df.round(2).to_string(index=False))
    if out_csv is not None:
        out_csv = Path(out_csv)
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        df.round(3).to_csv(out_csv, index=False, lineterminator="\n")
    return df


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


