"""Video phantoms and the importer for partly-labelled video data (template -> manifest round trip, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lanet_core.data.manifest import REQUIRED_COLUMNS, parse_bbox, read_manifest
from lanet_core.data.phantoms import generate_phantom_videos
from lanet_core.data.validate import validate_manifest
from lanet_core.data.video import (
    frame_regex,
    list_frames,
    patient_splits,
    prepare_video_dataset,
    read_boxes_table,
    read_videos_table,
    subsample_unboxed,
)
from lanet_core.errors import ConfigError, DataError
from lanet_core.paths import project_root

PATIENTS, FRAMES, SIZE, BOXED = 8, 10, 32, 2
FRACTIONS = {"val_fraction": 0.25, "test_fraction": 0.25}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("videos")
    generate_phantom_videos(out, n_patients=PATIENTS, videos_per_patient=1, frames_per_video=FRAMES,
                            image_size=SIZE, boxed_frames_per_video=BOXED, seed=2)
    return out


def _frame(root: Path, video: str, i: int) -> np.ndarray:
    return np.asarray(Image.open(root / "frames" / video / f"{i:05d}.png"), dtype=float)


# ------------------------------------------------------------------------------------------ generator


def test_phantom_videos_layout(videos):
    vids = pd.read_csv(videos / "videos.csv", dtype=str, keep_default_na=False)
    boxes = pd.read_csv(videos / "boxes.csv")
    truth = pd.read_csv(videos / "truth_boxes.csv")
    assert list(vids.columns[:4]) == ["video_id", "patient_id", "label", "frames_dir"]
    assert len(vids) == PATIENTS and (vids["label"] == "malignant").sum() == PATIENTS // 2
    assert len(boxes) == PATIENTS * BOXED and boxes.groupby("video_id").size().eq(BOXED).all()
    assert len(truth) == PATIENTS * FRAMES
    merged = boxes.merge(truth, on=["video_id", "frame_index"], suffixes=("", "_true"))
    for c in ("x1", "y1", "x2", "y2"):
        assert (merged[c] == merged[f"{c}_true"]).all()
    for row in vids.itertuples():
        files = sorted(p.name for p in (videos / row.frames_dir).iterdir())
        assert files == [f"{i:05d}.png" for i in range(FRAMES)]
    assert ((truth["x2"] <= SIZE) & (truth["y2"] <= SIZE) & (truth["x1"] >= 0) & (truth["y1"] >= 0)).all()


def test_phantom_video_frames_change_slowly(videos):
    a, b = _frame(videos, "pat000_v0", 4), _frame(videos, "pat000_v0", 5)
    other = _frame(videos, "pat001_v0", 5)
    consecutive = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert consecutive > 0.8 > np.corrcoef(a.ravel(), other.ravel())[0, 1]
    truth = pd.read_csv(videos / "truth_boxes.csv").query("video_id == 'pat000_v0'")
    steps = truth[["x1", "y1", "x2", "y2"]].diff().abs().max().max()
    assert steps <= 3  # the box moves by a few pixels at most between frames


def test_phantom_videos_are_deterministic(videos, tmp_path):
    generate_phantom_videos(tmp_path, n_patients=PATIENTS, videos_per_patient=1, frames_per_video=FRAMES,
                            image_size=SIZE, boxed_frames_per_video=BOXED, seed=2)
    for name in ("videos.csv", "boxes.csv", "truth_boxes.csv", "frames/pat003_v0/00007.png"):
        assert (tmp_path / name).read_bytes() == (videos / name).read_bytes()


# ------------------------------------------------------------------------------------------ importer


def test_round_trip_defaults(videos, tmp_path):
    path = prepare_video_dataset(videos, tmp_path, **FRACTIONS)
    assert path == tmp_path / "video.csv"
    df = read_manifest(path)
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert {"video_id", "frame_index", "device", "notes"} <= set(df.columns)
    # patient-level split, stratified: 2 test + 2 val patients (one per label each), 4 train
    patients = df.groupby("split")["patient_id"].nunique().to_dict()
    assert patients == {"train": 4, "val": 2, "test": 2}
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    for split in ("val", "test"):
        assert set(df.loc[df["split"] == split, "label"]) == {"benign", "malignant"}
    # every boxed frame kept; train keeps every unboxed frame (every_nth=1); val/test only boxed ones
    train = df[df["split"] == "train"]
    assert (train["location_label"] == "box").sum() == 4 * BOXED
    assert (train["location_label"] == "none").sum() == 4 * (FRAMES - BOXED)
    assert (df.loc[df["split"] != "train", "location_label"] == "box").all()
    assert len(df) == 4 * FRAMES + 4 * BOXED
    boxes = pd.read_csv(videos / "boxes.csv")
    expected = {(r.video_id, r.frame_index): f"{r.x1} {r.y1} {r.x2} {r.y2}" for r in boxes.itertuples()}
    got = {(r.video_id, int(r.frame_index)): r.bbox for r in df.itertuples() if r.location_label == "box"}
    assert got == expected
    assert (df.loc[df["location_label"] == "none", "bbox"] == "").all()
    assert validate_manifest(path, data_root=videos).errors == []


def test_round_trip_subsampling_and_eval_frames(videos, tmp_path):
    every_nth, min_gap = 3, 1
    df = read_manifest(prepare_video_dataset(videos, tmp_path / "m.csv", every_nth=every_nth, min_gap=min_gap,
                                             keep_unboxed_in_eval=True, **FRACTIONS))
    boxes = pd.read_csv(videos / "boxes.csv")
    for vid, rows in df.groupby("video_id"):
        boxed = set(boxes.loc[boxes["video_id"] == vid, "frame_index"])
        unboxed = sorted(int(i) for i in rows.loc[rows["location_label"] == "none", "frame_index"])
        # candidates 0, 3, 6, 9; dropped if boxed or within 1 frame of a boxed frame
        want = [i for i in (0, 3, 6, 9) if all(abs(i - b) > min_gap for b in boxed)]
        assert unboxed == want, vid
        assert set(rows.loc[rows["location_label"] == "box", "frame_index"].astype(int)) == boxed
    assert (df.loc[df["split"] != "train", "location_label"] == "none").any()  # unboxed kept in val/test


def test_manifest_is_deterministic_and_seeded(videos, tmp_path):
    a = prepare_video_dataset(videos, tmp_path / "a.csv", seed=1, **FRACTIONS).read_bytes()
    b = prepare_video_dataset(videos, tmp_path / "b.csv", seed=1, **FRACTIONS).read_bytes()
    assert a == b
    splits = {s: read_manifest(prepare_video_dataset(videos, tmp_path / f"s{s}.csv", seed=s, **FRACTIONS))
              .groupby("patient_id")["split"].first().to_dict() for s in range(4)}
    assert len({tuple(sorted(v.items())) for v in splits.values()}) > 1


def test_subsample_unboxed_arithmetic():
    frames = list(range(20))
    assert subsample_unboxed(frames, [], every_nth=1) == frames
    assert subsample_unboxed(frames, [], every_nth=5) == [0, 5, 10, 15]
    assert subsample_unboxed(frames, [10], every_nth=5) == [0, 5, 15]
    assert subsample_unboxed(frames, [11], every_nth=5, min_gap=1) == [0, 5, 15]
    assert subsample_unboxed(frames, [], every_nth=2, min_gap=2) == [0, 4, 8, 12, 16]
    assert subsample_unboxed([3, 7, 8, 30], [], every_nth=2) == [3, 8]  # by position, gaps allowed
    with pytest.raises(ConfigError):
        subsample_unboxed(frames, [], every_nth=0)


def test_patient_splits_fractions_of_all_patients():
    labels = {f"p{i}": "malignant" if i % 3 == 0 else "benign" for i in range(60)}
    split = patient_splits(labels, val_fraction=0.2, test_fraction=0.1, seed=0)
    counts = pd.Series(split).value_counts().to_dict()
    assert counts == {"train": 42, "val": 12, "test": 6}
    assert patient_splits(labels, val_fraction=0.2, test_fraction=0.1, seed=0) == split
    assert set(patient_splits(labels, val_fraction=0.0, test_fraction=0.0).values()) == {"train"}
    with pytest.raises(ConfigError):
        patient_splits(labels, val_fraction=0.6, test_fraction=0.5)


def test_frame_pattern_option(tmp_path):
    for i in (2, 10, 11):
        (tmp_path / f"frame_{i}.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert list_frames(tmp_path, "frame_{frame_index}.jpg") == {2: "frame_2.jpg", 10: "frame_10.jpg",
                                                                11: "frame_11.jpg"}
    (tmp_path / "frame_002.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="both are frame 2"):
        list_frames(tmp_path, "frame_{frame_index}.jpg")
    for bad in ("{index}.png", "frame.png", "{frame_index}_{frame_index}.png"):
        with pytest.raises(ConfigError):
            frame_regex(bad)


def test_first_and_last_frame_restrict_the_range(videos, tmp_path):
    vids = pd.read_csv(videos / "videos.csv", dtype=str, keep_default_na=False)
    boxes = pd.read_csv(videos / "boxes.csv", dtype=str, keep_default_na=False)
    vids["first_frame"], vids["last_frame"] = "", ""
    first = vids["video_id"].iloc[0]
    lo = int(boxes.loc[boxes["video_id"] == first, "frame_index"].astype(int).min())
    vids.loc[0, ["first_frame", "last_frame"]] = [str(lo), str(lo + 2)]
    src = tmp_path / "src"
    src.mkdir()
    vids.to_csv(src / "videos.csv", index=False)
    boxes = boxes[(boxes["video_id"] != first) | (boxes["frame_index"].astype(int) <= lo + 2)]
    boxes.to_csv(src / "boxes.csv", index=False)
    df = read_manifest(prepare_video_dataset(src, tmp_path, data_root=videos, keep_unboxed_in_eval=True, **FRACTIONS))
    frames = df.loc[df["video_id"] == first, "frame_index"].astype(int)
    assert frames.between(lo, lo + 2).all() and len(frames) == 3


def test_templates_parse():
    templates = project_root() / "data_manifests" / "templates"
    vids = read_videos_table(templates / "videos.csv")
    boxes = read_boxes_table(templates / "boxes.csv", vids)
    assert len(vids) >= 2 and len(boxes) >= 2
    assert set(boxes["video_id"]) <= set(vids["video_id"])
    assert all(parse_bbox(f"{b.x1} {b.y1} {b.x2} {b.y2}") for b in boxes.itertuples())


# ------------------------------------------------------------------------------------------ errors


def _edited(videos: Path, tmp_path: Path, videos_rows: list[str] | None = None, boxes_rows: list[str] | None = None,
            ) -> Path:
    """A copy of the phantom's tables with extra rows appended; frames stay under ``videos``."""
    src = tmp_path / "edited"
    src.mkdir(parents=True)
    for name, extra in (("videos.csv", videos_rows), ("boxes.csv", boxes_rows)):
        text = (videos / name).read_text()
        (src / name).write_text(text + "".join(r + "\n" for r in extra or []))
    return src


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _error(src: Path, root: Path, tmp_path: Path) -> str:
    with pytest.raises(DataError) as info:
        prepare_video_dataset(src, tmp_path / "out.csv", data_root=root, **FRACTIONS)
    assert not (tmp_path / "out.csv").exists()
    return str(info.value)


