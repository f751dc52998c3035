"""Per-image explorer of the study's committed run records (``notebooks/00_explorer``).

Everything here reads the records a finished run commits (``results/runs/<run>/``: ``per_image.csv``,
``lesion_maps.npz``, ``metrics.json``, ``gradcam.csv`` / ``gradcam_examples.npz`` where recorded, ``external/``)
plus the data audit's near-duplicate list and the claims table; no checkpoint is needed. The images themselves
come from the data root through the run's manifest; without the data, the views say so and show the lesion map
alone. Views that would need a checkpoint (Grad-CAM of an image outside the recorded examples, predictions on
another split, a lesion map a run did not store) say so instead of computing anything.

Layers: :class:`Records` (which runs exist: experiment, method, seed), :class:`RunRecords` (one run's records),
:func:`select_images` (filter and sort a run's images), :func:`image_view` / :func:`draw_views` (one image of one
or two runs, as numbers and a figure), :func:`claim_links` / :func:`claim_images` (from a claim to the images
behind it), and :func:`explorer` (the ipywidgets front end).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from lanet_core.errors import LanetError
from lanet_core.study.experiments import EXPERIMENTS, RunSpec, experiment_runs
from lanet_core.study.profiles import Profile, load_profile

DEFAULT_PROFILE = "cpu"
LABELS = ("benign", "malignant")
NEAR_DUPLICATES = "busi_near_duplicates.csv"
CLAIMS = "claims.csv"

SHOW = ("all", "errors", "correct", "benign", "malignant", "near-duplicate twins", "no twin")
SORT = ("image id", "most confident mistakes", "lowest IoU", "highest IoU", "p(malignant)")
PER_IMAGE_METRIC = {"accuracy": "correct", "auc": "p_true", "iou": "iou", "iou_box": "iou_box",
                    "cam_energy_in_lesion": "cam_energy_in_lesion"}
CHECKPOINT = "the run's checkpoint (checkpoints/best.pt: not committed, kept only where the run was trained)"


# ----------------------------------------------------------------------------------------------- which runs exist
def run_dir_without_data(spec: RunSpec, profile: Profile) -> Path:
    """The run folder of ``spec`` as :func:`lanet_core.study.records.run_dir_of` finds it, without the data root: the
    identity hashes the resolved config and the committed manifest file, never the images."""
    from lanet_core.config import resolve_config
    from lanet_core.data.sources import resolve_manifest
    from lanet_core.io import file_sha256
    from lanet_core.runs import run_dir_for

    cfg = spec.config
    cfg = resolve_config(cfg) if "data" not in cfg or "eval" not in cfg else dict(cfg)
    manifest, _ = resolve_manifest(cfg["data"]["manifest"], root="(not needed)")
    return run_dir_for(cfg, file_sha256(manifest), profile.output / "runs")


def _variant(group: dict[str, Any], varying: Sequence[str]) -> str:
    return ", ".join(f"{k}={_short_value(group[k])}" for k in varying if k in group)


def _short_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def choice_label(method: str, variant: str) -> str:
    """The explorer's name of a method within an experiment: ``"R18+LA-Net"`` or ``"R18+LA-Net · ratio=0.25"``."""
    return f"{method} · {variant}" if variant else method


