"""Apply a trained model to new images: ONNX export, ``lanet predict``, and batch-1 latency.

* :func:`export_onnx`: a run's selected checkpoint -> ``model.onnx`` (float32, dynamic batch) with two outputs,
  ``class_logits (B, 2)`` and ``lesion_logits (B, 1, h, w)`` (the one a model has, for single-task models), plus
  ``model.json`` holding what a user needs to feed it: input size, resize policy, normalisation, labels, the
  run's validation-tuned lesion threshold and its identity.
* :func:`predict_images`: images (a file, a folder or a manifest) through the *same* preprocessing as
  training and evaluation (the manifest row -> :class:`~lanet_core.data.dataset.ImageCache` ->
  :class:`~lanet_core.data.dataset.LesionDataset` path), with a run directory (PyTorch) or an exported model
  (ONNX Runtime); writes ``predictions.csv`` and one overlay PNG per image.

Checkpoints are not committed (``.gitignore``): a study run's model is reproduced by retraining its config
(``lanet train results/runs/<run>/config.yaml``: deterministic on CPU) and then exported with one command.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from lanet_core.data.manifest import LABELS
from lanet_core.io import atomic_write_bytes, atomic_write_text, make_dirs, safe_filename
from lanet_core.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
OPSET = 18


class _TwoOutputs(nn.Module):
    """``x -> (class_logits, lesion_logits)`` of a study model (the heads it has), float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        heads = tuple(t for t in (out.logits, out.lesion_logits) if t is not None)
        return heads if len(heads) > 1 else heads[0]


def output_names(model: nn.Module, size: int) -> list[str]:
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, size, size))
    return [n for n, t in (("class_logits", out.logits), ("lesion_logits", out.lesion_logits)) if t is not None]


def load_run_model(run_dir: Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(model in eval mode on CPU with the selected weights, resolved config, metrics) of a finished run."""
    from lanet_core.models.factory import build_model
    from lanet_core.runs import load_result, verify_run_identity
    from lanet_core.training.context import checkpoint_state

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    done = load_result(run_dir)
    if done is None:
        raise ConfigError(f"{run_dir}: the run has not finished (no metrics.json)")
    verify_run_identity(run_dir, done.config)  # a hand-edited config.yaml must not describe these weights
    state = checkpoint_state(run_dir / "checkpoints" / "best.pt")
    cfg = done.config
    model = build_model(cfg)
    model.load_state_dict(state)
    return model.eval().float(), cfg, done.metrics


def model_card(cfg: dict[str, Any], metrics: dict[str, Any], outputs: Sequence[str], run_dir: Path) -> dict[str, Any]:
    thr = (metrics.get("lesion_threshold") or {}).get("threshold")
    return {
        "run": Path(run_dir).name, "config_hash": metrics.get("config_hash"), "arch": cfg["model"]["arch"],
        "backbone": cfg["model"]["backbone"], "image_size": cfg["data"]["image_size"], "resize": cfg["data"]["resize"],
        "normalize": cfg["data"]["normalize"], "labels": list(LABELS), "outputs": list(outputs),
        "lesion_threshold": thr if thr is not None else cfg["eval"]["threshold"],
        "lesion_threshold_source": "validation-tuned" if thr is not None else "eval.threshold",
        "align_corners": cfg["eval"]["align_corners"],
    }


def export_onnx(run_dir: Path, out_dir: Path | None = None, opset: int = OPSET) -> Path:
    """Write ``<out_dir>/model.onnx`` and ``model.json`` for a finished run (default ``<run_dir>/export``)."""
    model, cfg, metrics = load_run_model(run_dir)
    size = int(cfg["data"]["image_size"])
    names = output_names(model, size)
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "export"
    path = export_model(model, size, out_dir / "model.onnx", opset)
    atomic_write_text(out_dir / "model.json", json.dumps(model_card(cfg, metrics, names, run_dir), indent=2) + "\n")
    return path


def export_model(model: nn.Module, size: int, path: Path, opset: int = OPSET) -> Path:
    """``model`` (eval mode, float32, CPU) -> an ONNX file at ``path`` with a dynamic batch axis."""
    names = output_names(model, size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{time.time_ns()}.onnx.tmp")
    wrapped = _TwoOutputs(model).eval()
    dummy = torch.zeros(2, 3, size, size)
    # torch.export-based exporter (the default since PyTorch 2.9): it keeps the lesion map's pooling sizes
    # static (they depend on the input size only) while the batch axis stays dynamic
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        wrapped, (dummy,), input_names=["image"], output_names=names, opset_version=opset,
        dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False,
    )
    program.save(str(tmp))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------- inputs


def input_rows(source: str | Path) -> tuple[pd.DataFrame, Path]:
    """Manifest-schema rows and the data root for an image file, a folder of images or a manifest CSV."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if source.suffix.lower() == ".csv":
        from lanet_core.data.sources import load_manifest

        rows, _, root = load_manifest(str(source))
        return rows.reset_index(drop=True), Path(root)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem)
        if not files:
            raise DataError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        files = [source]
    else:
        raise DataError(f"{source}: not an image ({', '.join(IMAGE_SUFFIXES)}), a folder or a manifest .csv")
    root = files[0].parent.resolve()
    stems = pd.Series([f.stem for f in files])
    shared = set(stems[stems.duplicated(keep=False)])  # scan.png and scan.jpg: the file name tells them apart
    rows = pd.DataFrame({
        "image_id": [f.name if f.stem in shared else f.stem for f in files], "dataset": "predict", "image_path": [f.name for f in files],
        "mask_path": "", "bbox": "", "location_label": "none", "label": "benign",  # label: unused placeholder
        "patient_id": [f.stem for f in files], "split": "test",
    })
    return rows, root


