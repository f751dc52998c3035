"""A PyTorch dataset over a manifest, with an on-disk cache of resized images and location targets.

Each image is decoded and resized once per (file contents, size, resize policy): the result, a small
``.npz`` of uint8 arrays, is stored under ``<cache>/images/`` and reused by later epochs and later runs.
The cache key holds each file's path, size in bytes and modification time, the box text, the size and
the policy, so a changed file or a new size gets a new entry.

A sample is a dict of tensors:

* ``image``: ``(3, S, S) float32``, normalised (``half``: ``(x - 0.5) / 0.5``; ``unit``: ``x`` in [0, 1];
  ``imagenet``: mean/std);
* ``target``: ``(1, S, S) float32`` in [0, 1], the training location target: the lesion mask for
  ``location_label=mask``, the filled box for ``box``, zeros for ``none`` (soft at resized edges);
* ``has_location``: bool, ``label``: int64 (0 benign, 1 malignant), ``index``: int64 row number;
* evaluation samples also carry ``mask``/``has_mask`` and ``box``/``has_box`` (the ground truth
  available for scoring, whatever the location label).

Training samples are augmented as in the paper (rotation by 90/180/270 degrees, random resized crop,
horizontal and vertical flips, colour jitter on the image only), image and target with the same
geometry, seeded per sample from ``(seed, epoch, index)`` so results do not depend on worker count.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from lanet_core.data.images import box_to_mask, read_image, read_mask_union, resize_array
from lanet_core.data.manifest import label_index, mask_paths, parse_bbox
from lanet_core.io import atomic_write_bytes, file_sha256
from lanet_core.data.packs import PACK_FORMAT, ImagePacks, portable_key
from lanet_core.errors import DataError
from lanet_core.paths import cache_dir, data_file

log = logging.getLogger(__name__)

CACHE_VERSION = 1
NORMALIZATION = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # [0, 1]: the paper's text (section 4.3)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _fingerprint(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class ImageCache:
    """Resized uint8 arrays of one manifest row at one size, decoded once and kept on disk and in memory."""

    def __init__(self, data_root: Path, size: int, policy: str = "squash", root: Path | None = None,
                 packs: "ImagePacks | None | bool" = None):
        """``packs``: image packs consulted for rows whose source image is missing (:mod:`lanet_core.data.packs`);
        None reads ``$LANET_IMAGE_PACKS`` when first needed, False never uses packs."""
        self.data_root = Path(data_root)
        self.size = size
        self.policy = policy
        self.dir = Path(root) if root is not None else cache_dir() / "images"
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self._packs = packs
        self.decoded = 0  # PNG decodes done by this instance (the warm pass must do none)
        self.from_packs = 0  # rows served from image packs

    def key(self, row: pd.Series) -> str:
        parts = [f"v{CACHE_VERSION}", str(self.size), self.policy, _fingerprint(data_file(self.data_root, row["image_path"]))]
        parts += [_fingerprint(data_file(self.data_root, p)) for p in mask_paths(row)]
        parts.append(str(row["bbox"]))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def get(self, row: pd.Series) -> dict[str, np.ndarray]:
        """``{"image": (S,S,3) uint8, "mask": (S,S) uint8 (if any), "box": (S,S) uint8 (if any)}``."""
        try:
            key = self.key(row)
        except DataError as exc:
            packed = self._from_packs(row)
            if packed is None:
                raise DataError(f"image_id {row['image_id']!r}: {exc}{self._packs_hint()}") from None
            return packed
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        path = self.dir / key[:2] / f"{key}.npz"
        arrays: dict[str, np.ndarray] | None = None
        if path.is_file():
            try:
                with np.load(path) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError) as exc:  # a damaged entry is rebuilt, not trusted
                log.warning("cache entry %s unreadable (%s); rebuilding", path, exc)
        if arrays is None:
            arrays = self._decode(row)
            buf = _npz_bytes(arrays)
            atomic_write_bytes(path, buf)
        self._memory[key] = arrays
        return arrays

    def _pack_lookup(self) -> ImagePacks | None:
        if self._packs is None:
            self._packs = ImagePacks.from_env() or False
        return self._packs or None

    def _from_packs(self, row: pd.Series) -> dict[str, np.ndarray] | None:
        packs = self._pack_lookup()
        if packs is None:
            return None
        key = portable_key(row, self.size, self.policy)
        hit = self._memory.get(f"pack:{key}")
        if hit is None:
            hit = packs.get(key)
            if hit is None:
                return None
            self._memory[f"pack:{key}"] = hit
            self.from_packs += 1
        return hit

    def _packs_hint(self) -> str:
        packs = self._pack_lookup()
        if packs is None:
            return ""
        return f" (and not in the image packs {', '.join(map(str, packs.paths))} at {self.size} px, {self.policy})"

    def _decode(self, row: pd.Series) -> dict[str, np.ndarray]:
        self.decoded += 1
        where = f"image_id {row['image_id']!r}"
        img_path = data_file(self.data_root, row["image_path"])
        try:
            image = read_image(img_path)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        h, w = image.shape[:2]
        out = {"image": resize_array(image, self.size, self.policy)}
        masks = mask_paths(row)
        if masks:
            try:
                union = read_mask_union([data_file(self.data_root, p) for p in masks], size=(w, h))
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
            out["mask"] = resize_array(union, self.size, self.policy)
        try:
            box = parse_bbox(row["bbox"])
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
        if box is not None:
            if box.is_empty() or not box.inside(w, h):
                raise DataError(f"{where}: bbox {box} is empty or outside the {w}x{h} image {img_path}")
            out["box"] = resize_array(box_to_mask(box, h, w), self.size, self.policy)
        return out


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A per-sample seed from (run seed, epoch, row index), independent of workers and batch order."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class PaperAugment:
    """The paper's training augmentation on uint8 tensors ``image (3,S,S)`` and ``target (1,S,S)``.

    Rotation by k*90 degrees (k in {1,2,3}: the authors always rotate; ``rotation="any"`` adds k=0), random
    resized crop (scale 0.75-1, ratio 3/4-4/3, bilinear for image and target; the authors' code, not the paper's text:
    ``crop=False`` for ``data.augment: paper_text``), horizontal and vertical
    flips (p=0.5), then colour jitter (brightness 0.12, contrast 0.12, saturation 0.08, hue 0.08) on the
    image only. Uses the global torch RNG: call it under :func:`torch.random.fork_rng` with a seed.
    """

    def __init__(self, size: int, rotation: str = "authors", crop: bool = True):
        self.k_choices = (1, 2, 3) if rotation == "authors" else (0, 1, 2, 3)
        crops = [v2.RandomResizedCrop(size, scale=(0.75, 1.0), ratio=(3 / 4, 4 / 3), antialias=True)] if crop else []
        self.geometry = v2.Compose([*crops, v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
        self.jitter = v2.ColorJitter(brightness=0.12, contrast=0.12, saturation=0.08, hue=0.08)

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.k_choices[int(torch.randint(len(self.k_choices), (1,)))]
        if k:
            image, target = torch.rot90(image, k, (1, 2)), torch.rot90(target, k, (1, 2))
        image, target = self.geometry(tv_tensors.Image(image), tv_tensors.Image(target))
        return self.jitter(image).as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)


class LesionDataset(Dataset):
    """Manifest rows -> samples (see the module docstring). ``rows`` is a manifest DataFrame subset."""

    def __init__(
        self,
        rows: pd.DataFrame,
        data_root: str | os.PathLike,
        image_size: int,
        *,
        train: bool = False,
        resize: str = "squash",
        augment: str = "paper",
        rotation: str = "authors",
        normalize: str = "half",
        seed: int = 0,
        cache: ImageCache | None = None,
    ):
        self.rows = rows.reset_index(drop=True)
        self.data_root = Path(data_root)
        self.size = image_size
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.cache = cache or ImageCache(self.data_root, image_size, resize)
        # "paper": the authors' code (with a random resized crop); "paper_text": section 4.3 (rotations, flips, jitter)
        self.augment = (PaperAugment(image_size, rotation, crop=augment == "paper")
                        if (train and augment in ("paper", "paper_text")) else None)
        mean, std = NORMALIZATION[normalize]
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        bad = sorted(set(self.rows["label"]) - {"benign", "malignant"})
        if bad:
            raise DataError(f"unknown label(s) {bad} in the manifest rows; expected benign or malignant")

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of this epoch (call before iterating)."""
        self.epoch = epoch

    @property
    def has_location(self) -> np.ndarray:
        return (self.rows["location_label"] != "none").to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.rows["label"].map(label_index).to_numpy()

    def warm(self) -> int:
        """Decode (or load from disk) every row once; returns the number of PNG decodes done."""
        before = self.cache.decoded
        for i in range(len(self)):
            self.cache.get(self.rows.iloc[i])
        return self.cache.decoded - before

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows.iloc[index]
        arrays = self.cache.get(row)
        image = torch.from_numpy(arrays["image"]).permute(2, 0, 1).contiguous()  # (3,S,S) uint8
        kind = row["location_label"]
        if kind == "mask" and "mask" not in arrays:
            raise DataError(f"image_id {row['image_id']!r}: location_label=mask but no mask_path")
        if kind == "box" and "box" not in arrays:
            raise DataError(f"image_id {row['image_id']!r}: location_label=box but no bbox")
        target = torch.from_numpy(arrays[kind]).unsqueeze(0) if kind in ("mask", "box") else torch.zeros(
            1, self.size, self.size, dtype=torch.uint8
        )
        if self.augment is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, self.epoch, index))
                image, target = self.augment(image, target)
        sample = {
            "image": (image.float() / 255.0 - self.mean) / self.std,
            "target": target.float() / 255.0,
            "has_location": torch.tensor(kind != "none"),
            "label": torch.tensor(label_index(row["label"]), dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if not self.train:
            for name in ("mask", "box"):
                present = name in arrays
                arr = torch.from_numpy(arrays[name]).unsqueeze(0) if present else torch.zeros(
                    1, self.size, self.size, dtype=torch.uint8
                )
                sample[name] = arr.float() / 255.0
                sample[f"has_{name}"] = torch.tensor(present)
        return sample


def build_pack(rows: pd.DataFrame, data_root: Path, sizes: Iterable[int], policy: str, out: Path,
               cache_root: Path | None = None) -> dict[str, object]:
    """Write the arrays of every row at every size to ``out`` (atomically); returns the pack's metadata
    (:mod:`lanet_core.data.packs` reads packs; building one drives the image cache, so it lives here)."""
    data_root = Path(data_root)
    arrays: dict[str, np.ndarray] = {}
    entries: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for size in sizes:
        cache = ImageCache(data_root, int(size), policy, root=cache_root, packs=False)
        for _, row in rows.iterrows():
            key = portable_key(row, int(size), policy)
            if key in entries:
                continue
            got = cache.get(row)
            entries[key] = sorted(got)
            for name, arr in got.items():
                arrays[f"{key}.{name}"] = arr
            for rel in [row["image_path"], *mask_paths(row)]:
                if rel not in sources:
                    sources[rel] = file_sha256(data_file(data_root, rel))
    meta = {"format": PACK_FORMAT, "sizes": sorted({int(s) for s in sizes}), "policy": policy,
            "rows": len(rows), "entries": entries, "source_sha256": sources}
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
                        **arrays)
    atomic_write_bytes(Path(out), buf.getvalue())
    return meta