class Records:
    """The finished runs of a profile's experiments, by experiment, method (with its variant) and seed."""

    def __init__(self, profile: str | Profile = DEFAULT_PROFILE):
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self._runs: dict[str, pd.DataFrame] = {}
        self._records: dict[str, RunRecords] = {}

    @property
    def runs_root(self) -> Path:
        return self.profile.output / "runs"

    def runs(self, experiment: str) -> pd.DataFrame:
        """One row per finished run of ``experiment``: ``method``, ``variant`` (the group values that vary within the
        experiment), ``choice`` (:func:`choice_label`), ``seed``, ``run`` (folder name), the group columns and the
        run's recorded fields (:func:`lanet_core.study.records.run_fields`: arch, backbone, attention, ...)."""
        if experiment not in self._runs:
            from lanet_core.study.records import run_fields

            specs = experiment_runs(experiment, self.profile)
            keys = list(dict.fromkeys(k for s in specs for k in s.group))
            varying = [k for k in keys if len({_short_value(s.group.get(k)) for s in specs}) > 1]
            rows = []
            for s in specs:
                d = run_dir_without_data(s, self.profile)
                if not (d / "metrics.json").is_file():
                    continue
                cfg = yaml.safe_load((d / "config.yaml").read_text())
                variant = _variant(s.group, varying)
                row = {"method": s.method, "variant": variant, "choice": choice_label(s.method, variant),
                       "seed": int(s.seed), "run": d.name, **s.group}
                for k, v in run_fields(cfg, d).items():
                    row.setdefault(k, v)
                rows.append(row)
            self._runs[experiment] = pd.DataFrame(rows)
        return self._runs[experiment]

    def experiments(self) -> list[str]:
        """The profile's experiments with at least one finished run, in the study's order."""
        out = []
        for name in EXPERIMENTS:
            try:
                if len(self.runs(name)):
                    out.append(name)
            except LanetError:  # e.g. an experiment whose manifests this checkout lacks
                continue
        return out

    def choices(self, experiment: str) -> list[str]:
        """Method choices (method and variant) of ``experiment``, in the study's order."""
        runs = self.runs(experiment)
        return list(dict.fromkeys(runs["choice"])) if len(runs) else []

    def seeds(self, experiment: str, choice: str) -> list[int]:
        runs = self.runs(experiment)
        return sorted(int(s) for s in runs.loc[runs["choice"] == choice, "seed"]) if len(runs) else []

    def record(self, experiment: str, choice: str, seed: int) -> RunRecords:
        """The records of the run of ``choice`` at ``seed`` in ``experiment`` (KeyError if there is none)."""
        runs = self.runs(experiment)
        hit = runs[(runs["choice"] == choice) & (runs["seed"] == int(seed))] if len(runs) else runs
        if hit.empty:
            raise KeyError(f"{experiment}: no finished run of {choice!r} at seed {seed}")
        row = hit.iloc[0]
        name = row["run"]
        if name not in self._records:
            self._records[name] = RunRecords(self.runs_root / name, experiment, row["method"], int(row["seed"]),
                                             row["variant"], self)
        return self._records[name]

    # --------------------------------------------------------------------------------------- study-wide tables
    @cached_property
    def twins(self) -> pd.DataFrame:
        """Suspected near-duplicates of BUSI test images in its training or validation split (``01_data_audit``):
        ``test_id, match_id, match_split, distance`` (the closest match per test image); empty if not rendered."""
        path = self.profile.tables_dir / NEAR_DUPLICATES
        if not path.is_file():
            return pd.DataFrame(columns=["test_id", "match_id", "match_split", "distance"])
        df = pd.read_csv(path, dtype={"test_id": str, "match_id": str})
        df = df[df["suspected_leak"].astype(str) == "True"].sort_values(["test_id", "distance"])
        return df.drop_duplicates("test_id")[["test_id", "match_id", "match_split", "distance"]].reset_index(drop=True)

    @cached_property
    def fixed_busi_manifest(self) -> str:
        return str(self.profile.dataset("busi"))

    def manifest_rows(self, manifest: str) -> pd.DataFrame:
        """A manifest's rows (committed CSV; no data needed), indexed by ``image_id``."""
        from lanet_core.data.manifest import read_manifest
        from lanet_core.data.sources import resolve_manifest

        key = f"manifest:{manifest}"
        if key not in self._runs:
            path, _ = resolve_manifest(manifest, root="(not needed)")
            self._runs[key] = read_manifest(path).set_index("image_id", drop=False)
        return self._runs[key]

    def data_root(self, manifest: str) -> Path | None:
        """The data root holding the manifest's images, None when the data is absent here."""
        from lanet_core.paths import DataRootNotFound, find_data_root

        rows = self.manifest_rows(manifest)
        first = rows["image_path"].iloc[0] if len(rows) else ""
        try:
            return find_data_root(required=[first] if first else [])
        except DataRootNotFound:
            return None


# ------------------------------------------------------------------------------------------------- one run
@dataclass
class RunRecords:
    """The committed records of one finished run."""

    run_dir: Path
    experiment: str
    method: str
    seed: int
    variant: str = ""
    records: Records | None = field(default=None, repr=False)

    @property
    def choice(self) -> str:
        return choice_label(self.method, self.variant)

    @property
    def label(self) -> str:
        return f"{self.choice} seed {self.seed}"

    @cached_property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.run_dir / "config.yaml").read_text())

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "metrics.json").read_text())

    @property
    def image_size(self) -> int:
        return int(self.config["data"]["image_size"])

    @property
    def tuned_threshold(self) -> float | None:
        """The lesion threshold tuned on the run's validation split (``metrics.json`` ``lesion_threshold``)."""
        thr = self.metrics.get("lesion_threshold") or {}
        return float(thr["threshold"]) if thr.get("threshold") is not None else None

    @property
    def has_checkpoint(self) -> bool:
        return (self.run_dir / "checkpoints" / "best.pt").is_file()

    def splits(self) -> list[str]:
        """``test`` (the run's own test split), then ``external:<key>`` for each dataset it was also evaluated on."""
        ext = sorted(p.stem for p in (self.run_dir / "external").glob("*.csv")) if (self.run_dir / "external").is_dir() else []
        return ["test"] + [f"external:{k}" for k in ext]

    def manifest(self, split: str = "test") -> str:
        """The manifest behind ``split``'s images (an external split: the other dataset's manifest)."""
        if split.startswith("external:"):
            meta = self.run_dir / "external" / f"{split.split(':', 1)[1]}.json"
            try:
                m = json.loads(meta.read_text()).get("manifest")
            except (OSError, ValueError):
                m = None
            if m:
                return str(m)
            if self.records is not None:
                return str(self.records.profile.dataset(split.split(":", 1)[1]))
        return str(self.config["data"]["manifest"])

    def images(self, split: str = "test") -> pd.DataFrame:
        """The run's per-image records on ``split`` with ``p_true`` (probability of the true class),
        ``confidence`` (of the predicted class), ``error``, ``twin`` / ``twin_split`` (a suspected near-duplicate
        in training or validation, fixed BUSI split only) and ``cam_energy_in_lesion`` / ``pointing_hit`` where
        Grad-CAM was recorded."""
        if split == "test":
            df = pd.read_csv(self.run_dir / "per_image.csv", dtype={"image_id": str})
        else:
            df = pd.read_csv(self.run_dir / "external" / f"{split.split(':', 1)[1]}.csv", dtype={"image_id": str})
        df = df.copy()
        if "p_malignant" in df:
            p = df["p_malignant"].astype(float)
            df["p_true"] = np.where(df["y_true"] == 1, p, 1 - p)
            df["confidence"] = np.where(df["y_pred"] == 1, p, 1 - p)
            df["error"] = df["y_pred"] != df["y_true"]
        df["twin"], df["twin_split"] = "", ""
        if self.records is not None and split == "test" and self.manifest(split) == self.records.fixed_busi_manifest:
            tw = self.records.twins.set_index("test_id")
            hit = df["image_id"].isin(tw.index)
            df.loc[hit, "twin"] = df.loc[hit, "image_id"].map(tw["match_id"])
            df.loc[hit, "twin_split"] = df.loc[hit, "image_id"].map(tw["match_split"])
        if split == "test" and (self.run_dir / "gradcam.csv").is_file():
            gc = pd.read_csv(self.run_dir / "gradcam.csv", dtype={"image_id": str})
            df = df.merge(gc[["image_id", "cam_energy_in_lesion", "pointing_hit"]], on="image_id", how="left")
        return df

    @cached_property
    def lesion_maps(self) -> dict[str, np.ndarray]:
        """Stored lesion maps (test split) by image id, as probabilities in [0, 1] (``lesion_maps.npz``; empty if
        the run stored none: a classifier, or a record older than the archive)."""
        return _stored_maps(self.run_dir / "lesion_maps.npz", "maps")

    @cached_property
    def gradcam_examples(self) -> dict[str, np.ndarray]:
        """Grad-CAM maps (predicted class, [0, 1]) of the few test images the run recorded as examples."""
        return _stored_maps(self.run_dir / "gradcam_examples.npz", "cams")

    @property
    def makes_lesion_maps(self) -> bool:
        """Whether the model has a lesion map at all (a plain classifier has none)."""
        from lanet_core.models.registry import architecture

        return architecture(self.config["model"]["arch"]).lesion_head


