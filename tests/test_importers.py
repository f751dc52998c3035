"""BUSI and BUS-BRA importers on tiny synthetic trees in the owners' layouts."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_validate import H, W, noise_image, rect_mask

from lanet_core.data.importers import parse_busbra_bbox, prepare_busbra, prepare_busi
from lanet_core.data.manifest import read_manifest
from lanet_core.data.validate import validate_manifest
from lanet_core.errors import DataError

BUSI_TEST = {"benign (1)", "benign (10)", "malignant (2)", "malignant (3)"}


def _box(k: int) -> tuple[int, int, int, int]:
    """A lesion rectangle (x1, y1, x2, y2 exclusive) that varies with k."""
    x, y = 2 + k % 7 * 3, 3 + k % 5 * 2
    return x, y, x + 10 + k % 4, y + 8 + k % 3


@pytest.fixture
def busi(tmp_path: Path) -> Path:
    """BUSI layout: 12 benign + 8 malignant (RGB and gray), one extra _mask_1, a normal/ folder, the reference split."""
    src = tmp_path / "BUSI" / "Dataset_BUSI_with_GT"
    ref = []
    for label, n in (("benign", 12), ("malignant", 8)):
        for i in range(1, n + 1):
            stem = f"{label} ({i})"
            noise_image(src / label / f"{stem}.png", seed=i + (1000 if label == "malignant" else 0), mode="RGB" if i % 3 == 0 else "L")
            rect_mask(src / label / f"{stem}_mask.png", _box(i))
            ref.append({"image_id": stem, "label": label, "split": "test" if stem in BUSI_TEST else "train"})
    rect_mask(src / "benign" / "benign (3)_mask_1.png", (36, 25, 46, 38), mode="L")
    rect_mask(src / "benign" / "benign (3)_mask_2.png", (30, 30, 33, 32), mode="RGB")
    noise_image(src / "normal" / "normal (1).png", seed=1)
    rect_mask(src / "normal" / "normal (1)_mask.png", None)
    pd.DataFrame(ref).to_csv(src.parent / "reference_split.csv", index=False)
    return src


def _read(path: Path) -> pd.DataFrame:
    return read_manifest(path)


def test_prepare_busi_writes_the_manifest(busi, tmp_path, caplog):
    out = tmp_path / "manifests"
    with caplog.at_level(logging.INFO):
        written = prepare_busi(busi, out)
    names = [p.name for p in written]
    assert names[:2] == ["busi_reference_split.csv", "busi.csv"]
    assert names[2:11] == [f"busi_loc{r}_seed{s}.csv" for s in (0, 1, 2) for r in (25, 50, 75)]
    assert names[11:] == [f"busi_cv5_fold{f}.csv" for f in range(1, 6)] + ["busi_cv5_excluded.csv",
                                                                         "busi_label_conflicts.csv"]
    assert "skipping normal/" in caplog.text
    assert (out / "busi_reference_split.csv").read_bytes() == (busi.parent / "reference_split.csv").read_bytes()

    df = _read(out / "busi.csv")
    assert list(df["image_id"][:4]) == ["benign (1)", "benign (2)", "benign (3)", "benign (4)"]  # natural order
    assert list(df["image_id"]).index("benign (10)") == 9
    assert len(df) == 20 and not df["image_id"].str.startswith("normal").any()
    row = df.set_index("image_id").loc["benign (3)"]
    assert row["image_path"] == "BUSI/Dataset_BUSI_with_GT/benign/benign (3).png"
    assert row["mask_path"] == ("BUSI/Dataset_BUSI_with_GT/benign/benign (3)_mask.png|"
                                "BUSI/Dataset_BUSI_with_GT/benign/benign (3)_mask_1.png|"
                                "BUSI/Dataset_BUSI_with_GT/benign/benign (3)_mask_2.png")
    x1, y1, _, _ = _box(3)
    assert row["bbox"] == f"{x1} {y1} 46 38"  # extent of the union of the three masks
    assert (row["n_masks"], row["width"], row["height"]) == ("3", str(W), str(H))
    assert (df["patient_id"] == df["image_id"]).all()
    assert set(df["location_label"]) == {"mask"} and set(df["dataset"]) == {"busi"}
    assert set(df.loc[df["split"] == "test", "image_id"]) == BUSI_TEST
    val = df[df["split"] == "val"]
    assert len(val) == 3 and set(val["label"]) == {"benign", "malignant"}  # 15 % of 16, stratified
    assert list(validate_manifest(out / "busi.csv", data_root=tmp_path)) == []


def test_busi_label_ratio_manifests_are_nested_and_stratified(busi, tmp_path):
    out = tmp_path / "m"
    prepare_busi(busi, out)
    full = _read(out / "busi.csv")
    train = full["split"] == "train"
    n_train = full[train]["label"].value_counts()
    chosen = {}
    for seed in (0, 1, 2):
        for r in (25, 50, 75):
            part = _read(out / f"busi_loc{r}_seed{seed}.csv")
            assert part.drop(columns="location_label").equals(full.drop(columns="location_label"))
            assert (part.loc[~train, "location_label"] == "mask").all()
            kept = part[train & (part["location_label"] == "mask")]
            assert (part.loc[train, "location_label"].isin(["mask", "none"])).all()
            for label in ("benign", "malignant"):
                assert (kept["label"] == label).sum() == round(r / 100 * n_train[label])
            chosen[seed, r] = set(kept["image_id"])
        assert chosen[seed, 25] <= chosen[seed, 50] <= chosen[seed, 75]
    assert len({frozenset(chosen[s, 50]) for s in (0, 1, 2)}) > 1  # seeds differ


def test_prepare_busi_is_byte_reproducible_and_reuses_its_split_copy(busi, tmp_path):
    out = tmp_path / "m"
    first = {p.name: p.read_bytes() for p in prepare_busi(busi, out)}
    (busi.parent / "reference_split.csv").unlink()  # from now on only the copy in out_dir is there
    again = prepare_busi(busi, out)
    assert "busi_reference_split.csv" not in [p.name for p in again]
    assert {p.name: p.read_bytes() for p in again} == {k: v for k, v in first.items() if k != "busi_reference_split.csv"}


def test_prepare_busi_errors_on_split_disagreement(busi, tmp_path):
    noise_image(busi / "benign" / "benign (13).png", seed=77)
    rect_mask(busi / "benign" / "benign (13)_mask.png", _box(1))
    (busi / "malignant" / "malignant (8).png").unlink()
    (busi / "malignant" / "malignant (8)_mask.png").unlink()
    with pytest.raises(DataError) as err:
        prepare_busi(busi, tmp_path / "m")
    assert "'benign (13)' (benign) is in" in str(err.value) and "not in the reference split" in str(err.value)
    assert "'malignant (8)' (malignant) is in the reference split but not in" in str(err.value)


def test_prepare_busi_errors_without_a_reference_split(busi, tmp_path):
    (busi.parent / "reference_split.csv").unlink()
    with pytest.raises(DataError, match="reference split is in neither .*busi_reference_split.csv nor .*reference_split.csv"):
        prepare_busi(busi, tmp_path / "m")


def test_prepare_busi_errors_on_image_without_mask(busi, tmp_path):
    (busi / "benign" / "benign (4)_mask.png").unlink()
    with pytest.raises(DataError, match=r"benign \(4\).png: no mask file benign \(4\)_mask.png"):
        prepare_busi(busi, tmp_path / "m")


def test_prepare_busi_drops_a_train_copy_of_a_test_image(busi, tmp_path, caplog):
    shutil.copyfile(busi / "benign" / "benign (1).png", busi / "benign" / "benign (5).png")
    with caplog.at_level(logging.WARNING):
        prepare_busi(busi, tmp_path / "m")
    assert "dropping train image 'benign (5)': byte-identical to test image 'benign (1)'" in caplog.text
    df = _read(tmp_path / "m" / "busi.csv")
    assert "benign (5)" not in set(df["image_id"]) and len(df) == 19
    assert validate_manifest(tmp_path / "m" / "busi.csv", data_root=tmp_path).errors == []


# ------------------------------------------------------------------------------------------------ BUS-BRA


def _matlab_bbox(box: tuple[int, int, int, int]) -> str:
    """BUS-BRA's "[x,y,w,h]": 1-based first column/row, x + w = 1-based last column."""
    x1, y1, x2, y2 = box
    return f"[{x1 + 1},{y1 + 1},{x2 - x1 - 1},{y2 - y1 - 1}]"