@dataclass
class Preprocessed:
    images: torch.Tensor  # (N, 3, S, S) normalised, float32
    raw: list[np.ndarray]  # (S, S, 3) uint8 as the network saw them (for overlays)
    rows: pd.DataFrame


def preprocess(rows: pd.DataFrame, data_root: Path, size: int, resize: str, normalize: str) -> Preprocessed:
    """The evaluation's preprocessing (cache -> resize -> normalise), each unreadable image named."""
    from lanet_core.data.dataset import ImageCache, LesionDataset

    cache = ImageCache(Path(data_root), size, resize)
    ds = LesionDataset(rows, data_root, size, train=False, resize=resize, normalize=normalize, cache=cache)
    images, raw = [], []
    for i in range(len(ds)):
        try:
            sample = ds[i]
        except DataError as exc:
            raise DataError(f"{Path(data_root) / rows['image_path'].iat[i]}: {exc}") from None
        images.append(sample["image"])
        raw.append(cache.get(ds.rows.iloc[i])["image"])
    return Preprocessed(torch.stack(images), raw, ds.rows)


# ---------------------------------------------------------------------------------------------------- predict

CARD_KEYS = ("image_size", "resize", "normalize", "outputs", "lesion_threshold", "align_corners")


def read_model_card(path: Path, session: Any = None) -> dict[str, Any]:
    """``model.json`` beside an exported model, checked: valid JSON, every key predict needs, and (given the ONNX
    Runtime ``session``) an ``image_size`` equal to the model's input size. Errors name the file and the fix."""
    fix = "re-export it with `lanet export <run>`"
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable model card ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(card, dict):
        raise ConfigError(f"{path}: not a model card (a JSON object is expected); {fix}")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ConfigError(f"{path}: model card lacks {', '.join(missing)}; {fix}")
    try:
        size = int(card["image_size"])
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: image_size {card['image_size']!r} is not a number; {fix}") from None
    if session is not None:
        shape = session.get_inputs()[0].shape  # [batch, 3, S, S]
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if fixed and any(d != size for d in fixed):
            raise ConfigError(f"{path}: image_size {size} does not match the ONNX model's input "
                              f"{'x'.join(map(str, shape[2:]))}; {fix}")
    return card



