"""Check a manifest row by row and report every problem at once.

``validate_manifest`` returns a :class:`Problems` list (never stops at the first problem, never raises on bad
input). Errors make a manifest unusable; warnings flag soft issues worth a look (a bbox that is not the extent
of the mask, near-duplicate images across train/test, ...). ``lanet validate MANIFEST`` prints them all.

Images and masks are decoded by :mod:`lanet_core.data.images`, the project's one implementation, so the
validator sees exactly what training will see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from lanet_core.data.images import mask_to_box, read_image, read_mask
from lanet_core.data.manifest import (
    LABELS,
    LOCATION_LABELS,
    REQUIRED_COLUMNS,
    SPLITS,
    BBox,
    mask_paths,
    parse_bbox,
)
from lanet_core.errors import DataError
from lanet_core.io import file_sha256
from lanet_core.paths import ALLOW_OUTSIDE_ENV, DataRootNotFound, find_data_root, outside_root_problem

Severity = Literal["error", "warning"]

#: Perceptual-hash (64-bit pHash) Hamming distance up to which two images count as near-duplicates.
#: On BUSI every pair at distance <= 6 that was inspected is the same frame (re-saved or re-annotated).
NEAR_DUPLICATE_MAX_DISTANCE = 6


@dataclass(frozen=True)
class Problem:
    """One finding about a manifest. ``row`` is the 1-based data row (CSV line ``row + 1``)."""

    severity: Severity
    message: str
    row: int | None = None
    image_id: str | None = None
    file: str | None = None
    manifest: str | None = None

    def __str__(self) -> str:
        where = self.manifest or "manifest"
        if self.row is not None:
            ident = f", image_id {self.image_id!r}" if self.image_id is not None else ""
            where += f" row {self.row} (line {self.row + 1}{ident})"
        elif self.image_id is not None:
            where += f" (image_id {self.image_id!r})"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


class Problems(list[Problem]):
    """A ``list[Problem]`` with ``n_rows``, the number of manifest rows checked."""

    def __init__(self, items: Sequence[Problem] = (), n_rows: int = 0) -> None:
        super().__init__(items)
        self.n_rows = n_rows

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self if p.severity == "warning"]


# --------------------------------------------------------------------------------------------- file helpers




# --------------------------------------------------------------------------------------------- the validator


class _Report:
    """Collects problems for one manifest, filling in the manifest name."""

    def __init__(self, manifest: str) -> None:
        self.manifest = manifest
        self.items: list[Problem] = []

    def add(self, severity: Severity, message: str, row: int | None = None, image_id: str | None = None,
            file: str | None = None) -> None:
        self.items.append(Problem(severity, message, row, image_id, file, self.manifest))

    def error(self, message: str, **where) -> None:
        self.add("error", message, **where)

    def warning(self, message: str, **where) -> None:
        self.add("warning", message, **where)


def _read_table(manifest: str | Path | pd.DataFrame, report: _Report) -> pd.DataFrame | None:
    if isinstance(manifest, pd.DataFrame):
        return manifest.astype(str).reset_index(drop=True)
    path = Path(manifest)
    if not path.is_file():
        report.error(f"manifest file {path} not found", file=str(path))
        return None
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except Exception as exc:  # pandas raises many types for malformed CSV
        report.error(f"cannot be parsed as CSV ({type(exc).__name__}: {exc})", file=str(path))
        return None


def _rows_text(rows: Sequence[int]) -> str:
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r) for r in rows)


def _check_columns(df: pd.DataFrame, report: _Report) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        report.error(f"missing required column(s) {missing}; the schema is {list(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        report.error("the manifest has no rows (only a header): nothing to train or evaluate")


def _check_row_values(df: pd.DataFrame, report: _Report) -> None:
    """Per-row checks that need only the table."""
    cols = set(df.columns)
    for i, rec in enumerate(df.to_dict("records")):
        where = {"row": i + 1, "image_id": rec.get("image_id")}
        if "image_id" in cols and not rec["image_id"].strip():
            report.error("empty image_id", **where)
        if "image_path" in cols and not rec["image_path"].strip():
            report.error("empty image_path", **where)
        for col, allowed in (("label", LABELS), ("location_label", LOCATION_LABELS), ("split", SPLITS)):
            if col in cols and rec[col] not in allowed:
                report.error(f"unknown {col} {rec[col]!r} (allowed: {', '.join(allowed)})", **where)
        if "patient_id" in cols and not rec["patient_id"].strip():
            report.warning("empty patient_id: patient-level leakage cannot be checked for this row", **where)
        if "location_label" in cols and "mask_path" in cols and rec["location_label"] == "mask" and not mask_paths(rec):
            report.error("location_label is 'mask' but mask_path is empty", **where)
        if "bbox" in cols:
            try:
                box = parse_bbox(rec["bbox"])
            except ValueError as exc:
                report.error(f"unparsable bbox: {exc}", **where)
                box = None
            if box is not None and box.is_empty():
                report.error(f"bbox {box} is empty (width {box.width}, height {box.height})", **where)
            if box is None and rec.get("location_label") == "box" and not rec["bbox"].strip():
                report.error("location_label is 'box' but bbox is empty", **where)


def _groups(df: pd.DataFrame, column: str) -> dict[str, list[int]]:
    """Non-empty values of ``column`` -> the 0-based row positions holding them."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(df[column]):
        if v.strip():
            out[v].append(i)
    return out


