"""Cross-validation folds that keep near-duplicates together (BUSI) or follow the dataset's own folds (BUS-BRA).

BUSI holds near-duplicate images (the same lesion re-captured, re-cropped or annotated), some with the other
class. A fold whose test image has a twin in its training folds scores memory, not generalisation. So:

1. :func:`near_duplicate_clusters`: every pair of images within ``threshold`` bits of 64-bit pHash distance
   (the audit's and validator's threshold) is joined, transitively (union-find), into one cluster;
2. :func:`grouped_stratified_folds`: ``k`` folds stratified by class with every cluster inside one fold
   (sklearn ``StratifiedGroupKFold``, seeded), and for each fold a validation part carved from its training
   folds with the same rule.

Everything is ordered naturally by ``image_id`` first, so the folds depend only on ids, labels, hashes and
the seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from lanet_core.data.splits import natural_key, sort_natural
from lanet_core.errors import DataError


def near_duplicate_clusters(phash: np.ndarray, threshold: int) -> np.ndarray:
    """Cluster label per image: pairs with Hamming distance ``<= threshold`` joined transitively.

    ``phash``: ``(N, 64)`` bool. Labels are ``0..C-1`` in order of each cluster's first image.
    """
    n = len(phash)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    packed = np.asarray(phash, dtype=bool)
    for i in range(n):
        dist = (packed[i + 1:] != packed[i]).sum(axis=1)
        for j in np.flatnonzero(dist <= threshold) + i + 1:
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = [find(i) for i in range(n)]
    relabel: dict[int, int] = {}
    return np.array([relabel.setdefault(r, len(relabel)) for r in roots])


def grouped_stratified_folds(
    df: pd.DataFrame, groups: Sequence, k: int, seed: int, *, val_folds: int = 7, label: str = "label"
) -> pd.DataFrame:
    """``k`` fold manifests' split columns: a DataFrame with ``image_id`` and ``fold1..foldk`` in
    {train, val, test}.

    Test of fold ``f`` = the f-th part of a class-stratified, group-respecting ``k``-way partition; its
    validation = one part of a ``val_folds``-way partition of the remaining images (same rule; about
    1/val_folds of them, 14 % for 7). ``groups`` aligns with ``df`` (e.g. near-duplicate clusters or patients).
    """
    if len(groups) != len(df):
        raise DataError(f"{len(groups)} group labels for {len(df)} rows")
    order = sorted(range(len(df)), key=lambda i: natural_key(str(df["image_id"].iat[i])))
    ids = df["image_id"].to_numpy()[order]
    y = df[label].to_numpy()[order]
    g = np.asarray(groups)[order]
    outer = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = pd.DataFrame({"image_id": ids})
    for f, (train_idx, test_idx) in enumerate(outer.split(ids, y, g), start=1):
        split = np.full(len(ids), "train", dtype=object)
        split[test_idx] = "test"
        inner = StratifiedGroupKFold(n_splits=val_folds, shuffle=True, random_state=seed + f)
        _, val_rel = next(iter(inner.split(ids[train_idx], y[train_idx], g[train_idx])))
        split[train_idx[val_rel]] = "val"
        out[f"fold{f}"] = split
    return out


def check_folds(folds: pd.DataFrame, groups: Sequence) -> list[str]:
    """Problems of a fold table: an image tested twice or never, or a group split across test and train/val."""
    problems = []
    cols = [c for c in folds.columns if c.startswith("fold")]
    tested = (folds[cols] == "test").sum(axis=1)
    for i in np.flatnonzero(tested.to_numpy() != 1):
        problems.append(f"{folds['image_id'].iat[i]}: tested in {int(tested.iat[i])} folds")
    g = pd.Series(np.asarray(groups), index=folds.index)
    for c in cols:
        for name, part in folds.groupby(g)[c]:
            if part.nunique() > 1 and (part == "test").any():
                problems.append(f"{c}: near-duplicate group {name} split across {sorted(set(part))}")
    return problems


def fold_manifests(rows: pd.DataFrame, folds: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """One manifest per fold: ``rows`` (one schema) with ``split`` from the fold table."""
    out = {}
    for c in [c for c in folds.columns if c.startswith("fold")]:
        split = dict(zip(folds["image_id"], folds[c]))
        m = rows[rows["image_id"].isin(split)].copy()
        m["split"] = m["image_id"].map(split)
        out[int(c[4:])] = sort_natural(m)
    return out


def busbra_dataset_folds(cv: pd.DataFrame, patients: pd.Series, seed: int, val_fraction: float = 0.15) -> pd.DataFrame:
    """BUS-BRA's own patient-level folds (``5-fold-cv.csv``: ``kFold`` = the fold an image is tested in).

    The file's ``valid_k`` columns split a patient's views between training and validation; to keep the
    validation patient-level as well, each fold's validation is carved here from its training patients
    (class-stratified by patient, seeded). ``patients`` maps ``ID`` -> patient. Returns ``image_id`` +
    ``fold1..foldK``.
    """
    from lanet_core.data.splits import patient_labels, stratified_holdout

    df = cv.rename(columns={"ID": "image_id", "Pathology": "label"}).copy()
    df["patient_id"] = df["image_id"].map(patients).astype(str)
    if df["patient_id"].isna().any():
        raise DataError("5-fold-cv.csv lists images absent from bus_data.csv")
    straddle = df.groupby("patient_id")["kFold"].nunique()
    if (straddle > 1).any():
        raise DataError(f"5-fold-cv.csv: patients in several test folds: {list(straddle[straddle > 1].index[:5])}")
    df = sort_natural(df)
    out = pd.DataFrame({"image_id": df["image_id"]})
    for f in sorted(df["kFold"].unique()):
        rest = df[df["kFold"] != f]
        per_patient = patient_labels(rest)
        val = stratified_holdout(list(per_patient.index), list(per_patient.values), val_fraction, seed + int(f))
        out[f"fold{int(f)}"] = np.where(df["kFold"] == f, "test", np.where(df["patient_id"].isin(val), "val", "train"))
    return out