def test_errors_in_boxes_name_the_line(videos, tmp_path):
    n = _lines(videos / "boxes.csv")
    src = _edited(videos, tmp_path, boxes_rows=[
        "nosuchvideo,3,1,1,5,5",
        f"pat000_v0,{FRAMES + 5},1,1,5,5",
        f"pat000_v0,1,0,0,{SIZE + 1},10",
        "pat000_v0,2,7,7,4,9",
        "pat000_v0,3,a,1,5,5",
    ])
    # table-level problems are reported first, all at once
    message = _error(src, videos, tmp_path)
    assert "boxes.csv" in message
    assert f"line {n + 1}: unknown video_id 'nosuchvideo'" in message
    assert f"line {n + 4}: empty box 7 7 4 9" in message
    assert f"line {n + 5}: not integers: x1='a'" in message
    # file-level problems once the table is clean
    src2 = _edited(videos, tmp_path / "b",
                   boxes_rows=[f"pat000_v0,{FRAMES + 5},1,1,5,5", f"pat001_v0,1,0,0,{SIZE + 1},10"])
    message = _error(src2, videos, tmp_path)
    assert f"line {n + 1}: frame file missing:" in message and f"{FRAMES + 5:05d}.png" in message
    assert f"line {n + 2}: box 0 0 {SIZE + 1} 10 lies outside the {SIZE}x{SIZE} frame" in message