@pytest.fixture
def busbra(tmp_path: Path) -> Path:
    """BUS-BRA layout: 24 patients (16 benign, 8 malignant), one or two views each; one row with a wrong Height."""
    src = tmp_path / "BUS-BRA"
    rows = []
    for case in range(1, 25):
        label = "benign" if case <= 16 else "malignant"
        for side in ("s",) if case % 3 == 0 else ("l", "r"):
            image_id = f"bus_{case:04d}-{side}"
            k = case * 2 + (side == "r")
            noise_image(src / "Images" / f"{image_id}.png", seed=500 + k)
            rect_mask(src / "Masks" / f"mask_{case:04d}-{side}.png", _box(k))
            rows.append({"ID": image_id, "Case": str(case), "Histology": "fibroadenoma" if label == "benign" else "idc",
                         "Pathology": label, "BIRADS": "3" if label == "benign" else "5", "Device": "GE Logiq 7",
                         "Width": str(W), "Height": str(H + 7 if image_id == "bus_0005-r" else H),
                         "Side": {"s": "single", "l": "left", "r": "right"}[side], "BBOX": _matlab_bbox(_box(k))})
    pd.DataFrame(rows).to_csv(src / "bus_data.csv", index=False)
    return src


def test_parse_busbra_bbox_convention():
    assert str(parse_busbra_bbox("[91,24,103,79]")) == "90 23 194 103"
    assert str(parse_busbra_bbox(" [ 1, 1,0,0 ] ")) == "0 0 1 1"
    with pytest.raises(ValueError, match=r"\[x,y,w,h\]"):
        parse_busbra_bbox("91,24,103,79")


