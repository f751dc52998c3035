"""Cross-validation folds: near-duplicate clusters stay in one fold, classes are stratified, BUS-BRA's own folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lanet_core.data.folds import (
    busbra_dataset_folds, check_folds, fold_manifests, grouped_stratified_folds, near_duplicate_clusters,
)


def _hashes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (n, 64)).astype(bool)


def test_clusters_join_pairs_transitively() -> None:
    h = _hashes(6)
    h[1] = h[0]
    h[1, :4] = ~h[1, :4]  # 4 bits from 0
    h[2] = h[1]
    h[2, 10:15] = ~h[2, 10:15]  # 5 bits from 1, 9 from 0: joined to 0 only through 1
    c = near_duplicate_clusters(h, threshold=6)
    assert c[0] == c[1] == c[2]
    assert len(set(c)) == 4  # {0,1,2} and three singletons (random hashes are ~32 bits apart)
    assert list(c) == sorted(c) or c[0] == 0  # labels in order of first appearance


def _frame(n_benign: int = 60, n_malignant: int = 30) -> pd.DataFrame:
    ids = [f"benign ({i})" for i in range(1, n_benign + 1)] + [f"malignant ({i})" for i in range(1, n_malignant + 1)]
    return pd.DataFrame({"image_id": ids, "label": ["benign"] * n_benign + ["malignant"] * n_malignant})


def test_folds_keep_a_hand_made_cluster_together_and_stratify() -> None:
    df = _frame()
    h = _hashes(len(df), seed=1)
    cluster_ids = [3, 17, 42, 75]  # three benign and one malignant near-duplicate (a cross-class twin)
    for i in cluster_ids[1:]:
        h[i] = h[cluster_ids[0]]
        h[i, i % 60: i % 60 + 3] = ~h[i, i % 60: i % 60 + 3]
    groups = near_duplicate_clusters(h, threshold=6)
    assert len({groups[i] for i in cluster_ids}) == 1
    folds = grouped_stratified_folds(df, groups, k=5, seed=0)
    group_of = dict(zip(df["image_id"], groups))
    assert check_folds(folds, folds["image_id"].map(group_of)) == []
    by_id = folds.set_index("image_id")
    for f in range(1, 6):
        col = by_id[f"fold{f}"]
        assert len({col[df["image_id"][i]] for i in cluster_ids}) == 1  # never split, not even into train/val
        test = df.set_index("image_id").loc[col[col == "test"].index, "label"]
        assert 0.25 <= (test == "malignant").mean() <= 0.42  # stratified near the 1/3 prevalence
        assert (col == "val").sum() > 0
    tested = (by_id == "test").sum(axis=1)
    assert (tested == 1).all()  # every image tested exactly once


def test_check_folds_reports_a_split_cluster() -> None:
    folds = pd.DataFrame({"image_id": ["a", "b", "c"], "fold1": ["test", "train", "train"], "fold2": ["train", "test", "test"]})
    problems = check_folds(folds, ["g1", "g1", "g2"])
    assert any("g1" in p for p in problems)


def test_folds_are_deterministic_and_order_free() -> None:
    df = _frame()
    groups = np.arange(len(df))
    a = grouped_stratified_folds(df, groups, 5, seed=3)
    perm = np.random.default_rng(0).permutation(len(df))
    b = grouped_stratified_folds(df.iloc[perm].reset_index(drop=True), groups[perm], 5, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_fold_manifests_keep_the_schema() -> None:
    df = _frame(10, 5).assign(split="train", dataset="busi")
    folds = grouped_stratified_folds(df, np.arange(len(df)), 5, seed=0, val_folds=3)
    ms = fold_manifests(df, folds)
    assert set(ms) == {1, 2, 3, 4, 5}
    assert all(list(m.columns) == list(df.columns) for m in ms.values())
    assert sum((m["split"] == "test").sum() for m in ms.values()) == len(df)


def test_busbra_folds_follow_the_file_and_keep_patients_together() -> None:
    cv = pd.DataFrame({
        "ID": [f"bus_{i:04d}-{s}" for i in range(1, 21) for s in "lr"],
        "Pathology": ["malignant" if i % 3 == 0 else "benign" for i in range(1, 21) for _ in "lr"],
        "kFold": [1 + (i % 5) for i in range(1, 21) for _ in "lr"],
    })
    patients = pd.Series({r: r[4:8] for r in cv["ID"]})
    folds = busbra_dataset_folds(cv, patients, seed=0, val_fraction=0.25)
    for f in range(1, 6):
        test = set(folds.loc[folds[f"fold{f}"] == "test", "image_id"])
        assert test == set(cv.loc[cv["kFold"] == f, "ID"])  # the dataset's own test fold
        split_of_patient = folds.assign(p=folds["image_id"].map(patients)).groupby("p")[f"fold{f}"].nunique()
        assert (split_of_patient == 1).all()  # validation is patient-level too
    bad = cv.copy()
    bad.loc[1, "kFold"] = 5 if bad.loc[0, "kFold"] != 5 else 4
    with pytest.raises(Exception, match="several test folds"):
        busbra_dataset_folds(bad, patients, seed=0)
