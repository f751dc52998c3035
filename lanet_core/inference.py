"""Apply a trained model to new images: ONNX export with a model card, ``lanet predict``, and batch-1 latency.

* :func:`export_onnx`: a run's selected checkpoint -> ``model.onnx`` (float32, dynamic batch) with two outputs,
  ``class_logits (B, 2)`` and ``lesion_logits (B, 1, h, w)`` (the one a model has, for single-task models), plus
  ``model.json`` (what predict needs to feed it: input size, resize policy, normalisation, labels, the run's
  validation-tuned lesion threshold; and the model card's facts) and ``model_card.md`` (the same facts to read:
  data and split, test metrics with bootstrap CIs, calibration, commit, precision, intended use, limitations).
* :func:`predict_images`: images (a file, a folder or a manifest; PNG, JPEG, TIFF, 16-bit, DICOM, ...: see
  :mod:`lanet_core.data.images`) through the *same* preprocessing as training and evaluation, with a run
  directory (PyTorch) or an exported model (ONNX Runtime); writes ``predictions.csv``, an overlay and a lesion
  mask per image at the image's *original* resolution, and ``skipped.csv``. docs/applying.md says it all.

Checkpoints are not committed (``.gitignore``): a study run's model is reproduced by retraining its config into
another results folder (``LANET_RESULTS_DIR=~/lanet-retrained lanet train results/runs/<run>/config.yaml``: deterministic
on CPU for the same thread count) and then exported with one command.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from lanet_core.data.manifest import LABELS
from lanet_core.io import atomic_write_bytes, atomic_write_text, make_dirs, record_json, safe_filename
from lanet_core.errors import ConfigError, DataError

OPSET = 18
log = logging.getLogger(__name__)


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


def lesion_map_size(model: nn.Module, size: int) -> list[int] | None:
    """``[h, w]`` of the model's lesion logits at input ``size`` (None without a lesion head)."""
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, size, size))
    return None if out.lesion_logits is None else [int(d) for d in out.lesion_logits.shape[-2:]]


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
    """The keys predict needs (:data:`CARD_KEYS`) and the run's identity: the top level of ``model.json``."""
    thr = (metrics.get("lesion_threshold") or {}).get("threshold")
    return {
        "run": Path(run_dir).name, "config_hash": metrics.get("config_hash"), "arch": cfg["model"]["arch"],
        "backbone": cfg["model"]["backbone"], "image_size": cfg["data"]["image_size"], "resize": cfg["data"]["resize"],
        "normalize": cfg["data"]["normalize"], "labels": list(LABELS), "outputs": list(outputs),
        "lesion_threshold": thr if thr is not None else cfg["eval"]["threshold"],
        "lesion_threshold_source": "validation-tuned" if thr is not None else "eval.threshold",
        "align_corners": cfg["eval"]["align_corners"],
    }


