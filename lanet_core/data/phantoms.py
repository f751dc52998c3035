"""Synthetic breast-ultrasound phantoms: still images with masks, and short videos with sparse boxes.

A phantom is rendered in the envelope (linear amplitude) domain and log-compressed for display:

* tissue layers with wavy boundaries: bright skin line, hypoechoic subcutaneous fat, heterogeneous
  fibroglandular tissue (with fat lobules), retromammary fat, striated pectoral muscle;
* one hypoechoic lesion. Benign: oval or round, parallel to the skin (wider than tall), smooth
  circumscribed margin, homogeneous, often posterior acoustic enhancement. Malignant: irregular shape
  with angular / microlobulated / indistinct or spiculated margins, often taller than wide,
  heterogeneous, sometimes an echogenic halo, often posterior acoustic shadowing. Both classes share
  the same range of lesion size, depth and contrast, and a random display gain, so the mean image
  brightness of the two classes overlaps and the signal lies in shape, margin and posterior features;
* depth-dependent attenuation (``exp(-alpha * depth)``);
* fully developed speckle: a complex Gaussian field smoothed by an anisotropic point-spread function,
  whose magnitude is Rayleigh distributed, multiplies the echogenicity map.

Every random draw comes from ``np.random.default_rng`` seeded from ``(seed, purpose, index)``, so a
dataset is byte-identical on re-run and image ``i`` does not depend on how many images are drawn.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from lanet_core.data.images import mask_to_box
from lanet_core.data.manifest import LABELS, write_manifest
from lanet_core.io import atomic_write_bytes
from lanet_core.data.video import BOX_COLUMNS, patient_splits, write_template_tables
from lanet_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DATASET_NAME = "phantom"
MIN_IMAGE_SIZE = 16
_REF_SIZE = 128.0  # lengths in pixels below are given for a 128 px image and scaled with the size
_GLAND_ECHO = 0.85  # echogenicity of fibroglandular tissue; lesion contrast is relative to it


# ----------------------------------------------------------------------------------------- lesions


@dataclass(frozen=True)
class Lesion:
    """Shape and echo properties of one lesion. Positions and radii are fractions of the image size.

    The boundary in the lesion's own frame (rotated by ``angle``, axes scaled by ``rx``/``ry``) is the
    polar curve ``r(theta) = 1 + sum_k a_k cos(k theta + phi_k) + sum_spikes L * max(0, 1 - |dtheta| / w)``.
    """

    malignant: bool
    shape: str  # BI-RADS shape: oval | round | irregular
    margin: str  # circumscribed | angular | microlobulated | indistinct | spiculated
    cx: float  # centre, fraction of the width (lateral)
    cy: float  # centre, fraction of the height (depth)
    rx: float  # lateral semi-axis, fraction of the size
    ry: float  # axial semi-axis, fraction of the size
    angle: float  # rotation of the axes, radians
    harmonics: tuple[tuple[int, float, float], ...]  # (k, amplitude, phase) of the boundary
    spikes: tuple[tuple[float, float, float], ...]  # (angle rad, length, half-width rad) of spicules
    contrast: float  # interior echogenicity / fibroglandular echogenicity
    heterogeneity: float  # relative std of the interior echogenicity
    edge_blur: float  # margin blur in pixels at 128 px
    halo: float  # strength of an echogenic rim (0 = none)
    posterior: str  # enhancement | shadowing | none
    posterior_strength: float  # relative gain change behind the lesion
    edge_shadow: float  # strength of thin refraction shadows below the lateral edges (0 = none)

    @property
    def extent(self) -> float:
        """Largest distance of the boundary from the centre, as a fraction of the size."""
        bump = sum(abs(a) for _, a, _ in self.harmonics) + max((s[1] for s in self.spikes), default=0.0)
        return max(self.rx, self.ry) * (1.0 + bump)

    def scaled(self, factor: float, squash: float = 1.0) -> "Lesion":
        """The same lesion with radii times ``factor`` and the axial radius times ``squash`` (compression)."""
        return replace(self, rx=self.rx * factor, ry=self.ry * factor * squash)


def _harmonics(rng: np.random.Generator, ks: Sequence[int], amp: tuple[float, float]) -> tuple:
    return tuple((int(k), float(rng.uniform(*amp)), float(rng.uniform(0, 2 * np.pi))) for k in ks)


def sample_lesion(rng: np.random.Generator, malignant: bool) -> Lesion:
    """Draw a benign or malignant lesion (see the module docstring for the class-specific features)."""
    radius = rng.uniform(0.09, 0.18)
    angle = rng.uniform(-0.3, 0.3)
    contrast = rng.uniform(0.08, 0.4)
    if not malignant:
        shape = "round" if rng.random() < 0.3 else "oval"
        aspect = rng.uniform(1.0, 1.2) if shape == "round" else rng.uniform(1.3, 2.1)  # width / height
        ks = [2, 3] if rng.random() < 0.75 else [int(rng.integers(3, 5))]  # smooth or gently lobulated
        harmonics = _harmonics(rng, ks, (0.0, 0.04) if len(ks) == 2 else (0.06, 0.1))
        spikes: tuple = ()
        margin, edge_blur, heterogeneity, halo = "circumscribed", rng.uniform(0.5, 0.9), rng.uniform(0.0, 0.12), 0.0
        posterior = str(rng.choice(["enhancement", "none", "shadowing"], p=[0.75, 0.21, 0.04]))
        edge_shadow = rng.uniform(0.4, 0.8) if rng.random() < 0.4 else 0.0
    else:
        shape = "irregular"
        aspect = rng.uniform(0.5, 0.85) if rng.random() < 0.7 else rng.uniform(0.85, 1.4)
        margin = str(rng.choice(["spiculated", "angular", "microlobulated", "indistinct"], p=[0.4, 0.2, 0.2, 0.2]))
        n_low = int(rng.integers(2, 4))
        harmonics = _harmonics(rng, rng.choice(np.arange(2, 7), n_low, replace=False), (0.05, 0.13))
        spikes = ()
        edge_blur = rng.uniform(0.7, 1.3)
        if margin == "microlobulated":
            harmonics += _harmonics(rng, rng.choice(np.arange(9, 16), 2, replace=False), (0.05, 0.09))
        elif margin == "angular":
            harmonics += _harmonics(rng, rng.choice(np.arange(6, 10), 2, replace=False), (0.08, 0.14))
        elif margin == "indistinct":
            edge_blur = rng.uniform(1.8, 3.0)
        else:
            n = int(rng.integers(6, 15))
            spikes = tuple(
                (float(a), float(rng.uniform(0.35, 0.8)), float(rng.uniform(0.07, 0.15)))
                for a in np.sort(rng.uniform(0, 2 * np.pi, n))
            )
        heterogeneity = rng.uniform(0.1, 0.3)
        halo = rng.uniform(0.2, 0.5) if rng.random() < 0.3 else 0.0
        posterior = str(rng.choice(["shadowing", "none", "enhancement"], p=[0.75, 0.17, 0.08]))
        edge_shadow = 0.0
    rx = radius * np.sqrt(aspect)
    ry = radius / np.sqrt(aspect)
    strength = rng.uniform(0.45, 0.8) if posterior == "shadowing" else rng.uniform(0.5, 1.0)
    lesion = Lesion(
        malignant=bool(malignant), shape=shape, margin=margin, cx=0.5, cy=0.5, rx=float(rx), ry=float(ry),
        angle=float(angle), harmonics=tuple(harmonics), spikes=spikes, contrast=float(contrast),
        heterogeneity=float(heterogeneity), edge_blur=float(edge_blur), halo=float(halo), posterior=posterior,
        posterior_strength=float(strength if posterior != "none" else 0.0), edge_shadow=float(edge_shadow),
    )
    return _place(rng, lesion)


def _place(rng: np.random.Generator, lesion: Lesion) -> Lesion:
    """Put the lesion in the fibroglandular zone, fully inside the image with room below it."""
    ext = lesion.extent
    if ext > 0.3:  # keep very spiky / large lesions inside the image
        lesion = lesion.scaled(0.3 / ext)
        ext = 0.3
    cx = rng.uniform(ext + 0.04, 1.0 - ext - 0.04)
    cy = np.clip(rng.uniform(0.32, 0.6), ext + 0.08, 1.0 - ext - 0.15)
    return replace(lesion, cx=float(cx), cy=float(cy))


def lesion_mask(lesion: Lesion, height: int, width: int, *, x_offset: float = 0.0) -> np.ndarray:
    """Boolean mask (height x width) of ``lesion``; ``x_offset`` (pixels) moves it left, for a sliding probe."""
    size = float(min(height, width))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    x = xx - (lesion.cx * width - x_offset)
    y = yy - lesion.cy * height
    ca, sa = np.cos(lesion.angle), np.sin(lesion.angle)
    u = (x * ca + y * sa) / (lesion.rx * size)
    v = (-x * sa + y * ca) / (lesion.ry * size)
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    radius = np.ones_like(theta)
    for k, amp, phase in lesion.harmonics:
        radius += amp * np.cos(k * theta + phase)
    if lesion.spikes:
        ang, length, half = (np.asarray(c)[None, None, :] for c in zip(*lesion.spikes))
        dtheta = np.abs((theta[..., None] - ang + np.pi) % (2 * np.pi) - np.pi)
        radius += (length * np.clip(1.0 - dtheta / half, 0.0, None)).max(axis=-1)
    return rho <= radius


# ----------------------------------------------------------------------------------------- tissue


@dataclass
class _Scene:
    """Everything of one view that does not depend on the lesion's shape; arrays are height x canvas width."""

    echo: np.ndarray  # tissue echogenicity (linear)
    texture: np.ndarray  # smooth unit-std field for the lesion's internal heterogeneity
    shadows: np.ndarray  # gain map of shadows not caused by the lesion
    alpha: float  # attenuation, nepers over the full depth
    gain_db: float  # display gain
    dynamic_range_db: float


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: Sequence[float] | float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean, unit std."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-12)


