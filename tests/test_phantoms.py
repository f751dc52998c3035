"""Synthetic breast-ultrasound phantoms: determinism, schema, geometry and class-specific features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.measure import regionprops
from sklearn.metrics import roc_auc_score

from lanet_core.data.images import mask_to_box, read_mask
from lanet_core.data.manifest import REQUIRED_COLUMNS, parse_bbox, read_manifest
from lanet_core.data.phantoms import generate_phantom_dataset, lesion_mask, render_phantom, sample_lesion
from lanet_core.data.validate import validate_manifest
from lanet_core.errors import ConfigError

N, SIZE = 30, 32


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    generate_phantom_dataset(out, n_images=N, image_size=SIZE, seed=3)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_phantom_shapes_dtypes_and_seed():
    for malignant in (False, True):
        image, mask, meta = render_phantom(np.random.default_rng(5), 48, malignant)
        assert image.shape == (48, 48) and image.dtype == np.uint8
        assert mask.shape == (48, 48) and mask.dtype == bool
        assert 0 < mask.sum() < mask.size // 2
        assert meta["bbox"] == mask_to_box(mask)
        assert meta["label"] == ("malignant" if malignant else "benign")
        # the lesion lies fully inside the image (no mask pixel on the border)
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        again, mask2, _ = render_phantom(np.random.default_rng(5), 48, malignant)
        assert np.array_equal(image, again) and np.array_equal(mask, mask2)
    other, _, _ = render_phantom(np.random.default_rng(6), 48, True)
    assert not np.array_equal(other, image)


def test_lesion_is_hypoechoic():
    darker = []
    for i in range(10):
        image, mask, _ = render_phantom(np.random.default_rng([1, i]), 64, bool(i % 2))
        darker.append(image[mask].mean() < image[~mask].mean())
    assert all(darker)


def test_dataset_is_byte_identical_on_rerun(small, tmp_path):
    generate_phantom_dataset(tmp_path, n_images=N, image_size=SIZE, seed=3)
    assert _files(tmp_path) == _files(small)
    generate_phantom_dataset(tmp_path, n_images=N, image_size=SIZE, seed=3)  # in place, over existing files
    assert _files(tmp_path) == _files(small)
    other = tmp_path / "other"
    generate_phantom_dataset(other, n_images=N, image_size=SIZE, seed=4)
    assert (other / "images/phantom_00000.png").read_bytes() != (small / "images/phantom_00000.png").read_bytes()


def test_manifest_schema_files_and_bboxes(small):
    df = read_manifest(small / "manifest.csv")
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert {"shape", "margin", "orientation", "posterior"} <= set(df.columns)
    assert len(df) == N and df["image_id"].is_unique
    assert set(df["dataset"]) == {"phantom"} and set(df["location_label"]) == {"mask"}
    for row in df.itertuples():
        image = np.asarray(Image.open(small / row.image_path))
        assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
        mask = read_mask(small / row.mask_path)
        assert mask.any()
        assert parse_bbox(row.bbox) == mask_to_box(mask)
        assert set(np.unique(np.asarray(Image.open(small / row.mask_path)))) <= {0, 255}
    problems = validate_manifest(small / "manifest.csv", data_root=small)
    assert problems.errors == []


def test_class_balance_and_patient_level_split(small):
    df = read_manifest(small / "manifest.csv")
    assert (df["label"] == "malignant").sum() == N // 2
    per_patient = df.groupby("patient_id")
    assert per_patient["split"].nunique().max() == 1
    assert per_patient["label"].nunique().max() == 1
    assert per_patient.size().between(1, 2).all()
    for split in ("train", "val", "test"):
        assert set(df.loc[df["split"] == split, "label"]) == {"benign", "malignant"}, split
    assert (df["split"] == "train").sum() > (df["split"] == "test").sum()


def test_options_fraction_box_and_views(tmp_path):
    manifest = generate_phantom_dataset(tmp_path, n_images=20, image_size=24, seed=1, malignant_fraction=0.25,
                                        images_per_patient=(2, 2), location_label="box",
                                        split_fractions=(1.0, 0.0, 0.0))
    df = read_manifest(manifest)
    assert (df["label"] == "malignant").sum() == 5
    assert set(df["location_label"]) == {"box"} and set(df["split"]) == {"train"}
    sizes = df.groupby("patient_id").size()
    assert (sizes <= 2).all() and (sizes == 2).sum() >= 9
    assert validate_manifest(manifest, data_root=tmp_path).errors == []


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"n_images": 0}, "n_images"),
        ({"seed": -1}, "seed"),
        ({"image_size": 8}, "image_size"),
        ({"malignant_fraction": 1.5}, "malignant_fraction"),
        ({"split_fractions": (0.5, 0.2, 0.2)}, "split_fractions"),
        ({"images_per_patient": (2, 1)}, "images_per_patient"),
        ({"location_label": "none"}, "location_label"),
        ({"n_images": 4}, "too few"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, text):
    with pytest.raises(ConfigError, match=text):
        generate_phantom_dataset(tmp_path, **{"image_size": 24, **kwargs})


def _features(malignant: bool, n: int = 40, size: int = 64) -> np.ndarray:
    """Per phantom: (below-lesion / beside-lesion brightness, taller than wide, solidity, mean brightness)."""
    rows = []
    for i in range(n):
        image, mask, meta = render_phantom(np.random.default_rng([7, int(malignant), i]), size, malignant)
        box, image = meta["bbox"], image.astype(float)
        below = image[box.y2 + 2 :, box.x1 + box.width // 4 : box.x2 - box.width // 4]
        beside = np.concatenate([image[box.y2 + 2 :, : box.x1].ravel(), image[box.y2 + 2 :, box.x2 :].ravel()])
        solidity = regionprops(mask.astype(np.uint8))[0].solidity
        rows.append((below.mean() / beside.mean(), box.height > box.width, solidity, image.mean()))
    return np.array(rows, dtype=float)


def test_classes_differ_in_shadow_shape_and_margin_not_brightness():
    benign, malignant = _features(False), _features(True)
    # posterior acoustic shadowing behind malignant lesions, enhancement behind benign ones
    assert np.median(malignant[:, 0]) < 0.85 < 1.0 < np.median(benign[:, 0])
    # taller-than-wide (non-parallel) orientation only for malignant lesions
    assert benign[:, 1].mean() == 0.0 and malignant[:, 1].mean() > 0.5
    # irregular / spiculated margins: lower solidity (area / convex hull area)
    assert benign[:, 2].min() > 0.9 and malignant[:, 2].mean() < benign[:, 2].mean() - 0.1
    # but the mean image brightness does not separate the classes
    auc = roc_auc_score([0] * len(benign) + [1] * len(malignant), np.r_[benign[:, 3], malignant[:, 3]])
    assert 0.3 < auc < 0.7


def test_lesion_mask_offset_moves_the_lesion():
    lesion = sample_lesion(np.random.default_rng(0), malignant=False)
    base = lesion_mask(lesion, 64, 64)
    moved = lesion_mask(lesion, 64, 64, x_offset=5.0)
    assert np.array_equal(np.roll(base, -5, axis=1)[:, :50], moved[:, :50])
