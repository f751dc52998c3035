"""lanet_core.audit: counts, lesion geometry, perceptual-hash near-duplicates, figures (tiny synthetic data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from lanet_core import audit
from lanet_core.data.manifest import BBox, REQUIRED_COLUMNS, read_manifest, write_manifest
from lanet_core.errors import DataError
from lanet_core.paths import DataRootNotFound, find_data_root, manifests_dir
from lanet_core.reporting import write_table

SIZE = 96


def _texture(seed: int) -> np.ndarray:
    """A smooth random (SIZE, SIZE) uint8 image: structure at several scales, like tissue layers."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), 6) * 3 + ndimage.gaussian_filter(
        rng.normal(size=(SIZE, SIZE)), 2)
    img = (img - img.min()) / np.ptp(img)
    return (img * 255).astype(np.uint8)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _mask(box: BBox, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[box.y1:box.y2, box.x1:box.x2] = 255
    return m


@pytest.fixture
def dup_set(tmp_path: Path) -> audit.AuditSet:
    """train: a, b; val: c; test: a_copy (same bytes as a), a_noisy (a resized + noise, other label), u."""
    base = _texture(1)
    noisy = np.asarray(Image.fromarray(base).resize((80, 88), Image.Resampling.BILINEAR), dtype=float)
    noisy = np.clip(noisy + np.random.default_rng(5).normal(0, 4, noisy.shape), 0, 255).astype(np.uint8)
    images = {"a": base, "b": _texture(2), "c": _texture(3), "a_noisy": noisy, "u": _texture(4)}
    for name, arr in images.items():
        _save(tmp_path / "img" / f"{name}.png", arr)
    shutil.copyfile(tmp_path / "img" / "a.png", tmp_path / "img" / "a_copy.png")
    box = BBox(10, 20, 40, 30)
    for name, arr in images.items():  # one mask per image, at the image's size
        _save(tmp_path / "msk" / f"{name}.png", _mask(box, arr.shape))
    shutil.copyfile(tmp_path / "msk" / "a.png", tmp_path / "msk" / "a_copy.png")
    spec = [("a", "train", "benign"), ("b", "train", "malignant"), ("c", "val", "benign"),
            ("a_copy", "test", "benign"), ("a_noisy", "test", "malignant"), ("u", "test", "benign")]
    rows = pd.DataFrame([{
        "image_id": name, "dataset": "toy", "image_path": f"img/{name}.png", "mask_path": f"msk/{name}.png",
        "bbox": str(box), "location_label": "mask", "label": label, "patient_id": f"p_{name}", "split": split,
    } for name, split, label in spec], columns=list(REQUIRED_COLUMNS))
    write_manifest(rows, tmp_path / "toy.csv")
    return audit.AuditSet("toy", read_manifest(tmp_path / "toy.csv"), tmp_path)


# --------------------------------------------------------------------------------------------- hashes and distances


def test_distances_behave_for_copy_noisy_copy_and_unrelated_image(dup_set):
    fp = audit.image_fingerprints(dup_set, cache=False).set_index("image_id")
    bits = audit.phash_matrix(fp["phash"].tolist())
    assert bits.shape == (6, 64) and bits.dtype == bool
    d = pd.DataFrame(audit.hamming_distances(bits, bits), index=fp.index, columns=fp.index)
    assert d.loc["a", "a_copy"] == 0 and fp.loc["a", "sha256"] == fp.loc["a_copy", "sha256"]
    assert 0 < d.loc["a", "a_noisy"] <= audit.NEAR_DUPLICATE_MAX_DISTANCE
    for other in ("b", "c", "u"):
        assert d.loc["a", other] > 3 * audit.NEAR_DUPLICATE_MAX_DISTANCE
    assert (np.diag(d.to_numpy()) == 0).all() and (d.to_numpy() == d.to_numpy().T).all()


def test_hamming_distances_counts_differing_bits_and_checks_shapes():
    a = np.zeros((2, 8), dtype=bool)
    a[1, :3] = True
    b = np.ones((1, 8), dtype=bool)
    np.testing.assert_array_equal(audit.hamming_distances(a, b), [[8], [5]])
    assert audit.hamming_distances(a[:0], b).shape == (0, 1)
    with pytest.raises(DataError, match="bit arrays"):
        audit.hamming_distances(a, np.ones((1, 7), dtype=bool))


def test_phash_matrix_rejects_bad_hex():
    assert audit.phash_matrix(["ffffffffffffffff", "0000000000000001"]).sum() == 65
    with pytest.raises(DataError, match="pHash"):
        audit.phash_matrix(["not-hex"])


def test_fingerprints_are_cached_by_file_content(dup_set, monkeypatch):
    first = audit.image_fingerprints(dup_set)
    cache = Path(audit.cache_dir()) / "phash" / audit.PHASH_CACHE_FILE
    cached = pd.read_csv(cache, dtype=str)
    assert set(first["sha256"]) <= set(cached["sha256"])  # the copy shares its entry with the original

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(audit, "image_fingerprint", no_decoding)
    pd.testing.assert_frame_equal(audit.image_fingerprints(dup_set), first)


def test_missing_image_names_the_manifest_row(dup_set):
    (dup_set.data_root / "img" / "u.png").unlink()
    with pytest.raises(DataError, match=r"toy.csv row 6 \(image_id 'u'\).*not found"):
        audit.image_fingerprints(dup_set, cache=False)
    with pytest.raises(DataError, match=r"toy.csv row 6 \(image_id 'u'\)"):
        audit.image_geometry(dup_set)


# --------------------------------------------------------------------------------------------- the near-duplicate table


def test_near_duplicate_table_lists_the_right_pairs(dup_set, tmp_path):
    fp = audit.image_fingerprints(dup_set, cache=False)
    table = audit.near_duplicates(dup_set.rows, fp, threshold=6)
    assert tuple(table.columns) == audit.NEAR_DUPLICATE_COLUMNS
    t = table.set_index("test_id")
    assert sorted(t.index) == ["a_copy", "a_noisy", "u"]
    assert t.loc["a_copy", "match_id"] == "a" and t.loc["a_copy", "distance"] == 0
    assert t.loc["a_noisy", "match_id"] == "a" and t.loc["a_noisy", "match_split"] == "train"
    assert t.loc["a_copy", "suspected_leak"] and t.loc["a_noisy", "suspected_leak"]
    assert not t.loc["u", "suspected_leak"] and t.loc["u", "n_within_threshold"] == 0
    assert t.loc["a_noisy", "label_conflict"] and not t.loc["a_copy", "label_conflict"]
    assert list(table["distance"]) == sorted(table["distance"])  # closest first
    summary = audit.leak_summary(table, "toy", 6)
    assert (summary["test_images"], summary["suspected_leaks"], summary["label_conflicts"],
            summary["distance_0"]) == (3, 2, 1, 1)
    # Study.leak_free_ids reads the CSV as text and keeps rows whose suspected_leak is "True"
    write_table(table, "busi_near_duplicates", tmp_path / "tables")
    back = pd.read_csv(tmp_path / "tables" / "busi_near_duplicates.csv", dtype=str)
    assert set(back.loc[back["suspected_leak"] == "True", "test_id"]) == {"a_copy", "a_noisy"}
    # a threshold of 0 keeps only the byte copy
    strict = audit.near_duplicates(dup_set.rows, fp, threshold=0)
    assert set(strict.loc[strict["suspected_leak"], "test_id"]) == {"a_copy"}


def test_near_duplicates_edge_cases(dup_set):
    fp = audit.image_fingerprints(dup_set, cache=False)
    no_test = dup_set.rows[dup_set.rows["split"] != "test"]
    empty = audit.near_duplicates(no_test, fp)
    assert empty.empty and tuple(empty.columns) == audit.NEAR_DUPLICATE_COLUMNS
    with pytest.raises(DataError, match="no fingerprint for 1 image"):
        audit.near_duplicates(dup_set.rows, fp[fp["image_id"] != "u"])


def test_pairs_to_show_spreads_suspects_and_adds_pairs_above():
    table = pd.DataFrame({"test_id": [f"t{i}" for i in range(10)], "distance": [0, 0, 2, 2, 2, 4, 6, 8, 10, 12],
                          "label_conflict": False})
    below, above = audit.pairs_to_show(table, threshold=6, n_below=3, n_above=2)
    assert list(below["distance"]) == [0, 2, 6]  # closest, middle, borderline
    assert list(above["distance"]) == [8, 10]
    below, _ = audit.pairs_to_show(table, threshold=6, n_below=20)
    assert len(below) == 7


# --------------------------------------------------------------------------------------------- counts and geometry


def test_data_counts_per_split_class_and_patient():
    rows = pd.DataFrame({"image_id": list("abcdef"), "label": ["benign", "benign", "malignant", "benign",
                                                                "malignant", "malignant"],
                         "patient_id": ["p1", "p1", "p2", "p3", "", "p4"],
                         "split": ["train", "train", "train", "test", "test", "val"]})
    c = audit.data_counts(audit.AuditSet("x", rows, Path("."))).set_index(["split", "label"])
    assert (c.loc[("train", "benign"), "images"], c.loc[("train", "benign"), "patients"]) == (2, 1)
    assert (c.loc[("train", "all"), "images"], c.loc[("train", "all"), "patients"]) == (3, 2)
    assert c.loc[("test", "all"), "patients"] == 2  # the empty patient id counts as its own patient
    assert c.loc[("val", "benign"), "images"] == 0
    assert (c.loc[("all", "all"), "images"], c.loc[("all", "all"), "patients"]) == (6, 5)
    bad = rows.assign(label=["benign", "normal", "benign", "benign", "benign", "benign"])
    with pytest.raises(DataError, match=r"unknown label.*row 2 \(image_id 'b'\): 'normal'"):
        audit.data_counts(audit.AuditSet("x", bad, Path(".")))


def test_lesion_geometry_of_known_masks_and_boxes():
    mask = np.zeros((50, 100), dtype=bool)
    mask[10:20, 20:60] = True  # 40 x 10 px
    g = audit.lesion_geometry(mask, None, width=100, height=50)
    assert g["lesion_area_frac"] == pytest.approx(400 / 5000)
    assert (g["centre_x"], g["centre_y"]) == pytest.approx((0.4, 0.3))
    assert (g["box_width_frac"], g["box_height_frac"], g["box_aspect"]) == pytest.approx((0.4, 0.2, 4.0))
    # a box alone: area from the box; a given box wins over the mask's extent for the position
    g = audit.lesion_geometry(None, BBox(0, 0, 10, 25), width=100, height=50)
    assert g["lesion_area_frac"] == pytest.approx(0.05) and g["box_aspect"] == pytest.approx(0.4)
    assert np.isnan(audit.lesion_geometry(None, None, 100, 50)["lesion_area_frac"])
    g = audit.lesion_geometry(np.zeros((50, 100), dtype=bool), None, 100, 50)
    assert g["lesion_area_frac"] == 0 and np.isnan(g["centre_x"])


def test_image_geometry_uses_the_union_of_masks(tmp_path):
    _save(tmp_path / "i.png", _texture(0))
    _save(tmp_path / "m1.png", _mask(BBox(0, 0, 10, 10)))
    _save(tmp_path / "m2.png", _mask(BBox(20, 0, 30, 10)))
    _save(tmp_path / "small.png", np.zeros((8, 8), dtype=np.uint8))
    rows = pd.DataFrame([
        {"image_id": "two", "image_path": "i.png", "mask_path": "m1.png|m2.png", "bbox": "", "label": "benign",
         "split": "train"},
        {"image_id": "box", "image_path": "i.png", "mask_path": "", "bbox": "0 0 48 48", "label": "malignant",
         "split": "test"},
    ])
    geom = audit.image_geometry(audit.AuditSet("t", rows, tmp_path)).set_index("image_id")
    assert (geom.loc["two", "width"], geom.loc["two", "height"]) == (SIZE, SIZE)
    assert geom.loc["two", "lesion_source"] == "mask" and geom.loc["box", "lesion_source"] == "box"
    assert geom.loc["two", "lesion_area_frac"] == pytest.approx(200 / SIZE**2)
    assert geom.loc["two", "centre_x"] == pytest.approx(15 / SIZE)  # extent of the union: x 0..30
    assert geom.loc["box", "lesion_area_frac"] == pytest.approx(0.25)
    summary = audit.geometry_summary(geom.reset_index(), "t").set_index(["label", "quantity"])
    assert summary.loc[("all", "lesion_area_frac"), "n"] == 2
    assert summary.loc[("all", "lesion_area_frac"), "max"] == pytest.approx(0.25)
    assert summary.loc[("malignant", "width"), "median"] == SIZE
    wrong = rows.assign(mask_path=["small.png", ""])
    with pytest.raises(DataError, match=r"row 1 \(image_id 'two'\).*8x8 px"):
        audit.image_geometry(audit.AuditSet("t", wrong, tmp_path))


# --------------------------------------------------------------------------------------------- figures


def test_figures_are_built(dup_set):
    fp = audit.image_fingerprints(dup_set, cache=False)
    table = audit.near_duplicates(dup_set.rows, fp, threshold=6)
    figs = [
        audit.plot_pairs(dup_set, table, 6, n_below=4, n_above=2, pairs_per_row=2),
        audit.plot_examples([dup_set], per_class=2, seed=0),
        audit.plot_distance_histograms({"toy": table}, 6),
        audit.plot_geometry(audit.image_geometry(dup_set), "toy"),
    ]
    pairs = figs[0]
    titles = [" ".join(ax.get_title().split()) for ax in pairs.axes if ax.get_title()]  # wrapped to the cell
    assert len(titles) == 6 and titles[0] == "test: a_copy (benign)" and titles[1] == "train: a (benign)"
    examples = figs[1]
    shown = [ax for ax in examples.axes if ax.get_title()]
    assert len(shown) == 4  # 2 benign test images; 2 malignant from all splits (the test split has only 1)
    assert {ax.get_title() for ax in shown} >= {"a_copy", "u"}
    assert all(ax.collections for ax in shown)  # a mask contour on each
    for f in figs:
        plt.close(f)


def test_load_audit_set_of_the_smoke_profile():
    from lanet_core.study.profiles import load_profile

    ds = audit.load_audit_set(load_profile("smoke"), "busbra")
    assert ds.name == "busbra" and ds.source.startswith("phantom:") and len(ds.rows) == 64
    assert (ds.data_root / ds.rows["image_path"].iat[0]).is_file()
    assert ds.where(0) == "manifest.csv row 1 (image_id 'phantom_00000')"


@pytest.mark.integration
def test_known_busi_pairs():
    """Two pairs seen by eye on real BUSI: a re-saved frame (distance 0) and a cross-class copy (distance 4)."""
    try:
        root = find_data_root(required=["BUSI/Dataset_BUSI_with_GT/benign"])
    except DataRootNotFound as exc:
        pytest.skip(f"real data absent: {str(exc).splitlines()[0]}")
    rows = read_manifest(manifests_dir() / "busi.csv")
    ids = ["benign (177)", "benign (35)", "malignant (77)", "benign (333)", "benign (380)", "malignant (193)"]
    rows = rows[rows["image_id"].isin(ids)].reset_index(drop=True)
    ds = audit.AuditSet("busi", rows, root)
    table = audit.near_duplicates(rows, audit.image_fingerprints(ds, cache=False)).set_index("test_id")
    assert (table.loc["benign (177)", "match_id"], table.loc["benign (177)", "distance"]) == ("benign (35)", 0)
    assert table.loc["malignant (77)", "match_id"] == "benign (333)"
    assert table.loc["malignant (77)", "label_conflict"] and table.loc["malignant (77)", "distance"] == 4
    assert not table.loc["benign (380)", "suspected_leak"]


def test_near_duplicate_pairs_lists_every_twin_including_dropped_rows():
    import pandas as pd

    from lanet_core.audit import near_duplicate_pairs

    base = 0x0F0F_F0F0_1234_5678
    hexes = {"t1": base, "a": base, "b": base ^ 0b11, "c": base ^ (2**40 - 1), "d": base ^ 0b1}
    rows = pd.DataFrame({"image_id": list(hexes), "label": ["benign", "benign", "benign", "benign", "malignant"],
                         "split": ["test", "train", "val", "train", "dropped"]})
    fps = pd.DataFrame({"image_id": list(hexes), "phash": [f"{v:016x}" for v in hexes.values()]})
    pairs = near_duplicate_pairs(rows, fps, threshold=6)
    assert list(pairs["match_id"]) == ["a", "d", "b"]  # distance 0, 1, 2; c (40 bits) is not a twin
    assert list(pairs["distance"]) == [0, 1, 2]
    assert pairs.set_index("match_id").loc["d", "match_split"] == "dropped"
    assert pairs.set_index("match_id").loc["d", "label_conflict"]