def _sample_scene(rng: np.random.Generator, height: int, width: int) -> _Scene:
    """Tissue layers with wavy boundaries, heterogeneity, fat lobules and muscle striations."""
    s = height / _REF_SIZE
    depth = (np.arange(height) + 0.5)[:, None] / height  # 0 at the skin, 1 at the bottom
    waves = [_smooth_noise(rng, (width,), width / 6)[None, :] for _ in range(3)]
    skin = 0.025 + 0.004 * waves[0]
    fat = rng.uniform(0.12, 0.2) + 0.025 * waves[0]
    gland = rng.uniform(0.74, 0.84) + 0.035 * waves[1]
    retro = gland + rng.uniform(0.03, 0.06)
    field = _smooth_noise(rng, (height, width), (4 * s, 9 * s))
    gland_echo = _GLAND_ECHO * (1.0 + 0.18 * field)
    gland_echo = np.where(field < -1.3, 0.3, gland_echo)  # fat lobules inside the gland
    striae = 0.5 * (1.0 + 0.3 * np.sin(2 * np.pi * (depth * rng.uniform(10, 16) + 0.04 * waves[2])))
    fat_echo = 0.25 * (1.0 + 0.15 * field)
    echo = np.select(
        [depth < skin, depth < fat, depth < gland, depth < retro],
        [np.full_like(field, 1.4), fat_echo, gland_echo, fat_echo],
        striae * np.ones_like(field),
    )
    echo = ndimage.gaussian_filter(echo, 0.8 * s)
    return _Scene(
        echo=echo,
        texture=_smooth_noise(rng, (height, width), 2.0 * s),
        shadows=_shadow_bands(rng, height, width),
        alpha=float(rng.uniform(0.4, 1.3)),
        gain_db=float(rng.uniform(-4.0, 4.0)),
        dynamic_range_db=float(rng.uniform(40.0, 48.0)),
    )


