"""Train-or-load the runs of an experiment and gather their records into tables."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

import numpy as np
import pandas as pd

from lanet_core.models.geometry import fusion_stride, lesion_map_size
from lanet_core.errors import BudgetExhausted, LanetError
from lanet_core.precision import precision_name
from lanet_core.runs import RunResult, load_result, prepare_run, read_provenance, train_or_load
from lanet_core.study import posthoc
from lanet_core.study.experiments import RunSpec, experiment_runs
from lanet_core.study.profiles import Profile

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "accuracy", "precision_macro", "recall_macro", "specificity_macro", "f1_macro", "auc", "auc_authors",
    "precision_malignant", "recall_malignant", "specificity_malignant", "f1_malignant",
    "iou", "dice", "iou_box", "dice_box", "iou_tuned", "dice_tuned",
]
# metrics reported for the epoch another selection criterion picked (``selection_alternatives``)
ALTERNATIVE_METRICS = ["accuracy", "auc", "iou", "iou_tuned"]


def run_dir_of(spec: RunSpec, profile: Profile) -> Path:
    return prepare_run(spec.config, profile.output / "runs")[3]


def ensure_run(spec: RunSpec, profile: Profile, *, train: bool = True, deadline: float | None = None,
               wait: bool = True) -> RunResult | None:
    """The finished run of ``spec`` (trained if ``train`` and needed), with its post-hoc analyses; None if missing.

    ``wait=False``: raise :class:`lanet_core.runs.RunBusy` when another process is training the run.
    """
    root = profile.output / "runs"
    if train:
        result = train_or_load(spec.config, runs_root=root, deadline=deadline, wait=wait)
    else:
        result = load_result(run_dir_of(spec, profile))
        if result is None:
            return None
    for item in spec.posthoc:
        _ensure_posthoc(result, item, profile)
    return result


def _ensure_posthoc(result: RunResult, item: str, profile: Profile) -> None:
    have_ckpt = (result.run_dir / "checkpoints" / "best.pt").is_file()
    try:
        if item == "gradcam" and not posthoc.has_gradcam(result.run_dir) and have_ckpt:
            posthoc.compute_gradcam(result, n_examples=int(profile.gradcam.get("examples", 8)))
        elif item.startswith("external:"):
            key = item.split(":", 1)[1]
            if posthoc.load_external(result.run_dir, key) is None and have_ckpt:
                posthoc.compute_external(result, key, profile.dataset(key))
    except LanetError as exc:  # e.g. the other dataset is absent here: the table says so
        log.warning("%s: %s skipped (%s)", result.run_dir.name, item, exc)


def lesion_map_columns(cfg: dict) -> dict[str, object]:
    """``lesion_map`` ("4x4") and ``iou_ceiling`` (oracle IoU of that map on the test split, :mod:`lanet_core.ceilings`)
    for LA-Net runs; empty for models with full-resolution or no lesion maps. The oracle draws the run's training
    target: the mask, or the filled box where every located training row of the manifest is a box (BUS-BRA)."""
    if cfg["model"]["arch"] != "lanet":
        return {"lesion_map": "", "iou_ceiling": np.nan}
    size = int(cfg["data"]["image_size"])
    m = lesion_map_size(size, fusion_stride(cfg["model"]))
    e = cfg["eval"]
    try:
        ceiling = _ceiling(cfg["data"]["manifest"], size, m, cfg["loss"]["target_downsample"], bool(e["align_corners"]),
                           float(e["threshold"]), cfg["data"].get("resize", "squash"))
    except LanetError as exc:  # data absent: the ceiling needs the masks
        log.warning("oracle ceiling skipped (%s)", exc)
        ceiling = np.nan
    return {"lesion_map": f"{m}x{m}", "iou_ceiling": ceiling}


_CEILINGS: dict[tuple, float] = {}
_SPLIT_ARRAYS: dict[tuple, tuple] = {}  # (test rows, size, resize, source) -> (masks, oracle source)


def training_location(rows: pd.DataFrame) -> str:
    """``"box"`` when every training row of a manifest's ``rows`` that has a location is labelled ``box`` (the runs
    train on filled boxes), else ``"mask"``."""
    located = rows.loc[(rows["split"] == "train") & (rows["location_label"] != "none"), "location_label"]
    return "box" if len(located) and (located == "box").all() else "mask"


def _ceiling(manifest: str, size: int, m: int, target: str, align: bool, threshold: float, resize: str) -> float:
    key = (manifest, size, m, target, align, threshold, resize)
    if key not in _CEILINGS:
        from lanet_core.ceilings import oracle_scores, split_masks
        from lanet_core.data.sources import load_manifest

        rows = load_manifest(manifest)[0]
        source_kind = training_location(rows)
        test = rows.loc[rows["split"] == "test"]
        arrays_key = (tuple(test["image_id"]), tuple(test["mask_path"]), tuple(test["bbox"]), size, resize,
                      source_kind)
        if arrays_key not in _SPLIT_ARRAYS:  # the folds' manifests share test rows across box fractions
            if source_kind == "box":
                masks, boxes, _ = split_masks(manifest, size, "test", resize=resize, with_boxes=True)
            else:
                masks, _ = split_masks(manifest, size, "test", resize=resize)
                boxes = None
            _SPLIT_ARRAYS[arrays_key] = (masks, boxes)
        masks, source = _SPLIT_ARRAYS[arrays_key]
        s = (oracle_scores(masks, m, target, threshold=threshold, align_corners=align, source=source)
             if len(masks) else None)
        _CEILINGS[key] = float(s["iou"].mean()) if s is not None else float("nan")
    return _CEILINGS[key]


def run_fields(cfg: dict, run_dir: Path) -> dict[str, object]:
    """What a run *is*, read from its recorded config and provenance (never parsed from its display name):
    ``arch``, ``backbone``, ``weights``, ``image_size``, ``fusion_stride`` and ``attention`` (LA-Net: the modules
    present, e.g. ``"CAM+SAM+MAM"``; others: empty), ``train_images``, ``selected_on``, ``precision`` and ``device`` (cpu | gpu)."""
    m, d = cfg["model"], cfg["data"]
    lanet = m["arch"] == "lanet"
    modules = [name for name, key in (("CAM", "use_cam"), ("SAM", "use_sam"), ("MAM", "use_mam")) if m.get(key, True)]
    prov = read_provenance(run_dir)
    return {
        "arch": m["arch"], "backbone": m["backbone"], "weights": m.get("weights", "none"),
        "image_size": int(d["image_size"]), "fusion_stride": fusion_stride(m) if lanet else np.nan,
        "attention": "+".join(modules) if lanet else "", "train_images": d["train_images"],
        "selected_on": cfg["train"]["select_on"],
        # older records name only ``amp`` (bool); the text is the same function of it
        "precision": prov.get("precision") or (precision_name(bool(prov["amp"])) if "amp" in prov else ""),
        "device": device_kind(prov),
    }


def device_kind(prov: dict) -> str:
    """``"cpu"`` or ``"gpu"``: the kind of device a run trained on (``device`` in its provenance). A GPU retrain of a
    CPU run differs by several accuracy points (``hardware_check``), so no comparison may mix the two."""
    name = device_name(prov, default="")
    return "gpu" if name.startswith("cuda") else ("cpu" if name else "")


def device_name(prov: dict, default: str = "?") -> str:
    """The device a run trained on, as the study's tables name it: ``"cpu"`` or the GPU's name (``"cuda: NVIDIA
    H200"``); ``default`` where the provenance does not say (``"?"`` in a table, so that a run without a record is
    never counted as a CPU run)."""
    dev = str(prov.get("device", "") or default)
    return f"cuda: {prov.get('hardware', {}).get('gpu') or 'GPU'}" if dev.startswith("cuda") else dev


def _with_run_keys(df: pd.DataFrame, spec: RunSpec) -> pd.DataFrame:
    """``df`` (one run's per-image or per-epoch records) with the run's method, seed and group columns."""
    df.insert(0, "method", spec.method)
    df.insert(1, "seed", spec.seed)
    for k, v in spec.group.items():
        df[k] = v
    return df


@dataclass
class ExperimentResults:
    """The runs of one experiment: specs, finished results, and what is still missing."""

    name: str
    specs: list[RunSpec]
    results: list[RunResult | None]
    profile: Profile
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[RunSpec]:
        return [s for s, r in zip(self.specs, self.results) if r is None]

    def _done(self):
        return [(s, r) for s, r in zip(self.specs, self.results) if r is not None]

    def subset(self, **group: Any) -> "ExperimentResults":
        """The runs whose group columns equal ``group`` (e.g. ``boxed=20`` of the partly-labelled CV), as an
        :class:`ExperimentResults` of its own (same profile and name)."""
        keep = [(s, r) for s, r in zip(self.specs, self.results) if all(s.group.get(k) == v for k, v in group.items())]
        return ExperimentResults(self.name, [s for s, _ in keep], [r for _, r in keep], self.profile, self.seconds,
                                 list(self.notes))

    def runs(self) -> pd.DataFrame:
        """One row per finished run: method, seed, group columns, test metrics, run directory name, selection
        details, and the structured fields of :func:`run_fields` (filter on those, not on the method's label)."""
        rows = []
        for s, r in self._done():
            row = {"method": s.method, "seed": s.seed, **s.group}
            row.update({m: (np.nan if r.test.get(m) is None else r.test.get(m)) for m in METRIC_COLUMNS if m in r.test})
            row["run"] = r.run_dir.name
            row["epochs"] = r.config["train"]["stage1_epochs"] + r.config["train"]["stage2_epochs"]
            row.update(lesion_map_columns(r.config))
            thr = r.metrics.get("lesion_threshold") or {}
            row["threshold_val"] = thr.get("threshold", np.nan)
            row["val_iou"] = thr.get("iou_at_0.5", np.nan)  # validation IoU of the selected model at 0.5
            row["val_iou_tuned"] = thr.get("iou", np.nan)  # ... and at its validation-tuned threshold
            row["selected_by"] = r.metrics.get("selected", {}).get("criterion", "accuracy" if "accuracy" in r.test else "iou")
            for crit, alt in (r.metrics.get("selection_alternatives") or {}).items():
                for m in ALTERNATIVE_METRICS:
                    row[f"{m}@{crit}"] = alt["test"].get(m, np.nan)
                row[f"epoch@{crit}"] = alt["epoch"]
            row["epoch_selected"] = r.metrics.get("selected", {}).get("epoch", np.nan)
            for k, v in run_fields(r.config, r.run_dir).items():
                row.setdefault(k, v)  # a group column of the same name (e.g. image_size) is the same fact
            rows.append(row)
        return pd.DataFrame(rows)

    def per_image(self) -> pd.DataFrame:
        """Per-image test records of every finished run, with method, seed and group columns."""
        frames = []
        for s, r in self._done():
            frames.append(_with_run_keys(r.per_image.copy(), s))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def history(self) -> pd.DataFrame:
        """Per-epoch training records (``history.csv``: stage, epoch, train loss, validation metrics, selected) of
        every finished run, with method, seed, group columns and ``run``; ``step`` counts epochs across stages."""
        frames = []
        for s, r in self._done():
            p = r.run_dir / "history.csv"
            if not p.is_file():
                continue
            df = _with_run_keys(pd.read_csv(p), s)
            df["run"] = r.run_dir.name
            df["step"] = np.arange(1, len(df) + 1)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def gradcam(self) -> pd.DataFrame:
        """Per-image Grad-CAM scores (``gradcam.csv``) of every finished run that has them, with method, seed,
        group columns (e.g. ``init``: runs of one method and seed in two regimes stay apart) and ``run``."""
        frames = []
        for s, r in self._done():
            p = r.run_dir / "gradcam.csv"
            if "gradcam" in s.posthoc and p.is_file():
                df = _with_run_keys(pd.read_csv(p), s)
                df["run"] = r.run_dir.name
                frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def external(self, key: str) -> pd.DataFrame:
        """Test metrics of the runs evaluated on another dataset (``external:<key>``), one row per run."""
        rows = []
        for s, r in self._done():
            if f"external:{key}" not in s.posthoc:
                continue
            ext = posthoc.load_external(r.run_dir, key)
            if ext is None:
                continue
            row = {"method": s.method, "seed": s.seed, **s.group, "evaluated_on": key}
            row.update({m: (np.nan if ext["test"].get(m) is None else ext["test"][m]) for m in METRIC_COLUMNS if m in ext["test"]})
            rows.append(row)
        return pd.DataFrame(rows)

    def status(self) -> str:
        n, m = len(self.specs), len(self.missing)
        return f"{self.name}: {n - m}/{n} runs finished" + (f"; missing: {', '.join(s.label for s in self.missing[:5])}" + (" ..." if m > 5 else "") if m else "")


def run_experiment(name: str, profile: Profile, *, train: bool = True, deadline: float | None = None,
                   progress: bool = True) -> ExperimentResults:
    """Train-or-load every run of experiment ``name`` (``train=False``: load only what is finished)."""
    specs = experiment_runs(name, profile)
    t0 = time.time()
    results: list[RunResult | None] = []
    for i, spec in enumerate(specs):
        if deadline is not None and time.time() > deadline:
            raise BudgetExhausted(f"time budget reached before {spec.label}")
        t = time.time()
        r = ensure_run(spec, profile, train=train, deadline=deadline)
        results.append(r)
        if progress and train and r is not None and not r.cached:
            print(f"[{name} {i + 1}/{len(specs)}] {spec.method} seed {spec.seed} {spec.group or ''}: "
                  f"{r.summary()} ({(time.time() - t) / 60:.1f} min)", flush=True)
    res = ExperimentResults(name, specs, results, profile, time.time() - t0)
    if res.missing:
        res.notes.append(res.status())
    return res
