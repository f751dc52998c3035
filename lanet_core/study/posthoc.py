"""Analyses computed once from a run's checkpoint and stored beside its records (committed, so tables and
figures re-render without checkpoints):

* ``gradcam.csv`` / ``gradcam_examples.npz``: Grad-CAM (``grad-cam`` package) of the predicted class on the
  last feature stage, per test image: the share of CAM energy inside the true lesion and the pointing-game
  hit (the CAM's maximum falls inside the lesion), plus a few CAMs for figures;
* ``external/<key>.csv`` / ``.json``: the model evaluated on another dataset's test split (external validity).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from lanet_core.errors import ConfigError
from lanet_core.io import atomic_write_bytes, atomic_write_text, record_csv, record_json
from lanet_core.evaluation import per_image_records, predict, summary_metrics
from lanet_core.metrics import decide_logits
from lanet_core.models.output import LogitsOnly
from lanet_core.runs import RunResult
from lanet_core.training.context import RunContext


def _context(result: RunResult, manifest: str | None = None) -> tuple[RunContext, torch.nn.Module]:
    """The run's context (on ``manifest`` if given) and its selected model (``checkpoints/best.pt``)."""
    ctx = RunContext.from_config(result.config, manifest)
    return ctx, ctx.load_model(result.run_dir / "checkpoints" / "best.pt")


def has_gradcam(run_dir: Path) -> bool:
    return (Path(run_dir) / "gradcam.csv").is_file()


def cam_scores(cam: np.ndarray, lesion: np.ndarray) -> tuple[float, int]:
    """(share of CAM energy inside the lesion, pointing-game hit) for one ``(S,S)`` CAM and boolean lesion."""
    total = float(cam.sum())
    energy = float(cam[lesion].sum() / total) if total > 0 else float("nan")
    peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return energy, int(bool(lesion[peak])) if total > 0 else 0


def compute_gradcam(result: RunResult, n_examples: int = 8, batch_size: int = 8) -> pd.DataFrame:
    """Grad-CAM records of a classification run's test images (needs ``checkpoints/best.pt``)."""
    from pytorch_grad_cam import GradCAM

    ctx, model = _context(result)
    model.eval()
    if model.gradcam_layer is None:
        raise ValueError(f"{result.run_dir.name}: model has no Grad-CAM layer")
    ds, loader = ctx.split_loader(ctx.cfg["eval"]["split"])
    rows = ds.rows
    recs, small_cams = [], {}
    reshape = model.gradcam_reshape_transform
    with GradCAM(model=LogitsOnly(model), target_layers=[model.gradcam_layer], reshape_transform=reshape) as cam:
        for b in loader:
            x = b["image"].to(ctx.device)
            maps = cam(input_tensor=x, targets=None)  # (B, S, S) in [0, 1], predicted class
            with torch.no_grad():
                pred = decide_logits(model(x).logits.float().cpu().numpy())
            for i in range(len(x)):
                idx = int(b["index"][i])
                has = bool(b["has_mask"][i])
                lesion = (b["mask"][i, 0].numpy() >= 0.5) if has else None
                energy, hit = cam_scores(maps[i], lesion) if has else (float("nan"), -1)
                recs.append({
                    "image_id": rows["image_id"].iloc[idx], "y_true": int(b["label"][i]), "y_pred": int(pred[i]),
                    "has_mask": int(has), "cam_energy_in_lesion": energy, "pointing_hit": hit if has else np.nan,
                    "lesion_area": float(lesion.mean()) if has else np.nan,
                })
                if has:
                    small = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(maps[i])[None, None], (64, 64))
                    small_cams[rows["image_id"].iloc[idx]] = np.round(small[0, 0].numpy() * 255).astype(np.uint8)
    df = pd.DataFrame(recs)
    masked = df[df["has_mask"] == 1]
    labels = pd.Series(np.where(masked["y_true"] == 1, "malignant", "benign"), index=masked["image_id"])
    ex_ids = pick_examples(labels, n_examples) if len(labels) else []  # both classes, deterministic
    examples = [small_cams[i] for i in ex_ids]
    atomic_write_text(result.run_dir / "gradcam.csv", record_csv(df))
    buf = io.BytesIO()
    np.savez_compressed(buf, image_id=np.asarray(ex_ids), cams=np.stack(examples) if examples else np.zeros((0, 64, 64), np.uint8))
    atomic_write_bytes(result.run_dir / "gradcam_examples.npz", buf.getvalue())
    return df


def external_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "external" / f"{key}.json"


def compute_external(result: RunResult, key: str, manifest: str) -> dict:
    """Evaluate a finished run on the test split of ``manifest`` (same size and preprocessing)."""
    ctx, model = _context(result, manifest)
    ds, loader = ctx.split_loader("test")
    pred = predict(model, loader, ctx.device, amp=ctx.amp, channels_last=ctx.channels_last)
    e = ctx.cfg["eval"]
    per = per_image_records(pred, ds.rows, threshold=e["threshold"], align_corners=e["align_corners"], gt_mode=e["gt"])
    summary = {"run": result.run_dir.name, "evaluated_on": manifest, "split": "test", "test": summary_metrics(per)}
    atomic_write_text(result.run_dir / "external" / f"{key}.csv", record_csv(per))
    atomic_write_text(external_path(result.run_dir, key), record_json(summary))
    return json.loads(record_json(summary))


def load_external(run_dir: Path, key: str) -> dict | None:
    p = external_path(run_dir, key)
    return json.loads(p.read_text()) if p.is_file() else None


def pick_examples(labels: Mapping[str, str] | pd.Series, n: int, *, available: Iterable[Iterable[str]] = (),
                  seed: int = 0) -> list[str]:
    """``n`` image ids, alternating over the classes (sorted names), drawn from the ids in ``labels`` that are in
    every ``available`` collection; within a class a seeded permutation of the sorted ids. Deterministic; fewer
    than ``n`` when fewer candidates exist.
    """
    if n < 1:
        raise ConfigError(f"pick_examples: n must be >= 1, got {n}")
    labels = pd.Series(labels, dtype=object) if not isinstance(labels, pd.Series) else labels
    keep = set(map(str, labels.index))
    for ids in available:
        keep &= set(map(str, ids))
    cand = labels[[str(i) in keep for i in labels.index]]
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(sorted(map(str, cand.index[cand == c])))) for c in sorted(set(cand))]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(str(q.pop(0)))
    return out