def _stored_maps(path: Path, key: str) -> dict[str, np.ndarray]:
    """uint8 maps stored in a run's ``.npz`` (``image_id`` + ``key``) as float [0, 1] by image id; empty if absent."""
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return {str(i): m.astype(np.float32) / 255.0 for i, m in zip(z["image_id"], z[key])}


# ------------------------------------------------------------------------------------------- selection, sorting
def select_images(images: pd.DataFrame, show: str = "all", sort: str = "image id") -> pd.DataFrame:
    """Filter (``show``, one of :data:`SHOW`) and order (``sort``, one of :data:`SORT`) a run's images.

    ``most confident mistakes``: the errors first, the most confident wrong decision first, then the correct images
    from the least confident (the near misses); ``lowest IoU`` / ``highest IoU``: images without an IoU last;
    ties keep image-id order."""
    if show not in SHOW:
        raise ValueError(f"show {show!r}: one of {SHOW}")
    if sort not in SORT:
        raise ValueError(f"sort {sort!r}: one of {SORT}")
    df = images.copy()
    if show in ("errors", "correct") and "error" not in df:
        df = df.iloc[0:0]
    elif show == "errors":
        df = df[df["error"]]
    elif show == "correct":
        df = df[~df["error"]]
    elif show in ("benign", "malignant"):
        df = df[df["label"] == show]
    elif show == "near-duplicate twins":
        df = df[df["twin"] != ""]
    elif show == "no twin":
        df = df[df["twin"] == ""]
    df = df.sort_values("image_id", key=_natural_key, kind="stable")
    if sort == "most confident mistakes" and "error" in df:
        key = np.where(df["error"], -df["confidence"], 1 + df["confidence"])  # errors (most confident) first
        df = df.iloc[np.argsort(key, kind="stable")]
    elif sort in ("lowest IoU", "highest IoU") and "iou" in df:
        v = df["iou"].astype(float)
        key = v if sort == "lowest IoU" else -v
        df = df.iloc[np.argsort(key.fillna(np.inf).to_numpy(), kind="stable")]
    elif sort == "p(malignant)" and "p_malignant" in df:
        df = df.iloc[np.argsort(-df["p_malignant"].to_numpy(float), kind="stable")]
    return df.reset_index(drop=True)


def _natural_key(s: pd.Series) -> pd.Series:
    """``benign (2)`` before ``benign (10)``: label, then the number in the id."""
    num = s.str.extract(r"(\d+)", expand=False).fillna("0").astype(int)
    return s.str.replace(r"\d+", "", regex=True) + num.map(lambda n: f"{n:08d}")


def image_label(row: pd.Series | dict) -> str:
    """One line for an image in the explorer's list: id, truth, decision, p(malignant), IoU, twin."""
    parts = [str(row["image_id"])]
    if "p_malignant" in row and not pd.isna(row.get("p_malignant")):
        mark = "ok" if not row["error"] else "WRONG"
        parts.append(f"{LABELS[int(row['y_true'])]} -> {LABELS[int(row['y_pred'])]} {mark}")
        parts.append(f"p={float(row['p_malignant']):.2f}")
    if "iou" in row and not pd.isna(row.get("iou")):
        parts.append(f"IoU {float(row['iou']):.2f}")
    if row.get("twin"):
        parts.append(f"twin: {row['twin']}")
    return " | ".join(parts)