class Predictor:
    """A run directory (PyTorch) or an exported ``model.onnx`` (ONNX Runtime) behind one ``__call__``."""

    def __init__(self, source: str | Path, threads: int | None = None):
        source = Path(source)
        self.session = None
        self.amp, self.channels_last = False, False
        if source.suffix == ".onnx" or (source / "model.onnx").is_file() and not (source / "config.yaml").is_file():
            onnx_path = source if source.suffix == ".onnx" else source / "model.onnx"
            card_path = onnx_path.with_name("model.json")
            if not card_path.is_file():
                raise ConfigError(f"{onnx_path}: no model.json beside it (write both with `lanet export`)")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            try:
                self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ConfigError(f"{onnx_path}: not a loadable ONNX model ({exc}); re-export it") from None
            self.card = read_model_card(card_path, self.session)
            self.model = None
        else:
            from lanet_core.precision import resolve_amp, resolve_channels_last

            self.model, cfg, metrics = load_run_model(source)
            self.card = model_card(cfg, metrics, output_names(self.model, int(cfg["data"]["image_size"])), source)
            # the run's own precision on this CPU, as `lanet evaluate` uses it (identical numbers)
            cpu = torch.device("cpu")
            self.amp = resolve_amp(cfg["train"]["amp"], cpu)
            self.channels_last = resolve_channels_last(cfg["train"]["channels_last"], cpu, self.amp)
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            self.batch_size = int(cfg["train"]["batch_size"])

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(class logits (N, 2) or None, lesion logits (N, 1, h, w) or None), float32."""
        if self.session is not None:
            outs = self.session.run(None, {"image": images.numpy().astype(np.float32)})
            named = dict(zip(self.card["outputs"], outs))
        else:
            from lanet_core.evaluation import autocast_for

            x = images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
            with torch.no_grad(), autocast_for(torch.device("cpu"), self.amp):
                out = self.model(x)
            named = {"class_logits": None if out.logits is None else out.logits.float().numpy(),
                     "lesion_logits": None if out.lesion_logits is None else out.lesion_logits.float().numpy()}
        return named.get("class_logits"), named.get("lesion_logits")


def predict_images(source: str | Path, inputs: str | Path, out_dir: Path, *, batch_size: int | None = None,
                   overlays: bool = True) -> pd.DataFrame:
    """Predict every image of ``inputs`` with ``source`` (run dir or model.onnx); writes ``predictions.csv``
    (class probabilities, predicted class, lesion area fraction at the threshold, box of the largest
    component as ``x y w h`` in model-input pixels) and ``overlays/<image_id>.png``."""
    from lanet_core import metrics as M

    pred = Predictor(source)
    card = pred.card
    batch_size = batch_size or getattr(pred, "batch_size", 16)  # a run's own batch size: evaluate's numbers exactly
    rows, root = input_rows(inputs)
    pre = preprocess(rows, root, int(card["image_size"]), card["resize"], card["normalize"])
    size, thr = int(card["image_size"]), float(card["lesion_threshold"])
    records, maps = [], []
    for start in range(0, len(pre.rows), batch_size):
        logits, lesion = pred(pre.images[start:start + batch_size])
        for j in range(len(pre.images[start:start + batch_size])):
            rec: dict[str, Any] = {"image_id": pre.rows["image_id"].iat[start + j],
                                   "image_path": str(Path(root) / pre.rows["image_path"].iat[start + j])}
            if logits is not None:
                prob = torch.softmax(torch.from_numpy(logits[j]), dim=0).numpy()
                rec.update(p_benign=float(prob[0]), p_malignant=float(prob[1]), predicted=LABELS[int(M.decide_logits(logits[j][None])[0])])
            up = None
            if lesion is not None:
                p = torch.sigmoid(torch.from_numpy(lesion[j:j + 1]))
                up = M.upsample_maps(p, size, bool(card["align_corners"]))[0, 0].numpy()
                binary = up > thr
                box = M.mask_to_box_of_largest_component(binary)
                rec.update(lesion_threshold=thr, lesion_area=float(binary.mean()), lesion_max=float(p.max()),
                           box="" if box is None else str(box))
            records.append(rec)
            maps.append(up)
    _flag_tiny_inputs(records, size)
    df = pd.DataFrame(records)
    out_dir = make_dirs(out_dir)
    atomic_write_text(out_dir / "predictions.csv", df.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    if overlays:
        taken: set[str] = set()  # one file per image: names sanitised (never a path), clashes numbered
        for rec, raw, up in zip(records, pre.raw, maps):
            name = safe_filename(str(rec["image_id"]), taken)
            atomic_write_bytes(out_dir / "overlays" / f"{name}.png", overlay_png(raw, up, rec, thr))
    return df


MIN_INPUT_SIDE = 32  # px: a smaller input is upsampled from almost nothing; its prediction is flagged


def _flag_tiny_inputs(records: list[dict[str, Any]], size: int) -> None:
    """Add ``warning`` to records whose source image is smaller than :data:`MIN_INPUT_SIDE` on a side (logged)."""
    import logging

    from lanet_core.data.images import image_size

    for rec in records:
        try:
            w, h = image_size(rec["image_path"])
        except DataError:
            continue
        if min(w, h) < MIN_INPUT_SIDE:
            rec["warning"] = f"image is {w}x{h} px, upsampled to {size}x{size}: the prediction is not meaningful"
            logging.getLogger(__name__).warning("%s: %s", rec["image_path"], rec["warning"])


def overlay_png(raw: np.ndarray, prob: np.ndarray | None, rec: dict[str, Any], threshold: float) -> bytes:
    """PNG bytes: the image as the network saw it, the lesion contour at ``threshold``, the box, the class."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(3.2, 3.4), dpi=100)
    ax.imshow(raw, cmap="gray")
    if prob is not None and (prob > threshold).any():
        ax.contour(prob, levels=[threshold], colors="#ff00ff", linewidths=1.2)
    if rec.get("box"):
        x, y, w, h = (float(v) for v in rec["box"].split())
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="#00e0ff", lw=1.2))
    title = rec["image_id"]
    if "predicted" in rec:
        title += f"\n{rec['predicted']} (p malignant {rec['p_malignant']:.2f})"
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- latency