def _leak_severity(splits: set[str]) -> Severity | None:
    """Error if test shares with train or val, warning if only train and val share, else None."""
    if "test" in splits and len(splits) > 1:
        return "error"
    if {"train", "val"} <= splits:
        return "warning"
    return None


def _split_membership(df: pd.DataFrame, rows: Sequence[int]) -> str:
    by_split: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        by_split[df["split"].iat[i]].append(i + 1)
    return " and ".join(f"{s} ({_rows_text(r)})" for s, r in sorted(by_split.items()))


def _check_groups(df: pd.DataFrame, report: _Report) -> None:
    """Duplicated ids, patients in several splits, one image_path in several splits."""
    cols = set(df.columns)
    if "image_id" in cols:
        for image_id, rows in _groups(df, "image_id").items():
            if len(rows) > 1:
                report.error(f"duplicate image_id in {_rows_text([r + 1 for r in rows])}", row=rows[0] + 1,
                             image_id=image_id)
    if "split" not in cols:
        return
    if "patient_id" in cols:
        for patient, rows in _groups(df, "patient_id").items():
            if len({df["split"].iat[i] for i in rows}) > 1:
                report.error(f"patient_id {patient!r} is in several splits: {_split_membership(df, rows)}")
    if "image_path" in cols:
        for path, rows in _groups(df, "image_path").items():
            if len(rows) < 2:
                continue
            severity = _leak_severity({df["split"].iat[i] for i in rows}) or "warning"
            report.add(severity, f"image {path} is listed more than once: {_split_membership(df, rows)}", file=path)


@dataclass
class _ImageInfo:
    sha256: str
    size: tuple[int, int]  # (width, height)
    phash: np.ndarray  # (64,) bool


def image_fingerprint(path: Path) -> _ImageInfo:
    """Decode an image (DataError naming the file if it cannot be read) and fingerprint it."""
    pixels = read_image(path)  # (H, W, 3) uint8
    phash = imagehash.phash(Image.fromarray(pixels)).hash.flatten()
    return _ImageInfo(file_sha256(path), (pixels.shape[1], pixels.shape[0]), phash)


def _check_files_of_row(rec: dict, root: Path, where: dict, report: _Report) -> _ImageInfo | None:
    """Image and masks of one row: readable, same size, mask not empty where it is the location label."""
    info = None
    rel = rec["image_path"]
    outside = [(p, outside_root_problem(root, p)) for p in [rel, *(mask_paths(rec) if "mask_path" in rec else [])]
               if p.strip()]
    outside = [(p, why) for p, why in outside if why]
    if outside:  # never opened: a manifest from elsewhere may point anywhere
        for p, why in outside:
            report.error(f"{why}; not read (set {ALLOW_OUTSIDE_ENV}=1 or pass --allow-outside-data-root to allow it)",
                         file=p, **where)
        return None
    if rel.strip():
        if not (root / rel).is_file():
            report.error(f"image {rel} not found under {root}", file=rel, **where)
        else:
            try:
                info = image_fingerprint(root / rel)
            except DataError as exc:
                report.error(str(exc), file=rel, **where)
    masks = []
    for mrel in mask_paths(rec) if "mask_path" in rec else []:
        if not (root / mrel).is_file():
            report.error(f"mask {mrel} not found under {root}", file=mrel, **where)
            continue
        try:
            mask = read_mask(root / mrel)
        except DataError as exc:
            report.error(str(exc), file=mrel, **where)
            continue
        if info is not None and mask.shape[::-1] != info.size:
            report.error(f"mask {mrel} is {mask.shape[1]}x{mask.shape[0]} px but the image is "
                         f"{info.size[0]}x{info.size[1]} px", file=mrel, **where)
            continue
        masks.append(mask)
    box = _parsed_bbox(rec)
    if info is not None and box is not None and not box.is_empty() and not box.inside(*info.size):
        report.error(f"bbox {box} lies outside the {info.size[0]}x{info.size[1]} px image", file=rel, **where)
        box = None  # reported; no second message about the mask extent
    if masks and len(masks) == len(mask_paths(rec)) and len({m.shape for m in masks}) == 1:
        extent = mask_to_box(np.logical_or.reduce(masks))
        if extent is None:
            severity: Severity = "error" if rec.get("location_label") == "mask" else "warning"
            report.add(severity, f"mask {rec['mask_path']} is all zero (no lesion pixel)", file=rec["mask_path"],
                       **where)
        elif box is not None and box != extent:
            report.warning(f"bbox {box} is not the extent of the mask ({extent})", file=rec["mask_path"], **where)
    return info