# ---------------------------------------------------------------------------------------------------- model card

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
INTENDED_USE = ("Research only: studying and reproducing LA-Net (joint lesion localisation and benign/malignant "
                "classification of breast masses on ultrasound) on public datasets. Not a medical device; not for "
                "diagnosis, screening, triage or any decision about a patient.")


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties count one half); NaN when one class is absent."""
    from scipy.stats import rankdata

    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    r = rankdata(score)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of ``p_malignant`` over ``bins`` equal-width bins (|mean p - rate| weighted)."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).sum() for b in range(bins) if (idx == b).any()) / len(y))


def metrics_with_ci(per_image: pd.DataFrame, *, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> dict[str, dict[str, Any]]:
    """Point estimates and 95 % CIs of a run's test metrics from its ``per_image.csv``: a seeded percentile
    bootstrap over images (``resamples`` draws of the test images with replacement, the 2.5th and 97.5th
    percentiles; draws where a metric is undefined, e.g. AUC with one class, are left out and counted).
    Image sampling only: the variation between training seeds is not in these intervals."""
    y = per_image["y_true"].to_numpy(dtype=int) if "y_true" in per_image else None
    has_class = (y is not None and {"p_malignant", "y_pred"} <= set(per_image.columns)
                 and bool(per_image["p_malignant"].notna().all()))
    stats: dict[str, Any] = {}
    if has_class:
        p = per_image["p_malignant"].to_numpy(dtype=float)
        yp = per_image["y_pred"].to_numpy(dtype=int)
        stats["accuracy"] = lambda i: float((yp[i] == y[i]).mean())
        stats["auc"] = lambda i: _auc(y[i], p[i])
        stats["sensitivity_malignant"] = lambda i: float((yp[i][y[i] == 1] == 1).mean()) if (y[i] == 1).any() else float("nan")
        stats["specificity_malignant"] = lambda i: float((yp[i][y[i] == 0] == 0).mean()) if (y[i] == 0).any() else float("nan")
        stats["brier"] = lambda i: float(((p[i] - y[i]) ** 2).mean())
        stats["ece_10_bins"] = lambda i: _ece(y[i], p[i])
    for col, name in (("iou", "iou"), ("iou_tuned", "iou_tuned"), ("dice", "dice")):
        if col in per_image and "has_mask" in per_image and per_image[col].notna().any():
            v = per_image[col].to_numpy(dtype=float)
            m = per_image["has_mask"].to_numpy(dtype=bool) & ~np.isnan(v)
            stats[name] = (lambda v, m: lambda i: float(v[i][m[i]].mean()) if m[i].any() else float("nan"))(v, m)
    n = len(per_image)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    out: dict[str, dict[str, Any]] = {}
    for name, fn in stats.items():
        point = fn(np.arange(n))
        boot = np.array([fn(d) for d in draws])
        ok = boot[~np.isnan(boot)]
        out[name] = {"value": point, "ci95": [float(np.percentile(ok, 2.5)), float(np.percentile(ok, 97.5))] if len(ok) else None,
                     "n_images": int(n if name not in ("iou", "iou_tuned", "dice") else per_image["has_mask"].astype(bool).sum()),
                     "undefined_draws": int(len(boot) - len(ok))}
    return out


def _split_counts(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Images per split and label, and how many carry a location label, from the run's manifest (None when it
    cannot be read here)."""
    from lanet_core.data.sources import load_manifest

    try:
        rows, _, _ = load_manifest(cfg["data"]["manifest"], cfg["data"]["root"])
    except Exception as exc:  # the manifest or the data is not on this machine: the card says so
        log.info("model card: split counts unavailable (%s)", exc)
        return None
    out = {}
    for split, g in rows.groupby("split", sort=False):
        out[str(split)] = {"images": int(len(g)), **{str(k): int(v) for k, v in g["label"].value_counts().sort_index().items()},
                           "location_labelled": int((g["location_label"] != "none").sum())}
    datasets = sorted(str(d) for d in rows["dataset"].unique())
    return {"datasets": datasets, "splits": out}


def _limitations(cfg: dict[str, Any], data: dict[str, Any] | None, map_size: list[int] | None) -> list[str]:
    d = cfg["data"]
    datasets = (data or {}).get("datasets", [])
    out = [f"Trained on one dataset ({', '.join(datasets) or d['manifest']}), one population and its scanners: "
           "performance on other machines, sites or populations is unknown.",
           f"Input size {d['image_size']} px ({d['resize']}: "
           + ("the whole image squashed to a square, aspect ratio not kept" if d["resize"] == "squash" else
              "shorter side resized, centre square cropped: the rest of the image is not seen")
           + "); small lesions and fine margins are lost at this size."]
    if map_size:
        out.append(f"The lesion map is {map_size[0]}x{map_size[1]} at the network's output, upsampled: outlines "
                   "are coarse, and the box is that of the largest component above the threshold.")
    if any("busi" in x.lower() for x in datasets) or "busi" in str(d["manifest"]).lower():
        known = (" (data_manifests/busi.csv: 23 of the 82 test images; results/tables/busi_near_duplicates.csv)"
                 if str(d["manifest"]).endswith("data_manifests/busi.csv") else "")
        out.append("BUSI holds near-duplicate frames (re-saved or re-annotated copies of one scan) and same-scan "
                   "pairs with opposite labels (data_manifests/busi_label_conflicts.csv: 8 pairs, whose truth is "
                   "unknown; the byte-identical benign (433) / malignant (145) is kept out of training, the others stay "
                   f"in the manifests): `lanet validate {d['manifest']}` lists the test images with a near-duplicate in "
                   f"training{known}; test metrics on such images are likely optimistic.")
    test = ((data or {}).get("splits") or {}).get(cfg["eval"]["split"])
    mix = (f"The {cfg['eval']['split']} split has {test.get('benign', 0)} benign and {test.get('malignant', 0)} malignant "
           "images; " if test else "")
    out.append(f"{mix}the prevalence of malignancy in a clinic differs, so predictive values do not transfer; "
               "p_malignant is not recalibrated (see calibration).")
    out.append("Confidence intervals reflect the sampling of test images only, not the variation between training "
               "seeds (the study's other seeds are in results/).")
    return out