def test_prepare_busbra_writes_the_manifest(busbra, tmp_path, caplog):
    out = tmp_path / "m"
    with caplog.at_level(logging.WARNING):
        written = prepare_busbra(busbra, out)
    assert [p.name for p in written] == ["busbra.csv"] + [
        f"busbra_box20_seed{s}{x}.csv" for s in (0, 1, 2) for x in ("", "_boxed")]
    assert f"bus_0005-r: bus_data.csv says {W}x{H + 7} px but the PNG is {W}x{H} px" in caplog.text
    df = _read(out / "busbra.csv")
    assert len(df) == 40 and list(df["image_id"][:3]) == ["bus_0001-l", "bus_0001-r", "bus_0002-l"]
    row = df.set_index("image_id").loc["bus_0005-r"]
    assert row["image_path"] == "BUS-BRA/Images/bus_0005-r.png"
    assert row["mask_path"] == "BUS-BRA/Masks/mask_0005-r.png"
    assert row["bbox"] == " ".join(map(str, _box(11)))  # the mask's extent
    assert (row["patient_id"], row["height"], row["width"], row["side"]) == ("busbra_5", str(H), str(W), "right")
    assert {"birads", "device", "histology"} <= set(df.columns)
    assert set(df["location_label"]) == {"mask"}
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()
    patients = df.drop_duplicates("patient_id").groupby(["split", "label"]).size()
    assert patients["test"].to_dict() == {"benign": 3, "malignant": 1}  # 15 % of 24 patients, stratified
    assert patients["val"].sum() == 3  # 15 % of the other 20
    assert list(validate_manifest(out / "busbra.csv", data_root=tmp_path)) == []


def test_busbra_box_manifests(busbra, tmp_path):
    out = tmp_path / "m"
    prepare_busbra(busbra, out)
    full = _read(out / "busbra.csv")
    train = full["split"] == "train"
    n_train = full[train]["label"].value_counts()
    for seed in (0, 1, 2):
        part = _read(out / f"busbra_box20_seed{seed}.csv")
        assert part.drop(columns="location_label").equals(full.drop(columns="location_label"))
        assert (part.loc[~train, "location_label"] == "box").all()
        boxed = part[train & (part["location_label"] == "box")]
        assert set(part.loc[train, "location_label"]) == {"box", "none"}
        for label in ("benign", "malignant"):
            assert (boxed["label"] == label).sum() == round(0.2 * n_train[label])
        only = _read(out / f"busbra_box20_seed{seed}_boxed.csv")
        assert set(only["image_id"]) == set(boxed["image_id"]) | set(full.loc[~train, "image_id"])
        assert set(only["location_label"]) == {"box"} and (only["mask_path"] != "").all()
        assert validate_manifest(out / f"busbra_box20_seed{seed}.csv", data_root=tmp_path).errors == []


def test_prepare_busbra_is_byte_reproducible(busbra, tmp_path):
    a = {p.name: p.read_bytes() for p in prepare_busbra(busbra, tmp_path / "a")}
    b = {p.name: p.read_bytes() for p in prepare_busbra(busbra, tmp_path / "b")}
    assert a == b
    c = {p.name: p.read_bytes() for p in prepare_busbra(busbra, tmp_path / "c", seed=1)}
    assert c["busbra.csv"] != a["busbra.csv"]


