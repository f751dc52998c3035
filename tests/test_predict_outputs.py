"""Issue 30: applying a model, correct on every input. Overlays drawn from the CSV's box at the original resolution,
outputs mapped back exactly through the resize policy, every image mode read or refused with its reason (16-bit,
palette, RGBA, TIFF, DICOM), skipped.csv, the ONNX and PyTorch paths writing identical files, the model card, the
README recipe (train a committed config into another results folder -> export -> predict), and the noise."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lanet_core.config import resolve_config
from lanet_core.errors import DataError

CFG = {  # tests/test_security.py's tiny run, with a finer lesion map (8x8 at 64 px) so outlines have a shape
    "data": {"manifest": "phantom:n=24,size=64,seed=11", "image_size": 64, "augment": "none"},
    "model": {"backbone": "test_resnet", "fusion_stride": 8, "fusion_resize": "area"},
    "train": {"stage1_epochs": 1, "stage2_epochs": 1, "batch_size": 8, "progress": False, "amp": False},
}
CYAN = (0, 224, 255)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny float32 run (phantoms, 2 epochs): float32 so that its ONNX export computes the same function."""
    from lanet_core.runs import train_or_load

    return train_or_load(resolve_config(CFG), runs_root=tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def gray_scan(finished_run) -> np.ndarray:
    """A 150x100 grayscale uint8 image made from a phantom (non-square, larger than the network's 64 px)."""
    from lanet_core.data.sources import load_manifest

    rows, _, root = load_manifest(CFG["data"]["manifest"])
    img = Image.open(Path(root) / rows["image_path"].iat[0]).convert("L")
    return np.asarray(img.resize((150, 100), Image.Resampling.BILINEAR))


def write_dicom(path: Path, arr: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 8, frames: int = 1) -> None:
    """A minimal uncompressed ultrasound DICOM file written with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    colour = photometric == "RGB"
    shape = arr.shape[1:] if frames > 1 else arr.shape
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = arr.astype(np.uint8 if bits <= 8 else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


# ---------------------------------------------------------------------------------------------------- a model stub


class SquareStub:
    """A predictor whose lesion map is a known square in model space (logit +10 inside, -10 outside) and whose
    class logits are fixed: what predict does with it depends on the mapping back only."""

    def __init__(self, size: int, rows: slice, cols: slice, resize: str = "squash", threshold: float = 0.5):
        self.card = {"image_size": size, "resize": resize, "normalize": "half", "outputs": ["class_logits", "lesion_logits"],
                     "lesion_threshold": threshold, "align_corners": False}
        self.size, self.rows, self.cols = size, rows, cols
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, images: torch.Tensor):
        self.seen.append(tuple(images.shape))
        n = images.shape[0]
        lesion = np.full((n, 1, self.size, self.size), -10.0, dtype=np.float32)
        lesion[:, :, self.rows, self.cols] = 10.0
        return np.tile(np.array([[0.0, 1.0]], dtype=np.float32), (n, 1)), lesion


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _box_ring(x1: int, y1: int, x2: int, y2: int) -> list[tuple[int, int]]:
    """(x, y) of a box's edge pixels, x2/y2 exclusive: the rectangle x1..x2-1, y1..y2-1."""
    xs, ys = range(x1, x2), range(y1, y2)
    return sorted({(x, y1) for x in xs} | {(x, y2 - 1) for x in xs} | {(x1, y) for y in ys} | {(x2 - 1, y) for y in ys})


# ---------------------------------------------------------------------------------------------------- geometry


def test_outputs_are_mapped_back_exactly_to_the_original_image(tmp_path) -> None:
    """A 256x128 image with a 64x64 lesion at x 64..128, y 32..96, squashed to 64 px (x / 4, y / 2): in model space
    the lesion is rows 16:48, cols 16:32, the stub's map. Back in the original it is that square exactly: box,
    4096 px, 1/8 of the image, the mask PNG. Original pixel x samples the map at (x + 0.5) / 4 - 0.5, so the
    square's edge pixels are 0.625 (x) and 0.75 (y) inside and the pixels beyond them 0.375 and 0.25: at a threshold
    between 0.375 and 0.625 x 0.75 = 0.47 the square comes back whole (at 0.5 bilinear interpolation rounds off its
    four corner pixels, checked too)."""
    from lanet_core.inference import predict_images

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((128, 256), 90, dtype=np.uint8)).save(src / "wide.png")
    at_half = predict_images(SquareStub(64, slice(16, 48), slice(16, 32)), src, tmp_path / "half")
    assert at_half["lesion_area_px"].iat[0] == 64 * 64 - 4
    assert at_half.loc[0, ["box_x1", "box_y1", "box_x2", "box_y2"]].tolist() == [64, 32, 128, 96]
    stub = SquareStub(64, slice(16, 48), slice(16, 32), threshold=0.4)
    df = predict_images(stub, src, tmp_path / "out")
    assert stub.seen == [(1, 3, 64, 64)]
    r = df.iloc[0]
    assert (r["image_width"], r["image_height"]) == (256, 128)
    assert (r["box_x1"], r["box_y1"], r["box_x2"], r["box_y2"]) == (64, 32, 128, 96)
    assert r["lesion_area_px"] == 64 * 64 and r["lesion_area_fraction"] == pytest.approx(0.125)
    assert (r["seen_x1"], r["seen_y1"], r["seen_x2"], r["seen_y2"]) == (0, 0, 256, 128)
    assert r["predicted"] == "malignant" and r["p_malignant"] == pytest.approx(0.7311, abs=1e-4)
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "wide.png"))
    expected = np.zeros((128, 256), dtype=np.uint8)
    expected[32:96, 64:128] = 255
    assert mask.shape == (128, 256) and (mask == expected).all()
    csv = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert csv.loc[0, ["box_x1", "box_y1", "box_x2", "box_y2", "lesion_area_px"]].tolist() == [64, 32, 128, 96, 4096]