def latency(source: str | Path | nn.Module, size: int, *, runs: int = 50, warmup: int = 10, threads: int = 2,
            engine: str = "torch") -> dict[str, float]:
    """Batch-1 latency (ms, median and p90) and images/s of a model on this CPU with ``threads`` threads."""
    x = torch.randn(1, 3, size, size)
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        call = lambda: sess.run(None, feed)  # noqa: E731
    else:
        torch.set_num_threads(threads)
        model = source.eval()

        def call():
            with torch.no_grad():
                model(x)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {"engine": engine, "image_size": size, "threads": threads, "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)), "images_per_s": float(1000 / np.median(ms))}


def int8_check(run_dir: Path, out_dir: Path | None = None, *, calibration_images: int = 64,
               threads: int = 2) -> pd.DataFrame:
    """Export a finished run to ONNX (float32) and to static int8 (QDQ, calibrated on ``calibration_images``
    of its *training* images), score both on its test split, and time both at batch 1.

    Returns one row per model: accuracy, AUC, IoU at the run's lesion threshold (test images with masks),
    batch-1 median latency (ms) and images/s with ``threads`` threads.
    """
    from sklearn.metrics import roc_auc_score

    from lanet_core import metrics as M
    from lanet_core.bench import quantize_onnx
    from lanet_core.data.sources import load_manifest

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "export"
    fp32 = export_onnx(run_dir, out_dir)
    card = json.loads((out_dir / "model.json").read_text())
    _, cfg, _ = load_run_model(run_dir)
    rows, _, root = load_manifest(cfg["data"]["manifest"], cfg["data"]["root"])
    size = int(card["image_size"])
    calib_rows = rows[rows["split"] == "train"].iloc[:calibration_images]
    calib = preprocess(calib_rows, root, size, card["resize"], card["normalize"]).images.numpy()
    int8 = quantize_onnx(fp32, out_dir / "model_int8.onnx", size, calibration=calib)

    from lanet_core.data.dataset import ImageCache, LesionDataset

    test = rows[rows["split"] == "test"].reset_index(drop=True)
    ds = LesionDataset(test, root, size, train=False, resize=card["resize"], normalize=card["normalize"],
                       cache=ImageCache(Path(root), size, card["resize"]))
    samples = [ds[i] for i in range(len(ds))]
    x = torch.stack([s["image"] for s in samples]).numpy()
    y = np.array([int(s["label"]) for s in samples])
    out = []
    import onnxruntime as ort

    for name, path in (("onnx fp32", fp32), ("onnx int8 (QDQ)", int8)):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [dict(zip(card["outputs"], sess.run(None, {"image": x[i:i + 16]}))) for i in range(0, len(x), 16)]
        logits = np.concatenate([o["class_logits"] for o in outs])
        prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()[:, 1]
        row = {"model": name, "n_test": len(y), "accuracy": float((M.decide_logits(logits) == y).mean()),
               "auc": float(roc_auc_score(y, prob))}
        if "lesion_logits" in card["outputs"]:
            lesion = torch.sigmoid(torch.from_numpy(np.concatenate([o["lesion_logits"] for o in outs])))
            up = M.upsample_maps(lesion, size, bool(card["align_corners"]))[:, 0].numpy()
            ious = [M.iou_dice(up[i] > card["lesion_threshold"], samples[i]["mask"][0].numpy() >= 0.5)[0]
                    for i in range(len(samples)) if bool(samples[i]["has_mask"])]
            row["iou"] = float(np.mean(ious))
        row.update({k: v for k, v in latency(path, size, threads=threads, engine="onnxruntime").items()
                    if k in ("median_ms", "images_per_s")})
        out.append(row)
    df = pd.DataFrame(out)
    df.insert(0, "run", run_dir.name)
    atomic_write_text(out_dir / "int8_check.csv", df.round(4).to_csv(index=False, lineterminator="\n"))
    return df