def _parsed_bbox(rec: dict) -> BBox | None:
    try:
        return parse_bbox(rec.get("bbox", ""))
    except ValueError:
        return None  # already reported by _check_row_values


def _check_content_duplicates(df: pd.DataFrame, infos: dict[int, _ImageInfo], report: _Report) -> None:
    """Byte-identical files across splits (error with test), and near-duplicates of test images (warning)."""
    if "split" not in df.columns:
        return
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, info in infos.items():
        by_hash[info.sha256].append(i)
    identical_pairs = set()
    for rows in by_hash.values():
        if len({df["image_path"].iat[i] for i in rows}) < 2:
            continue  # the same path listed twice is reported by _check_groups
        severity = _leak_severity({df["split"].iat[i] for i in rows})
        if severity:
            names = ", ".join(df["image_path"].iat[i] for i in rows)
            report.add(severity, f"byte-identical images in several splits: {names}: {_split_membership(df, rows)}")
        identical_pairs.update((a, b) for a in rows for b in rows)
    tests = [i for i in infos if df["split"].iat[i] == "test"]
    others = [i for i in infos if df["split"].iat[i] in ("train", "val")]
    if not tests or not others:
        return
    other_hashes = np.stack([infos[i].phash for i in others])
    for t in tests:
        dist = (other_hashes != infos[t].phash).sum(axis=1)
        for k in np.flatnonzero(dist <= NEAR_DUPLICATE_MAX_DISTANCE):
            o = others[k]
            if (t, o) in identical_pairs:
                continue
            labels = ""
            if "label" in df.columns and df["label"].iat[t] != df["label"].iat[o]:
                labels = f", labelled {df['label'].iat[t]} vs {df['label'].iat[o]}"
            report.warning(
                f"this test image looks like {df['split'].iat[o]} image {df['image_path'].iat[o]} "
                f"(row {o + 1}; pHash distance {int(dist[k])}{labels})",
                row=t + 1, image_id=df["image_id"].iat[t] if "image_id" in df.columns else None,
                file=df["image_path"].iat[t],
            )


def _resolve_root(df: pd.DataFrame, data_root: str | Path | None, report: _Report) -> Path | None:
    if data_root is not None:
        root = Path(data_root)
        if not root.is_dir():
            report.error(f"data root {root} is not a folder")
            return None
        return root
    # the root is the first candidate that holds one of the manifest's images (not necessarily the first row's:
    # a missing first image is that row's error, not a missing data root)
    paths = list(dict.fromkeys(p for p in df["image_path"] if isinstance(p, str) and p.strip()))
    first_error: DataRootNotFound | None = None
    for p in paths[:50] or [None]:
        try:
            return find_data_root(required=[p] if p else [])
        except DataRootNotFound as exc:
            first_error = first_error or exc
    report.error(f"cannot check the files: {first_error}")
    return None