def test_shorter_side_crop_maps_back_through_the_crop_and_leaves_the_unseen_part_out(tmp_path) -> None:
    """256x128 under shorter_side_crop at 64 px: resized to 128x64, centre crop x 32..96, i.e. original x 64..192
    seen. The model's square rows 16:48, cols 0:8 (touching the crop's left edge) is original x 64..80, y 32..96;
    nothing left of x 64 (never seen) is lesion, and the overlay dims it."""
    from lanet_core.inference import predict_images

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((128, 256), 200, dtype=np.uint8)).save(src / "wide.png")
    df = predict_images(SquareStub(64, slice(16, 48), slice(0, 8), resize="shorter_side_crop"), src, tmp_path / "out")
    r = df.iloc[0]
    assert (r["seen_x1"], r["seen_y1"], r["seen_x2"], r["seen_y2"]) == (64, 0, 192, 128)
    assert (r["box_x1"], r["box_y1"], r["box_x2"], r["box_y2"]) == (64, 32, 80, 96) and r["lesion_area_px"] == 16 * 64
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "wide.png"))
    assert not mask[:, :64].any() and not mask[:, 192:].any()
    over = _png(tmp_path / "out" / "overlays" / "wide.png")
    assert tuple(over[5, 10]) == (100, 100, 100)  # outside the crop: dimmed to half
    assert tuple(over[5, 120]) == (200, 200, 200)  # seen, not on any outline: the input pixel itself