def card_facts(run_dir: Path, cfg: dict[str, Any], metrics: dict[str, Any], map_size: list[int] | None) -> dict[str, Any]:
    """The model card's facts beyond the predict keys: data and split, test metrics with CIs from the run's
    ``per_image.csv``, the threshold, selection, provenance (commit, precision, hardware), intended use, limits."""
    from lanet_core.runs import read_provenance

    run_dir = Path(run_dir)
    prov = read_provenance(run_dir)
    data = _split_counts(cfg)
    per_path = run_dir / "per_image.csv"
    per = pd.read_csv(per_path) if per_path.is_file() else None
    thr = metrics.get("lesion_threshold") or {}
    precision = prov.get("precision") or ("bf16 autocast" if prov.get("amp") else "float32" if "amp" in prov else None)
    sel = metrics.get("selected") or {}
    return {
        "intended_use": INTENDED_USE,
        "data": {"manifest": cfg["data"]["manifest"], "manifest_sha256": prov.get("manifest_sha256"),
                 "train_images": cfg["data"]["train_images"], **(data or {"splits": None})},
        "test_metrics": {
            "split": cfg["eval"]["split"],
            "source": f"{per_path.name} of the run ({len(per)} images)" if per is not None else None,
            "ci_method": (f"seeded percentile bootstrap over test images: {BOOTSTRAP_RESAMPLES} resamples, seed "
                          f"{BOOTSTRAP_SEED}, 2.5th-97.5th percentiles"),
            "iou_threshold": cfg["eval"]["threshold"],
            "metrics": metrics_with_ci(per) if per is not None else None,
        },
        "lesion_threshold_tuning": {k: thr.get(k) for k in ("threshold", "iou", "iou_at_0.5", "n_images", "split")} if thr else None,
        "lesion_map_size": map_size,
        "calibration": ("p_malignant is the softmax of the class logits, not recalibrated; brier and ece_10_bins "
                        "above measure its calibration on the test split"),
        "model_selection": {"rule": prov.get("model_selection"), "stage": sel.get("stage"), "epoch": sel.get("epoch"),
                            "selected_on": sel.get("selected_on"), "validation": sel.get("metrics")},
        "training": {"git_commit": prov.get("git_commit"), "git_dirty": prov.get("git_dirty"), "precision": precision,
                     "device": prov.get("device"), "cpu": (prov.get("hardware") or {}).get("cpu"),
                     "torch_threads": (prov.get("hardware") or {}).get("torch_threads"), "seed": cfg["train"]["seed"],
                     "epochs": [cfg["train"]["stage1_epochs"], cfg["train"]["stage2_epochs"]],
                     "wall_seconds": (prov.get("wall_seconds") or {}).get("fit_call"),
                     "finished_utc": prov.get("finished_utc"), "torch": (prov.get("packages") or {}).get("torch")},
        "limitations": _limitations(cfg, data, map_size),
    }


