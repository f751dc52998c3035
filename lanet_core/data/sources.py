"""Resolve a config's ``data.manifest`` to a manifest file and its data root.

``data.manifest`` is either a CSV path (relative to the project root, e.g. ``data_manifests/busi.csv``;
its data root is discovered, see :mod:`lanet_core.paths`) or a synthetic-data spec generated on first
use into the cache and reused afterwards:

* ``phantom:n=240,size=128,seed=0[,location_label=box][,loc_ratio=0.25,loc_seed=0][,cv_folds=3,cv_fold=1]`` - still phantom
  images; ``loc_ratio`` keeps location labels on a seeded, class-stratified share of the training images
  (the same nested-subset rule as the committed BUSI label-ratio manifests);
* ``phantom-video:patients=12,frames=24,size=96,seed=0[,every_nth=2,boxed=2]`` - phantom videos
  imported through the video-data template importer.

Specs are machine-independent, so configs (and run hashes) are the same on every machine.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from lanet_core.data.manifest import read_manifest
from lanet_core.errors import ConfigError
from lanet_core.data.packs import configured_packs
from lanet_core.paths import DataRootNotFound, cache_dir, data_root_candidates, find_data_root, project_root


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """``"phantom:n=240,size=128"`` -> ``("phantom", {"n": 240, "size": 128})`` (numbers parsed)."""
    kind, _, rest = spec.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in item:
            raise ConfigError(f"data.manifest spec {spec!r}: {item!r} is not key=value")
        k, v = item.split("=", 1)
        try:
            params[k] = int(v)
        except ValueError:
            try:
                params[k] = float(v)
            except ValueError:
                params[k] = v
    return kind, params


def _generate_once(spec: str, make) -> Path:
    """Generate a synthetic dataset into ``<cache>/synthetic/<spec>`` once (atomically via a temp dir)."""
    slug = hashlib.sha256(spec.encode()).hexdigest()[:16]
    final = cache_dir() / "synthetic" / slug
    if (final / "manifest.csv").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{slug}.", dir=final.parent))
    try:
        make(tmp)
        (tmp / "SPEC").write_text(spec + "\n")
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not (final / "manifest.csv").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _phantom(params: dict) -> callable:
    from lanet_core.data.manifest import write_manifest
    from lanet_core.data.phantoms import generate_phantom_dataset
    from lanet_core.data.splits import nested_label_subsets, restrict_location_labels

    kw = dict(params)
    n, size, seed = kw.pop("n", 240), kw.pop("size", 128), kw.pop("seed", 0)
    ratio, ratio_seed = float(kw.pop("loc_ratio", 1.0)), int(kw.pop("loc_seed", 0))
    cv_folds, cv_fold = int(kw.pop("cv_folds", 0)), int(kw.pop("cv_fold", 1))

    def make(out: Path) -> None:
        manifest = generate_phantom_dataset(out, n_images=n, image_size=size, seed=seed, **kw)
        if cv_folds:  # cross-validation fold ``cv_fold`` of ``cv_folds`` over all phantoms, grouped by patient
            from lanet_core.data.folds import fold_manifests, grouped_stratified_folds

            df = read_manifest(manifest)
            folds = grouped_stratified_folds(df, df["patient_id"].to_numpy(), cv_folds, seed, val_folds=4)
            write_manifest(fold_manifests(df, folds)[cv_fold], manifest)
        if ratio < 1.0:
            df = read_manifest(manifest)
            train = df[df["split"] == "train"]
            keep = nested_label_subsets(train, [ratio], ratio_seed)[ratio]
            kind = train["location_label"].iloc[0] if len(train) else "mask"
            write_manifest(restrict_location_labels(df, keep, kind), manifest)

    return make


def _phantom_video(params: dict) -> callable:
    from lanet_core.data.phantoms import generate_phantom_videos
    from lanet_core.data.video import prepare_video_dataset

    kw = dict(params)
    gen = {
        "n_patients": kw.pop("patients", 12),
        "frames_per_video": kw.pop("frames", 24),
        "image_size": kw.pop("size", 96),
        "boxed_frames_per_video": kw.pop("boxed", 2),
        "seed": kw.get("seed", 0),
    }
    kw.pop("seed", None)

    def make(out: Path) -> None:
        generate_phantom_videos(out, **gen)  # the user template layout: videos.csv, boxes.csv, frames/
        prepare_video_dataset(out, out / "manifest.csv", data_root=out, seed=gen["seed"], **kw)

    return make


def resolve_manifest(spec: str, root: str = "auto") -> tuple[Path, Path]:
    """``(manifest path, data root)`` for a ``data.manifest`` value and a ``data.root`` value."""
    if spec.startswith("phantom:") or spec == "phantom":
        folder = _generate_once(spec, _phantom(parse_spec(spec)[1]))
        return folder / "manifest.csv", folder
    if spec.startswith("phantom-video:"):
        folder = _generate_once(spec, _phantom_video(parse_spec(spec)[1]))
        return folder / "manifest.csv", folder
    path = Path(spec).expanduser()
    if not path.is_absolute():
        # the project's manifests first, then the working directory; always made absolute, because the study
        # runner executes notebooks in parallel threads and papermill changes the process's cwd while it runs
        in_project = project_root() / spec
        path = in_project if in_project.is_file() else path.absolute()
    if not path.is_file():
        raise ConfigError(f"data.manifest {spec!r}: no such file (looked in the working directory and {project_root()})")
    if root not in ("auto", "", None):
        return path, Path(root).expanduser()
    df = read_manifest(path)
    first = df["image_path"].iloc[0] if len(df) else ""
    try:
        return path, find_data_root(required=[first] if first else [])
    except DataRootNotFound:
        if not configured_packs():
            raise
        # no data here, but image packs are configured: rows are served from the packs (a row missing
        # from them fails with its image_id when it is first read)
        return path, data_root_candidates()[0]


def load_manifest(spec: str, root: str = "auto") -> tuple[pd.DataFrame, Path, Path]:
    """``(manifest rows, manifest path, data root)``."""
    path, data_root = resolve_manifest(spec, root)
    return read_manifest(path), path, data_root

