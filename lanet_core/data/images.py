"""Decoding and resizing of images and lesion masks (one implementation for the whole project).

Images come as 8-bit RGB or grayscale PNG (BUSI stores most images as grayscale, a few RGB with colour
overlays); masks as 1-bit, 8-bit or RGBA PNG. Every image is returned as ``(H, W, 3) uint8``, every
mask as ``(H, W) bool``; errors name the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from lanet_core.data.manifest import BBox
from lanet_core.errors import DataError

RESIZE_POLICIES = ("squash", "shorter_side_crop")


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except Image.DecompressionBombError as exc:
        raise DataError(f"{what} file {path} is too large to decode safely ({exc}); downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{what} file {path} cannot be read as an image ({exc})") from exc
    return img


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file without decoding its pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image file {path} is too large to decode safely ({exc}); downscale it first") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"image file {path} cannot be read as an image ({exc})") from exc


def read_image(path: str | Path) -> np.ndarray:
    """An image as ``(H, W, 3) uint8`` RGB (grayscale is repeated over the three channels)."""
    img = _open(Path(path), "image")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """A lesion mask as ``(H, W) bool``: foreground where any colour channel is >= 128 (alpha ignored)."""
    img = _open(Path(path), "mask")
    if img.mode == "1":
        return np.asarray(img, dtype=bool)
    arr = np.asarray(img.convert("RGBA") if img.mode not in ("L", "RGB", "RGBA") else img)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2)  # drop alpha: BUSI's RGBA masks carry the lesion in RGB
    return arr >= 128


def read_mask_union(paths: Sequence[str | Path], size: tuple[int, int] | None = None) -> np.ndarray:
    """Union of several masks of one image, ``(H, W) bool``. ``size`` = expected ``(width, height)``."""
    union: np.ndarray | None = None
    for p in paths:
        m = read_mask(p)
        if size is not None and (m.shape[1], m.shape[0]) != tuple(size):
            raise DataError(
                f"mask {p} is {m.shape[1]}x{m.shape[0]} px but its image is {size[0]}x{size[1]} px"
            )
        if union is not None and m.shape != union.shape:
            raise DataError(f"mask {p} is {m.shape[1]}x{m.shape[0]} px, unlike the other masks of its image")
        union = m if union is None else (union | m)
    if union is None:
        raise DataError("no mask paths given")
    return union


def box_to_mask(box: BBox, height: int, width: int) -> np.ndarray:
    """A filled rectangle ``(H, W) bool`` for a box with exclusive max corner."""
    out = np.zeros((height, width), dtype=bool)
    out[max(box.y1, 0) : min(box.y2, height), max(box.x1, 0) : min(box.x2, width)] = True
    return out


def mask_to_box(mask: np.ndarray) -> BBox | None:
    """Tight box (exclusive max) around all foreground pixels of a 2-D mask; ``None`` if empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return BBox(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _geometry(width: int, height: int, size: int, policy: str) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """(resized (w, h), crop box or None) for a resize policy."""
    if policy == "squash":
        return (size, size), None
    if policy == "shorter_side_crop":
        scale = size / min(width, height)
        w, h = max(size, round(width * scale)), max(size, round(height * scale))
        left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
        return (w, h), (left, top, left + size, top + size)
    raise DataError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")


def resize_array(arr: np.ndarray, size: int, policy: str = "squash") -> np.ndarray:
    """Resize an ``(H, W, 3)`` or ``(H, W)`` uint8/bool array to ``(S, S[, 3]) uint8`` with PIL bilinear
    (antialiased when shrinking). Masks become soft (0..255) at their edges.

    ``squash``: straight to S x S (the paper's text). ``shorter_side_crop``: shorter side to S keeping the
    aspect ratio, then the centre S x S crop (the authors' test transform).
    """
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    img = Image.fromarray(arr)
    (w, h), crop = _geometry(img.width, img.height, size, policy)
    img = img.resize((w, h), Image.Resampling.BILINEAR)
    if crop is not None:
        img = img.crop(crop)
    return np.array(img, dtype=np.uint8)  # a writable copy