def test_the_overlay_box_is_the_csv_box_at_the_original_resolution(tmp_path) -> None:
    """The overlay's pixel (x, y) is the input's (x, y); the cyan ring is exactly the CSV box's edge pixels
    x1..x2-1, y1..y2-1 (drawn as x, y, w, h the old overlay put the box elsewhere, on a figure of another size)."""
    from lanet_core.inference import predict_images

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(20, 120, (100, 160), dtype=np.uint8)  # 160 x 100: x / 2.5, y / 1.5625 at 64 px
    Image.fromarray(image).save(src / "scan.png")
    df = predict_images(SquareStub(64, slice(9, 41), slice(32, 56)), src, tmp_path / "out")
    r = df.iloc[0]
    x1, y1, x2, y2 = (int(r[c]) for c in ("box_x1", "box_y1", "box_x2", "box_y2"))
    # original pixel x samples the model map at (x + 0.5) * 64 / 160 - 0.5: x 80..139 fall nearer columns 32..55
    # than 31 or 56; rows: (y + 0.5) * 0.64 - 0.5, y 14..63 for rows 9..40
    assert (x1, y1, x2, y2) == (80, 14, 140, 64)
    over = _png(tmp_path / "out" / r["overlay"])
    assert over.shape[1] >= 160 and over.shape[0] > 100  # the image, then the caption strip below it (never on it)
    ring = _box_ring(x1, y1, x2, y2)
    assert all(tuple(over[y, x]) == CYAN for x, y in ring)
    inside_ring = set(_box_ring(x1 - 1, y1 - 1, x2 + 1, y2 + 1))  # one pixel outside the box: never cyan
    assert not any(tuple(over[y, x]) == CYAN for x, y in inside_ring)
    # everywhere off the outlines the overlay is the input image itself
    mask = np.asarray(Image.open(tmp_path / "out" / r["mask"])) > 0
    drawn = np.zeros_like(mask)
    for x, y in ring:
        drawn[y, x] = True
    untouched = ~mask & ~drawn
    assert (over[:100, :160][untouched] == np.repeat(image[..., None], 3, axis=2)[untouched]).all()
    caption = over[100:]
    assert caption.max() == 255 and caption.mean() < 128  # white-ish text on black below the image


# ---------------------------------------------------------------------------------------------------- image modes