def validate_manifest(
    manifest: str | Path | pd.DataFrame, data_root: str | Path | None = None, check_files: bool = True
) -> Problems:
    """Every problem of a manifest (a CSV path or a DataFrame), errors and warnings, in one list.

    With ``check_files`` the images and masks are opened (paths relative to ``data_root``; None = the data-root
    lookup of :func:`lanet_core.paths.find_data_root` for the first image). Never raises on bad input.
    """
    if isinstance(manifest, pd.DataFrame):
        name = Path(manifest.attrs["path"]).name if manifest.attrs.get("path") else "<DataFrame>"
    else:
        name = Path(manifest).name
    report = _Report(name)
    df = _read_table(manifest, report)
    if df is None:
        return Problems(report.items, 0)
    _check_columns(df, report)
    _check_row_values(df, report)
    _check_groups(df, report)
    if check_files and "image_path" in df.columns and len(df):
        root = _resolve_root(df, data_root, report)
        if root is not None:
            infos = {}
            for i, rec in enumerate(df.to_dict("records")):
                info = _check_files_of_row(rec, root, {"row": i + 1, "image_id": rec.get("image_id")}, report)
                if info is not None:
                    infos[i] = info
            _check_content_duplicates(df, infos, report)
    # table-wide problems first, then by row (stable: a row's problems keep the order of the checks)
    return Problems(sorted(report.items, key=lambda p: (p.row is not None, p.row or 0)), len(df))


def _files_fingerprint(manifest: Path, data_root: Path) -> str:
    """SHA-256 over (path, size, mtime) of every image and mask the manifest names: a file swapped or edited
    after validation (an all-zero mask, another image) changes it, so the clean stamp no longer applies. A
    missing file or a path outside the data root gives a distinct value (validation then reports it)."""
    import hashlib

    try:
        df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except Exception:  # unreadable tables are reported by validate_manifest itself
        return "unreadable"
    h = hashlib.sha256()
    paths = list(df.get("image_path", pd.Series(dtype=str)))
    for rec in df.to_dict("records") if "mask_path" in df.columns else []:
        paths += mask_paths(rec)
    for rel in paths:
        if not str(rel).strip() or outside_root_problem(data_root, rel):
            h.update(f"{rel}|-\n".encode())
            continue
        try:
            st = (data_root / rel).stat()
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{rel}|missing\n".encode())
    return h.hexdigest()


def _log_warnings(log, manifest: Path, warnings: list[Problem]) -> None:
    """Warnings as log lines; the near-duplicate ones (BUSI has 25) as one summary line naming the full list."""
    near = [w for w in warnings if "looks like" in w.message]
    for w in warnings:
        if "looks like" not in w.message:
            log.warning("%s", w)
    if near:
        log.warning("%s: %d test image(s) look like a training or validation image (%d near-duplicate pair(s), pHash "
                    "distance <= %d); the full list: lanet validate %s", manifest, len({(w.row, w.file) for w in near}),
                    len(near), NEAR_DUPLICATE_MAX_DISTANCE, manifest)


def ensure_manifest_valid(manifest: str | Path, data_root: str | Path, *, check_files: bool = True,
                          max_listed: int = 20) -> Problems:
    """The check ``lanet train`` (and the study) run before the first epoch: :func:`validate_manifest` on every
    row of every split; errors stop with one :class:`DataError` listing them (row, file, what is wrong),
    warnings are logged. A clean result is remembered (keyed by the manifest's checksum, the path, size and
    modification time of every image and mask it names, and the data root) so the files are decoded once, not
    once per run, and a file changed after validation is validated again."""
    import hashlib
    import json
    import logging

    from lanet_core.io import atomic_write_text, file_sha256
    from lanet_core.paths import cache_dir

    log = logging.getLogger(__name__)
    manifest = Path(manifest)
    files = _files_fingerprint(manifest, Path(data_root)) if check_files else ""
    key = hashlib.sha256(f"{file_sha256(manifest)}|{Path(data_root).resolve()}|{check_files}|{files}|v2".encode()).hexdigest()[:32]
    stamp = cache_dir() / "validated" / f"{key}.json"
    if stamp.is_file():
        return Problems([], json.loads(stamp.read_text()).get("rows", 0))
    problems = validate_manifest(manifest, data_root=data_root, check_files=check_files)
    errors = problems.errors
    _log_warnings(log, manifest, problems.warnings)
    if errors:
        listed = "\n".join(f"  {p}" for p in errors[:max_listed])
        more = f"\n  ... and {len(errors) - max_listed} more (lanet validate {manifest})" if len(errors) > max_listed else ""
        raise DataError(f"{manifest}: {len(errors)} error(s); nothing was trained:\n{listed}{more}")
    atomic_write_text(stamp, json.dumps({"manifest": str(manifest), "rows": problems.n_rows,
                                         "warnings": len(problems.warnings)}))
    return problems
