"""The lanet command line: each sub-command is a thin shell over a library function."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _cmd_validate(args: argparse.Namespace) -> int:
    from lanet_core.data.validate import validate_manifest

    problems = validate_manifest(args.manifest, data_root=args.data_root, check_files=not args.no_files)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    n_rows = getattr(problems, "n_rows", None)
    summary = f"{args.manifest}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)"
    if n_rows is not None:
        summary += f" in {n_rows} row(s)"
    print(summary)
    return 1 if errors else 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from lanet_core.data import importers

    if args.dataset == "video":
        from lanet_core.data.video import prepare_video_dataset

        out = Path(args.out) if args.out != "data_manifests" else Path(args.src) / "manifest.csv"
        written = [prepare_video_dataset(Path(args.src), out, data_root=Path(args.data_root) if args.data_root else None,
                                         every_nth=args.every_nth, min_gap=args.min_gap, seed=args.seed)]
    else:
        fn = {"busi": importers.prepare_busi, "busbra": importers.prepare_busbra}[args.dataset]
        written = fn(Path(args.src), Path(args.out))
    for path in written:
        print(f"wrote {path}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from lanet_core.data.download import download_dataset

    path = download_dataset(args.dataset, Path(args.dest) if args.dest else None, url=args.url, sha256=args.sha256)
    print(f"{args.dataset} ready under {path}")
    return 0


def _cmd_phantoms(args: argparse.Namespace) -> int:
    from lanet_core.data.phantoms import generate_phantom_dataset

    manifest = generate_phantom_dataset(
        Path(args.out), n_images=args.n, image_size=args.size, seed=args.seed
    )
    print(f"wrote {manifest}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from lanet_core.config import load_config
    from lanet_core.runs import train_or_load

    cfg = load_config(args.config, overrides=args.set)
    result = train_or_load(cfg, force=args.force)
    print(result.summary())
    print(f"run record: {result.run_dir}" + (" (a finished run with this config: reused)" if result.cached else ""))
    if result.cached and not (result.run_dir / "checkpoints" / "best.pt").is_file():
        print(f"no checkpoint in {result.run_dir} (checkpoints are not committed), so it cannot be exported or "
              f"predicted with. To get one, train the same config into another results folder, leaving this record "
              f"alone: LANET_RESULTS_DIR=~/lanet-retrained lanet train {args.config} (deterministic for the same "
              "commit, precision and thread count; see README, 'Applying a trained model')")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lanet_core.runs import evaluate_run_dir

    result = evaluate_run_dir(Path(args.run_dir), split=args.split, force=args.force)
    print(result.summary())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lanet_core.inference import export_onnx

    if args.int8_check:
        from lanet_core.inference import int8_check

        df = int8_check(Path(args.run_dir), Path(args.out) if args.out else None)
        print(df.round(4).to_string(index=False))
        return 0
    path = export_onnx(Path(args.run_dir), Path(args.out) if args.out else None, opset=args.opset)
    print(f"wrote {path}, {path.with_name('model.json')} and the model card {path.with_name('model_card.md')}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from lanet_core.inference import predict_images

    out = Path(args.out)
    res = predict_images(args.model, args.inputs, out, overlays=not args.no_overlays, masks=not args.no_masks,
                         result=True)
    written = [str(out / "predictions.csv")]
    if "overlay" in res.predictions:
        written.append(f"overlays in {out / 'overlays'}")
    if "mask" in res.predictions:
        written.append(f"lesion masks in {out / 'masks'}")
    print(f"{len(res.predictions)} image(s) predicted: {', '.join(written)}")
    n_skip = len(res.skipped)
    print(f"{n_skip} input(s) skipped" + (f", each with its reason in {out / 'skipped.csv'}" if n_skip else ""))
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from lanet_core.config import load_config
    from lanet_core.models.describe import describe_model

    cfg = load_config(args.config, overrides=args.set)
    print(describe_model(cfg))
    return 0


def _cmd_resolve(args: argparse.Namespace) -> int:
    from lanet_core.config import format_sources, read_config_file, resolve_with_sources
    from lanet_core.errors import ConfigError

    layers = []
    if args.experiment and not args.profile:
        raise ConfigError("--experiment needs --profile (the overrides are the profile's)")
    if args.profile:
        from lanet_core.study.experiments import EXPERIMENTS
        from lanet_core.study.profiles import load_profile

        prof = load_profile(args.profile)
        layers.append((f"profile {prof.name} (base)", prof.base))
        if args.experiment:
            if args.experiment not in EXPERIMENTS:
                raise ConfigError(f"--experiment {args.experiment!r}: not one of {sorted(EXPERIMENTS)}")
            if args.experiment in prof.overrides:
                layers.append((f"profile {prof.name} ({args.experiment})", prof.overrides[args.experiment]))
    path, user = read_config_file(args.config)
    layers.append((f"file {path.name}", user))
    cfg, sources = resolve_with_sources(user, args.set, user_layers=layers)
    print(format_sources(cfg, sources))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from lanet_core.bench import inference_latency, run_benchmark

    if args.inference:
        inference_latency(config=args.config, overrides=args.set, sizes=args.sizes, threads=args.threads,
                          out_csv=Path(args.out) if args.out else None)
        return 0

    run_benchmark(
        config=args.config,
        overrides=args.set,
        sizes=args.sizes,
        archs=args.arch,
        backbones=args.backbone,
        batch_size=args.batch_size,
        steps=args.steps,
        out_csv=Path(args.out) if args.out else None,
        precisions=["fp32", "bf16"] if args.precision == "both" else [args.precision],
    )
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from lanet_core.study import run_study
    from lanet_core.study.executor import SlurmOptions

    return run_study(
        profile=args.profile,
        only=args.only,
        force=args.force,
        budget_minutes=args.budget_minutes,
        render_only=args.render_only,
        train_only=args.train_only,
        jobs=args.jobs,
        shard=args.shard,
        plan=args.plan,
        executor=args.executor,
        slurm=SlurmOptions(partition=args.partition, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                           time_minutes=args.time, array_parallelism=args.array_parallelism, mem_gb=args.mem_gb),
        wait=not args.no_wait,
    )


def _cmd_convert_weights(args: argparse.Namespace) -> int:
    from lanet_core.models.tflite_mobilenet import convert_mobilenet_v2_tflite

    out = convert_mobilenet_v2_tflite(Path(args.src), Path(args.out) if args.out else None)
    print(f"wrote {out}")
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    import pandas as pd

    from lanet_core.data.dataset import build_pack
    from lanet_core.data.packs import PACK_ENV
    from lanet_core.errors import ConfigError
    from lanet_core.data.sources import load_manifest

    frames, roots = [], set()
    for spec in args.manifest:
        rows, _, root = load_manifest(spec, args.data_root or "auto")
        frames.append(rows)
        roots.add(root)
    if len(roots) != 1:
        raise ConfigError(f"the manifests resolve to different data roots {sorted(map(str, roots))}; pack them separately")
    rows = pd.concat(frames, ignore_index=True)
    meta = build_pack(rows, roots.pop(), args.size, args.resize, Path(args.out))
    size_mb = Path(args.out).stat().st_size / 2**20
    print(f"wrote {args.out}: {len(meta['entries'])} entries ({len(rows)} manifest rows, sizes {meta['sizes']}, "
          f"{args.resize}), {size_mb:.1f} MiB; use it with {PACK_ENV}={Path(args.out).resolve()}")
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lanet-core")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class HelpFormatter(argparse.HelpFormatter):
    """Help text at most 120 columns wide; a default shown once (not when the help already names it, nor for
    flags and unset options); a required option marked "(required)" instead of "(default: None)"."""

    def __init__(self, prog: str, **kwargs) -> None:
        import shutil

        kwargs.setdefault("width", min(120, shutil.get_terminal_size((120, 24)).columns))
        kwargs.setdefault("max_help_position", 32)
        super().__init__(prog, **kwargs)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.required:
            return f"{text} (required)".strip()
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS) or action.default == []
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)".strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lanet", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--allow-outside-data-root", action="store_true",
                   help="let manifests name absolute paths or paths leaving the data root (refused by default)")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate", help="check every row of a manifest and list all problems")
    s.add_argument("manifest")
    s.add_argument("--data-root", default=None, help="folder the manifest's paths are relative to (default: discovery)")
    s.add_argument("--no-files", action="store_true", help="check the table only, do not open images")
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("prepare", help="write manifests from a dataset in its owners' layout")
    s.add_argument("dataset", choices=["busi", "busbra", "video"])
    s.add_argument("--src", required=True,
                   help="BUSI: .../Dataset_BUSI_with_GT; BUS-BRA: the folder with bus_data.csv; "
                        "video: the folder with videos.csv and boxes.csv (docs/video_data.md)")
    s.add_argument("--out", default="data_manifests", help="output folder (busi, busbra) or manifest file (video)")
    s.add_argument("--data-root", default=None, help="video: folder the frames_dir paths are relative to (default: --src)")
    s.add_argument("--every-nth", type=int, default=1, help="video: keep every n-th unboxed frame")
    s.add_argument("--min-gap", type=int, default=0, help="video: drop unboxed frames within this many frames of a kept one")
    s.add_argument("--seed", type=int, default=0, help="video: seed of the patient-level split")
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("download", help="download BUSI or BUS-BRA from the official source (needs internet)")
    s.add_argument("dataset", choices=["busi", "busbra"])
    s.add_argument("--dest", default=None, help="data root to unpack into (default: ./data)")
    s.add_argument("--url", default=None, help="override the official URL (a mirror, or file:// for testing)")
    s.add_argument("--sha256", default=None, help="override the expected checksum")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("phantoms", help="write a synthetic breast-ultrasound phantom dataset with a manifest")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, default=240)
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_phantoms)

    s = sub.add_parser("train", help="train a run from a config (cached: a finished config returns at once)")
    s.add_argument("config", help="YAML config file, or a preset name")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (dotted)")
    s.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="re-evaluate a run directory from its checkpoint")
    s.add_argument("run_dir")
    s.add_argument("--split", default="test", help="split to score (default: test; other splits are not written)")
    s.add_argument("--force", action="store_true",
                   help="re-score even if the manifest changed since training (overwrites the test record)")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("export", help="export a finished run's selected model to ONNX (model.onnx, model.json, model_card.md)",
                       epilog="example: lanet export results/runs/fully_labelled-r18-la-net-fine-s0-<hash> --out exported/")
    s.add_argument("run_dir", help="a finished run directory with checkpoints/best.pt")
    s.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    s.add_argument("--out", default=None, help="output folder (default: <run_dir>/export)")
    s.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    s.add_argument("--int8-check", action="store_true",
                   help="also write a static int8 model (calibrated on training images) and compare both on the test split")
    s.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging, the ONNX exporter's INFO lines included (= lanet -v export)")
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser("predict", help="predict images (a file, a folder or a manifest) with a run or an exported model",
                       epilog="example: lanet predict results/runs/<run> my_images/ --out predictions/")
    s.add_argument("model", help="a run directory, an exported model.onnx, or the folder holding it")
    s.add_argument("inputs", help="an image file, a folder of images, or a manifest CSV")
    s.add_argument("--out", required=True,
                   help="output folder: predictions.csv, overlays/, masks/ (original resolution), skipped.csv")
    s.add_argument("--no-overlays", action="store_true", help="no overlay PNGs")
    s.add_argument("--no-masks", action="store_true", help="no lesion mask PNGs")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("describe", help="print the model a config builds, with parameter counts")
    s.add_argument("config")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=_cmd_describe)

    s = sub.add_parser("resolve", help="print the resolved config with where each value came from",
                       epilog="example: lanet resolve configs/busi_lanet_r18.yaml --profile paper --set train.lr=3e-4")
    s.add_argument("config", help="run config YAML (path, or a name under configs/)")
    s.add_argument("--profile", default=None, help="apply this profile's base (as the study does) below the file")
    s.add_argument("--experiment", default=None, help="with --profile: also that experiment's profile overrides")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (dotted)")
    s.set_defaults(func=_cmd_resolve)

    s = sub.add_parser("bench", help="training and inference images/s and peak memory through the real data path")
    s.add_argument("--config", default="configs/busi_lanet_r18.yaml")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    s.add_argument("--arch", nargs="+", default=None, help="architectures to bench (default: the config's)")
    s.add_argument("--backbone", nargs="+", default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--out", default=None, help="append results to this CSV")
    s.add_argument("--inference", action="store_true",
                   help="batch-1 latency instead: PyTorch eager vs ONNX Runtime (fp32, int8) at each size")
    s.add_argument("--threads", type=int, default=2, help="--inference: CPU threads (default: 2)")
    s.add_argument("--precision", choices=["both", "fp32", "bf16", "auto"], default="both",
                   help="both (default): fp32 and bf16 autocast side by side; auto: what train.amp=auto picks here")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser("study", help="run the study's notebooks with papermill for a profile",
                       epilog="examples: lanet study --profile cpu --plan; lanet study --profile cpu --budget-minutes 60; "
                              "lanet study --profile paper --executor slurm --partition gpu --gpus-per-job 1; "
                              "lanet study --profile cpu --render-only (= make figures)")
    s.add_argument("--profile", default="cpu", help="smoke | cpu | paper, or a profile YAML path (default: cpu)")
    s.add_argument("--plan", action="store_true",
                   help="list every run (identity, state, measured or assumed images/s, estimated hours); train nothing")
    s.add_argument("--only", action="append", default=None, help="run only this notebook (name or stem)")
    s.add_argument("--force", action="store_true", help="re-execute notebooks even if up to date")
    s.add_argument("--budget-minutes", type=float, default=None, help="stop cleanly after about N minutes")
    s.add_argument("--render-only", action="store_true", help="never train: render from existing run records")
    s.add_argument("--train-only", action="store_true", help="train the runs, do not execute the notebooks")
    s.add_argument("--jobs", type=int, default=2,
                   help="notebooks executed at a time; with --executor local also the training workers (default 2)")
    s.add_argument("--shard", default=None, metavar="K/N",
                   help="with --train-only: train the K-th of N interleaved shares of the unfinished runs "
                        "(start N processes, K = 0..N-1, to train in parallel)")
    g = s.add_argument_group("scheduler (submitit)", "train the unfinished runs as jobs, then render once all ended")
    g.add_argument("--executor", choices=["inline", "local", "slurm"], default="inline",
                   help="inline: in this process; local: --jobs worker processes here (one GPU each where there "
                        "are several); slurm: one SLURM array task per unfinished run")
    g.add_argument("--partition", default=None, help="slurm: partition (none: the cluster's default)")
    g.add_argument("--gpus-per-job", type=int, default=0, help="slurm: GPUs per array task")
    g.add_argument("--cpus-per-job", type=int, default=2, help="slurm: CPUs per array task")
    g.add_argument("--time", type=int, default=24 * 60, help="slurm: time limit per task in minutes")
    g.add_argument("--mem-gb", type=float, default=None, help="slurm: memory per task in GB (none: the cluster's default)")
    g.add_argument("--array-parallelism", type=int, default=32, help="slurm: array tasks running at once")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and exit (render later with --render-only) instead of waiting for the jobs")
    s.set_defaults(func=_cmd_study)

    s = sub.add_parser("pack", help="write a portable image pack (resized arrays) for a machine without the data")
    s.add_argument("--manifest", action="append", required=True, help="manifest CSV (repeat for several)")
    s.add_argument("--size", type=int, action="append", required=True, help="image size in px (repeat for several)")
    s.add_argument("--resize", default="squash", help="resize policy of the configs that will use it")
    s.add_argument("--data-root", default=None)
    s.add_argument("--out", required=True, help="output .npz")
    s.set_defaults(func=_cmd_pack)

    s = sub.add_parser("convert-weights", help="convert the TFLite MobileNetV2 to a timm state dict (safetensors)")
    s.add_argument("--src", default="../shared/weights/mobilenet_v2_imagenet/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    s.add_argument("--out", default=None, help="output .safetensors (default: the lanet weights cache)")
    s.set_defaults(func=_cmd_convert_weights)
    _document(sub)
    return p


# Help for arguments declared without one, by destination name; examples per sub-command.
_ARG_HELP = {
    "manifest": "manifest CSV (the one schema: docs/data.md)",
    "dataset": "which dataset",
    "src": "source folder or file",
    "out": "output path",
    "n": "number of phantom images",
    "size": "image size in px",
    "seed": "random seed",
    "run_dir": "a run directory under results/runs/",
    "config": "run config YAML (path, or a name under configs/)",
    "set": "override a config key, dotted (repeatable): --set train.lr=3e-4",
    "sizes": "input sizes in px",
    "backbone": "timm backbones to bench (default: the config's)",
    "batch_size": "batch size (default: the config's)",
    "steps": "timed steps per measurement (after 2 warm-up steps)",
    "data_root": "folder the manifest paths are relative to (default: discovery)",
}
_EXAMPLES = {
    "validate": "lanet validate data_manifests/busi.csv",
    "prepare": "lanet prepare busi --src ../shared/data/BUSI/Dataset_BUSI_with_GT",
    "download": "lanet download busbra --dest data/",
    "phantoms": "lanet phantoms --out /tmp/phantoms --n 240 --size 128",
    "train": "lanet train configs/busi_lanet_r18.yaml --set data.image_size=128 --set train.seed=1",
    "evaluate": "lanet evaluate results/runs/fully_labelled-r18-la-net-s0-22cd6af3e775",
    "describe": "lanet describe configs/busi_lanet_r18.yaml --set model.fusion_stride=8",
    "bench": "lanet bench --sizes 128 256 --arch lanet classifier  |  lanet bench --inference --sizes 256",
    "pack": "lanet pack --manifest data_manifests/busi.csv --size 128 --out busi128.npz",
    "convert-weights": "lanet convert-weights --src tf2_mobilenet_v2_1.0_224_ptq.tflite",
}


def _document(sub) -> None:
    """Defaults shown in every sub-command's help, an example in each epilog, help for every argument."""
    for name, parser in sub.choices.items():
        parser.formatter_class = HelpFormatter
        if not parser.epilog and name in _EXAMPLES:
            parser.epilog = f"example: {_EXAMPLES[name]}"
        for action in parser._actions:
            if action.help is None and action.dest in _ARG_HELP:
                action.help = _ARG_HELP[action.dest]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from lanet_core.errors import LanetError
    from lanet_core.io import storage_error

    if args.allow_outside_data_root:
        import os

        from lanet_core.paths import ALLOW_OUTSIDE_ENV

        os.environ[ALLOW_OUTSIDE_ENV] = "1"
    try:
        return int(args.func(args) or 0)
    except LanetError as exc:
        print(f"lanet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:  # a full or read-only disk anywhere: one line, not a traceback
        err = storage_error(exc, getattr(exc, "filename", None) or "a file")
        if err is None:
            raise
        print(f"lanet {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