def test_duplicate_box_on_one_frame(videos, tmp_path):
    first = pd.read_csv(videos / "boxes.csv").iloc[0]
    src = _edited(videos, tmp_path, boxes_rows=[f"{first.video_id},{first.frame_index},1,1,5,5"])
    assert "second box for video" in _error(src, videos, tmp_path)


def test_errors_in_videos_name_the_line(videos, tmp_path):
    n = _lines(videos / "videos.csv")
    vids = pd.read_csv(videos / "videos.csv", dtype=str)
    label = vids.loc[vids["patient_id"] == "pat000", "label"].iloc[0]
    other = "benign" if label == "malignant" else "malignant"
    src = _edited(videos, tmp_path, videos_rows=[
        f"extra1,pat000,{other},frames/pat000_v0,phantom,",  # a second video of pat000 with the other label
        "pat001_v0,patX,benign,frames/pat001_v0,phantom,",  # duplicate video id
        "extra2,patY,cyst,frames/pat002_v0,phantom,",
        "extra3,patZ,benign,/abs/frames,phantom,",
        "bad id,patW,benign,frames/pat002_v0,phantom,",
    ])
    message = _error(src, videos, tmp_path)
    assert "videos.csv: 5 problem(s)" in message
    assert f"patient 'pat000' has more than one label: {label} (line 2), {other} (line {n + 1})" in message
    assert f"line {n + 2}: video_id 'pat001_v0' already used on line" in message
    assert f"line {n + 3}: label 'cyst' is not one of ['benign', 'malignant']" in message
    assert f"line {n + 4}: frames_dir '/abs/frames' must be relative" in message
    assert f"line {n + 5}: video_id 'bad id' may only contain" in message


def test_missing_frames_dir_and_columns(videos, tmp_path):
    n = _lines(videos / "videos.csv")
    src = _edited(videos, tmp_path, videos_rows=["extra,patQ,benign,frames/nothing_here,phantom,"])
    assert f"line {n + 1}: frames_dir" in _error(src, videos, tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "videos.csv").write_text("video_id,patient,label,frames_dir\n")
    (bad / "boxes.csv").write_text("video_id,frame_index,x1,y1,x2,y2\n")
    assert "missing column(s) ['patient_id']" in _error(bad, videos, tmp_path)
    (bad / "videos.csv").unlink()
    assert "videos.csv: not found" in _error(bad, videos, tmp_path)


def test_too_few_patients_for_the_split(videos, tmp_path):
    src = tmp_path / "few"
    src.mkdir()
    vids = pd.read_csv(videos / "videos.csv", dtype=str, keep_default_na=False).groupby("label").head(1)
    vids.to_csv(src / "videos.csv", index=False)
    (src / "boxes.csv").write_text("video_id,frame_index,x1,y1,x2,y2\n")
    assert "cannot split its patients by label" in _error(src, videos, tmp_path)
