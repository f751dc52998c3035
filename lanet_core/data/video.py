"""Importer for a user's own partly-labelled ultrasound videos (like the paper's private MBUD).

The template (see ``docs/video_data.md``; examples in ``data_manifests/templates/``):

* ``videos.csv``: ``video_id, patient_id, label, frames_dir`` and optionally ``first_frame``,
  ``last_frame`` (inclusive frame-index range to use), ``device``, ``notes`` or any other column
  (kept in the manifest). ``label`` is ``benign`` or ``malignant`` and holds for every frame of the video.
  ``frames_dir`` is relative to the data root and holds one image per frame, named by the frame pattern
  (default ``{frame_index:05d}.png``).
* ``boxes.csv``: ``video_id, frame_index, x1, y1, x2, y2`` in pixels of the frame, exclusive max, at
  most one box per frame. Only the boxed frames carry a location label.

:func:`prepare_video_dataset` writes one manifest in the project schema (extra columns ``video_id``,
``frame_index``): split by patient, stratified by label; every boxed frame kept; unboxed frames
subsampled; val/test restricted to boxed frames unless asked otherwise. Every problem found in the
tables is reported at once, each naming the CSV file and line.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lanet_core.data.images import image_size
from lanet_core.data.manifest import LABELS, REQUIRED_COLUMNS, BBox, write_manifest
from lanet_core.io import atomic_write_text
from lanet_core.data.splits import stratified_holdout
from lanet_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

VIDEOS_CSV = "videos.csv"
BOXES_CSV = "boxes.csv"
VIDEO_COLUMNS: tuple[str, ...] = ("video_id", "patient_id", "label", "frames_dir")
RANGE_COLUMNS: tuple[str, ...] = ("first_frame", "last_frame")
BOX_COLUMNS: tuple[str, ...] = ("video_id", "frame_index", "x1", "y1", "x2", "y2")
DEFAULT_FRAME_PATTERN = "{frame_index:05d}.png"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_LISTED = 30  # problems listed in one error message


# ----------------------------------------------------------------------------------------- problems


@dataclass
class _Problems:
    """Collects the problems of one input file and raises them together."""

    source: str
    items: list[str] = field(default_factory=list)

    def add(self, line: int | None, text: str) -> None:
        self.items.append(f"line {line}: {text}" if line is not None else text)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:_MAX_LISTED]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise DataError(f"{self.source}: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail)


def _line(row_position: int) -> int:
    """File line of a data row (the header is line 1)."""
    return row_position + 2


def _read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV as stripped text columns; raises DataError naming the file if it is missing or lacks columns."""
    if not path.is_file():
        raise DataError(f"{path}: not found (see docs/video_data.md for the template)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True)
    except Exception as exc:  # pandas raises many types for malformed CSV
        raise DataError(f"{path}: cannot be parsed as CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the template's columns are {list(required)}")
    return df.apply(lambda col: col.str.strip()).reset_index(drop=True)


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------- tables


def read_videos_table(path: Path) -> pd.DataFrame:
    """Read and check ``videos.csv``: one row per video; labels normalised to lower case.

    Checks: required values present, ids made of ``[A-Za-z0-9._-]``, unique ``video_id``, label benign or
    malignant, one label per patient, ``frames_dir`` relative, ``first_frame <= last_frame`` integers.
    ``frames_dir`` is returned with ``/`` separators; missing ``first_frame``/``last_frame`` columns are added empty.
    Raises DataError listing every problem with its line.
    """
    path = Path(path)
    df = _read_table(path, VIDEO_COLUMNS)
    problems = _Problems(str(path))
    for col in RANGE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df["label"] = df["label"].str.lower()
    first_line: dict[str, int] = {}
    for pos, row in df.iterrows():
        line = _line(int(pos))
        for col in VIDEO_COLUMNS:
            if not row[col]:
                problems.add(line, f"empty {col}")
        for col in ("video_id", "patient_id"):
            if row[col] and not _ID_RE.fullmatch(row[col]):
                problems.add(line, f"{col} {row[col]!r} may only contain letters, digits, '.', '_' and '-'")
        vid = row["video_id"]
        if vid in first_line:
            problems.add(line, f"video_id {vid!r} already used on line {first_line[vid]}")
        first_line.setdefault(vid, line)
        if row["label"] and row["label"] not in LABELS:
            problems.add(line, f"label {row['label']!r} is not one of {list(LABELS)}")
        frames_dir = PurePosixPath(row["frames_dir"].replace("\\", "/"))
        if row["frames_dir"] and (frames_dir.is_absolute() or ".." in frames_dir.parts):
            problems.add(line, f"frames_dir {row['frames_dir']!r} must be relative to the data root, without '..'")
        df.at[pos, "frames_dir"] = frames_dir.as_posix() if row["frames_dir"] else ""
        bounds = [_parse_int(row[c]) if row[c] else None for c in RANGE_COLUMNS]
        for col, value in zip(RANGE_COLUMNS, bounds):
            if row[col] and (value is None or value < 0):
                problems.add(line, f"{col} {row[col]!r} is not a non-negative integer")
        if None not in bounds and bounds[0] > bounds[1]:
            problems.add(line, f"first_frame {bounds[0]} is after last_frame {bounds[1]}")
    for pid, group in df[df["label"].isin(LABELS)].groupby("patient_id", sort=True):
        if group["label"].nunique() > 1:
            where = ", ".join(f"{lab} (line {_line(int(i))})" for i, lab in group["label"].items())
            problems.add(None, f"patient {pid!r} has more than one label: {where}")
    problems.raise_if_any()
    return df


def read_boxes_table(path: Path, videos: pd.DataFrame) -> pd.DataFrame:
    """Read and check ``boxes.csv`` against the videos: integer ``frame_index``/coordinates, non-empty box,
    known ``video_id``, one box per frame, frame inside the video's ``first_frame``..``last_frame``.

    Returns columns ``video_id, frame_index, x1, y1, x2, y2, line`` (ints but the id). Whether the frame
    file exists and the box fits inside it is checked by :func:`prepare_video_dataset`.
    """
    path = Path(path)
    df = _read_table(path, BOX_COLUMNS)
    problems = _Problems(str(path))
    by_video = videos.set_index("video_id")
    seen: dict[tuple[str, int], int] = {}
    rows = []
    for pos, row in df.iterrows():
        line = _line(int(pos))
        vid = row["video_id"]
        values = {c: _parse_int(row[c]) for c in BOX_COLUMNS[1:]}
        bad = [c for c, v in values.items() if v is None]
        if bad:
            problems.add(line, "not integers: " + ", ".join(f"{c}={row[c]!r}" for c in bad))
            continue
        if vid not in by_video.index:
            problems.add(line, f"unknown video_id {vid!r} (not in videos.csv)")
            continue
        frame = values["frame_index"]
        x1, y1, x2, y2 = (values[c] for c in ("x1", "y1", "x2", "y2"))
        if x2 <= x1 or y2 <= y1:
            problems.add(line, f"empty box {x1} {y1} {x2} {y2} (need x1 < x2 and y1 < y2, exclusive max)")
        if (vid, frame) in seen:
            problems.add(line, f"second box for video {vid!r} frame {frame} (first on line {seen[(vid, frame)]}); "
                               "one box per frame: merge them into their enclosing box")
        seen.setdefault((vid, frame), line)
        first, last = (_parse_int(by_video.at[vid, c]) if by_video.at[vid, c] else None for c in RANGE_COLUMNS)
        if (first is not None and frame < first) or (last is not None and frame > last):
            problems.add(line, f"frame {frame} of video {vid!r} is outside its first_frame..last_frame range")
        rows.append({"video_id": vid, **values, "line": line})
    problems.raise_if_any()
    return pd.DataFrame(rows, columns=[*BOX_COLUMNS, "line"])


def write_template_tables(
    root: Path, videos: pd.DataFrame | None, boxes: pd.DataFrame | None, *, boxes_name: str = BOXES_CSV
) -> None:
    """Write ``videos.csv`` / ``boxes.csv`` under ``root`` in the template's column order (atomically)."""
    for df, name, cols in ((videos, VIDEOS_CSV, VIDEO_COLUMNS), (boxes, boxes_name, BOX_COLUMNS)):
        if df is None:
            continue
        ordered = df[list(cols) + [c for c in df.columns if c not in cols]]
        atomic_write_text(Path(root) / name, ordered.to_csv(index=False, lineterminator="\n"))


# ----------------------------------------------------------------------------------------- frames


def frame_regex(pattern: str) -> re.Pattern[str]:
    """Regex that matches file names made by ``pattern`` (one ``{frame_index...}`` field) and captures the index."""
    parts = []
    fields = 0
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ConfigError(f"frame pattern {pattern!r} is not a format string ({exc})") from None
    for literal, name, _spec, _conv in parsed:
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name != "frame_index":
            raise ConfigError(f"frame pattern {pattern!r} may only use the field {{frame_index}}, not {{{name}}}")
        fields += 1
        parts.append(r"(\d+)")
    if fields != 1 or "/" in pattern:
        raise ConfigError(f"frame pattern {pattern!r} must name a file with exactly one {{frame_index}} field")
    return re.compile("".join(parts))


def list_frames(frames_dir: Path, pattern: str = DEFAULT_FRAME_PATTERN) -> dict[int, str]:
    """Frame index -> file name of the files in ``frames_dir`` matching ``pattern``, sorted by index.

    Raises DataError if two files give the same index (e.g. ``7.png`` and ``007.png`` with ``{frame_index}.png``).
    """
    regex = frame_regex(pattern)
    found: dict[int, str] = {}
    for name in sorted(p.name for p in Path(frames_dir).iterdir() if p.is_file()):
        match = regex.fullmatch(name)
        if not match:
            continue
        index = int(match.group(1))
        if index in found:
            raise DataError(f"{frames_dir}: files {found[index]!r} and {name!r} both are frame {index}")
        found[index] = name
    return dict(sorted(found.items()))


def subsample_unboxed(
    frames: Sequence[int], boxed: Iterable[int], *, every_nth: int = 1, min_gap: int = 0
) -> list[int]:
    """The unboxed frames to keep, ascending.

    ``frames`` are all frame indices of a video, ascending. Candidates are the frames at positions
    0, n, 2n, ... of that list (n = ``every_nth``) that carry no box. A candidate is then dropped when it
    lies within ``min_gap`` frame indices (``|i - j| <= min_gap``) of a boxed frame or of the previous kept
    unboxed frame (greedy, in order). ``min_gap=0`` drops nothing.
    """
    if every_nth < 1 or min_gap < 0:
        raise ConfigError(f"every_nth must be >= 1 and min_gap >= 0, got every_nth={every_nth}, min_gap={min_gap}")
    boxed_sorted = np.array(sorted(set(boxed)), dtype=np.int64)
    kept: list[int] = []
    for frame in list(frames)[::every_nth]:
        if boxed_sorted.size:
            j = np.searchsorted(boxed_sorted, frame)
            near = [abs(int(boxed_sorted[k]) - frame) for k in (j - 1, j) if 0 <= k < boxed_sorted.size]
            if min(near) == 0 or min(near) <= min_gap:
                continue
        if kept and frame - kept[-1] <= min_gap:
            continue
        kept.append(int(frame))
    return kept


# ----------------------------------------------------------------------------------------- splits


def patient_splits(
    labels: Mapping[str, str], *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, str]:
    """Patient id -> ``train``/``val``/``test``, stratified by label, seeded; fractions are of all patients.

    Built on :func:`lanet_core.data.splits.stratified_holdout` (sklearn, ids in natural order): first
    ``test_fraction`` of the patients go to test, then ``val_fraction / (1 - test_fraction)`` of the rest
    to val. A zero fraction leaves that split empty. Raises DataError when a class has too few patients.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must lie in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    ids = list(labels)
    test = stratified_holdout(ids, [labels[p] for p in ids], test_fraction, seed) if test_fraction > 0 else set()
    rest = [p for p in ids if p not in test]
    val = (stratified_holdout(rest, [labels[p] for p in rest], val_fraction / (1.0 - test_fraction), seed)
           if val_fraction > 0 else set())
    return {p: "test" if p in test else "val" if p in val else "train" for p in ids}


# ----------------------------------------------------------------------------------------- importer


def prepare_video_dataset(
    src: Path,
    out: Path,
    *,
    data_root: Path | None = None,
    every_nth: int = 1,
    min_gap: int = 0,
    test_fraction: float = 0.15,
    val_fraction: float = 0.15,
    seed: int = 0,
    keep_unboxed_in_eval: bool = False,
    frame_pattern: str = DEFAULT_FRAME_PATTERN,
    dataset: str = "video",
) -> Path:
    """Write the manifest of a partly-labelled video dataset; returns its path.

    ``src`` holds ``videos.csv`` and ``boxes.csv``; ``data_root`` (default ``src``) is the folder that
    ``frames_dir`` and the manifest's ``image_path`` are relative to. ``out`` is the manifest file if it
    ends in ``.csv``, else a folder that receives ``<dataset>.csv``.

    Rows: every boxed frame (``location_label`` ``box``, ``bbox`` from boxes.csv) and the unboxed frames
    kept by :func:`subsample_unboxed` (``location_label`` ``none``); val and test keep only boxed frames
    unless ``keep_unboxed_in_eval``. Split by patient (:func:`patient_splits`). Extra columns:
    ``video_id``, ``frame_index`` and any further column of videos.csv (``device``, ``notes``...).
    Raises DataError listing every problem (naming the CSV line) before anything is written.
    """
    src = Path(src)
    root = Path(data_root) if data_root is not None else src
    if not _ID_RE.fullmatch(dataset):
        raise ConfigError(f"dataset name {dataset!r} may only contain letters, digits, '.', '_' and '-'")
    subsample_unboxed([], [], every_nth=every_nth, min_gap=min_gap)  # checks the arguments early
    frame_regex(frame_pattern)
    videos = read_videos_table(src / VIDEOS_CSV)
    boxes = read_boxes_table(src / BOXES_CSV, videos)
    frames_of = _video_frames(videos, root, frame_pattern, str(src / VIDEOS_CSV))
    _check_box_frames(boxes, videos, frames_of, root, frame_pattern, str(src / BOXES_CSV))
    try:
        split_of = patient_splits(dict(zip(videos["patient_id"], videos["label"])),
                                  val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    except DataError as exc:
        raise DataError(f"{src / VIDEOS_CSV}: cannot split its patients by label: {exc}") from exc

    extra_cols = [c for c in videos.columns if c not in VIDEO_COLUMNS and c not in RANGE_COLUMNS]
    rows = []
    for _, video in videos.iterrows():
        vid, split = video["video_id"], split_of[video["patient_id"]]
        frames = frames_of[vid]
        box_of = {b.frame_index: f"{b.x1} {b.y1} {b.x2} {b.y2}" for b in boxes[boxes["video_id"] == vid].itertuples()}
        unboxed = (subsample_unboxed(list(frames), box_of, every_nth=every_nth, min_gap=min_gap)
                   if split == "train" or keep_unboxed_in_eval else [])
        for index in sorted([*box_of, *unboxed]):
            bbox = box_of.get(index, "")
            rows.append({
                "image_id": f"{vid}_{index:05d}", "dataset": dataset,
                "image_path": f"{video['frames_dir']}/{frames[index]}", "mask_path": "", "bbox": bbox,
                "location_label": "box" if bbox else "none", "label": video["label"],
                "patient_id": video["patient_id"], "split": split, "video_id": vid, "frame_index": str(index),
                **{c: video[c] for c in extra_cols},
            })
    manifest = pd.DataFrame(rows, columns=[*REQUIRED_COLUMNS, "video_id", "frame_index", *extra_cols])
    out = Path(out)
    path = out if out.suffix.lower() == ".csv" else out / f"{dataset}.csv"
    write_manifest(manifest, path)
    log.info("wrote %s: %d frames of %d videos; (split, location_label) counts %s", path, len(manifest),
             len(videos), manifest.groupby(["split", "location_label"]).size().to_dict())
    for split in sorted(set(split_of.values()) - set(manifest["split"])):
        log.warning("%s: the %s split has no frames (no boxed frame among its patients)", path, split)
    return path


def _video_frames(videos: pd.DataFrame, root: Path, pattern: str, source: str) -> dict[str, dict[int, str]]:
    """video_id -> {frame index: file name} within the video's first_frame..last_frame; problems name the line."""
    problems = _Problems(source)
    frames_of: dict[str, dict[int, str]] = {}
    for pos, row in videos.iterrows():
        frames_dir = root / row["frames_dir"]
        if not frames_dir.is_dir():
            problems.add(_line(int(pos)), f"frames_dir {frames_dir} is not a folder")
            continue
        try:
            frames = list_frames(frames_dir, pattern)
        except DataError as exc:
            problems.add(_line(int(pos)), str(exc))
            continue
        first = _parse_int(row["first_frame"]) if row["first_frame"] else min(frames, default=0)
        last = _parse_int(row["last_frame"]) if row["last_frame"] else max(frames, default=0)
        frames_of[row["video_id"]] = {i: name for i, name in frames.items() if first <= i <= last}
        if not frames_of[row["video_id"]]:
            limits = f" within frames {first}..{last}" if row["first_frame"] or row["last_frame"] else ""
            problems.add(_line(int(pos)), f"no frame files matching {pattern!r} in {frames_dir}{limits}")
    problems.raise_if_any()
    return frames_of


def _check_box_frames(boxes: pd.DataFrame, videos: pd.DataFrame, frames_of: dict[str, dict[int, str]], root: Path,
                      pattern: str, source: str) -> None:
    """Every boxed frame exists, is readable and holds its box; problems name the boxes.csv line."""
    problems = _Problems(source)
    frames_dir_of = dict(zip(videos["video_id"], videos["frames_dir"]))
    for box in boxes.itertuples(index=False):
        name = frames_of[box.video_id].get(box.frame_index)
        if name is None:
            problems.add(box.line, "frame file missing: "
                         f"{root / frames_dir_of[box.video_id] / pattern.format(frame_index=box.frame_index)}")
            continue
        try:
            width, height = image_size(root / frames_dir_of[box.video_id] / name)
        except DataError as exc:
            problems.add(box.line, str(exc))
            continue
        if not BBox(box.x1, box.y1, box.x2, box.y2).inside(width, height):
            problems.add(box.line, f"box {box.x1} {box.y1} {box.x2} {box.y2} lies outside the {width}x{height} "
                                   f"frame {frames_dir_of[box.video_id]}/{name} "
                                   "(x2, y2 exclusive, at most width, height)")
    problems.raise_if_any()