# ----------------------------------------------------------------------------------------------- one image
@dataclass
class ImageView:
    """What the explorer shows for one image of one run: the recorded numbers, the arrays to draw, and notes
    (data absent, what needs a checkpoint)."""

    run: str  # "R18+LA-Net seed 0"
    run_dir: str
    image_id: str
    split: str
    numbers: dict[str, Any]  # label, decision, p_malignant, iou, thresholds, ...
    image: np.ndarray | None = None  # (H, W, 3) uint8, original geometry
    true_mask: np.ndarray | None = None  # (H, W) bool
    lesion_map: np.ndarray | None = None  # stored map (h, w) in [0, 1]
    lesion_prob: np.ndarray | None = None  # the map on the image's geometry (or on the S x S input without data)
    gradcam: np.ndarray | None = None  # on the same geometry as lesion_prob
    thresholds: dict[str, float] = field(default_factory=dict)  # {"0.5": 0.5, "validation-tuned": 0.45}
    notes: list[str] = field(default_factory=list)
    gradcam_note: str = "Grad-CAM not recorded\nfor this image\n(needs the checkpoint)"


def _upsample(m: np.ndarray, size: int, align_corners: bool) -> np.ndarray:
    """Bilinear upsampling of a stored map to the network's ``size x size`` input (as the evaluation does)."""
    import torch
    import torch.nn.functional as F

    if m.shape == (size, size):
        return m.astype(np.float64)
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=align_corners)[0, 0].double().numpy()


def image_view(rec: RunRecords, image_id: str, split: str = "test", *, load_image: bool = True) -> ImageView:
    """The view of ``image_id`` in run ``rec`` (numbers from ``per_image.csv``, maps from the run's archives, the
    image and true outline from the data root when present)."""
    from lanet_core.data.images import map_to_original, read_image, read_mask_union
    from lanet_core.data.manifest import mask_paths

    images = rec.images(split)
    hit = images[images["image_id"] == image_id]
    if hit.empty:
        raise KeyError(f"{rec.label}: no image {image_id!r} in its {split} records")
    row = hit.iloc[0]
    numbers: dict[str, Any] = {"image_id": image_id, "true label": str(row["label"])}
    if "p_malignant" in row and not pd.isna(row["p_malignant"]):
        numbers.update({"decision": LABELS[int(row["y_pred"])], "correct": bool(not row["error"]),
                        "p_malignant": round(float(row["p_malignant"]), 4)})
    for col, name in (("iou", "IoU @0.5"), ("dice", "Dice @0.5"), ("iou_tuned", "IoU @tuned"),
                      ("cam_energy_in_lesion", "CAM energy in lesion"), ("pointing_hit", "pointing hit")):
        if col in row and not pd.isna(row[col]):
            numbers[name] = round(float(row[col]), 4)
    if row.get("twin"):
        numbers["near-duplicate twin"] = f"{row['twin']} ({row['twin_split']})"
    view = ImageView(run=rec.label, run_dir=rec.run_dir.name, image_id=image_id, split=split, numbers=numbers)
    # the image and its true outline, from the data root
    size, policy = rec.image_size, rec.config["data"].get("resize", "squash")
    align = bool(rec.config["eval"].get("align_corners", True))
    geometry = None
    if rec.records is not None and load_image:
        manifest = rec.manifest(split)
        rows = rec.records.manifest_rows(manifest)
        root = rec.records.data_root(manifest)
        if image_id in rows.index:
            mrow = rows.loc[image_id]
            geometry = (int(mrow["width"]), int(mrow["height"])) if str(mrow.get("width", "")).isdigit() else None
            if root is None:
                view.notes.append("image not shown: the data is not here (no data root holds "
                                  f"{mrow['image_path']}); the lesion map alone")
            else:
                try:
                    view.image = read_image(root / mrow["image_path"])
                    paths = mask_paths(mrow)
                    if paths:
                        view.true_mask = read_mask_union([root / p for p in paths])
                    geometry = (view.image.shape[1], view.image.shape[0])
                except LanetError as exc:
                    view.notes.append(f"image not shown: {exc}")
    # the lesion map, on the image's geometry (or the network's input without the image)
    thr = {"0.5": float(rec.config["eval"].get("threshold", 0.5))}
    if rec.tuned_threshold is not None:
        thr["validation-tuned"] = rec.tuned_threshold
    view.thresholds = thr
    numbers["threshold (validation-tuned)"] = rec.tuned_threshold if rec.tuned_threshold is not None else "not recorded"
    if split != "test":
        view.notes.append(f"{split}: lesion maps and Grad-CAM are recorded for the test split only; drawing them on "
                          f"this split needs {CHECKPOINT}")
    elif image_id in rec.lesion_maps:
        m = rec.lesion_maps[image_id]
        view.lesion_map = m
        prob = _upsample(m, size, align)
        view.lesion_prob = map_to_original(prob, *geometry, policy) if geometry and view.image is not None else prob
        numbers["lesion map"] = f"{m.shape[0]}x{m.shape[1]}" + (" (stored pooled from the native map)"
                                                                   if m.shape[0] == 64 and size > 64 else "")
        numbers["lesion max"] = round(float(m.max()), 4)
        if m.shape[0] == 64 and size > 64:
            view.notes.append("lesion map stored at 64x64 (average-pooled from the network's map): the outlines "
                              "drawn from it approximate the recorded IoU")
    elif not rec.makes_lesion_maps:
        view.notes.append(f"{rec.method} has no lesion map (a classifier)")
    else:
        view.notes.append(f"no lesion map stored for this run: re-evaluating it (`lanet evaluate`) needs {CHECKPOINT}")
    if split == "test":
        if image_id in rec.gradcam_examples:
            cam = _upsample(rec.gradcam_examples[image_id], size, False)
            view.gradcam = map_to_original(cam, *geometry, policy) if geometry and view.image is not None else cam
        elif rec.gradcam_examples:
            view.notes.append(f"Grad-CAM map recorded for {len(rec.gradcam_examples)} example images of this run "
                              f"({', '.join(sorted(rec.gradcam_examples)[:4])}, ...); for this image it needs "
                              f"{CHECKPOINT}")
        elif "p_malignant" not in numbers:
            view.gradcam_note = "no Grad-CAM\n(no class output)"
        elif "cam_energy_in_lesion" not in numbers:
            view.notes.append(f"no Grad-CAM recorded for this run; computing it needs {CHECKPOINT}")
    else:
        view.gradcam_note = f"Grad-CAM: test split only\n({split})"
    return view


