"""ONNX export parity, predict == evaluate, and predict's error messages (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lanet_core.config import resolve_config
from lanet_core.errors import ConfigError, DataError

pytest.importorskip("onnxruntime")


def _train(tmp_path, amp="auto", **model):
    from lanet_core.runs import train_or_load

    cfg = resolve_config({
        "data": {"manifest": "phantom:n=32,size=64,seed=5", "image_size": 64, "augment": "none"},
        "model": {"backbone": "test_resnet", **model},
        "train": {"stage1_epochs": 1, "stage2_epochs": 1, "batch_size": 8, "progress": False, "amp": amp},
    })
    return train_or_load(cfg, runs_root=tmp_path / "runs")


@pytest.mark.parametrize("model", [{"fusion_stride": 32}, {"fusion_stride": 8, "fusion_resize": "area"},
                                   {"arch": "classifier"}, {"arch": "unet"}],
                         ids=["lanet-s32", "lanet-fine-s8", "classifier", "unet"])
def test_onnx_export_matches_pytorch(tmp_path, model) -> None:
    import onnxruntime as ort

    from lanet_core.inference import export_onnx, load_run_model

    run = _train(tmp_path, **model)
    path = export_onnx(run.run_dir, tmp_path / "export")
    card = json.loads((tmp_path / "export" / "model.json").read_text())
    torch_model, _, _ = load_run_model(run.run_dir)
    x = torch.randn(5, 3, 64, 64)  # a batch size other than the export's: the batch axis is dynamic
    with torch.no_grad():
        out = torch_model(x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(card["outputs"], sess.run(None, {"image": x.numpy()})))
    if out.logits is not None:
        assert np.abs(got["class_logits"] - out.logits.numpy()).max() < 1e-4
    if out.lesion_logits is not None:
        assert np.abs(1 / (1 + np.exp(-got["lesion_logits"])) - torch.sigmoid(out.lesion_logits).numpy()).max() < 1e-4
    assert card["image_size"] == 64 and card["lesion_threshold_source"] in ("validation-tuned", "eval.threshold")


def test_predict_equals_evaluate_on_the_same_images(tmp_path) -> None:
    from lanet_core.data.sources import load_manifest
    from lanet_core.inference import export_onnx, predict_images

    # float32 so that the ONNX model (always float32) can be held to 1e-4 as well; `predict` uses the run's own
    # precision either way (bf16 where native), which is what makes it equal to `evaluate`
    run = _train(tmp_path, amp=False, fusion_stride=8, fusion_resize="area")
    per = pd.read_csv(run.run_dir / "per_image.csv")
    rows, mpath, root = load_manifest(run.config["data"]["manifest"])
    test = rows[rows["split"] == "test"]
    man = tmp_path / "test_only.csv"
    test.assign(image_path=[str(root / p) for p in test["image_path"]],
                mask_path=[str(root / p) if p else "" for p in test["mask_path"]]).to_csv(man, index=False)
    got = predict_images(run.run_dir, man, tmp_path / "pred")
    merged = per.merge(got, on="image_id", suffixes=("_eval", "_pred"))
    assert len(merged) == len(per) == len(test)
    # predictions.csv holds probabilities to 4 decimals (inference.PROB_DECIMALS); the decisions are equal
    assert np.allclose(merged["p_malignant_eval"], merged["p_malignant_pred"], atol=5e-5 + 1e-6)
    assert (merged["predicted"] == merged["y_pred"].map({0: "benign", 1: "malignant"})).all()
    onnx = predict_images(export_onnx(run.run_dir, tmp_path / "export"), man, tmp_path / "pred_onnx", overlays=False)
    assert np.allclose(onnx["p_malignant"], got["p_malignant"], atol=1e-4)
    assert (tmp_path / "pred" / "overlays" / f"{got['image_id'].iat[0]}.png").is_file()
    assert "overlay" not in onnx and (tmp_path / "pred_onnx" / onnx["mask"].iat[0]).is_file()
    assert {"p_benign", "p_malignant", "predicted", "image_width", "image_height", "lesion_area_px",
            "lesion_area_fraction", "box_x1", "box_y1", "box_x2", "box_y2"} <= set(got.columns)


def test_predict_errors_name_the_file(tmp_path) -> None:
    from lanet_core.inference import predict_images

    run = _train(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        predict_images(run.run_dir, tmp_path / "nope.png", tmp_path / "o")
    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no image could be predicted.*broken.png"):
        predict_images(run.run_dir, bad, tmp_path / "o")
    with pytest.raises(DataError, match="broken.png: .*cannot be read as an image"):
        predict_images(run.run_dir, bad / "broken.png", tmp_path / "o")
    with pytest.raises(ConfigError, match="not a run directory"):
        predict_images(tmp_path, bad, tmp_path / "o")
    (run.run_dir / "checkpoints" / "best.pt").write_bytes(b"trunc")
    with pytest.raises(ConfigError, match="best.pt: unreadable checkpoint"):
        predict_images(run.run_dir, bad, tmp_path / "o")


def test_int8_check_scores_fp32_and_int8_on_the_test_split(tmp_path) -> None:
    from lanet_core.inference import int8_check

    run = _train(tmp_path, amp=False, fusion_stride=8, fusion_resize="area")
    df = int8_check(run.run_dir, tmp_path / "export", calibration_images=8, threads=1)
    assert list(df["model"]) == ["onnx fp32", "onnx int8 (QDQ)"] and (tmp_path / "export" / "int8_check.csv").is_file()
    fp32 = df.iloc[0]
    # the float32 export reproduces the run's own test numbers (its tuned threshold, float32 training)
    assert fp32["accuracy"] == pytest.approx(run.test["accuracy"])
    assert fp32["auc"] == pytest.approx(run.test["auc"], abs=1e-6)
    assert np.isfinite(df["iou"]).all() and (df["images_per_s"] > 0).all()
