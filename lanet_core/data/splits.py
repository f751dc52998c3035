"""Seeded, reproducible split logic shared by the importers.

Small pure functions over DataFrames: natural ordering of ids, a class-stratified validation split carved
from ``train``, nested per-class label subsets (25 % inside 50 % inside 75 %), and a patient-level split.
Every function sorts its input in natural id order first, so the result depends only on the ids, the
labels and the seed - never on the order of the rows handed in.
"""

from __future__ import annotations

import re
from typing import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from lanet_core.errors import DataError

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``benign (2)`` before ``benign (10)``.

    ``re.split`` with a capturing group alternates text and digits, so keys compare position by position
    (text with text, int with int); the raw text breaks remaining ties (``"01"`` vs ``"1"``).
    """
    parts = tuple(int(p) if i % 2 else p for i, p in enumerate(_DIGITS.split(text)))
    return (parts, text)


def natural_sorted(values: Iterable[str]) -> list[str]:
    """``values`` in natural order (see :func:`natural_key`)."""
    return sorted(values, key=natural_key)


def sort_natural(df: pd.DataFrame, column: str = "image_id") -> pd.DataFrame:
    """Rows of ``df`` ordered naturally by ``column``, index reset."""
    order = sorted(range(len(df)), key=lambda i: natural_key(str(df[column].iat[i])))
    return df.iloc[order].reset_index(drop=True)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise DataError(f"{name} must be strictly between 0 and 1, got {value!r}")


def stratified_holdout(
    ids: Sequence[str], labels: Sequence[Hashable], fraction: float, seed: int
) -> set[str]:
    """A seeded, label-stratified subset of about ``fraction`` of ``ids`` (sklearn ``train_test_split``).

    ``ids`` are put in natural order first, so the subset does not depend on the input order.
    Raises DataError when a class is too small to be stratified.
    """
    _check_fraction("fraction", fraction)
    if len(ids) != len(labels):
        raise DataError(f"{len(ids)} ids but {len(labels)} labels")
    by_id = dict(zip(ids, labels))
    if len(by_id) != len(ids):
        raise DataError("ids to split must be unique")
    ordered = natural_sorted(by_id)
    try:
        _, held = train_test_split(
            ordered, test_size=fraction, stratify=[by_id[i] for i in ordered], random_state=seed
        )
    except ValueError as exc:  # a class with a single member, or a subset too small for every class
        raise DataError(f"cannot make a stratified {fraction:.0%} split of {len(ordered)} items: {exc}") from exc
    return set(held)


def carve_validation(df: pd.DataFrame, fraction: float, seed: int, stratify: str = "label") -> pd.DataFrame:
    """Copy of ``df`` in which a seeded, ``stratify``-stratified ``fraction`` of the ``train`` rows become ``val``.

    Image-level (one row per image); other splits are untouched.
    """
    train = df[df["split"] == "train"]
    held = stratified_holdout(list(train["image_id"]), list(train[stratify]), fraction, seed)
    out = df.copy()
    out.loc[out["image_id"].isin(held) & (out["split"] == "train"), "split"] = "val"
    return out


def nested_label_subsets(
    df: pd.DataFrame, ratios: Sequence[float], seed: int, stratify: str = "label"
) -> dict[float, set[str]]:
    """Nested, class-stratified subsets of the image ids of ``df``, one per ratio.

    Per class (classes in sorted order), one permutation of the naturally sorted ids is drawn from
    ``np.random.default_rng(seed)``; the subset for ratio ``r`` is the first ``round(r * n)`` of it. Hence for a
    fixed seed the 25 % subset lies inside the 50 % one, which lies inside the 75 % one.
    Returns ``{ratio: set of image_id}``.
    """
    for r in ratios:
        if not 0.0 <= r <= 1.0:
            raise DataError(f"label ratio must be within [0, 1], got {r!r}")
    rng = np.random.default_rng(seed)
    out: dict[float, set[str]] = {r: set() for r in ratios}
    for cls in sorted(df[stratify].unique()):
        ids = np.array(natural_sorted(df.loc[df[stratify] == cls, "image_id"]), dtype=object)
        perm = ids[rng.permutation(len(ids))]
        for r in ratios:
            out[r].update(perm[: int(round(r * len(ids)))])
    return out


def patient_labels(df: pd.DataFrame, patient: str = "patient_id", label: str = "label") -> pd.Series:
    """One label per patient: ``malignant`` if any of the patient's images is, else the single label.

    Index = patient id, in natural order.
    """
    labels = df.groupby(patient)[label].agg(lambda s: "malignant" if (s == "malignant").any() else s.iloc[0])
    return labels.loc[natural_sorted(labels.index)]


def patient_level_split(
    df: pd.DataFrame,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    patient: str = "patient_id",
    label: str = "label",
) -> pd.Series:
    """The split (``train``/``val``/``test``) of every row, drawn by patient and stratified by patient label.

    About ``test_fraction`` of the patients go to test, then ``val_fraction`` of the remaining ones to val;
    all images of a patient share one split. Returns a Series aligned with ``df.index``.
    """
    per_patient = patient_labels(df, patient, label)
    test = stratified_holdout(list(per_patient.index), list(per_patient.values), test_fraction, seed)
    rest = per_patient.drop(index=list(test))
    val = stratified_holdout(list(rest.index), list(rest.values), val_fraction, seed)
    split_of = {p: "test" if p in test else "val" if p in val else "train" for p in per_patient.index}
    return df[patient].map(split_of).rename("split")


def drop_train_copies_of_test(df: pd.DataFrame, content_key: pd.Series) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Remove ``train`` rows whose ``content_key`` (e.g. the file's SHA-256) equals that of a ``test`` row.

    ``content_key`` is aligned with ``df.index``. Returns the kept rows and the dropped ``(train id, test id)``
    pairs, so the caller can log them (a copy of a test image in train is leakage).
    """
    test_ids = {k: i for k, i in zip(content_key[df["split"] == "test"], df.loc[df["split"] == "test", "image_id"])}
    dropped_rows = (df["split"] == "train") & content_key.isin(list(test_ids))
    pairs = [(i, test_ids[k]) for i, k in zip(df.loc[dropped_rows, "image_id"], content_key[dropped_rows])]
    return df[~dropped_rows], pairs


def restrict_location_labels(df: pd.DataFrame, keep: set[str], kept_as: str, others: str = "none") -> pd.DataFrame:
    """Copy of ``df`` whose ``train`` rows get ``location_label = kept_as`` if their id is in ``keep``, else ``others``.

    Val and test rows are untouched; mask_path/bbox text stays in every row (only location_label says what
    training may use).
    """
    out = df.copy()
    train = out["split"] == "train"
    out.loc[train, "location_label"] = np.where(out.loc[train, "image_id"].isin(keep), kept_as, others)
    return out