def _fmt(v: Any, pct: bool) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def card_markdown(card: dict[str, Any]) -> str:
    """``model_card.md``: the facts of ``model.json`` to read."""
    f = card["card"]
    t = f["test_metrics"]
    L = [f"# Model card: {card['run']}", "",
         f"**Intended use.** {f['intended_use']}", "",
         "## Model", "",
         f"- {card['arch']} on {card['backbone']}, input {card['image_size']}x{card['image_size']} px "
         f"(resize `{card['resize']}`, normalisation `{card['normalize']}`), outputs {', '.join(card['outputs'])}"
         + (f" (lesion map {f['lesion_map_size'][0]}x{f['lesion_map_size'][1]})" if f.get("lesion_map_size") else ""),
         f"- labels: {', '.join(card['labels'])}; malignant iff p_malignant > 0.5 (a tie is benign)"]
    if "lesion_logits" in card["outputs"]:
        tun = f.get("lesion_threshold_tuning")
        L.append(f"- lesion threshold {card['lesion_threshold']} ({card['lesion_threshold_source']}"
                 + (f" on {tun['split']}: IoU {_fmt(tun['iou'], False)} vs {_fmt(tun.get('iou_at_0.5'), False)} at 0.5, "
                    f"{tun['n_images']} images" if tun else "") + ")")
    L += [f"- run `{card['run']}` (config hash {card['config_hash']})", "",
          "## Data and split", "",
          f"- manifest `{f['data']['manifest']}` (sha256 {str(f['data'].get('manifest_sha256'))[:12]}), "
          f"dataset(s) {', '.join(f['data'].get('datasets') or ['n/a'])}, training images: {f['data']['train_images']}"]
    if f["data"].get("splits"):
        L += ["", "| split | images | " + " | ".join(LABELS) + " | with location label |", "|---|---|" + "---|" * len(LABELS) + "---|"]
        for split, c in f["data"]["splits"].items():
            L.append(f"| {split} | {c['images']} | " + " | ".join(str(c.get(k, 0)) for k in LABELS) + f" | {c['location_labelled']} |")
    else:
        L.append("- split counts: the manifest could not be read where this was exported")
    L += ["", "## Test metrics", "", f"On the `{t['split']}` split, from {t['source']}; 95 % CI: {t['ci_method']}.", ""]
    if t.get("metrics"):
        L += ["| metric | value | 95 % CI | images |", "|---|---|---|---|"]
        for name, m in t["metrics"].items():
            pct = name in ("accuracy", "auc", "sensitivity_malignant", "specificity_malignant", "iou", "iou_tuned", "dice")
            ci = "n/a" if not m["ci95"] else f"[{_fmt(m['ci95'][0], pct)}, {_fmt(m['ci95'][1], pct)}]"
            label = {"iou": f"iou (threshold {t['iou_threshold']})", "dice": f"dice (threshold {t['iou_threshold']})",
                     "iou_tuned": "iou (validation-tuned threshold)"}.get(name, name)
            L.append(f"| {label}{' (%)' if pct else ''} | {_fmt(m['value'], pct)} | {ci} | {m['n_images']} |")
    else:
        L.append("No per_image.csv in the run: no metrics.")
    tr = f["training"]
    sel = f["model_selection"]
    L += ["", f"**Calibration.** {f['calibration']}.", "",
          "## Training", "",
          f"- commit {tr['git_commit']}{' (uncommitted changes)' if tr['git_dirty'] else ''}; precision {tr['precision']}; "
          f"device {tr['device']} ({tr['cpu']}, {tr['torch_threads']} thread(s)); torch {tr['torch']}",
          f"- seed {tr['seed']}, epochs {tr['epochs'][0]} + {tr['epochs'][1]} (two stages), wall time "
          f"{tr['wall_seconds']} s, finished {tr['finished_utc']}",
          f"- model selection: {sel['rule']} (selected {sel['stage']} epoch {sel['epoch']} on {sel['selected_on']})", "",
          "## Known limitations", ""]
    L += [f"- {x}" for x in f["limitations"]]
    L += ["", "The same facts are in `model.json` (key `card`)."]
    return "\n".join(L) + "\n"


@contextlib.contextmanager
def quiet_exporter():
    """The ONNX exporter's INFO lines (onnx_ir, onnxscript, torch.onnx: ~25 per export) hidden unless the root
    logger is at DEBUG (``lanet -v``)."""
    names = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._dynamo", "torch._export")
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def export_onnx(run_dir: Path, out_dir: Path | None = None, opset: int = OPSET) -> Path:
    """Write ``<out_dir>/model.onnx``, ``model.json`` and ``model_card.md`` for a finished run (default
    ``<run_dir>/export``). ``model.json`` keeps the keys predict reads at its top level (:data:`CARD_KEYS`) and
    the card's facts under ``card``."""
    model, cfg, metrics = load_run_model(run_dir)
    size = int(cfg["data"]["image_size"])
    names = output_names(model, size)
    card = model_card(cfg, metrics, names, run_dir)
    card["card"] = card_facts(Path(run_dir), cfg, metrics, lesion_map_size(model, size))
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "export"
    path = export_model(model, size, out_dir / "model.onnx", opset)
    atomic_write_text(out_dir / "model.json", record_json(card))
    atomic_write_text(out_dir / "model_card.md", card_markdown(json.loads(record_json(card))))
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
    with quiet_exporter():
        program = torch.onnx.export(
            wrapped, (dummy,), input_names=["image"], output_names=names, opset_version=opset,
            dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False,
        )
        program.save(str(tmp))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------- inputs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")


@dataclass
class Inputs:
    """What ``lanet predict`` was given: manifest-schema rows of the files to try, their data root, and the files
    set aside before reading (``(file, reason)``: not an image, a mask, a sub-folder)."""

    rows: pd.DataFrame
    root: Path
    skipped: list[tuple[str, str]]
    folder: bool = False


