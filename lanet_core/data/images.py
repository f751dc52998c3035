"""Decoding and resizing of images and lesion masks (one implementation for the whole project).

Images come as 8-bit RGB or grayscale PNG (BUSI stores most images as grayscale, a few RGB with colour
overlays); masks as 1-bit, 8-bit or RGBA PNG. Every image is returned as ``(H, W, 3) uint8``, every
mask as ``(H, W) bool``; errors name the file.

What :func:`read_image` does with each kind of input (anything else is refused with the reason, never guessed):

* 8-bit modes (grayscale ``L``, ``1``, palette ``P``/``PA``, ``RGB``, ``RGBA``, ``LA``, ``CMYK``, ``YCbCr``;
  PNG, JPEG, BMP, TIFF, ...): PIL's ``convert("RGB")``, exactly as the training cache has always decoded them
  (palette colours looked up; alpha dropped, not composited: the colour channels are what the scanner wrote).
* 16-bit grayscale (``I;16*``, PNG or TIFF): scaled by the full 16-bit range, ``round(x / 257)``, so a 16-bit
  file holding ``v * 257`` reads exactly as the 8-bit ``v``. 16-bit *colour* PNGs reach us as 8-bit from PIL,
  which keeps each sample's high byte (``x >> 8``: within one grey level of the same scaling; exact for ``v * 257``).
* 32-bit integer (``I``) and floating-point (``F``) images: refused (no fixed intensity range to scale by;
  save them as 8- or 16-bit).
* Several frames (multi-page TIFF, animated PNG/GIF): refused (a model takes one image; save the frame).
* DICOM (``.dcm``/``.dicom``, or any file with the ``DICM`` marker), read with ``pydicom`` (optional
  dependency): single-frame ``MONOCHROME1/2`` (unsigned, scaled by the full range of ``BitsStored``;
  MONOCHROME1 inverted), ``RGB``, ``YBR_*`` (converted to RGB by pydicom) and ``PALETTE COLOR``. Multi-frame
  files (cine loops) are refused with the frame count; signed pixels and pixel data pydicom cannot decode (a
  compressed transfer syntax without its decoder plugin) are refused with pydicom's reason. Modality and VOI
  LUTs (window/level) are not applied: ultrasound stores display values.
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


DICOM_SUFFIXES = (".dcm", ".dicom")
#: PIL modes read by ``convert("RGB")`` (the 8-bit ones: what the training cache has always decoded this way)
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
SIXTEEN_BIT_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def is_dicom(path: str | Path) -> bool:
    """A ``.dcm``/``.dicom`` file, or any file with the DICOM ``DICM`` marker at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _pydicom(path: Path):
    try:
        import pydicom
    except ImportError:
        raise DataError(f"image file {path} is DICOM: install pydicom to read it (pip install pydicom)") from None
    return pydicom


def _dicom_header(path: Path, pixels: bool):
    pydicom = _pydicom(path)
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Exception as exc:  # InvalidDicomError, truncated files, ...: pydicom's reason, named
        raise DataError(f"image file {path} cannot be read as DICOM ({type(exc).__name__}: {exc})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file without decoding its pixels."""
    path = Path(path)
    if is_dicom(path):
        ds = _dicom_header(path, pixels=False)
        try:
            return int(ds.Columns), int(ds.Rows)
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"image file {path}: a DICOM file without Rows/Columns (no image in it)") from None
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
    """An image as ``(H, W, 3) uint8`` RGB (grayscale is repeated over the three channels); every input mode is
    read as the module docstring says or refused with a :class:`DataError` giving the reason."""
    path = Path(path)
    if is_dicom(path):
        return _read_dicom(path)
    img = _open(path, "image")
    frames = int(getattr(img, "n_frames", 1) or 1)
    if frames > 1:
        raise DataError(f"image file {path} holds {frames} frames ({img.format}); lanet reads single images: "
                        "save the frame to use as a file of its own")
    if img.mode in EIGHT_BIT_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)  # unchanged: the cache and the records depend on it
    if img.mode in SIXTEEN_BIT_GRAY_MODES:
        return _gray_to_rgb8(np.asarray(img), 16)
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise DataError(f"image file {path} has {kind} pixels (mode {img.mode}): no fixed intensity range to scale "
                        "by; save it as an 8- or 16-bit image")
    raise DataError(f"image file {path}: pixel mode {img.mode} is not supported; save it as 8- or 16-bit "
                    "grayscale or RGB")