def view_numbers(views: Sequence[ImageView]) -> pd.DataFrame:
    """The numbers of one or more views side by side (rows: quantities, columns: runs)."""
    keys = list(dict.fromkeys(k for v in views for k in v.numbers))
    return pd.DataFrame({v.run: [v.numbers.get(k, "") for k in keys] for v in views}, index=keys)


def draw_views(views: Sequence[ImageView]):
    """One row per view: the image with the true outline (green) and the predicted outlines at 0.5 (orange) and at
    the validation-tuned threshold (magenta, dashed); the stored lesion map with its colour bar (viridis, 0-1); the
    Grad-CAM where recorded. Returns a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = max(len(views), 1)
    fig, axes = plt.subplots(n, 3, figsize=(11.5, 3.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.25, 1, 1]})
    styles = {"0.5": dict(colors="#ff7f0e", linewidths=1.6, linestyles="solid"),
              "validation-tuned": dict(colors="#e377c2", linewidths=1.6, linestyles="dashed")}
    for (ax_img, ax_map, ax_cam), v in zip(axes, views):
        base = v.image if v.image is not None else None
        if base is not None:
            ax_img.imshow(base, interpolation="bilinear")
        elif v.lesion_prob is not None:
            ax_img.imshow(v.lesion_prob, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
        else:
            ax_img.text(0.5, 0.5, "no image here (data absent)\nand no lesion map", ha="center", va="center",
                        transform=ax_img.transAxes, fontsize=9)
        handles = []
        if v.true_mask is not None and v.true_mask.any():
            ax_img.contour(v.true_mask.astype(float), levels=[0.5], colors="#2ca02c", linewidths=1.6)
            handles.append(Line2D([], [], color="#2ca02c", lw=1.6, label="true outline"))
        if v.lesion_prob is not None:
            for name, t in v.thresholds.items():
                if float(v.lesion_prob.max()) > t > float(v.lesion_prob.min()):
                    ax_img.contour(v.lesion_prob, levels=[t], **styles[name])
                st = styles[name]
                handles.append(Line2D([], [], color=st["colors"], lw=1.6,
                                      ls="--" if st["linestyles"] == "dashed" else "-",
                                      label=f"predicted @{t:g}" + (" (val-tuned)" if name != "0.5" else "")))
        if handles:
            ax_img.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.8)
        num = v.numbers
        decision = (f"p(malignant) {num['p_malignant']:.3f} -> {num['decision']} "
                    f"({'correct' if num['correct'] else 'wrong'})" if "p_malignant" in num else "no class output")
        ax_img.set_title(f"{v.run}\n{v.image_id} (true {num['true label']})\n{decision}", fontsize=9)
        if v.lesion_map is not None:
            im = ax_map.imshow(v.lesion_map, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.04, label="lesion probability")
            iou = num.get("IoU @0.5")
            ax_map.set_title(f"lesion map {v.lesion_map.shape[0]}x{v.lesion_map.shape[1]} (stored)"
                             + (f"\nIoU @0.5 {iou:.3f}" if iou is not None else ""), fontsize=9)
        else:
            ax_map.text(0.5, 0.5, "no lesion map", ha="center", va="center", transform=ax_map.transAxes, fontsize=9)
        if v.gradcam is not None:
            if base is not None:
                ax_cam.imshow(base, interpolation="bilinear")
            im = ax_cam.imshow(v.gradcam, cmap="viridis", vmin=0, vmax=1, alpha=0.55 if base is not None else 1.0)
            fig.colorbar(im, ax=ax_cam, fraction=0.046, pad=0.04, label="Grad-CAM")
            ax_cam.set_title("Grad-CAM (predicted class, recorded)", fontsize=9)
        else:
            ax_cam.text(0.5, 0.5, v.gradcam_note, ha="center", va="center", transform=ax_cam.transAxes, fontsize=9)
        for ax in (ax_img, ax_map, ax_cam):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 72) -> bytes:
    """The figure as PNG bytes (no timestamps: the same view gives the same bytes); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------- claims
