import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lanet_core.data.dataset import ImageCache, LesionDataset, PaperAugment, sample_seed
from lanet_core.data.images import read_image, read_mask, resize_array
from lanet_core.errors import DataError


def _row(image_id, image_path, mask_path="", bbox="", loc="mask", label="benign", split="train"):
    return {"image_id": image_id, "dataset": "t", "image_path": image_path, "mask_path": mask_path, "bbox": bbox,
            "location_label": loc, "label": label, "patient_id": image_id, "split": split}


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A grayscale image with a mask in two files, an RGB image with a box, an RGBA mask, no label."""
    g = np.zeros((40, 60), np.uint8)
    g[10:20, 10:30] = 200
    Image.fromarray(g).save(tmp_path / "a.png")
    m1 = np.zeros((40, 60), np.uint8)
    m1[10:20, 10:20] = 255
    m2 = np.zeros((40, 60), np.uint8)
    m2[10:20, 20:30] = 255
    Image.fromarray(m1).save(tmp_path / "a_mask.png")
    Image.fromarray(m2).convert("1").save(tmp_path / "a_mask_1.png")
    rgb = np.zeros((50, 50, 3), np.uint8)
    rgb[..., 0] = 90
    Image.fromarray(rgb).save(tmp_path / "b.png")
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[5:15, 5:15, :3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b_mask.png")
    rows = pd.DataFrame([
        _row("a", "a.png", "a_mask.png|a_mask_1.png", "10 10 30 20"),
        _row("b", "b.png", "b_mask.png", "0 0 25 50", loc="box", label="malignant"),
        _row("c", "b.png", "", "", loc="none"),
    ])
    return tmp_path, rows


def test_decoding(tiny):
    root, _ = tiny
    assert read_image(root / "a.png").shape == (40, 60, 3)
    assert read_image(root / "b.png")[0, 0].tolist() == [90, 0, 0]
    m = read_mask(root / "b_mask.png")
    assert m.dtype == bool and m.sum() == 100  # RGBA: alpha ignored
    assert resize_array(np.zeros((40, 60), bool), 32, "shorter_side_crop").shape == (32, 32)
    with pytest.raises(DataError, match="not found"):
        read_image(root / "missing.png")
    (root / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot be read"):
        read_image(root / "bad.png")


def test_samples_and_targets(tiny, tmp_path):
    root, rows = tiny
    ds = LesionDataset(rows, root, 32, cache=ImageCache(root, 32, root=tmp_path / "c"))
    a, b, c = ds[0], ds[1], ds[2]
    assert a["image"].shape == (3, 32, 32) and a["target"].shape == (1, 32, 32)
    assert a["image"].min() >= -1 and a["image"].max() <= 1
    # the union of the two masks is the left-centre 20x10 block: half the image width squashed to 32
    assert a["target"][0, 12, 8:14].min() > 0.9 and a["target"][0, 0, 0] == 0
    assert b["has_location"] and b["label"] == 1
    assert torch.allclose(b["target"], b["box"]) and b["target"][0, :, :16].mean() > 0.95  # filled box x<25 of 50
    assert not c["has_location"] and c["target"].sum() == 0 and not c["has_mask"]
    assert a["has_mask"] and a["has_box"]


def test_cache_decodes_once_and_invalidates(tiny, tmp_path):
    root, rows = tiny
    cdir = tmp_path / "cache"
    ds = LesionDataset(rows, root, 32, cache=ImageCache(root, 32, root=cdir))
    assert ds.warm() == 3  # one entry per distinct (image, masks, box) combination
    again = LesionDataset(rows, root, 32, cache=ImageCache(root, 32, root=cdir))
    assert again.warm() == 0  # a later run reads the cache, no PNG decoding
    assert LesionDataset(rows, root, 64, cache=ImageCache(root, 64, root=cdir)).warm() > 0  # new size
    img = np.array(Image.open(root / "a.png"))
    img[0, 0] = 255
    Image.fromarray(img).save(root / "a.png")
    os.utime(root / "a.png", ns=(1, 1))  # a changed file (size/mtime) gets a new entry
    assert LesionDataset(rows, root, 32, cache=ImageCache(root, 32, root=cdir)).warm() == 1


def test_augmentation_is_seeded_and_geometric_ops_match(tiny, tmp_path):
    root, rows = tiny
    ds = LesionDataset(rows, root, 32, train=True, seed=3, cache=ImageCache(root, 32, root=tmp_path / "c"))
    x1, x2 = ds[0], ds[0]
    assert torch.equal(x1["image"], x2["image"]) and torch.equal(x1["target"], x2["target"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["image"], x1["image"])
    aug = PaperAugment(32)
    t = torch.zeros(1, 32, 32, dtype=torch.uint8)
    t[0, 4:12, 6:20] = 255
    img = t.repeat(3, 1, 1)
    for s in range(10):
        torch.manual_seed(s)
        ai, at = aug(img, t)
        # image and target share the geometry: the bright image region is the lesion region
        assert ((ai[0] > 100) == (at[0] > 100)).float().mean() > 0.97
    assert sample_seed(0, 0, 1) != sample_seed(0, 1, 0)


def test_bad_rows_are_named(tiny, tmp_path):
    root, rows = tiny
    bad = pd.concat([rows, pd.DataFrame([_row("z", "nope.png")])], ignore_index=True)
    ds = LesionDataset(bad, root, 32, cache=ImageCache(root, 32, root=tmp_path / "c"))
    with pytest.raises(DataError, match="image_id 'z'.*nope.png"):
        ds[3]
    with pytest.raises(DataError, match="unknown label"):
        LesionDataset(bad.assign(label="maybe"), root, 32)


@pytest.mark.integration
def test_real_busi_rows_through_the_dataset(tmp_path):
    from lanet_core.data.sources import load_manifest
    from lanet_core.paths import DataRootNotFound

    try:
        rows, _, root = load_manifest("data_manifests/busi.csv")
    except DataRootNotFound:
        pytest.skip("BUSI not available here")
    sub = rows[rows["image_id"].isin(["benign (4)", "benign (54)", "malignant (15)"])]  # extra RGBA masks, a test image
    ds = LesionDataset(sub, root, 64, cache=ImageCache(root, 64, root=tmp_path / "c"))
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 64, 64) and s["has_mask"] and s["target"].sum() > 0