def _scale_to_uint8(arr: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``bits``-bit values -> uint8 by the full range: ``round(x * 255 / (2**bits - 1))`` (8 bits: as is)."""
    if bits == 8 and arr.dtype == np.uint8:
        return arr
    top = (1 << bits) - 1
    x = np.clip(arr.astype(np.int64), 0, top)
    return ((x * 255 * 2 + top) // (2 * top)).astype(np.uint8)  # integer round-half-up of x * 255 / top


def _gray_to_rgb8(arr: np.ndarray, bits: int) -> np.ndarray:
    return np.repeat(_scale_to_uint8(arr, bits)[..., None], 3, axis=2)


def _read_dicom(path: Path) -> np.ndarray:
    ds = _dicom_header(path, pixels=True)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"image file {path} is a multi-frame DICOM ({frames} frames, a cine loop); lanet reads "
                        "single images: export the frame(s) to use as single-frame files")
    if "PixelData" not in ds:
        raise DataError(f"image file {path}: a DICOM file without pixel data (no image in it)")
    if int(getattr(ds, "PixelRepresentation", 0) or 0) != 0:
        raise DataError(f"image file {path}: a DICOM file with signed pixels; not an ultrasound display image")
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).strip().upper()
    try:
        ds.pixel_array_options(as_rgb=True)  # YBR_* -> RGB
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # no decoder for a compressed transfer syntax, truncated data, ...
        raise DataError(f"image file {path}: DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc})") from None
    bits = int(getattr(ds, "BitsStored", 8) or 8)
    if photometric in ("MONOCHROME1", "MONOCHROME2") and arr.ndim == 2:
        gray = _scale_to_uint8(arr, bits)
        if photometric == "MONOCHROME1":  # 0 is white
            gray = 255 - gray
        return np.repeat(gray[..., None], 3, axis=2)
    if photometric == "PALETTE COLOR" and arr.ndim == 2:
        from pydicom.pixels import apply_color_lut

        lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _scale_to_uint8(np.asarray(apply_color_lut(arr, ds)), lut_bits)
    if (photometric == "RGB" or photometric.startswith("YBR")) and arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(_scale_to_uint8(arr, bits))
    raise DataError(f"image file {path}: DICOM photometric interpretation {photometric or '(none)'} with pixel "
                    f"array {arr.shape} is not supported (MONOCHROME1/2, RGB, YBR_*, PALETTE COLOR single frames are)")


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


# ------------------------------------------------------------------------------------ back to the original image


def _seen_1d(n: int, resized: int, offset: int, size: int) -> np.ndarray:
    """Which of ``n`` original pixels along one axis the network sees: those whose centre, ``(x + 0.5) * resized /
    n`` in the resized image, falls inside the crop ``[offset, offset + size)`` (integer arithmetic: exact)."""
    centre2 = (2 * np.arange(n, dtype=np.int64) + 1) * resized  # 2 n * centre
    return (2 * offset * n <= centre2) & (centre2 < 2 * (offset + size) * n)


def _interp_matrix(n: int, resized: int, offset: int, size: int) -> np.ndarray:
    """``(n, size)`` bilinear weights taking a model-space axis of ``size`` pixels back to ``n`` original pixels:
    original pixel ``x`` samples the model map at ``(x + 0.5) * resized / n - 0.5 - offset`` (pixel centres, the
    geometry of :func:`resize_array`; clamped at the border like PIL and ``align_corners=False``). Pixels the
    network never saw (outside a centre crop) get an all-zero row."""
    x = np.arange(n, dtype=np.int64)
    m = ((2 * x + 1) * resized) / (2 * n) - 0.5 - offset
    m = np.clip(m, 0.0, size - 1.0)
    i0 = np.floor(m).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    frac = m - i0
    out = np.zeros((n, size), dtype=np.float64)
    np.add.at(out, (x, i0), 1.0 - frac)
    np.add.at(out, (x, i1), frac)
    out[~_seen_1d(n, resized, offset, size)] = 0.0
    return out


def seen_box(width: int, height: int, size: int, policy: str = "squash") -> BBox:
    """The part of a ``width x height`` image that :func:`resize_array` puts into the network's ``size x size``
    input, in original pixels (exclusive max): the whole image for ``squash``, the centre crop's footprint for
    ``shorter_side_crop``."""
    (w, h), crop = _geometry(width, height, size, policy)
    left, top = (crop[0], crop[1]) if crop is not None else (0, 0)
    xs, ys = np.flatnonzero(_seen_1d(width, w, left, size)), np.flatnonzero(_seen_1d(height, h, top, size))
    return BBox(int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


def map_to_original(prob: np.ndarray, width: int, height: int, policy: str = "squash") -> np.ndarray:
    """A model-space ``(S, S)`` map (e.g. lesion probability at the network's input size) back on the original
    ``width x height`` image, ``(height, width) float64``: the inverse geometry of :func:`resize_array` (bilinear
    between model pixel centres). Under ``shorter_side_crop`` the pixels outside the centre crop were never seen by
    the network and get 0 (see :func:`seen_box`)."""
    size = int(prob.shape[-1])
    if prob.shape[-2:] != (size, size):
        raise ValueError(f"a square model-space map is expected, got {prob.shape}")
    (w, h), crop = _geometry(width, height, size, policy)
    left, top = (crop[0], crop[1]) if crop is not None else (0, 0)
    rows = _interp_matrix(height, h, top, size)
    cols = _interp_matrix(width, w, left, size)
    return rows @ np.asarray(prob, dtype=np.float64) @ cols.T
