"""Importers: turn BUSI and BUS-BRA, in their owners' layouts, into manifests (see ``manifest.py``).

Every path written is relative to the data root and independent of where the source folder lives
(``BUSI/Dataset_BUSI_with_GT/benign/benign (1).png``, ``BUS-BRA/Images/bus_0001-l.png``). Rows are in
natural id order and written with :func:`write_manifest`, so re-running an importer on the same files
reproduces every manifest byte for byte. Splits come from the seeded functions of ``splits.py``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lanet_core.data.images import image_size, mask_to_box, read_mask_union
from lanet_core.data.manifest import LABELS, MASK_SEPARATOR, BBox, write_manifest
from lanet_core.io import atomic_write_bytes, file_sha256
from lanet_core.data.splits import (
    carve_validation,
    drop_train_copies_of_test,
    nested_label_subsets,
    patient_level_split,
    restrict_location_labels,
    sort_natural,
)
from lanet_core.errors import DataError
from lanet_core.paths import HOW_TO_GET_DATA

log = logging.getLogger(__name__)

BUSI_PREFIX = "BUSI/Dataset_BUSI_with_GT"
BUSI_REFERENCE_NAME = "busi_reference_split.csv"
BUSBRA_PREFIX = "BUS-BRA"
BUSBRA_COLUMNS = ("ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Width", "Height", "Side", "BBOX")

_BUSI_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<k>\d+))?\.png$")
_BUSBRA_BBOX = re.compile(r"^\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")
_MAX_LISTED = 20


def _raise_all(problems: list[str], what: str) -> None:
    """Raise one DataError listing every problem (the first 20, then a count)."""
    if not problems:
        return
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise DataError(f"{what}: {len(problems)} problem(s):\n  {shown}{more}")


def _ratio_tag(ratio: float) -> str:
    return f"{round(ratio * 100):d}"


# --------------------------------------------------------------------------------------------------- BUSI


def _scan_busi_class(folder: Path, label: str) -> tuple[list[dict], list[str]]:
    """Images of one BUSI class folder with their masks (primary ``_mask`` first, then ``_mask_1``, ...)."""
    images: dict[str, Path] = {}
    masks: dict[str, list[tuple[int, Path]]] = {}
    ignored = []
    for path in sorted(folder.iterdir()):
        m = _BUSI_MASK.match(path.name)
        if m:
            masks.setdefault(m["stem"], []).append((int(m["k"]) if m["k"] else 0, path))
        elif path.suffix.lower() == ".png" and path.is_file():
            images[path.stem] = path
        else:
            ignored.append(path.name)
    if ignored:
        log.warning("BUSI %s/: ignoring %d non-image file(s): %s", label, len(ignored), ", ".join(ignored))
    problems = [f"{folder / s}_mask*.png: mask(s) without an image {s}.png" for s in sorted(set(masks) - set(images))]
    rows = []
    for stem, image in images.items():
        found = sorted(masks.get(stem, []))
        if not found or found[0][0] != 0:
            problems.append(f"{image}: no mask file {stem}_mask.png")
            continue
        rows.append({"image_id": stem, "label": label, "image": image, "masks": [p for _, p in found]})
    return rows, problems


def _busi_row(item: dict) -> dict:
    """A manifest row for one BUSI image; the bbox is the extent of the union of its masks."""
    image, masks, label = item["image"], item["masks"], item["label"]
    width, height = image_size(image)
    box = mask_to_box(read_mask_union(masks, size=(width, height)))
    if box is None:
        raise DataError(f"masks of {image} are all zero: a {label} image needs a lesion")
    rel = f"{BUSI_PREFIX}/{label}"
    return {
        "image_id": item["image_id"],
        "dataset": "busi",
        "image_path": f"{rel}/{image.name}",
        "mask_path": MASK_SEPARATOR.join(f"{rel}/{m.name}" for m in masks),
        "bbox": str(box),
        "location_label": "mask",
        "label": label,
        "patient_id": item["image_id"],
        "width": str(width),
        "height": str(height),
        "n_masks": str(len(masks)),
    }


def _busi_reference_split(src: Path, out_dir: Path) -> tuple[pd.DataFrame, Path | None]:
    """The LA-Net authors' BUSI membership; copies it into ``out_dir`` on first use (returns the copy's path)."""
    kept, beside = out_dir / BUSI_REFERENCE_NAME, src.parent / "reference_split.csv"
    path = kept if kept.is_file() else beside if beside.is_file() else None
    if path is None:
        raise DataError(f"the BUSI reference split is in neither {kept} nor {beside}")
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"image_id", "label", "split"} - set(ref.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected image_id,label,split")
    bad = [f"{path} line {i + 2}: unknown split {s!r}" for i, s in enumerate(ref["split"]) if s not in ("train", "test")]
    dup = ref["image_id"][ref["image_id"].duplicated()]
    bad += [f"{path}: image_id {i!r} listed more than once" for i in dup]
    _raise_all(bad, f"BUSI reference split {path}")
    copied = None
    if path == beside:
        atomic_write_bytes(kept, beside.read_bytes())
        copied = kept
        log.info("copied the BUSI reference split %s to %s", beside, kept)
    return ref, copied


def _check_membership(found: pd.DataFrame, ref: pd.DataFrame, src: Path) -> None:
    """The reference split and the files found must list the same (image_id, label) pairs."""
    have = set(zip(found["image_id"], found["label"]))
    want = set(zip(ref["image_id"], ref["label"]))
    problems = [f"{i!r} ({lab}) is in the reference split but not in {src}" for i, lab in sorted(want - have)]
    problems += [f"{i!r} ({lab}) is in {src} but not in the reference split" for i, lab in sorted(have - want)]
    _raise_all(problems, "the BUSI reference split disagrees with the files found")


def prepare_busi(
    src: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    label_ratios: Sequence[float] = (0.25, 0.5, 0.75),
    ratio_seeds: Sequence[int] = (0, 1, 2),
    cv_folds: int = 5,
) -> list[Path]:
    """Write ``busi.csv``, the label-ratio manifests ``busi_loc{25,50,75}_seed{k}.csv`` and the cross-validation
    folds ``busi_cv5_fold{1..5}.csv`` (near-duplicate clusters kept in one fold) from BUSI.

    ``src`` is the owners' ``Dataset_BUSI_with_GT`` folder (``benign/``, ``malignant/``; ``normal/`` is skipped).
    Test = the LA-Net authors' 41 + 41 reference test images; a seeded, class-stratified ``val_fraction`` of
    the reference train images becomes val. A train image byte-identical to a test image is dropped (logged).
    In each label-ratio manifest only a nested, class-stratified ``ratio`` of the train images keep
    ``location_label = mask`` (the rest get ``none``). Returns the paths written.
    """
    src, out_dir = Path(src), Path(out_dir)
    if not src.is_dir():
        raise DataError(f"BUSI folder {src} not found\n{HOW_TO_GET_DATA}")
    for sub in sorted(p for p in src.iterdir() if p.is_dir() and p.name not in LABELS):
        log.info("BUSI: skipping %s/ (the study uses benign vs malignant only)", sub.name)
    items, problems = [], []
    for label in LABELS:
        if not (src / label).is_dir():
            problems.append(f"{src / label} not found")
            continue
        found, bad = _scan_busi_class(src / label, label)
        items += found
        problems += bad
    _raise_all(problems, f"BUSI folder {src}")
    df = pd.DataFrame([_busi_row(item) for item in items])
    sha = pd.Series([file_sha256(item["image"]) for item in items], index=df.index)

    written_cv = _busi_cv_folds(df, items, sha, out_dir, k=cv_folds, seed=seed) if cv_folds else []
    written_cv.append(_busi_label_conflicts(df, items, out_dir))

    ref, copied = _busi_reference_split(src, out_dir)
    _check_membership(df, ref, src)
    df["split"] = df["image_id"].map(dict(zip(ref["image_id"], ref["split"])))
    df, dropped = drop_train_copies_of_test(df, sha)
    for train_id, test_id in dropped:
        log.warning("BUSI: dropping train image %r: byte-identical to test image %r", train_id, test_id)
    df = sort_natural(carve_validation(df, val_fraction, seed))

    written = [copied] if copied else []
    written.append(write_manifest(df, out_dir / "busi.csv"))
    train = df[df["split"] == "train"]
    for k in ratio_seeds:
        subsets = nested_label_subsets(train, label_ratios, seed=k)
        for ratio in label_ratios:
            part = restrict_location_labels(df, subsets[ratio], kept_as="mask")
            written.append(write_manifest(part, out_dir / f"busi_loc{_ratio_tag(ratio)}_seed{k}.csv"))
    return written + written_cv


def _busi_cv_folds(df: pd.DataFrame, items: list[dict], sha: pd.Series, out_dir: Path, *, k: int, seed: int) -> list[Path]:
    """``busi_cv{k}_fold{f}.csv`` over every benign and malignant image, near-duplicate clusters kept in one
    fold (:mod:`lanet_core.data.folds`), plus ``busi_cv{k}_excluded.csv`` (the rows left out, with reasons).

    Excluded: every image byte-identical to an image with the *other* label (BUSI's ``benign (433)`` /
    ``malignant (145)``): one picture with two contradicting labels can be scored on neither.
    """
    from lanet_core.data.folds import check_folds, fold_manifests, grouped_stratified_folds, near_duplicate_clusters
    from lanet_core.data.validate import NEAR_DUPLICATE_MAX_DISTANCE, image_fingerprint

    df = df.copy()
    conflict = df.groupby(sha)["label"].transform("nunique") > 1
    excluded = []
    for i in df.index[conflict]:
        twins = df.loc[(sha == sha[i]) & (df.index != i), "image_id"].tolist()
        excluded.append({"image_id": df.at[i, "image_id"], "label": df.at[i, "label"],
                         "reason": f"byte-identical to {', '.join(twins)} with the other label"})
    keep = df[~conflict]
    phash = np.stack([image_fingerprint(items[i]["image"]).phash for i in keep.index])
    clusters = near_duplicate_clusters(phash, NEAR_DUPLICATE_MAX_DISTANCE)
    folds = grouped_stratified_folds(keep, clusters, k, seed)
    order = {iid: c for iid, c in zip(keep["image_id"], clusters)}
    problems = check_folds(folds, folds["image_id"].map(order))
    _raise_all(problems, "BUSI cross-validation folds")
    written = []
    for f, m in fold_manifests(keep, folds).items():
        written.append(write_manifest(m, out_dir / f"busi_cv{k}_fold{f}.csv"))
    ex = pd.DataFrame(excluded, columns=["image_id", "label", "reason"])
    atomic_write_bytes(out_dir / f"busi_cv{k}_excluded.csv", sort_natural(ex).to_csv(index=False, lineterminator="\n").encode())
    written.append(out_dir / f"busi_cv{k}_excluded.csv")
    log.info("BUSI %d-fold CV: %d images in %d near-duplicate clusters (%d with >1 image), %d excluded",
             k, len(keep), clusters.max() + 1, int((np.bincount(clusters) > 1).sum()), len(ex))
    return written


def _busi_label_conflicts(df: pd.DataFrame, items: list[dict], out_dir: Path) -> Path:
    """``busi_label_conflicts.csv``: every same-scan pair (pHash within the near-duplicate threshold, byte-identical
    included) with opposite labels, over all benign and malignant images (:mod:`lanet_core.data.conflicts`)."""
    from lanet_core.data.conflicts import LABEL_CONFLICTS_FILE, find_label_conflicts
    from lanet_core.data.validate import NEAR_DUPLICATE_MAX_DISTANCE, image_fingerprint

    phash = np.stack([image_fingerprint(items[i]["image"]).phash for i in df.index])
    pairs = find_label_conflicts(list(df["image_id"]), list(df["label"]), phash, NEAR_DUPLICATE_MAX_DISTANCE)
    pairs = sort_natural(pairs)
    path = out_dir / LABEL_CONFLICTS_FILE
    atomic_write_bytes(path, pairs.to_csv(index=False, lineterminator="\n").encode())
    return path


# ------------------------------------------------------------------------------------------------ BUS-BRA


def parse_busbra_bbox(text: str) -> BBox:
    """BUS-BRA's ``"[x,y,w,h]"`` -> ``x1 y1 x2 y2`` in 0-based pixels, exclusive max.

    Checked against the masks: ``x``/``y`` are the 1-based first lesion column/row and ``x + w``/``y + h`` the
    1-based last ones (MATLAB style), so the 0-based box is ``(x - 1, y - 1, x + w, y + h)``.
    Raises ValueError for any other text.
    """
    m = _BUSBRA_BBOX.match(text.strip())
    if not m:
        raise ValueError(f"BBOX must look like '[x,y,w,h]', got {text!r}")
    x, y, w, h = (int(v) for v in m.groups())
    return BBox(x - 1, y - 1, x + w, y + h)


def _busbra_row(rec: dict, src: Path, line: int, problems: list[str]) -> dict | None:
    """A manifest row for one line of ``bus_data.csv``; problems are appended to ``problems``."""
    where = f"{src / 'bus_data.csv'} line {line} ({rec['ID']})"
    label = rec["Pathology"].strip().lower()
    if label not in LABELS:
        problems.append(f"{where}: unknown Pathology {rec['Pathology']!r}")
    try:
        box = parse_busbra_bbox(rec["BBOX"])
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        box = None
    image = src / "Images" / f"{rec['ID']}.png"
    mask = src / "Masks" / f"{rec['ID'].replace('bus_', 'mask_', 1)}.png"
    for path in (image, mask):
        if not path.is_file():
            problems.append(f"{where}: {path} not found")
    if not rec["Case"].strip():
        problems.append(f"{where}: empty Case (patient)")
    if box is None or not image.is_file() or label not in LABELS:
        return None
    width, height = image_size(image)
    if (str(width), str(height)) != (rec["Width"].strip(), rec["Height"].strip()):
        log.warning("BUS-BRA %s: bus_data.csv says %sx%s px but the PNG is %dx%d px; using the PNG",
                    rec["ID"], rec["Width"], rec["Height"], width, height)
    return {
        "image_id": rec["ID"],
        "dataset": "busbra",
        "image_path": f"{BUSBRA_PREFIX}/Images/{image.name}",
        "mask_path": f"{BUSBRA_PREFIX}/Masks/{mask.name}",
        "bbox": str(box),
        "location_label": "mask",
        "label": label,
        "patient_id": f"busbra_{rec['Case'].strip()}",
        "birads": rec["BIRADS"],
        "device": rec["Device"],
        "side": rec["Side"],
        "histology": rec["Histology"],
        "width": str(width),
        "height": str(height),
    }


def _read_busbra(src: Path) -> pd.DataFrame:
    csv = src / "bus_data.csv"
    for path in (csv, src / "Images", src / "Masks"):
        if not path.exists():
            raise DataError(f"BUS-BRA: {path} not found (expected bus_data.csv, Images/, Masks/)\n{HOW_TO_GET_DATA}")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = [c for c in BUSBRA_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{csv}: missing column(s) {missing}")
    dup = table["ID"][table["ID"].duplicated()]
    problems = [f"{csv}: ID {i!r} listed more than once" for i in dup]
    rows = [_busbra_row(rec, src, i + 2, problems) for i, rec in enumerate(table.to_dict("records"))]
    _raise_all(problems, f"BUS-BRA {csv}")
    return pd.DataFrame(rows)


def prepare_busbra(
    src: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    box_fraction: float = 0.20,
    box_seeds: Sequence[int] = (0, 1, 2),
) -> list[Path]:
    """Write ``busbra.csv`` and the partly box-labelled ``busbra_box{20}_seed{k}[_boxed].csv`` from BUS-BRA.

    ``src`` holds ``bus_data.csv``, ``Images/`` and ``Masks/``. Patient-level split stratified by pathology:
    ``test_fraction`` of the patients to test, then ``val_fraction`` of the rest to val (seeded).
    ``busbra_box20_seed{k}.csv``: a seeded, class-stratified ``box_fraction`` of the train images get
    ``location_label = box``, the other train images ``none``; val and test rows ``box``.
    ``..._boxed.csv``: only those boxed train images plus all val and test rows. Returns the paths written.
    """
    src, out_dir = Path(src), Path(out_dir)
    df = _read_busbra(src)
    df["split"] = patient_level_split(df, test_fraction, val_fraction, seed)
    df = sort_natural(df)
    written = [write_manifest(df, out_dir / "busbra.csv")]
    if (src / "5-fold-cv.csv").is_file():  # the dataset's own patient-level folds (issue 28)
        written += prepare_busbra_folds(src, out_dir, seed=seed, val_fraction=val_fraction)
    tag = _ratio_tag(box_fraction)
    evaluation = df["split"] != "train"
    for k in box_seeds:
        boxed_ids = nested_label_subsets(df[~evaluation], [box_fraction], seed=k)[box_fraction]
        part = restrict_location_labels(df, boxed_ids, kept_as="box")
        part.loc[evaluation, "location_label"] = "box"
        written.append(write_manifest(part, out_dir / f"busbra_box{tag}_seed{k}.csv"))
        boxed = part[evaluation | (part["location_label"] == "box")]
        written.append(write_manifest(boxed, out_dir / f"busbra_box{tag}_seed{k}_boxed.csv"))
    return written


# Boxed fractions of each BUS-BRA fold's training images (issue 28): 20 % as the fixed split, and 5 % as the scarce
# setting nearer MBUD's 1.7 % (384 boxed of 22,202 frames). 1.7 % of a fold's ~1,270 training images would leave
# ~22 boxed images (~7 malignant, 3 batches of 8 per epoch) for the F arm, too few to train a classifier at all;
# 5 % keeps ~64 (~21 malignant, 8 batches), still 4x scarcer than the 20 % setting. Nested: the 5 % subset of a
# fold lies inside its 20 % subset (one seeded permutation per class, lanet_core.data.splits.nested_label_subsets).
BUSBRA_CV_BOX_FRACTIONS = (0.20, 0.05)


def prepare_busbra_folds(src: Path, out_dir: Path, *, seed: int = 0, val_fraction: float = 0.15,
                         box_fractions: Sequence[float] = BUSBRA_CV_BOX_FRACTIONS) -> list[Path]:
    """BUS-BRA's official 5 patient-level folds (``5-fold-cv.csv``, Gomez-Flores et al., Med Phys 2024) as manifests.

    For fold ``f``: test = the images the file tests in fold ``f``; validation = ``val_fraction`` of the other
    folds' patients (class-stratified by patient, seed ``seed + f``; :func:`lanet_core.data.folds.busbra_dataset_folds`);
    the rest trains. Per boxed fraction ``r`` (tag ``round(100 r)``):

    * ``busbra_cv5_fold{f}_box{r}.csv``: every image; a seeded, class-stratified, nested ``r`` of the training
      images keep ``location_label = box``, the other training images ``none`` (class label only); val and test ``box``;
    * ``busbra_cv5_fold{f}_box{r}_boxed.csv``: only those boxed training images plus val and test (the F arm).
    """
    from lanet_core.data.folds import busbra_dataset_folds

    src, out_dir = Path(src), Path(out_dir)
    df = _read_busbra(src)
    cv = pd.read_csv(src / "5-fold-cv.csv", dtype=str, keep_default_na=False)
    missing = [c for c in ("ID", "Pathology", "kFold") if c not in cv.columns]
    if missing:
        raise DataError(f"{src / '5-fold-cv.csv'}: missing column(s) {missing}")
    cv["kFold"] = cv["kFold"].astype(int)
    unknown = sorted(set(cv["ID"]) ^ set(df["image_id"]))
    if unknown:
        raise DataError(f"{src / '5-fold-cv.csv'} and bus_data.csv list different images: {unknown[:5]}")
    labels = dict(zip(df["image_id"], df["label"]))
    wrong = [i for i, lab in zip(cv["ID"], cv["Pathology"]) if labels[i] != lab.strip().lower()]
    if wrong:
        raise DataError(f"{src / '5-fold-cv.csv'}: pathology differs from bus_data.csv for {wrong[:5]}")
    folds = busbra_dataset_folds(cv[["ID", "Pathology", "kFold"]], df.set_index("image_id")["patient_id"], seed,
                                 val_fraction)
    written = []
    for c in [c for c in folds.columns if c.startswith("fold")]:
        part = df.copy()
        part["split"] = part["image_id"].map(dict(zip(folds["image_id"], folds[c])))
        part = sort_natural(part)
        evaluation = part["split"] != "train"
        subsets = nested_label_subsets(part[~evaluation], list(box_fractions), seed=seed)
        for r in box_fractions:
            tagged = restrict_location_labels(part, subsets[r], kept_as="box")
            tagged.loc[evaluation, "location_label"] = "box"
            stem = f"busbra_cv5_{c}_box{_ratio_tag(r)}"
            written.append(write_manifest(tagged, out_dir / f"{stem}.csv"))
            boxed = tagged[evaluation | (tagged["location_label"] == "box")]
            written.append(write_manifest(boxed, out_dir / f"{stem}_boxed.csv"))
    return written