def _not_an_image(path: Path) -> str:
    return (f"not an image file (suffix {path.suffix or '(none)'}; read: {', '.join(IMAGE_SUFFIXES)} "
            "and DICOM files with the DICM marker)")


def list_inputs(source: str | Path) -> Inputs:
    """The inputs of an image file, a folder of images (not searched recursively) or a manifest CSV; a folder's
    other entries are listed in ``skipped`` with the reason."""
    from lanet_core.data.images import is_dicom

    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if source.suffix.lower() == ".csv":
        from lanet_core.data.sources import load_manifest

        rows, _, root = load_manifest(str(source))
        return Inputs(rows.reset_index(drop=True), Path(root), [])
    skipped: list[tuple[str, str]] = []
    if source.is_dir():
        files = []
        for p in sorted(source.iterdir()):
            if p.is_dir():
                skipped.append((str(p), "a folder (sub-folders are not searched)"))
            elif p.suffix.lower() in IMAGE_SUFFIXES and "_mask" in p.stem:
                skipped.append((str(p), "a lesion mask (its name has _mask), not an image to predict"))
            elif p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p):
                files.append(p)
            else:
                skipped.append((str(p), _not_an_image(p)))
        if not files:
            listed = "; ".join(f"{Path(f).name}: {r}" for f, r in skipped[:3])
            raise DataError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)} or DICOM) in the folder"
                            + (f" ({listed}{'; ...' if len(skipped) > 3 else ''})" if skipped else ""))
    elif source.suffix.lower() in IMAGE_SUFFIXES or is_dicom(source):
        files = [source]
    else:
        raise DataError(f"{source}: {_not_an_image(source)}, nor a folder or a manifest .csv")
    root = files[0].parent.resolve()
    stems = pd.Series([f.stem for f in files])
    shared = set(stems[stems.duplicated(keep=False)])  # scan.png and scan.jpg: the file name tells them apart
    rows = pd.DataFrame({
        "image_id": [f.name if f.stem in shared else f.stem for f in files], "dataset": "predict", "image_path": [f.name for f in files],
        "mask_path": "", "bbox": "", "location_label": "none", "label": "benign",  # label: unused placeholder
        "patient_id": [f.stem for f in files], "split": "test",
    })
    return Inputs(rows, root, skipped, folder=source.is_dir())


@dataclass
class Preprocessed:
    images: torch.Tensor  # (N, 3, S, S) normalised, float32
    raw: list[np.ndarray]  # (S, S, 3) uint8 as the network saw them
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