@dataclass
class ClaimLink:
    """A claim of the study's claims table and where its evidence lives in the records."""

    key: str
    paper: str
    verdict: str
    experiment: str
    metric: str
    kind: str
    arm_a: dict[str, Any]
    arm_b: dict[str, Any]
    labels: tuple[str, str]
    linkable: bool
    why_not: str = ""


def claim_links(records: Records) -> list[ClaimLink]:
    """The claims of ``<tables>/claims.csv`` (as rendered by ``12_summary``) with their declarations
    (``claims.yaml``): experiment, metric and the two arms, and whether a per-image view is meaningful."""
    from types import SimpleNamespace

    from lanet_core.study.claims import claim_names, declared_claims, fill_names

    path = records.profile.tables_dir / CLAIMS
    if not path.is_file():
        return []
    table = pd.read_csv(path, dtype=str).fillna("")
    names = claim_names(SimpleNamespace(profile=records.profile))
    try:
        lr = records.runs("label_ratio")
        if len(lr) and "ratio" in lr:
            names.update(ratio_lo=float(lr["ratio"].min()), ratio_hi=float(lr["ratio"].max()))
        sz = records.runs("input_size")
        if len(sz) and sz["image_size"].nunique() >= 2:
            names["size_small"], names["size_large"] = (int(x) for x in sorted(sz["image_size"].unique())[:2])
    except (LanetError, KeyError):
        pass
    declared = {}
    for e in declared_claims():
        try:
            declared[fill_names(e["key"], names)] = e
        except (KeyError, IndexError, ValueError):
            continue
    out = []
    for _, row in table.iterrows():
        e = declared.get(row["key"])
        if e is None:
            continue
        kind = e.get("kind", "seeds")
        try:
            a, b = fill_names(e["a"], names), fill_names(e["b"], names)
            labels = tuple(fill_names(e["labels"], names)) if "labels" in e else None
        except (KeyError, IndexError, ValueError):
            continue
        a = {"method": a} if isinstance(a, str) else a
        b = {"method": b} if isinstance(b, str) else b
        labels = labels or (a.get("method", "A"), b.get("method", "B"))
        metric = e.get("format_as", e["metric"]) if e["metric"] not in PER_IMAGE_METRIC else e["metric"]
        linkable, why = True, ""
        if kind == "seed_drop":
            linkable, why = False, ("a per-seed drop between two label ratios: no single image carries it; compare "
                                    "the two ratios of one method image by image instead")
        elif metric not in PER_IMAGE_METRIC:
            linkable, why = False, f"metric {metric!r} has no per-image value"
        experiment = "cross_validation" if kind == "paired_cv" else e["experiment"]
        out.append(ClaimLink(row["key"], row["paper"], row["verdict"], experiment, metric, kind, a, b,
                             (str(labels[0]), str(labels[1])), linkable, why))
    return out


def arm_runs(records: Records, link: ClaimLink, arm: dict[str, Any]) -> pd.DataFrame:
    """The finished runs of one arm of a claim (its column filters on the experiment's runs table)."""
    runs = records.runs(link.experiment)
    if runs.empty:
        return runs
    sel = pd.Series(True, index=runs.index)
    for k, v in arm.items():
        if k not in runs:
            return runs.iloc[0:0]
        sel &= runs[k] == v
    return runs[sel]


def claim_images(records: Records, link: ClaimLink) -> pd.DataFrame:
    """The test images behind a claim: per image, the claim's metric averaged over each arm's runs (seeds; folds in
    which the image is a test image), ``a``, ``b``, ``diff = a - b``, ordered by how much the arms differ there
    (largest ``|diff|`` first), with the true label. Empty when the claim has no per-image reading."""
    if not link.linkable:
        return pd.DataFrame(columns=["image_id", "label", "a", "b", "diff"])
    col = PER_IMAGE_METRIC[link.metric]
    sides = []
    for arm in (link.arm_a, link.arm_b):
        frames = []
        for _, r in arm_runs(records, link, arm).iterrows():
            df = records.record(link.experiment, r["choice"], r["seed"]).images("test")
            if col in df:
                frames.append(df[["image_id", "label", col]])
        if not frames:
            return pd.DataFrame(columns=["image_id", "label", "a", "b", "diff"])
        sides.append(pd.concat(frames).groupby(["image_id", "label"], as_index=False)[col].mean())
    out = sides[0].merge(sides[1], on=["image_id", "label"], suffixes=("_a", "_b"))
    out = out.rename(columns={f"{col}_a": "a", f"{col}_b": "b"})
    out["diff"] = out["a"] - out["b"]
    out = out.dropna(subset=["diff"])
    out = out.sort_values("image_id", key=_natural_key, kind="stable")
    out = out.iloc[np.argsort(-out["diff"].abs().to_numpy(), kind="stable")]
    return out.reset_index(drop=True)


def run_holding(records: Records, experiment: str, choice: str, seed: int, image_id: str) -> RunRecords | None:
    """The run of ``choice`` at ``seed`` whose test split holds ``image_id``; across the variants that differ only
    by fold (cross-validation: each image is tested in one fold), the fold that tested it."""
    runs = records.runs(experiment)
    if runs.empty:
        return None
    try:
        rec = records.record(experiment, choice, seed)
        if image_id in set(rec.images("test")["image_id"]):
            return rec
    except KeyError:
        rec = None
    method = runs.loc[runs["choice"] == choice, "method"]
    if method.empty or "fold" not in runs:
        return rec
    same = runs[(runs["method"] == method.iloc[0]) & (runs["seed"] == int(seed))]
    for _, r in same.iterrows():
        cand = records.record(experiment, r["choice"], r["seed"])
        if image_id in set(cand.images("test")["image_id"]):
            return cand
    return rec


