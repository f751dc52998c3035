"""The committed manifests against the real datasets (skipped when the data is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lanet_core.data.importers import BUSI_REFERENCE_NAME, prepare_busbra, prepare_busi
from lanet_core.data.manifest import read_manifest
from lanet_core.data.validate import validate_manifest
from lanet_core.paths import DataRootNotFound, find_data_root, manifests_dir

pytestmark = pytest.mark.integration

BUSI_SRC = "BUSI/Dataset_BUSI_with_GT"
BUSBRA_SRC = "BUS-BRA"


def _root_with(required: str) -> Path:
    try:
        return find_data_root(required=[required])
    except DataRootNotFound as exc:
        pytest.skip(f"real data absent: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def busi_root() -> Path:
    return _root_with(f"{BUSI_SRC}/benign")


@pytest.fixture(scope="module")
def busbra_root() -> Path:
    return _root_with(f"{BUSBRA_SRC}/bus_data.csv")


def _assert_same_bytes(written: list[Path]) -> None:
    assert written
    for path in written:
        committed = manifests_dir() / path.name
        assert committed.is_file(), f"{committed} is not committed"
        assert path.read_bytes() == committed.read_bytes(), f"{path.name} differs from the committed manifest"


def test_prepare_busi_regenerates_the_committed_manifests(busi_root, tmp_path):
    shutil.copyfile(manifests_dir() / BUSI_REFERENCE_NAME, tmp_path / BUSI_REFERENCE_NAME)
    written = prepare_busi(busi_root / BUSI_SRC, tmp_path)
    assert len(written) == 17  # busi, reference, 9 label-ratio manifests, 5 CV folds, CV exclusions, label conflicts
    _assert_same_bytes(written)


def test_prepare_busbra_regenerates_the_committed_manifests(busbra_root, tmp_path):
    written = prepare_busbra(busbra_root / BUSBRA_SRC, tmp_path)
    assert len(written) == 7 + 20  # busbra, 3 x 2 box20 seeds; issue 28: 5 folds x (20 %, 5 %) x (all, boxed)
    _assert_same_bytes(written)


def test_busi_manifest_is_valid_with_the_reference_test_split(busi_root):
    problems = validate_manifest(manifests_dir() / "busi.csv", data_root=busi_root)
    assert problems.errors == [], "\n".join(map(str, problems.errors))
    df = read_manifest(manifests_dir() / "busi.csv")
    counts = df.groupby(["split", "label"]).size().to_dict()
    assert counts[("test", "benign")] == 41 and counts[("test", "malignant")] == 41
    assert counts[("train", "benign")] + counts[("val", "benign")] == 395  # 396 minus the copy of a test image
    assert counts[("train", "malignant")] + counts[("val", "malignant")] == 169
    assert "benign (433)" not in set(df["image_id"])


def test_busi_label_subsets_nest(busi_root):
    full = read_manifest(manifests_dir() / "busi.csv")
    train = full["split"] == "train"
    for seed in (0, 1, 2):
        kept = {}
        for r in (25, 50, 75):
            part = read_manifest(manifests_dir() / f"busi_loc{r}_seed{seed}.csv")
            assert (part.loc[~train, "location_label"] == "mask").all()
            kept[r] = set(part.loc[train & (part["location_label"] == "mask"), "image_id"])
            assert len(kept[r]) == sum(round(r / 100 * n) for n in full[train]["label"].value_counts())
        assert kept[25] < kept[50] < kept[75]


def test_busbra_manifest_is_valid_and_split_by_patient(busbra_root):
    problems = validate_manifest(manifests_dir() / "busbra.csv", data_root=busbra_root)
    assert problems.errors == [], "\n".join(map(str, problems.errors))
    df = read_manifest(manifests_dir() / "busbra.csv")
    assert len(df) == 1875 and df["patient_id"].nunique() == 1064
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()