def _complex_speckle(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Complex Gaussian field smoothed by the point-spread function; its magnitude is Rayleigh speckle."""
    s = shape[0] / _REF_SIZE
    sigma = (0.7 * s, 1.3 * s)  # speckle grains are elongated laterally
    re = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    im = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    z = re + 1j * im
    return z / np.sqrt(np.mean(np.abs(z) ** 2))


def _posterior_factor(mask: np.ndarray, lesion: Lesion) -> np.ndarray:
    """Gain multiplier behind the lesion (height x width).

    Posterior enhancement (> 1, fading with depth) or shadowing (< 1, to the bottom) below the lesion,
    columns weighted by the lesion's thickness; optional thin refraction shadows below its lateral edges.
    """
    h, w = mask.shape
    factor = np.ones(mask.shape)
    if not mask.any():
        return factor
    s = h / _REF_SIZE
    rows = (np.arange(h) + 0.5)[:, None]
    cols_x = np.arange(w, dtype=np.float64)
    thickness = mask.sum(axis=0).astype(np.float64)
    cols = thickness > 0
    if lesion.posterior != "none" and lesion.posterior_strength > 0:
        bottom = np.where(cols, h - np.argmax(mask[::-1], axis=0), 0).astype(np.float64)
        bottom[~cols] = np.average(bottom[cols], weights=thickness[cols])
        weight = ndimage.gaussian_filter1d(np.sqrt(thickness / thickness.max()), 1.5 * s)[None, :]
        below = rows - bottom[None, :]
        ramp = np.clip(below / (4.0 * s), 0.0, 1.0)
        if lesion.posterior == "enhancement":
            factor += lesion.posterior_strength * weight * ramp * np.exp(-np.clip(below, 0, None) / (0.35 * h))
        else:
            factor -= lesion.posterior_strength * weight * ramp
    if lesion.edge_shadow > 0:
        xs = np.nonzero(cols)[0]
        centre_row = np.nonzero(mask.any(axis=1))[0].mean()
        bands = sum(np.exp(-0.5 * ((cols_x - x) / (1.0 * s)) ** 2) for x in (xs[0], xs[-1]))
        below_centre = np.clip((rows - centre_row) / (4.0 * s), 0, 1)
        factor *= 1.0 - lesion.edge_shadow * np.clip(bands, 0, 1)[None, :] * below_centre
    return factor


def _shadow_bands(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gain map (height x width) with 0-2 thin shadows cast by Cooper's ligaments, independent of the lesion."""
    s = height / _REF_SIZE
    factor = np.ones((height, width))
    rows = (np.arange(height) + 0.5)[:, None]
    for _ in range(int(rng.choice([0, 1, 2], p=[0.55, 0.3, 0.15]))):
        x, y0 = rng.uniform(0, width), rng.uniform(0.1, 0.4) * height
        half = rng.uniform(1.0, 3.0) * s
        band = np.exp(-0.5 * ((np.arange(width) - x) / half) ** 2)[None, :]
        factor *= 1.0 - rng.uniform(0.3, 0.7) * band * np.clip((rows - y0) / (4.0 * s), 0, 1)
    return factor


def _render(scene: _Scene, lesion: Lesion, mask: np.ndarray, speckle: np.ndarray, x0: int = 0) -> np.ndarray:
    """Display image (uint8, height x width) of the scene window starting at canvas column ``x0``."""
    h, w = mask.shape
    s = h / _REF_SIZE
    echo = scene.echo[:, x0 : x0 + w]
    texture = scene.texture[:, x0 : x0 + w]
    soft = ndimage.gaussian_filter(mask.astype(np.float64), lesion.edge_blur * s)
    inside = _GLAND_ECHO * lesion.contrast * np.clip(1.0 + lesion.heterogeneity * texture, 0.2, None)
    echo = echo * (1.0 - soft) + inside * soft
    if lesion.halo > 0:
        ring = np.clip(ndimage.gaussian_filter(mask.astype(np.float64), 2.5 * s) - soft, 0.0, None)
        echo = echo * (1.0 + 4.0 * lesion.halo * ring)
    depth = (np.arange(h) + 0.5)[:, None] / h
    gain = _posterior_factor(mask, lesion) * scene.shadows[:, x0 : x0 + w] * np.exp(-scene.alpha * depth)
    envelope = echo * gain * np.abs(speckle)
    envelope = ndimage.gaussian_filter(envelope, 0.5 * s)  # display resampling averages neighbouring grains
    db = 20.0 * np.log10(envelope + 1e-6) + scene.gain_db
    top = 10.0  # dB mapped to white
    grey = (db - (top - scene.dynamic_range_db)) / scene.dynamic_range_db
    return np.round(255.0 * np.clip(grey, 0.0, 1.0)).astype(np.uint8)


def render_phantom(
    rng: np.random.Generator, size: int, malignant: bool, *, lesion: Lesion | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One phantom view: ``(image uint8 [size, size], mask bool [size, size], meta)``.

    ``lesion`` renders a given lesion (another view of the same patient); by default one is drawn from
    ``rng``. ``meta`` holds the BI-RADS-like descriptors (``shape``, ``margin``, ``orientation``,
    ``posterior``), ``bbox`` (a :class:`BBox`, exclusive max) and the lesion's parameters.
    """
    if size < MIN_IMAGE_SIZE:
        raise ConfigError(f"phantom image size must be at least {MIN_IMAGE_SIZE} px, got {size}")
    lesion = lesion if lesion is not None else sample_lesion(rng, malignant)
    if lesion.malignant != bool(malignant):
        raise ConfigError("render_phantom: the given lesion's class differs from `malignant`")
    scene = _sample_scene(rng, size, size)
    mask = lesion_mask(lesion, size, size)
    image = _render(scene, lesion, mask, _complex_speckle(rng, (size, size)))
    return image, mask, _meta(lesion, mask)


def _meta(lesion: Lesion, mask: np.ndarray) -> dict[str, Any]:
    bbox = mask_to_box(mask)
    taller = bbox is not None and bbox.height > bbox.width
    return {
        "label": LABELS[int(lesion.malignant)],
        "shape": lesion.shape,
        "margin": lesion.margin,
        "orientation": "not parallel" if taller else "parallel",
        "posterior": lesion.posterior,
        "bbox": bbox,
        "lesion": asdict(lesion),
    }


def _second_view(rng: np.random.Generator, lesion: Lesion) -> Lesion:
    """The same lesion seen from a slightly different probe position (shifted, rotated, rescaled)."""
    moved = replace(lesion.scaled(rng.uniform(0.9, 1.1)), angle=lesion.angle + rng.uniform(-0.15, 0.15))
    return _place(rng, moved)


# ----------------------------------------------------------------------------------------- files


def png_bytes(array: np.ndarray) -> bytes:
    """Deterministic 8-bit grayscale PNG encoding of a 2-D uint8 (or bool -> 0/255) array."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {value}")


def _patients_of_class(rng: np.random.Generator, n_images: int, per_patient: tuple[int, int]) -> list[int]:
    """Image counts of the patients of one class, drawn in ``per_patient`` (inclusive) and summing to n_images."""
    counts: list[int] = []
    while sum(counts) < n_images:
        counts.append(min(int(rng.integers(per_patient[0], per_patient[1] + 1)), n_images - sum(counts)))
    return counts


def generate_phantom_dataset(
    out_dir: Path,
    *,
    n_images: int = 240,
    image_size: int = 128,
    seed: int = 0,
    malignant_fraction: float = 0.5,
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    images_per_patient: tuple[int, int] = (1, 2),
    location_label: Literal["mask", "box"] = "mask",
) -> Path:
    """Write ``images/``, ``masks/`` (8-bit PNG, mask 0/255) and ``manifest.csv`` under ``out_dir``.

    Returns the manifest path. Paths in the manifest are relative to ``out_dir`` (use it as the data root).
    Exactly ``round(n_images * malignant_fraction)`` images are malignant. Patients have between
    ``images_per_patient[0]`` and ``[1]`` views of one lesion; the train/val/test split
    (``split_fractions``) is drawn per patient, stratified by class. ``location_label="box"`` marks every
    row as box-supervised (the masks are still written and listed, for scoring). Extra columns:
    ``shape``, ``margin``, ``orientation``, ``posterior``.
    """
    if n_images < 1 or seed < 0:
        raise ConfigError(f"n_images must be at least 1 and seed non-negative, got n_images={n_images}, seed={seed}")
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be at least {MIN_IMAGE_SIZE} px, got {image_size}")
    _check_fraction("malignant_fraction", malignant_fraction)
    if len(split_fractions) != 3 or any(f < 0 for f in split_fractions) or abs(sum(split_fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}")
    lo, hi = (int(v) for v in images_per_patient)
    if not 1 <= lo <= hi:
        raise ConfigError(f"images_per_patient must be (min, max) with 1 <= min <= max, got {images_per_patient}")
    if location_label not in ("mask", "box"):
        raise ConfigError(f"location_label must be 'mask' or 'box', got {location_label!r}")

    out_dir = Path(out_dir)
    plan_rng = np.random.default_rng([seed, 0])
    n_malignant = int(round(n_images * malignant_fraction))
    patients = [(False, c) for c in _patients_of_class(plan_rng, n_images - n_malignant, (lo, hi))]
    patients += [(True, c) for c in _patients_of_class(plan_rng, n_malignant, (lo, hi))]
    patients = [patients[i] for i in plan_rng.permutation(len(patients))]
    pids = [f"phantom_p{i:04d}" for i in range(len(patients))]
    try:
        split_of = patient_splits(
            {pid: LABELS[int(m)] for pid, (m, _) in zip(pids, patients)},
            val_fraction=split_fractions[1], test_fraction=split_fractions[2], seed=seed,
        )
    except DataError as exc:
        raise ConfigError(
            f"n_images={n_images} gives {len(pids)} patients, too few for a class-stratified {split_fractions} "
            f"split ({exc}); draw more images or use split_fractions=(1, 0, 0)"
        ) from exc

    rows = []
    index = 0
    for p, (pid, (malignant, count)) in enumerate(zip(pids, patients)):
        lesion = sample_lesion(np.random.default_rng([seed, 1, p]), malignant)
        for view in range(count):
            rng = np.random.default_rng([seed, 2, index])
            view_lesion = lesion if view == 0 else _second_view(rng, lesion)
            image, mask, meta = render_phantom(rng, image_size, malignant, lesion=view_lesion)
            image_id = f"phantom_{index:05d}"
            image_rel, mask_rel = f"images/{image_id}.png", f"masks/{image_id}.png"
            atomic_write_bytes(out_dir / image_rel, png_bytes(image))
            atomic_write_bytes(out_dir / mask_rel, png_bytes(mask))
            rows.append({
                "image_id": image_id, "dataset": DATASET_NAME, "image_path": image_rel, "mask_path": mask_rel,
                "bbox": str(meta["bbox"]), "location_label": location_label,
                "label": meta["label"], "patient_id": pid, "split": split_of[pid],
                "shape": meta["shape"], "margin": meta["margin"], "orientation": meta["orientation"],
                "posterior": meta["posterior"],
            })
            index += 1
    path = write_manifest(pd.DataFrame(rows), out_dir / "manifest.csv")
    log.info("wrote %d phantom images (%d malignant) of %d patients to %s", n_images, n_malignant, len(pids), out_dir)
    return path


# ----------------------------------------------------------------------------------------- videos


def _render_video(
    rng: np.random.Generator, lesion: Lesion, n_frames: int, size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (uint8) and masks (bool) of a slow probe sweep over ``lesion``.

    The probe slides laterally (at most 0.7 px per frame, sub-pixel) over a wider tissue canvas, the lesion
    grows and shrinks as the imaging plane passes through it and is gently compressed, and the speckle
    moves with the tissue while decorrelating slowly, so consecutive frames are near-identical.
    """
    margin = int(round(0.2 * size))
    canvas_w = size + 2 * margin + 1
    scene = _sample_scene(rng, size, canvas_w)
    base = _complex_speckle(rng, (size, canvas_w))
    fresh = _complex_speckle(rng, (size, size))
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    growth = 0.85 + 0.25 * np.sin(np.pi * t)
    squash = 1.0 - 0.06 * np.sin(2 * np.pi * t * rng.uniform(1.0, 2.0) + phase) ** 2
    tilt = rng.uniform(-0.1, 0.1) * t
    # keep the whole lesion in view: its centre (fraction of the frame) stays in [lo, hi] on every frame
    lo, hi = lesion.extent * growth.max() + 0.02, 1.0 - lesion.extent * growth.max() - 0.02
    sweep = np.sin(np.pi * t + phase)
    span = (sweep.max() - sweep.min()) * margin / size
    max_speed = 0.7 * max(n_frames - 1, 1) / np.pi  # amplitude (px) at which the sweep moves 0.7 px per frame
    amplitude = min(margin * rng.uniform(0.3, 0.8), margin * max(hi - lo, 0.0) / max(span, 1e-9), max_speed)
    offsets = margin + amplitude * sweep  # canvas column of the frame's left edge (float)
    shift = (offsets - margin) / size  # how far the lesion moves left in the frame
    cx = float(np.clip(lesion.cx, lo + shift.max(), max(hi + shift.min(), lo + shift.max())))
    # the lesion is fixed in the tissue: its centre is given in canvas coordinates
    anchor = replace(lesion, cx=(cx * size + margin) / size)
    frames, masks = [], []
    rho = 0.98  # frame-to-frame correlation of the decorrelating speckle part
    for i in range(n_frames):
        x0, frac = int(np.floor(offsets[i])), float(offsets[i] - np.floor(offsets[i]))
        moved = (1.0 - frac) * base[:, x0 : x0 + size] + frac * base[:, x0 + 1 : x0 + 1 + size]  # sub-pixel shift
        fresh = rho * fresh + np.sqrt(1 - rho**2) * _complex_speckle(rng, (size, size))
        speckle = np.sqrt(0.95) * moved / np.sqrt(np.mean(np.abs(moved) ** 2)) + np.sqrt(0.05) * fresh
        shaped = replace(anchor.scaled(growth[i], squash[i]), angle=lesion.angle + tilt[i])
        mask = lesion_mask(shaped, size, size, x_offset=float(offsets[i]))
        frames.append(_render(scene, shaped, mask, speckle, x0=int(round(offsets[i]))))
        masks.append(mask)
    return frames, masks


def generate_phantom_videos(
    out_dir: Path,
    *,
    n_patients: int = 12,
    videos_per_patient: int = 1,
    frames_per_video: int = 24,
    image_size: int = 96,
    boxed_frames_per_video: int = 2,
    seed: int = 0,
) -> Path:
    """Write phantom videos in the user template layout of :mod:`lanet_core.data.video`; returns ``out_dir``.

    Layout: ``frames/<video_id>/<frame_index:05d>.png``, ``videos.csv`` (class label per video, i.e. on
    every frame), ``boxes.csv`` (the lesion box, exclusive max, on ``boxed_frames_per_video`` frames per
    video only) and, phantom-only, ``truth_boxes.csv`` with the true box of every frame (to score
    pseudo-labels; not part of the template). Half the patients (rounded down) are malignant.
    """
    if n_patients < 1 or videos_per_patient < 1 or seed < 0:
        raise ConfigError(f"n_patients ({n_patients}) and videos_per_patient ({videos_per_patient}) must be at "
                          f"least 1, seed ({seed}) non-negative")
    if frames_per_video < 1 or not 0 <= boxed_frames_per_video <= frames_per_video:
        raise ConfigError(
            f"need 0 <= boxed_frames_per_video ({boxed_frames_per_video}) <= frames_per_video ({frames_per_video})"
        )
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be at least {MIN_IMAGE_SIZE} px, got {image_size}")
    out_dir = Path(out_dir)
    malignant = np.zeros(n_patients, dtype=bool)
    malignant[: n_patients // 2] = True
    malignant = np.random.default_rng([seed, 10]).permutation(malignant)
    videos, boxes, truth = [], [], []
    for p in range(n_patients):
        pid = f"pat{p:03d}"
        lesion = sample_lesion(np.random.default_rng([seed, 11, p]), bool(malignant[p]))
        for v in range(videos_per_patient):
            vid = f"{pid}_v{v}"
            rng = np.random.default_rng([seed, 12, p, v])
            view = lesion if v == 0 else _second_view(rng, lesion)
            frames, masks = _render_video(rng, view, frames_per_video, image_size)
            boxed = set(rng.choice(frames_per_video, boxed_frames_per_video, replace=False).tolist())
            frames_dir = f"frames/{vid}"
            for i, (frame, mask) in enumerate(zip(frames, masks)):
                atomic_write_bytes(out_dir / frames_dir / f"{i:05d}.png", png_bytes(frame))
                b = mask_to_box(mask)
                box = dict(zip(BOX_COLUMNS, (vid, i, b.x1, b.y1, b.x2, b.y2)))
                truth.append(box)
                if i in boxed:
                    boxes.append(box)
            videos.append({"video_id": vid, "patient_id": pid, "label": LABELS[int(malignant[p])],
                           "frames_dir": frames_dir, "device": "phantom", "notes": ""})
    write_template_tables(out_dir, pd.DataFrame(videos), pd.DataFrame(boxes, columns=list(BOX_COLUMNS)))
    write_template_tables(out_dir, None, pd.DataFrame(truth, columns=list(BOX_COLUMNS)), boxes_name="truth_boxes.csv")
    log.info("wrote %d phantom videos of %d frames to %s", len(videos), frames_per_video, out_dir)
    return out_dir
