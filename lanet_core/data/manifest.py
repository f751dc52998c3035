"""The one manifest schema shared by every dataset (BUSI, BUS-BRA, phantoms, a user's own data).

A manifest is a CSV with one row per image. Required columns, in this order:

=================  ==================================================================
``image_id``       unique id of the image within the manifest
``dataset``        short dataset name (``busi``, ``busbra``, ``phantom``, ...)
``image_path``     path of the image, relative to the data root
``mask_path``      path of the lesion mask (relative to the data root); empty if none.
                   Several masks of one image are joined with ``|`` and merged (union).
``bbox``           ``x1 y1 x2 y2`` in image pixels, exclusive max; empty if none
``location_label`` which location label training may use: ``mask``, ``box`` or ``none``
``label``          ``benign`` or ``malignant``
``patient_id``     patient identifier (the image id when unknown)
``split``          ``train``, ``val`` or ``test``
=================  ==================================================================

Any further column (``birads``, ``device``, ``side``, ``video_id``, ``frame_index``...) is kept
as optional metadata. Everything is read as text so a manifest round-trips byte for byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lanet_core.errors import DataError
from lanet_core.io import atomic_write_text

REQUIRED_COLUMNS: tuple[str, ...] = (
    "image_id",
    "dataset",
    "image_path",
    "mask_path",
    "bbox",
    "location_label",
    "label",
    "patient_id",
    "split",
)
LABELS: tuple[str, ...] = ("benign", "malignant")  # class index 0 = benign, 1 = malignant
LOCATION_LABELS: tuple[str, ...] = ("mask", "box", "none")
SPLITS: tuple[str, ...] = ("train", "val", "test")
MASK_SEPARATOR = "|"


class ManifestError(DataError):
    """A manifest that cannot be used; the message names the file and the rows."""


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box in pixels, ``x2``/``y2`` exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def inside(self, width: int, height: int) -> bool:
        return 0 <= self.x1 and 0 <= self.y1 and self.x2 <= width and self.y2 <= height

    def __str__(self) -> str:
        return f"{self.x1} {self.y1} {self.x2} {self.y2}"


def parse_bbox(text: str) -> BBox | None:
    """Parse ``"x1 y1 x2 y2"`` (integers); empty text gives ``None``.

    Raises ``ValueError`` for anything else.
    """
    text = (text or "").strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) != 4:
        raise ValueError(f"bbox must be 'x1 y1 x2 y2', got {text!r}")
    try:
        x1, y1, x2, y2 = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"bbox coordinates must be integers, got {text!r}") from None
    return BBox(x1, y1, x2, y2)


def mask_paths(row: pd.Series | dict) -> list[str]:
    """The mask files of one manifest row (several are merged into their union)."""
    text = str(row["mask_path"] or "").strip()
    return [p for p in text.split(MASK_SEPARATOR) if p] if text else []


def label_index(label: str) -> int:
    """Class index of a label string (0 = benign, 1 = malignant)."""
    return LABELS.index(label)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest as text columns; checks that the required columns are present."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except Exception as exc:  # pandas raises many types for malformed CSV
        raise ManifestError(f"{path}: cannot be parsed as CSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing required column(s) {missing}; the schema is {list(REQUIRED_COLUMNS)}")
    df.attrs["path"] = str(path)
    return df


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Required columns first (schema order), optional columns after, alphabetically."""
    extra = sorted(c for c in df.columns if c not in REQUIRED_COLUMNS)
    return df[list(REQUIRED_COLUMNS) + extra]


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a manifest deterministically (column order, ``\\n`` line ends) and atomically."""
    path = Path(path)
    df = order_columns(df.astype(str))
    text = df.to_csv(index=False, lineterminator="\n")
    atomic_write_text(path, text)
    return path
