"""Seeded split logic: natural order, stratified val, nested label subsets, patient-level split."""

from __future__ import annotations

import pandas as pd
import pytest

from lanet_core.data.splits import (
    carve_validation,
    drop_train_copies_of_test,
    natural_sorted,
    nested_label_subsets,
    patient_level_split,
    restrict_location_labels,
    sort_natural,
    stratified_holdout,
)
from lanet_core.errors import DataError


def _images(n_benign: int, n_malignant: int, split: str = "train") -> pd.DataFrame:
    rows = [{"image_id": f"{lab} ({i})", "label": lab, "split": split, "location_label": "mask"}
            for lab, n in (("benign", n_benign), ("malignant", n_malignant)) for i in range(1, n + 1)]
    return pd.DataFrame(rows)


def test_natural_order_sorts_numbers_by_value():
    ids = ["benign (10)", "malignant (2)", "benign (2)", "benign (1)", "malignant (10)", "bus_0010-l", "bus_0002-r"]
    assert natural_sorted(ids) == [
        "benign (1)", "benign (2)", "benign (10)", "bus_0002-r", "bus_0010-l", "malignant (2)", "malignant (10)"
    ]
    df = pd.DataFrame({"image_id": ["b (10)", "b (9)", "a (100)"]})
    assert list(sort_natural(df)["image_id"]) == ["a (100)", "b (9)", "b (10)"]


def test_stratified_holdout_is_seeded_stratified_and_order_free():
    df = _images(40, 20)
    held = stratified_holdout(list(df["image_id"]), list(df["label"]), 0.25, seed=3)
    assert sum(i.startswith("benign") for i in held) == 10
    assert sum(i.startswith("malignant") for i in held) == 5
    shuffled = df.sample(frac=1.0, random_state=1)
    assert stratified_holdout(list(shuffled["image_id"]), list(shuffled["label"]), 0.25, seed=3) == held
    assert stratified_holdout(list(df["image_id"]), list(df["label"]), 0.25, seed=4) != held


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_stratified_holdout_rejects_bad_fraction(fraction):
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        stratified_holdout(["a", "b"], ["x", "y"], fraction, seed=0)


def test_stratified_holdout_too_small_class_is_a_clear_error():
    with pytest.raises(DataError, match="cannot make a stratified"):
        stratified_holdout(["a", "b", "c"], ["x", "x", "y"], 0.5, seed=0)


def test_carve_validation_moves_only_train_rows():
    df = pd.concat([_images(40, 20), _images(5, 5, split="test").assign(image_id=lambda d: "t" + d["image_id"])])
    out = carve_validation(df, 0.15, seed=0)
    assert (out["split"] == "test").sum() == 10
    val = out[out["split"] == "val"]
    assert list(val["label"].value_counts().sort_index()) == [6, 3]  # 15 % of 40 and of 20
    assert set(val["image_id"]) <= set(df.loc[df["split"] == "train", "image_id"])
    assert list(out["image_id"]) == list(df["image_id"])  # rows and order kept
    assert carve_validation(df, 0.15, seed=0).equals(out)


def test_nested_label_subsets_nest_and_round_per_class():
    df = _images(37, 11)
    subsets = nested_label_subsets(df, [0.25, 0.5, 0.75], seed=1)
    for r in (0.25, 0.5, 0.75):
        chosen = df[df["image_id"].isin(subsets[r])]
        assert list(chosen["label"].value_counts().sort_index()) == [round(r * 37), round(r * 11)]
    assert subsets[0.25] <= subsets[0.5] <= subsets[0.75]
    shuffled = df.sample(frac=1.0, random_state=7)
    assert nested_label_subsets(shuffled, [0.25, 0.5, 0.75], seed=1) == subsets
    assert nested_label_subsets(df, [0.25], seed=2)[0.25] != subsets[0.25]


def test_nested_label_subsets_reject_bad_ratio():
    with pytest.raises(DataError, match="label ratio"):
        nested_label_subsets(_images(4, 4), [1.5], seed=0)


def _patients(n_benign: int, n_malignant: int) -> pd.DataFrame:
    rows = []
    for k in range(n_benign + n_malignant):
        label = "benign" if k < n_benign else "malignant"
        for side in ("l", "r") if k % 3 else ("s",):
            rows.append({"image_id": f"bus_{k:04d}-{side}", "patient_id": f"p{k}", "label": label})
    return pd.DataFrame(rows)


def test_patient_level_split_keeps_patients_together_and_stratifies():
    df = _patients(70, 30)
    split = patient_level_split(df, test_fraction=0.2, val_fraction=0.25, seed=0)
    assert split.index.equals(df.index)
    per_patient = df.assign(split=split).groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all()
    patients = df.assign(split=split).drop_duplicates("patient_id")
    counts = patients.groupby(["split", "label"]).size()
    assert counts["test", "benign"] == 14 and counts["test", "malignant"] == 6  # 20 % of 70 / 30 patients
    assert counts["val", "benign"] == 14 and counts["val", "malignant"] == 6  # 25 % of the remaining 56 / 24
    assert patient_level_split(df, 0.2, 0.25, seed=0).equals(split)
    assert not patient_level_split(df, 0.2, 0.25, seed=1).equals(split)


def test_patient_with_any_malignant_image_counts_as_malignant():
    from lanet_core.data.splits import patient_labels

    df = pd.DataFrame({"patient_id": ["a", "a", "b"], "label": ["benign", "malignant", "benign"]})
    assert patient_labels(df).to_dict() == {"a": "malignant", "b": "benign"}


def test_restrict_location_labels_touches_train_rows_only():
    df = pd.concat([_images(3, 1), _images(1, 1, split="test").assign(image_id=["t1", "t2"])], ignore_index=True)
    out = restrict_location_labels(df, {"benign (2)"}, kept_as="box")
    assert list(out["location_label"]) == ["none", "box", "none", "none", "mask", "mask"]
    assert list(df["location_label"]) == ["mask"] * 6  # input not modified


def test_drop_train_copies_of_test():
    df = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "split": ["train", "train", "val", "test"]})
    key = pd.Series(["h1", "h2", "h2", "h2"])
    kept, dropped = drop_train_copies_of_test(df, key)
    assert list(kept["image_id"]) == ["a", "c", "d"]  # val copies are the validator's business
    assert dropped == [("b", "d")]
