"""The manifest validator: every check on crafted bad input, all problems at once, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lanet_core import cli, paths
from lanet_core.data.manifest import write_manifest
from lanet_core.data.validate import Problem, Problems, validate_manifest

W, H = 48, 40


def noise_image(path: Path, seed: int, mode: str = "L", size: tuple[int, int] = (W, H)) -> None:
    """A smooth random image (distinct pHash per seed), saved as 8-bit gray or RGB PNG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 6), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    (im.convert("RGB") if mode == "RGB" else im).save(path)


def rect_mask(path: Path, box: tuple[int, int, int, int] | None, size: tuple[int, int] = (W, H), mode: str = "1") -> None:
    """A rectangular mask (x1, y1, x2 exclusive, y2 exclusive); None = all zero."""
    a = np.zeros(size[::-1], dtype=bool)
    if box:
        a[box[1]:box[3], box[0]:box[2]] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).convert(mode).save(path)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A data root with six images (RGB and gray, one with two masks) and a valid manifest for them."""
    root = tmp_path / "root"
    rows = []
    spec = [  # id, split, label, patient, mode
        ("a", "train", "benign", "p1", "L"),
        ("b", "train", "malignant", "p2", "RGB"),
        ("c", "train", "benign", "p2", "L"),
        ("d", "val", "malignant", "p3", "L"),
        ("e", "test", "benign", "p4", "RGB"),
        ("f", "test", "malignant", "p5", "L"),
    ]
    for k, (image_id, split, label, patient, mode) in enumerate(spec):
        noise_image(root / "ds" / f"{image_id}.png", seed=100 + k, mode=mode)
        rect_mask(root / "ds" / f"{image_id}_mask.png", (10, 8, 20, 18))
        masks = f"ds/{image_id}_mask.png"
        if image_id == "b":  # a second lesion mask: the union is the lesion
            rect_mask(root / "ds" / "b_mask_1.png", (30, 20, 40, 30), mode="L")
            masks += "|ds/b_mask_1.png"
        rows.append({
            "image_id": image_id, "dataset": "toy", "image_path": f"ds/{image_id}.png", "mask_path": masks,
            "bbox": "10 8 40 30" if image_id == "b" else "10 8 20 18", "location_label": "mask", "label": label,
            "patient_id": patient, "split": split,
        })
    return root, pd.DataFrame(rows)


def _messages(problems: Problems, severity: str = "error") -> list[str]:
    return [str(p) for p in problems if p.severity == severity]


def test_valid_manifest_has_no_problems(tree, tmp_path):
    root, df = tree
    path = write_manifest(df, tmp_path / "toy.csv")
    problems = validate_manifest(path, data_root=root)
    assert isinstance(problems, Problems) and isinstance(problems, list)
    assert list(problems) == []
    assert problems.n_rows == 6


def test_problem_str_names_manifest_row_line_and_id():
    p = Problem("error", "mask m.png is 500x400 px but the image is 512x400 px", row=12, image_id="benign (3)",
                file="m.png", manifest="busi.csv")
    assert str(p) == ("busi.csv row 12 (line 13, image_id 'benign (3)'): "
                      "mask m.png is 500x400 px but the image is 512x400 px")
    assert str(Problem("warning", "odd", manifest="x.csv")) == "x.csv: warning: odd"
    with pytest.raises(AttributeError):
        p.row = 3  # frozen


def _corrupt(root: Path, df: pd.DataFrame, case: str) -> pd.DataFrame:
    """Apply one corruption; every case must be reported as an error."""
    df = df.copy()
    if case == "empty image_id":
        df.loc[0, "image_id"] = ""
    elif case == "duplicate image_id":
        df.loc[3, "image_id"] = "a"
    elif case == "unknown label":
        df.loc[1, "label"] = "normal"
    elif case == "unknown location_label":
        df.loc[1, "location_label"] = "points"
    elif case == "unknown split":
        df.loc[1, "split"] = "dev"
    elif case == "missing image":
        (root / "ds" / "c.png").unlink()
    elif case == "unreadable image":
        (root / "ds" / "c.png").write_bytes(b"not a png at all")
    elif case == "missing mask":
        (root / "ds" / "b_mask_1.png").unlink()
    elif case == "unreadable mask":
        (root / "ds" / "c_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif case == "mask size":
        rect_mask(root / "ds" / "c_mask.png", (10, 8, 20, 18), size=(W + 2, H))
    elif case == "mask label without mask":
        df.loc[2, "mask_path"] = ""
    elif case == "all-zero mask":
        rect_mask(root / "ds" / "c_mask.png", None)
    elif case == "box label without bbox":
        df.loc[2, ["location_label", "bbox"]] = ["box", ""]
    elif case == "unparsable bbox":
        df.loc[2, "bbox"] = "10,8,20,18"
    elif case == "empty bbox":
        df.loc[2, "bbox"] = "10 8 10 18"
    elif case == "bbox outside":
        df.loc[2, "bbox"] = "10 8 20 41"
    elif case == "patient in two splits":
        df.loc[4, "patient_id"] = "p1"
    elif case == "same path in train and test":
        df.loc[4, ["image_path", "mask_path"]] = ["ds/a.png", "ds/a_mask.png"]
    elif case == "same content in val and test":
        (root / "ds" / "e.png").write_bytes((root / "ds" / "d.png").read_bytes())
    return df


CASES = {  # case -> (row, text expected in the message)
    "empty image_id": (1, "empty image_id"),
    "duplicate image_id": (1, "duplicate image_id in rows 1, 4"),
    "unknown label": (2, "unknown label 'normal'"),
    "unknown location_label": (2, "unknown location_label 'points'"),
    "unknown split": (2, "unknown split 'dev'"),
    "missing image": (3, "image ds/c.png not found under"),
    "unreadable image": (3, "ds/c.png cannot be read as an image"),
    "missing mask": (2, "mask ds/b_mask_1.png not found under"),
    "unreadable mask": (3, "ds/c_mask.png cannot be read as an image"),
    "mask size": (3, "mask ds/c_mask.png is 50x40 px but the image is 48x40 px"),
    "mask label without mask": (3, "location_label is 'mask' but mask_path is empty"),
    "all-zero mask": (3, "mask ds/c_mask.png is all zero"),
    "box label without bbox": (3, "location_label is 'box' but bbox is empty"),
    "unparsable bbox": (3, "unparsable bbox"),
    "empty bbox": (3, "bbox 10 8 10 18 is empty"),
    "bbox outside": (3, "bbox 10 8 20 41 lies outside the 48x40 px image"),
    "patient in two splits": (None, "patient_id 'p1' is in several splits: test (row 5) and train (row 1)"),
    "same path in train and test": (None, "image ds/a.png is listed more than once: test (row 5) and train (row 1)"),
    "same content in val and test": (None, "byte-identical images in several splits: ds/d.png, ds/e.png"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_corruption_is_reported_as_an_error(tree, tmp_path, case):
    root, df = tree
    bad = _corrupt(root, df, case)
    path = write_manifest(bad, tmp_path / "bad.csv")
    problems = validate_manifest(path, data_root=root)
    row, text = CASES[case]
    hits = [p for p in problems.errors if text in p.message]
    assert hits, f"no error containing {text!r} in {[str(p) for p in problems]}"
    assert hits[0].manifest == "bad.csv"
    if row is not None:
        assert hits[0].row == row
        assert str(hits[0]).startswith(f"bad.csv row {row} (line {row + 1}, image_id ")


def test_all_problems_are_reported_at_once(tree, tmp_path):
    root, df = tree
    for case in ("unknown label", "missing image", "patient in two splits"):  # rows 2, 3 and 1 + 5
        df = _corrupt(root, df, case)
    rect_mask(root / "ds" / "d_mask.png", (10, 8, 20, 18), size=(W, H + 1))  # row 4
    df.loc[5, "bbox"] = "-1 8 20 18"  # row 6
    problems = validate_manifest(write_manifest(df, tmp_path / "bad.csv"), data_root=root)
    assert [p.row for p in problems.errors] == [None, 2, 3, 4, 6]
    assert problems.n_rows == 6


def test_missing_required_column_is_reported_and_other_checks_still_run(tree, tmp_path):
    root, df = tree
    df = df.drop(columns=["patient_id"])
    df.loc[1, "label"] = "maybe"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    msgs = _messages(validate_manifest(path, data_root=root))
    assert any("missing required column(s) ['patient_id']" in m for m in msgs)
    assert any("unknown label 'maybe'" in m for m in msgs)


def test_unreadable_manifest_and_missing_file(tmp_path):
    problems = validate_manifest(tmp_path / "nope.csv")
    assert len(problems.errors) == 1 and "not found" in problems[0].message and problems.n_rows == 0
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'a,b\n"unclosed,1\n')
    problems = validate_manifest(bad)
    assert len(problems.errors) == 1 and "cannot be parsed as CSV" in problems[0].message


def test_train_val_duplicates_and_near_duplicates_are_warnings(tree, tmp_path):
    root, df = tree
    # a byte-identical copy across train and val: a warning (val is not independent of train)
    (root / "ds" / "d.png").write_bytes((root / "ds" / "a.png").read_bytes())
    # a re-encoded, slightly changed copy of a train image in test: a near-duplicate warning
    a = np.asarray(Image.open(root / "ds" / "a.png")).astype(int)
    Image.fromarray(np.clip(a + 3, 0, 255).astype(np.uint8)).convert("RGB").save(root / "ds" / "f.png")
    problems = validate_manifest(write_manifest(df, tmp_path / "m.csv"), data_root=root)
    assert problems.errors == []
    warnings = _messages(problems, "warning")
    assert any("byte-identical images in several splits: ds/a.png, ds/d.png" in w for w in warnings)
    near = [p for p in problems.warnings if "looks like" in p.message]
    assert len(near) == 2  # f looks like a (train) and like d (val, a byte copy of a)
    assert near[0].row == 6 and "pHash distance 0" in near[0].message and "labelled malignant vs benign" in near[0].message


def test_bbox_that_is_not_the_mask_extent_is_a_warning(tree, tmp_path):
    root, df = tree
    df.loc[0, "bbox"] = "9 8 20 18"
    problems = validate_manifest(write_manifest(df, tmp_path / "m.csv"), data_root=root)
    assert problems.errors == []
    assert [p.message for p in problems.warnings] == ["bbox 9 8 20 18 is not the extent of the mask (10 8 20 18)"]


def test_check_files_false_opens_nothing(tree, tmp_path):
    root, df = tree
    df = _corrupt(root, df, "missing image")
    df = _corrupt(root, df, "unknown label")
    problems = validate_manifest(df, data_root=tmp_path / "does-not-exist", check_files=False)
    assert [p.message for p in problems.errors] == ["unknown label 'normal' (allowed: benign, malignant)"]
    assert problems[0].manifest == "<DataFrame>"


def test_data_root_not_found_is_one_clear_error(tree, tmp_path, monkeypatch):
    _, df = tree
    monkeypatch.delenv("LANET_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path / "nowhere" / "proj")
    problems = validate_manifest(df)
    assert len(problems.errors) == 1
    assert "cannot check the files: no data root holds ds/a.png" in problems[0].message


def test_data_root_discovered_from_env(tree, monkeypatch):
    root, df = tree
    monkeypatch.setenv("LANET_DATA_ROOT", str(root))
    assert list(validate_manifest(df)) == []


def test_cli_lists_problems_and_exits_non_zero(tree, tmp_path, capsys):
    root, df = tree
    good = write_manifest(df, tmp_path / "good.csv")
    assert cli.main(["validate", str(good), "--data-root", str(root)]) == 0
    assert "0 error(s), 0 warning(s) in 6 row(s)" in capsys.readouterr().out
    bad = write_manifest(_corrupt(root, _corrupt(root, df, "unknown label"), "mask size"), tmp_path / "bad.csv")
    assert cli.main(["validate", str(bad), "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "bad.csv row 2 (line 3, image_id 'b'): unknown label 'normal'" in out
    assert "bad.csv row 3 (line 4, image_id 'c'): mask ds/c_mask.png is 50x40 px but the image is 48x40 px" in out
    assert "2 error(s), 0 warning(s) in 6 row(s)" in out
