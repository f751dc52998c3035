"""Image packs: the decoded, resized arrays of a manifest in one portable file, for machines without the data.

The on-disk image cache (:class:`lanet_core.data.dataset.ImageCache`) is keyed by each source file's absolute
path, size and modification time, so it cannot travel. A pack holds the same arrays under a machine-independent
key (the row's relative image path, mask paths and box text, the size and the resize policy) in one compressed
``.npz``, small enough to send to a lent GPU machine (BUSI at 128 px: about 10 MB; the raw PNGs are 89 MB).

Build one where the data is (``lanet pack --manifest data_manifests/busi.csv --size 128 --out busi128.npz``) and
point ``$LANET_IMAGE_PACKS`` at it (several files separated by ``:``) where it is not. The local data always
wins: a pack is consulted only for rows whose source image is missing, so a pack can never shadow a changed
file. Each pack records the SHA-256 of every source file it was built from.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from lanet_core.data.manifest import mask_paths
from lanet_core.errors import DataError

PACK_ENV = "LANET_IMAGE_PACKS"
PACK_FORMAT = "lanet-image-pack/1"


def portable_key(row: pd.Series | dict, size: int, policy: str) -> str:
    """Machine-independent key of one manifest row's arrays at ``size`` px with resize ``policy``."""
    parts = [PACK_FORMAT, str(size), policy, str(row["image_path"]), *mask_paths(row), str(row["bbox"])]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def configured_packs() -> list[Path]:
    """The pack files named by ``$LANET_IMAGE_PACKS`` (``:``-separated; empty if unset)."""
    text = os.environ.get(PACK_ENV, "")
    return [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]


class ImagePacks:
    """Lookup of arrays by :func:`portable_key` over one or more pack files (members read on demand)."""

    def __init__(self, paths: Iterable[Path]):
        self.paths = [Path(p) for p in paths]
        self._index: dict[str, tuple[np.lib.npyio.NpzFile, list[str]]] = {}
        for path in self.paths:
            if not path.is_file():
                raise DataError(f"image pack {path} (from ${PACK_ENV}) does not exist")
            try:
                z = np.load(path, allow_pickle=False)
                meta = json.loads(bytes(z["__meta__"]).decode())
            except (OSError, ValueError, KeyError) as exc:
                raise DataError(f"image pack {path} is not a lanet image pack ({exc})") from None
            if meta.get("format") != PACK_FORMAT:
                raise DataError(f"image pack {path}: format {meta.get('format')!r}, expected {PACK_FORMAT!r}")
            for key, names in meta["entries"].items():
                self._index.setdefault(key, (z, names))

    @classmethod
    def from_env(cls) -> "ImagePacks | None":
        paths = configured_packs()
        return cls(paths) if paths else None

    def __len__(self) -> int:
        return len(self._index)

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        hit = self._index.get(key)
        if hit is None:
            return None
        z, names = hit
        return {name: z[f"{key}.{name}"] for name in names}