def network_input(image: np.ndarray, size: int, resize: str, normalize: str) -> torch.Tensor:
    """An original ``(H, W, 3) uint8`` image -> the network's ``(3, S, S)`` float32 input, by the same operations
    as training and evaluation (:func:`~lanet_core.data.images.resize_array`, then
    :class:`~lanet_core.data.dataset.LesionDataset`'s normalisation): the same bits."""
    from lanet_core.data.dataset import NORMALIZATION
    from lanet_core.data.images import resize_array

    mean, std = NORMALIZATION[normalize]
    x = torch.from_numpy(resize_array(image, size, resize)).permute(2, 0, 1).contiguous()
    return (x.float() / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


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
    """A run directory (PyTorch) or an exported ``model.onnx`` (ONNX Runtime) behind one ``__call__``.

    Anything with a ``card`` (the :data:`CARD_KEYS`) and the same ``__call__`` can stand in for it in
    :func:`predict_images` (the tests use a stub whose lesion map is known)."""

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


#: decimals of the probabilities in predictions.csv: the PyTorch and ONNX paths agree to ~1e-6, so the files of
#: the two paths are identical (a float32 run); 4 decimals is finer than any decision needs
PROB_DECIMALS = 4
MIN_INPUT_SIDE = 32  # px: a smaller input is upsampled from almost nothing; its prediction is flagged
_INT_COLUMNS = ("image_width", "image_height", "lesion_area_px", "box_x1", "box_y1", "box_x2", "box_y2",
                "seen_x1", "seen_y1", "seen_x2", "seen_y2")


@dataclass
class PredictResult:
    """What :func:`predict_images` wrote: the predictions table (= ``predictions.csv``) and the skipped inputs
    (= ``skipped.csv``, columns ``file, reason``)."""

    predictions: pd.DataFrame
    skipped: pd.DataFrame
    out_dir: Path


def predict_images(source: Any, inputs: str | Path, out_dir: Path, *, batch_size: int | None = None,
                   overlays: bool = True, masks: bool = True, result: bool = False) -> pd.DataFrame | PredictResult:
    """Predict every image of ``inputs`` (a file, a folder, a manifest) with ``source`` (a run directory, a
    ``model.onnx`` or the folder holding it, or a :class:`Predictor`). Everything is at the *original* image's
    resolution (docs/applying.md):

    * ``predictions.csv``: ``image_id, image_path, image_width, image_height``, ``p_benign, p_malignant``
      (rounded to :data:`PROB_DECIMALS`), ``predicted`` (:func:`lanet_core.metrics.decide_logits`), and for
      models with a lesion head ``lesion_threshold`` (the run's validation-tuned one), ``lesion_max`` (highest
      lesion probability), ``lesion_area_px`` and ``lesion_area_fraction`` (pixels above the threshold, and
      their share of the image), ``box_x1 box_y1 box_x2 box_y2`` (box of the largest connected lesion component,
      original pixels, ``x2``/``y2`` exclusive as in manifests; empty without a lesion), ``seen_x1 .. seen_y2``
      (the part of the image the network saw: all of it under ``squash``, the centre crop under
      ``shorter_side_crop``; the lesion mask is 0 outside it), ``warning`` (tiny inputs), ``overlay``/``mask``
      (the files written, relative to ``out_dir``);
    * ``overlays/<name>.png``: the input image at its own size with the lesion outline (magenta), the box (cyan),
      the region not seen dimmed (crop policy), and below it a caption: the class and its probability;
    * ``masks/<name>.png``: the lesion mask at the original size (0/255, 8-bit grayscale);
    * ``skipped.csv`` (``file, reason``): every input not predicted (not an image, unreadable, a refused pixel
      mode, a multi-frame file, ...). If nothing could be predicted a :class:`DataError` names the first reasons.

    Returns the predictions table (``result=True``: a :class:`PredictResult` with the skipped table as well).
    """
    from lanet_core.data.images import read_image
    from lanet_core.paths import data_file

    pred = Predictor(source) if isinstance(source, (str, Path)) else source
    card = pred.card
    size, resize, normalize = int(card["image_size"]), str(card["resize"]), str(card["normalize"])
    batch_size = batch_size or getattr(pred, "batch_size", 16)  # a run's own batch size: evaluate's numbers exactly
    listed = list_inputs(inputs)
    out_dir = make_dirs(out_dir)
    skipped = list(listed.skipped)
    records: list[dict[str, Any]] = []
    taken: set[str] = set()  # one file per image: names sanitised (never a path), clashes numbered
    batch: list[tuple[dict[str, Any], np.ndarray, torch.Tensor]] = []

    def flush() -> None:
        if not batch:
            return
        logits, lesion = pred(torch.stack([x for _, _, x in batch]))
        for j, (rec, image, _) in enumerate(batch):
            outputs = _image_outputs(rec, image, None if logits is None else logits[j],
                                     None if lesion is None else lesion[j:j + 1], card)
            name = safe_filename(str(rec["image_id"]), taken)
            if outputs.mask is not None and masks:
                rec["mask"] = f"masks/{name}.png"
                atomic_write_bytes(out_dir / rec["mask"], _png_bytes(outputs.mask.astype(np.uint8) * 255))
            if overlays:
                rec["overlay"] = f"overlays/{name}.png"
                atomic_write_bytes(out_dir / rec["overlay"], overlay_png(image, outputs.mask, rec, card))
            records.append(rec)
        batch.clear()

    for i in range(len(listed.rows)):
        row = listed.rows.iloc[i]
        shown = str(Path(listed.root) / row["image_path"])
        try:
            path = data_file(listed.root, row["image_path"])
            shown = str(path)
            image = read_image(path)
        except DataError as exc:
            skipped.append((shown, str(exc)))
            continue
        h, w = image.shape[:2]
        rec: dict[str, Any] = {"image_id": row["image_id"], "image_path": str(path), "image_width": w, "image_height": h}
        if min(w, h) < MIN_INPUT_SIDE:
            rec["warning"] = f"image is {w}x{h} px, upsampled to {size}x{size}: the prediction is not meaningful"
            import logging

            logging.getLogger(__name__).warning("%s: %s", path, rec["warning"])
        batch.append((rec, image, network_input(image, size, resize, normalize)))
        if len(batch) == batch_size:
            flush()
    flush()
    skipped = sorted(skipped) if listed.folder else skipped  # a folder's by name, a manifest's in row order
    skipped_df = pd.DataFrame(skipped, columns=["file", "reason"])
    atomic_write_text(out_dir / "skipped.csv", skipped_df.to_csv(index=False, lineterminator="\n"))
    if not records:
        first = "; ".join(f"{f}: {r}" for f, r in skipped[:3])
        raise DataError(f"no image could be predicted ({len(skipped)} skipped, listed in {out_dir / 'skipped.csv'}): "
                        f"{first}{'; ...' if len(skipped) > 3 else ''}")
    df = _predictions_table(records)
    atomic_write_text(out_dir / "predictions.csv", df.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    return PredictResult(df, skipped_df, out_dir) if result else df


def _predictions_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(records)
    order = ["image_id", "image_path", "image_width", "image_height", "p_benign", "p_malignant", "predicted",
             "lesion_threshold", "lesion_max", "lesion_area_px", "lesion_area_fraction", "box_x1", "box_y1", "box_x2",
             "box_y2", "seen_x1", "seen_y1", "seen_x2", "seen_y2", "warning", "overlay", "mask"]
    df = df[[c for c in order if c in df.columns] + [c for c in df.columns if c not in order]]
    for c in _INT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype("Int64")  # whole pixels; empty where there is no box
    return df


@dataclass
class _Outputs:
    mask: np.ndarray | None  # (H, W) bool at the original size, or None without a lesion head


def _image_outputs(rec: dict[str, Any], image: np.ndarray, logits: np.ndarray | None, lesion: np.ndarray | None,
                   card: dict[str, Any]) -> _Outputs:
    """Fill ``rec`` with the class and lesion outputs of one image, mapped back to its original size."""
    from lanet_core import metrics as M
    from lanet_core.data.images import map_to_original, seen_box

    h, w = image.shape[:2]
    size, resize = int(card["image_size"]), str(card["resize"])
    if logits is not None:
        prob = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=0).numpy()
        rec.update(p_benign=round(float(prob[0]), PROB_DECIMALS), p_malignant=round(float(prob[1]), PROB_DECIMALS),
                   predicted=LABELS[int(M.decide_logits(np.asarray(logits)[None])[0])])
    if lesion is None:
        seen = seen_box(w, h, size, resize)
        rec.update(seen_x1=seen.x1, seen_y1=seen.y1, seen_x2=seen.x2, seen_y2=seen.y2)
        return _Outputs(None)
    thr = float(card["lesion_threshold"])
    p = torch.sigmoid(torch.from_numpy(np.asarray(lesion, dtype=np.float32)))
    model_space = M.upsample_maps(p, size, bool(card["align_corners"]))[0, 0].numpy()  # what evaluation scores
    full = map_to_original(model_space, w, h, resize)
    binary = full > thr
    box = M.mask_to_box_of_largest_component(binary)
    seen = seen_box(w, h, size, resize)
    area = int(binary.sum())
    rec.update(lesion_threshold=thr, lesion_max=round(float(full.max()), PROB_DECIMALS), lesion_area_px=area,
               lesion_area_fraction=area / float(w * h),
               box_x1=None if box is None else box.x1, box_y1=None if box is None else box.y1,
               box_x2=None if box is None else box.x2, box_y2=None if box is None else box.y2,
               seen_x1=seen.x1, seen_y1=seen.y1, seen_x2=seen.x2, seen_y2=seen.y2)
    return _Outputs(binary)


def _png_bytes(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array (no metadata: the same pixels give the same bytes)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


BOX_COLOUR = (0, 224, 255)  # cyan
OUTLINE_COLOUR = (255, 0, 255)  # magenta
SEEN_COLOUR = (255, 214, 0)  # yellow


def line_width(width: int, height: int) -> int:
    """Outline and box thickness in pixels: 1 up to 299 px on the shorter side, then one more per 300 px."""
    return 1 + min(width, height) // 300


def overlay_png(image: np.ndarray, mask: np.ndarray | None, rec: dict[str, Any], card: dict[str, Any]) -> bytes:
    """PNG bytes: the original image at its own size (pixel ``(x, y)`` of the overlay is pixel ``(x, y)`` of the
    input), the lesion outline at the threshold (magenta, drawn inside the lesion), the box of ``rec`` (cyan; its
    outer ring is exactly the box's edge pixels ``x1 .. x2 - 1``, ``y1 .. y2 - 1``), under ``shorter_side_crop``
    the region the network did not see dimmed with its border in yellow; and a caption strip *below* the image
    (class, probability, lesion area), so nothing is drawn over the image's own pixels but the outlines."""
    from PIL import Image, ImageDraw, ImageFont
    from scipy import ndimage

    h, w = image.shape[:2]
    t = line_width(w, h)
    canvas = np.array(image, dtype=np.uint8, copy=True)
    if "seen_x1" in rec and (rec["seen_x1"], rec["seen_y1"], rec["seen_x2"], rec["seen_y2"]) != (0, 0, w, h):
        unseen = np.ones((h, w), dtype=bool)
        unseen[rec["seen_y1"]:rec["seen_y2"], rec["seen_x1"]:rec["seen_x2"]] = False
        canvas[unseen] = canvas[unseen] // 2
    if mask is not None and mask.any():
        inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=t, border_value=0)
        canvas[mask & ~inner] = OUTLINE_COLOUR
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    if "seen_x1" in rec and (rec["seen_x1"], rec["seen_y1"], rec["seen_x2"], rec["seen_y2"]) != (0, 0, w, h):
        draw.rectangle([rec["seen_x1"], rec["seen_y1"], rec["seen_x2"] - 1, rec["seen_y2"] - 1], outline=SEEN_COLOUR, width=t)
    if rec.get("box_x1") is not None:
        draw.rectangle([rec["box_x1"], rec["box_y1"], rec["box_x2"] - 1, rec["box_y2"] - 1], outline=BOX_COLOUR, width=t)
    lines = caption_lines(rec, card, w, h)
    font = ImageFont.load_default(size=max(12, round(min(w, 1600) / 40)))
    pad = max(4, font.size // 3)
    heights = [font.getbbox(s)[3] for s in lines]
    text_w = max(int(font.getlength(s)) for s in lines)
    line_h = max(heights) + pad
    out = Image.new("RGB", (max(w, text_w + 2 * pad), h + pad + line_h * len(lines)), (0, 0, 0))
    out.paste(img, (0, 0))
    cap = ImageDraw.Draw(out)
    for k, text in enumerate(lines):
        colour = (255, 255, 255)
        if k == 0 and "predicted" in rec:
            colour = (255, 120, 120) if rec["predicted"] == "malignant" else (150, 230, 150)
        cap.text((pad, h + pad + k * line_h), text, fill=colour, font=font)
    return _png_bytes(np.asarray(out))


def caption_lines(rec: dict[str, Any], card: dict[str, Any], w: int, h: int) -> list[str]:
    """The overlay's caption: class and probability first, then the lesion and what the colours mean."""
    lines = []
    if "predicted" in rec:
        pm = rec["p_malignant"]  # 2 decimals, 4 near 0.5 (where 2 would read 0.50 whichever side it is on)
        lines.append(f"{rec['predicted']}  (p malignant {pm:.2f})" if abs(pm - 0.5) >= 0.005 else
                     f"{rec['predicted']}  (p malignant {pm:.4f})")
    if "lesion_area_px" in rec:
        if rec["lesion_area_px"]:
            lines.append(f"lesion {rec['lesion_area_px']} px ({rec['lesion_area_fraction']:.1%}): outline magenta, "
                         f"box cyan")
        else:
            lines.append(f"no lesion above threshold {rec['lesion_threshold']:.2f}")
    if "seen_x1" in rec and (rec["seen_x1"], rec["seen_y1"], rec["seen_x2"], rec["seen_y2"]) != (0, 0, w, h):
        lines.append("dimmed: outside the centre crop the network saw")
    if rec.get("warning"):
        lines.append(f"warning: {w}x{h} px input, not meaningful")
    lines.append(f"{w}x{h} px, research use only")
    return lines


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


def quantize_onnx(src: Path, dst: Path, size: int, calibration: Any = None) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) of an exported model with onnxruntime's quantiser.

    ``calibration``: ``(N, 3, S, S)`` float32 inputs (the training images, preprocessed); random inputs when
    omitted (enough for latency, not for accuracy)."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = calibration if calibration is not None else np.random.default_rng(0).normal(size=(16, 3, size, size)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data[i:i + 1] for i in range(len(data)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    pre = Path(dst).with_name(Path(dst).stem + "_pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return Path(dst)