def test_every_image_mode_reads_to_the_same_pixels_or_is_refused(tmp_path, gray_scan) -> None:
    from lanet_core.data.images import read_image

    v = gray_scan
    rgb = np.repeat(v[..., None], 3, axis=2)
    files = {
        "gray8.png": Image.fromarray(v),
        "gray16.png": Image.fromarray(v.astype(np.uint16) * 257),  # I;16: the full 16-bit range
        "gray16.tif": Image.fromarray(v.astype(np.uint16) * 257),
        "rgb.png": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full_like(v, 255)])),
        "la.png": Image.fromarray(v).convert("LA"),
        "palette.png": Image.fromarray(v).convert("P"),  # a gray palette: exact
        "gray.tif": Image.fromarray(v),
        "gray.bmp": Image.fromarray(v),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
    for name in files:
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint8 and (got == rgb).all(), name
    Image.fromarray(v).save(tmp_path / "gray.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "gray.jpg").astype(int) - rgb).max() < 16  # lossy, but the same image
    # a 16-bit image not of the form v * 257: rounded by the full range, x / 257
    Image.fromarray(np.array([[0, 128, 129, 32768, 65535]], dtype=np.uint16)).save(tmp_path / "ramp16.png")
    assert read_image(tmp_path / "ramp16.png")[0, :, 0].tolist() == [0, 0, 1, 128, 255]
    # refused, each with its reason
    Image.fromarray(np.random.default_rng(0).random((20, 20)).astype(np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.arange(400, dtype=np.int32).reshape(20, 20)).save(tmp_path / "int32.tif")
    Image.fromarray(v).save(tmp_path / "pages.tif", save_all=True, append_images=[Image.fromarray(v)] * 2)
    for name, why in (("float.tif", "floating-point pixels"), ("int32.tif", "32-bit integer pixels"),
                      ("pages.tif", "holds 3 frames")):
        with pytest.raises(DataError, match=why):
            read_image(tmp_path / name)


def test_dicom_single_frame_is_read_and_multi_frame_refused(tmp_path, gray_scan) -> None:
    pytest.importorskip("pydicom")
    from lanet_core.data.images import image_size, is_dicom, read_image

    v = gray_scan
    rgb = np.repeat(v[..., None], 3, axis=2)
    write_dicom(tmp_path / "us.dcm", v)
    write_dicom(tmp_path / "no_suffix", v)  # DICOM files often have no suffix: the DICM marker tells
    write_dicom(tmp_path / "us12.dcm", (v.astype(np.int64) * 4095 + 127) // 255, bits=12)
    write_dicom(tmp_path / "mono1.dcm", 255 - v, photometric="MONOCHROME1")
    write_dicom(tmp_path / "colour.dcm", rgb, photometric="RGB")
    write_dicom(tmp_path / "cine.dcm", np.stack([v] * 5), frames=5)
    assert is_dicom(tmp_path / "no_suffix") and image_size(tmp_path / "us.dcm") == (150, 100)
    for name in ("us.dcm", "no_suffix", "us12.dcm", "mono1.dcm", "colour.dcm"):
        assert (read_image(tmp_path / name) == rgb).all(), name
    with pytest.raises(DataError, match=r"multi-frame DICOM \(5 frames"):
        read_image(tmp_path / "cine.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(DataError, match="cannot be read as DICOM"):
        read_image(tmp_path / "junk.dcm")


def test_a_16bit_png_predicts_exactly_as_its_8bit_version(tmp_path, finished_run, gray_scan) -> None:
    """The same pixels as 8-bit PNG, 16-bit PNG (v * 257), 16-bit TIFF, palette PNG, RGBA PNG and (with pydicom)
    DICOM: identical predictions, identical mask and overlay files. Issue 30 found p_malignant 0.195 vs 0.0078
    and a lesion over 99.9 % of the 16-bit image."""
    from lanet_core.inference import predict_images

    src = tmp_path / "in"
    src.mkdir()
    v = gray_scan
    Image.fromarray(v).save(src / "a_gray8.png")
    Image.fromarray(v.astype(np.uint16) * 257).save(src / "b_gray16.png")
    Image.fromarray(v.astype(np.uint16) * 257).save(src / "c_gray16.tif")
    Image.fromarray(v).convert("P").save(src / "d_palette.png")
    Image.fromarray(np.dstack([np.repeat(v[..., None], 3, axis=2), np.full_like(v, 255)])).save(src / "e_rgba.png")
    try:
        write_dicom(src / "f_dicom.dcm", v)
    except ImportError:
        pass
    df = predict_images(finished_run.run_dir, src, tmp_path / "out")
    assert df["image_id"].iat[0] == "a_gray8" and len(df) >= 5
    cols = [c for c in df.columns if c not in ("image_id", "image_path", "overlay", "mask")]
    ref = df.iloc[0][cols]
    for i in range(1, len(df)):
        assert df.iloc[i][cols].equals(ref), df["image_id"].iat[i]
        for kind in ("overlay", "mask"):
            assert (tmp_path / "out" / df[kind].iat[i]).read_bytes() == (tmp_path / "out" / df[kind].iat[0]).read_bytes()


# ---------------------------------------------------------------------------------------------------- skipped.csv


def test_every_input_not_predicted_is_in_skipped_csv_and_counted(tmp_path, finished_run, gray_scan, capsys) -> None:
    from lanet_core import cli

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(gray_scan).save(src / "good.png")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG truncated")
    Image.fromarray(np.zeros((8, 8), np.float32)).save(src / "float.tif")
    Image.fromarray(gray_scan).save(src / "good_mask.png")
    (src / "sub").mkdir()
    out = tmp_path / "out"
    assert cli.main(["predict", str(finished_run.run_dir), str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 image(s) predicted" in printed and "5 input(s) skipped" in printed and "skipped.csv" in printed
    skipped = pd.read_csv(out / "skipped.csv").set_index("file")["reason"]
    reasons = {Path(f).name: r for f, r in skipped.items()}
    assert set(reasons) == {"notes.txt", "broken.png", "float.tif", "good_mask.png", "sub"}
    assert "not an image file" in reasons["notes.txt"] and "cannot be read as an image" in reasons["broken.png"]
    assert "floating-point" in reasons["float.tif"] and "mask" in reasons["good_mask.png"]
    assert "sub-folders" in reasons["sub"]
    assert pd.read_csv(out / "predictions.csv")["image_id"].tolist() == ["good"]
    # nothing readable: an error naming the reasons, skipped.csv still written
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"nope")
    assert cli.main(["predict", str(finished_run.run_dir), str(bad), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "no image could be predicted" in err and "broken.png" in err
    assert pd.read_csv(tmp_path / "o2" / "skipped.csv")["file"].map(lambda f: Path(f).name).tolist() == ["broken.png"]


# ---------------------------------------------------------------------------------------------------- ONNX == PyTorch


def test_onnx_and_pytorch_paths_write_identical_files(tmp_path, finished_run, gray_scan) -> None:
    """On a float32 run the two paths' outputs differ by ~1e-6; probabilities are written to 4 decimals and the
    masks are thresholded from the same mapping, so every file is byte-identical (checked here, not assumed)."""
    from lanet_core.data.sources import load_manifest
    from lanet_core.inference import export_onnx, predict_images

    rows, _, root = load_manifest(CFG["data"]["manifest"])
    src = tmp_path / "in"
    src.mkdir()
    for i, (w, h) in enumerate([(150, 100), (64, 64), (97, 180), (300, 211)]):
        img = Image.open(Path(root) / rows["image_path"].iat[i]).convert("L").resize((w, h), Image.Resampling.BILINEAR)
        img.save(src / f"img{i}.png")
    Image.fromarray(gray_scan).convert("RGB").save(src / "img_rgb.jpg", quality=90)
    onnx = export_onnx(finished_run.run_dir, tmp_path / "export")
    predict_images(finished_run.run_dir, src, tmp_path / "torch")
    predict_images(onnx, src, tmp_path / "onnx")
    files = sorted(p.relative_to(tmp_path / "torch") for p in (tmp_path / "torch").rglob("*") if p.is_file())
    assert len(files) == 1 + 1 + 2 * 5  # predictions.csv, skipped.csv, an overlay and a mask per image
    assert files == sorted(p.relative_to(tmp_path / "onnx") for p in (tmp_path / "onnx").rglob("*") if p.is_file())
    different = [str(f) for f in files if (tmp_path / "torch" / f).read_bytes() != (tmp_path / "onnx" / f).read_bytes()]
    assert different == []


# ---------------------------------------------------------------------------------------------------- the recipe


def test_readme_recipe_from_a_fresh_clone(tmp_path, monkeypatch, capsys, caplog) -> None:
    """README 'Applying a trained model' on phantom data, through the CLI: a committed run record without its
    checkpoint (as in a fresh clone) -> `lanet train` says how to get one -> the config trained into another
    results folder (LANET_RESULTS_DIR), the committed record untouched -> export (model card) -> predict."""
    from lanet_core import cli
    from lanet_core.inference import CARD_KEYS, read_model_card

    cfg_file = tmp_path / "phantom.yaml"
    cfg_file.write_text(json.dumps({"name": "recipe", **CFG}))  # JSON is YAML
    committed, retrained = tmp_path / "results", tmp_path / "retrained"
    monkeypatch.setenv("LANET_RESULTS_DIR", str(committed))
    assert cli.main(["train", str(cfg_file)]) == 0
    run = next((committed / "runs").iterdir())
    shutil.rmtree(run / "checkpoints")  # what a clone has: the records, no checkpoint
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()

    # step 0, what the README used to say: the cached record, no checkpoint -> the command says what to do
    assert cli.main(["train", str(run / "config.yaml")]) == 0
    said = capsys.readouterr().out
    assert "reused" in said and "no checkpoint" in said and "LANET_RESULTS_DIR=" in said
    assert cli.main(["export", str(run)]) == 2

    # step 1: train the committed config into another results folder
    monkeypatch.setenv("LANET_RESULTS_DIR", str(retrained))
    assert cli.main(["train", str(run / "config.yaml")]) == 0
    new = retrained / "runs" / run.name  # the same identity
    assert (new / "checkpoints" / "best.pt").is_file()
    assert json.loads((new / "metrics.json").read_text())["test"] == json.loads(before["metrics.json"])["test"]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # the record untouched

    # step 2: export, quietly, with a model card
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cli.main(["export", str(new)]) == 0
    assert not [r for r in caplog.records if r.name.startswith(("onnx_ir", "onnxscript", "torch.onnx"))]
    export = new / "export"
    card = json.loads((export / "model.json").read_text())
    assert set(CARD_KEYS) <= set(card) and read_model_card(export / "model.json")["image_size"] == 64
    facts = card["card"]
    test = json.loads((new / "metrics.json").read_text())["test"]
    acc = facts["test_metrics"]["metrics"]["accuracy"]
    assert acc["value"] == pytest.approx(test["accuracy"]) and acc["ci95"][0] <= acc["value"] <= acc["ci95"][1]
    assert facts["test_metrics"]["metrics"]["auc"]["value"] == pytest.approx(test["auc"])
    assert facts["data"]["splits"]["test"]["images"] == test["n_images"]
    assert facts["training"]["git_commit"] == json.loads((new / "provenance.json").read_text())["git_commit"]
    md = (export / "model_card.md").read_text()
    for needed in ("Research only", "not for diagnosis", "95 % CI", "Known limitations", "lesion threshold",
                   facts["training"]["git_commit"], "precision"):
        assert needed in md, needed

    # step 3: predict a folder with the exported model
    src = tmp_path / "my_images"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)).save(src / "a.png")
    (src / "readme.txt").write_text("x")
    capsys.readouterr()
    assert cli.main(["predict", str(export / "model.onnx"), str(src), "--out", str(tmp_path / "predictions")]) == 0
    said = capsys.readouterr().out
    assert "1 image(s) predicted" in said and "1 input(s) skipped" in said
    pred = pd.read_csv(tmp_path / "predictions" / "predictions.csv")
    assert pred.loc[0, ["image_width", "image_height"]].tolist() == [120, 90]
    assert Image.open(tmp_path / "predictions" / "masks" / "a.png").size == (120, 90)


# ---------------------------------------------------------------------------------------------------- noise


def test_near_duplicate_warnings_are_one_line_naming_the_full_list(tmp_path, monkeypatch, caplog) -> None:
    from lanet_core.data.validate import ensure_manifest_valid

    monkeypatch.setenv("LANET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "d").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        img = (rng.random((48, 48)) * 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "d" / f"tr{i}.png")
        rows.append((f"tr{i}", f"d/tr{i}.png", "train", "benign" if i % 2 else "malignant"))
        if i < 3:  # a slightly brighter copy in test: a near-duplicate
            Image.fromarray(np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8)).save(tmp_path / "d" / f"te{i}.png")
            rows.append((f"te{i}", f"d/te{i}.png", "test", "benign" if i % 2 else "malignant"))
    man = tmp_path / "m.csv"
    pd.DataFrame([{"image_id": a, "dataset": "x", "image_path": p, "mask_path": "", "bbox": "", "location_label": "none",
                   "label": lab, "patient_id": a, "split": s} for a, p, s, lab in rows]).to_csv(man, index=False)
    with caplog.at_level(logging.WARNING):
        ensure_manifest_valid(man, tmp_path)
    lines = [r.getMessage() for r in caplog.records if "look" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "3 test image(s) look like" in lines[0] and f"lanet validate {man}" in lines[0]