# ---------------------------------------------------------------------------------------------- the widgets
def numbers_html(views: Sequence[ImageView]) -> str:
    """The views' numbers as an HTML table; each value cell carries ``data-run`` and ``data-key`` (read back by
    the browser test) and the notes follow as a list."""
    keys = list(dict.fromkeys(k for v in views for k in v.numbers))
    head = "".join(f"<th>{html.escape(v.run)}</th>" for v in views)
    body = []
    for k in keys:
        cells = []
        for i, v in enumerate(views):
            val = v.numbers.get(k, "")
            text = f"{val:.4g}" if isinstance(val, float) else str(val)
            cells.append(f'<td class="lanet-num" data-view="{i}" data-key="{html.escape(k)}">{html.escape(text)}</td>')
        body.append(f"<tr><th>{html.escape(k)}</th>{''.join(cells)}</tr>")
    notes = [f"<li>{html.escape(v.run)}: {html.escape(n)}</li>" for v in views for n in v.notes]
    return (f'<table class="lanet-numbers"><tr><th></th>{head}</tr>{"".join(body)}</table>'
            + (f'<ul class="lanet-notes">{"".join(notes)}</ul>' if notes else ""))


def figure_html(png: bytes, views: Sequence[ImageView]) -> str:
    """The figure as an ``<img>`` whose attributes name what it shows (image, runs) and its bytes' SHA-256."""
    sha = hashlib.sha256(png).hexdigest()
    shows = "; ".join(f"{v.run} / {v.image_id}" for v in views)
    return (f'<img class="lanet-figure" data-sha256="{sha}" data-shows="{html.escape(shows)}" '
            f'alt="{html.escape(shows)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>')


NONE = "(none)"


def explorer(profile: str | Profile = DEFAULT_PROFILE, *, experiment: str = "fully_labelled"):
    """The explorer's widgets (display the returned ``VBox``): experiment, method A, method B (side by side), seed,
    split, which images and in what order, the image list, a claim of the claims table; below, the figure and the
    numbers of the chosen image. Works from the committed records alone."""
    return Explorer(Records(profile), experiment=experiment).widget


def _offer(dropdown, options: Sequence, values: Sequence | None = None) -> None:
    """Give ``dropdown`` new ``options`` (``values``: what each one selects, where options are (label, value)
    pairs), keeping its value where it is still offered, else the first (None when nothing is offered)."""
    keep = dropdown.value
    values = list(options) if values is None else list(values)
    dropdown.options = options
    dropdown.value = keep if keep in values else (values[0] if values else None)