def test_prepare_busbra_reports_every_bad_row(busbra, tmp_path):
    table = pd.read_csv(busbra / "bus_data.csv", dtype=str, keep_default_na=False)
    table.loc[2, "BBOX"] = "91,24,103,79"
    table.loc[4, "Pathology"] = "unknown"
    table.to_csv(busbra / "bus_data.csv", index=False)
    (busbra / "Masks" / "mask_0007-l.png").unlink()
    with pytest.raises(DataError) as err:
        prepare_busbra(busbra, tmp_path / "m")
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "bus_data.csv line 4 (bus_0002-l): BBOX must look like '[x,y,w,h]'" in msg
    assert "line 6 (bus_0003-s): unknown Pathology 'unknown'" in msg
    assert "mask_0007-l.png not found" in msg


def test_prepare_busbra_missing_layout(tmp_path):
    with pytest.raises(DataError, match="bus_data.csv not found"):
        prepare_busbra(tmp_path / "nothing", tmp_path / "m")


def _with_official_folds(src: Path) -> Path:
    """A hand-made ``5-fold-cv.csv`` (the dataset's layout: ID, Pathology, kFold, valid_k): patient ``c`` tested
    in fold ``1 + c % 5``."""
    data = pd.read_csv(src / "bus_data.csv", dtype=str)
    cv = pd.DataFrame({"ID": data["ID"], "Pathology": data["Pathology"],
                       "kFold": [1 + int(c) % 5 for c in data["Case"]]})
    for k in range(1, 6):
        cv[f"valid_{k}"] = np.where(cv["kFold"] == k, "NaN", "1")
    cv.to_csv(src / "5-fold-cv.csv", index=False)
    return src


def test_busbra_official_fold_manifests(busbra, tmp_path):
    """Issue 28: every fold's test = the file's fold, every patient in one split per fold, validation by patient,
    boxes on nested seeded subsets of the training images, and F manifests without an unboxed training image."""
    from lanet_core.data.importers import prepare_busbra_folds

    src = _with_official_folds(busbra)
    official = pd.read_csv(src / "5-fold-cv.csv", dtype=str)
    written = prepare_busbra(src, tmp_path / "m")
    names = {p.name for p in written}
    assert {f"busbra_cv5_fold{f}_box{r}{x}.csv" for f in range(1, 6) for r in (20, 5) for x in ("", "_boxed")} <= names
    tested = []
    for f in range(1, 6):
        a = _read(tmp_path / "m" / f"busbra_cv5_fold{f}_box20.csv")
        assert set(a.loc[a["split"] == "test", "image_id"]) == set(official.loc[official["kFold"] == str(f), "ID"])
        assert (a.groupby("patient_id")["split"].nunique() == 1).all()  # train/val/test by patient
        assert set(a["split"]) == {"train", "val", "test"}
        tested += list(a.loc[a["split"] == "test", "image_id"])
        assert validate_manifest(tmp_path / "m" / f"busbra_cv5_fold{f}_box20.csv", data_root=tmp_path).errors == []
    assert sorted(tested) == sorted(official["ID"])  # every image tested exactly once
    # nested and seeded boxed subsets (larger fractions so that the 40-image fixture has several per class)
    out = prepare_busbra_folds(src, tmp_path / "n", box_fractions=(0.6, 0.3))
    again = prepare_busbra_folds(src, tmp_path / "o", box_fractions=(0.6, 0.3))
    assert [p.read_bytes() for p in out] == [p.read_bytes() for p in again]
    for f in range(1, 6):
        big = _read(tmp_path / "n" / f"busbra_cv5_fold{f}_box60.csv")
        small = _read(tmp_path / "n" / f"busbra_cv5_fold{f}_box30.csv")
        train = big["split"] == "train"
        b = set(big.loc[train & (big["location_label"] == "box"), "image_id"])
        s = set(small.loc[train & (small["location_label"] == "box"), "image_id"])
        assert s < b, f"fold {f}: the scarce subset is not inside the larger one"
        f_arm = _read(tmp_path / "n" / f"busbra_cv5_fold{f}_box30_boxed.csv")
        f_train = f_arm[f_arm["split"] == "train"]
        assert set(f_train["image_id"]) == s and set(f_train["location_label"]) == {"box"}


def test_busbra_official_folds_refuse_a_file_that_disagrees(busbra, tmp_path):
    from lanet_core.data.importers import prepare_busbra_folds

    src = _with_official_folds(busbra)
    cv = pd.read_csv(src / "5-fold-cv.csv", dtype=str)
    cv.loc[0, "Pathology"] = "malignant" if cv.loc[0, "Pathology"] == "benign" else "benign"
    cv.to_csv(src / "5-fold-cv.csv", index=False)
    with pytest.raises(Exception, match="pathology differs"):
        prepare_busbra_folds(src, tmp_path / "m")