class Explorer:
    """The ipywidgets front end over :class:`Records` (see :func:`explorer`)."""

    def __init__(self, records: Records, experiment: str = "fully_labelled"):
        import ipywidgets as w

        self.records = records
        self.claims = {c.key: c for c in claim_links(records)}
        self.claim_list: pd.DataFrame | None = None
        self._busy = False
        exps = records.experiments()
        lay = w.Layout(width="auto")
        style = {"description_width": "initial"}

        def dd(desc, cls, options=(), value=None):
            d = w.Dropdown(description=desc, options=list(options), value=value, layout=lay, style=style)
            d.add_class(cls)
            return d

        self.experiment = dd("experiment", "lanet-experiment", exps, experiment if experiment in exps else exps[0])
        self.method_a = dd("method", "lanet-method-a")
        self.method_b = dd("beside", "lanet-method-b")
        self.seed = dd("seed", "lanet-seed")
        self.split = dd("split", "lanet-split")
        self.show = dd("show", "lanet-show", SHOW, "all")
        self.sort = dd("order", "lanet-sort", SORT, "image id")
        claim_opts = [(NONE, NONE)] + [(f"{c.key}: {c.verdict.split(':')[0].split(' (')[0]}", c.key)
                                       for c in self.claims.values()]
        self.claim = dd("claim", "lanet-claim", claim_opts, NONE)
        self.image = w.Select(description="image", options=[], rows=12, layout=w.Layout(width="46em"), style=style)
        self.image.add_class("lanet-image")
        self.status = w.HTML()
        self.status.add_class("lanet-status")
        self.numbers = w.HTML()
        self.numbers.add_class("lanet-numbers-box")
        self.figure = w.HTML()
        self.figure.add_class("lanet-figure-box")
        self.experiment.observe(self._on_experiment, "value")
        self.method_a.observe(self._on_method, "value")
        self.seed.observe(self._on_run, "value")
        self.split.observe(self._on_run, "value")
        self.show.observe(self._on_list, "value")
        self.sort.observe(self._on_list, "value")
        self.method_b.observe(self._on_image, "value")
        self.image.observe(self._on_image, "value")
        self.claim.observe(self._on_claim, "value")
        controls = w.VBox([
            w.HBox([self.experiment, self.method_a, self.method_b]),
            w.HBox([self.seed, self.split, self.show, self.sort]),
            self.claim,
            w.HBox([self.image, self.status]),
        ])
        self.widget = w.VBox([controls, self.figure, self.numbers])
        self.widget.add_class("lanet-explorer")
        self._on_experiment()

    # ------------------------------------------------------------------ state changes
    def _guard(fn):  # noqa: N805  (a decorator of this class's handlers)
        def inner(self, *_):
            if self._busy:
                return
            self._busy = True
            try:
                fn(self)
            finally:
                self._busy = False
            self._render()

        return inner

    def _set_experiment(self) -> None:
        exp = self.experiment.value
        choices = self.records.choices(exp)
        self.method_a.options = choices
        self.method_a.value = choices[0] if choices else None
        self.method_b.options = [NONE] + choices
        self.method_b.value = NONE
        self._set_method()

    def _set_method(self) -> None:
        _offer(self.seed, self.records.seeds(self.experiment.value, self.method_a.value) if self.method_a.value else [])
        self._set_run()

    def _set_run(self) -> None:
        rec = self._record()
        _offer(self.split, rec.splits() if rec else [])
        self._set_list()

    def _set_list(self) -> None:
        rec = self._record()
        if self.claim_list is not None:
            opts = [(f"{r.image_id} | {r.label} | A {r.a:.2f} vs B {r.b:.2f} (diff {r.diff:+.2f})", r.image_id)
                    for r in self.claim_list.itertuples()]
        elif rec is None:
            opts = []
        else:
            sel = select_images(rec.images(self.split.value or "test"), self.show.value, self.sort.value)
            opts = [(image_label(r), r["image_id"]) for _, r in sel.iterrows()]
        _offer(self.image, opts, [v for _, v in opts])

    def _leave_claim(self) -> None:
        """A person choosing the experiment or the images themselves leaves the claim's image list."""
        self.claim_list = None
        self.claim.value = NONE

    def _choose_experiment(self) -> None:
        self._leave_claim()
        self._set_experiment()

    def _choose_images(self) -> None:
        self._leave_claim()
        self._set_list()

    _on_experiment = _guard(_choose_experiment)
    _on_method = _guard(_set_method)
    _on_run = _guard(_set_run)
    _on_list = _guard(_choose_images)

    def _on_image(self, *_):
        if not self._busy:
            self._render()

    def _on_claim(self, *_):
        if self._busy:
            return
        self._busy = True
        try:
            key = self.claim.value
            link = self.claims.get(key)
            if link is None:
                self.claim_list = None
                self._set_list()
            else:
                self.experiment.value = link.experiment
                self._set_experiment()
                for arm, box in ((link.arm_a, self.method_a), (link.arm_b, self.method_b)):
                    runs = arm_runs(self.records, link, arm)
                    if len(runs) and runs["choice"].iloc[0] in box.options:
                        box.value = runs["choice"].iloc[0]
                self._set_method()
                self.claim_list = claim_images(self.records, link) if link.linkable else None
                self._set_list()
        finally:
            self._busy = False
        self._render()

    def _record(self) -> RunRecords | None:
        exp, choice, seed = self.experiment.value, self.method_a.value, self.seed.value
        if not (exp and choice) or seed is None:
            return None
        try:
            return self.records.record(exp, choice, seed)
        except KeyError:
            return None

    # ------------------------------------------------------------------ output
    def current_views(self) -> list[ImageView]:
        """The views the explorer shows now (method A, then method B when chosen)."""
        image_id, split = self.image.value, self.split.value or "test"
        if image_id is None:
            return []
        exp, seed = self.experiment.value, self.seed.value
        views = []
        for choice in (self.method_a.value, self.method_b.value):
            if not choice or choice == NONE:
                continue
            rec = run_holding(self.records, exp, choice, seed, image_id) if split == "test" else \
                self._maybe_record(exp, choice, seed)
            if rec is None:
                continue
            try:
                views.append(image_view(rec, image_id, split))
            except KeyError as exc:
                views.append(ImageView(run=f"{choice} seed {seed}", run_dir="", image_id=image_id, split=split,
                                       numbers={"image_id": image_id}, notes=[str(exc).strip("'\"")]))
        return views

    def _maybe_record(self, exp, choice, seed):
        try:
            return self.records.record(exp, choice, seed)
        except KeyError:
            return None

    def _render(self) -> None:
        views = self.current_views()
        link = self.claims.get(self.claim.value)
        status = []
        if link is not None:
            status.append(f"<b>{html.escape(link.key)}</b>: {html.escape(link.paper)}<br/>verdict: "
                          f"{html.escape(link.verdict)}<br/>A = {html.escape(link.labels[0])}, "
                          f"B = {html.escape(link.labels[1])}; metric {html.escape(link.metric)}")
            status.append("images ordered by |A - B| (means over the arms' runs)" if link.linkable
                          else f"no per-image view: {html.escape(link.why_not)}")
        rec = self._record()
        if rec is not None:
            status.append(f"run folder: results/runs/{html.escape(rec.run_dir.name)}; checkpoint here: "
                          f"{'yes' if rec.has_checkpoint else 'no (every view below reads the committed records)'}")
        self.status.value = "<br/>".join(status)
        if not views:
            self.numbers.value = "<p>no image selected</p>"
            self.figure.value = ""
            return
        self.numbers.value = numbers_html(views)
        self.figure.value = figure_html(figure_png(draw_views(views)), views)
