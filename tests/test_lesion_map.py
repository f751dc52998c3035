"""Issue 11: oracle ceilings, training targets, the validation-tuned threshold and the selection criteria."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lanet_core.ceilings import oracle_scores
from lanet_core.config import identity, resolve_config
from lanet_core.evaluation import Predictions, tune_threshold
from lanet_core.training.losses import downsample_target
from lanet_core.training.stages import plan_stages


def _mask(size: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., y0:y1, x0:x1] = 1.0
    return m


# ------------------------------------------------------------------ targets on hand-computed cells
def test_targets_hand_computed_cells() -> None:
    # 8x8 image -> 2x2 map (cells of 4x4 pixels); a 2x2 lesion in the top-left cell covers 4 of its 16 pixels
    m = _mask(8, 1, 3, 1, 3)
    area = downsample_target(m, (2, 2), "area")[0, 0]
    mx = downsample_target(m, (2, 2), "max")[0, 0]
    assert torch.allclose(area, torch.tensor([[0.25, 0.0], [0.0, 0.0]]))
    assert torch.equal(mx, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # the small lesion does not vanish
    # a lesion straddling two cells: area splits it, max marks both
    m2 = _mask(8, 0, 4, 3, 5)  # columns 3 (left cell) and 4 (right cell)
    assert torch.allclose(downsample_target(m2, (2, 2), "area")[0, 0], torch.tensor([[0.25, 0.25], [0.0, 0.0]]))
    assert torch.equal(downsample_target(m2, (2, 2), "max")[0, 0], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))


# ------------------------------------------------------------------ oracle ceilings on hand-made masks
def test_oracle_of_a_cell_aligned_lesion_hand_computed() -> None:
    # a lesion that is exactly one 8x8 cell of a 4x4 map on a 32 px image: the target is 1 in that cell, 0
    # elsewhere. align_corners=False upsampling gives pixel (i, j) of the cell the weight wx[i] * wy[j] with
    # w = 1 - |offset from the cell centre| / 8 = 0.5625, 0.6875, 0.8125, 0.9375, 0.9375, ... : the corners drop
    # below 0.5, so even the oracle loses the cell's corners (IoU = pixels above 0.5 / 64)
    w = [0.5625, 0.6875, 0.8125, 0.9375, 0.9375, 0.8125, 0.6875, 0.5625]
    inside = sum(wx * wy > 0.5 for wx in w for wy in w)
    m = _mask(32, 8, 16, 8, 16)
    for target in ("area", "max"):
        s = oracle_scores(m, 4, target, threshold=0.5, align_corners=False)
        assert s.loc[0, "iou"] == pytest.approx(inside / 64) and s.loc[0, "empty"] == 0
    assert inside == 40


def test_oracle_predicts_small_lesions_empty_with_the_area_target() -> None:
    m = _mask(32, 9, 12, 9, 12)  # 3x3 px lesion in an 8x8 cell: area fraction 9/64 < 0.5
    s = oracle_scores(m, 4, "area", threshold=0.5, align_corners=False)
    assert s.loc[0, "empty"] == 1 and s.loc[0, "iou"] == 0.0
    smax = oracle_scores(m, 4, "max", threshold=0.5, align_corners=False)
    assert smax.loc[0, "empty"] == 0
    # the cell's 40 px above 0.5 (see above) are predicted; 8 of the 9 lesion px lie inside them, (9, 9) does
    # not (0.6875^2 < 0.5): IoU = 8 / (40 + 1)
    assert smax.loc[0, "iou"] == pytest.approx(8 / 41)


def test_oracle_finer_map_has_a_higher_ceiling() -> None:
    g = torch.Generator().manual_seed(0)
    masks = []
    for _ in range(6):
        y, x, h, w = (int(v) for v in torch.randint(0, 40, (4,), generator=g))
        masks.append(_mask(64, y, y + 6 + h % 20, x, x + 6 + w % 20))
    masks = torch.cat(masks)
    coarse = oracle_scores(masks, 2, "area", align_corners=False)["iou"].mean()
    fine = oracle_scores(masks, 16, "area", align_corners=False)["iou"].mean()
    assert fine > coarse + 0.2


# ------------------------------------------------------------------ validation-tuned threshold
def _pred(probs: np.ndarray, masks: np.ndarray) -> Predictions:
    n = len(probs)
    return Predictions(
        index=np.arange(n), y_true=np.zeros(n, dtype=int), logits=None,
        lesion_prob=torch.from_numpy(probs[:, None].astype(np.float32)),
        mask=torch.from_numpy(masks[:, None].astype(np.float32)), box=torch.zeros(n, 1, *masks.shape[1:]),
        has_mask=np.ones(n, bool), has_box=np.zeros(n, bool), loss=float("nan"),
    )


def test_tune_threshold_picks_the_iou_maximiser() -> None:
    # one 8x8 image whose map is 0.3 on the lesion, 0.1 elsewhere: any threshold in [0.1, 0.3) is perfect
    mask = np.zeros((1, 8, 8))
    mask[0, 2:6, 2:6] = 1
    prob = np.where(mask > 0, 0.3, 0.1)
    rows = pd.DataFrame({"image_id": ["a"], "label": ["benign"]})
    t = tune_threshold(_pred(prob, mask), rows, align_corners=False)
    assert 0.1 <= t["threshold"] < 0.3 and t["iou"] == pytest.approx(1.0) and t["iou_at_0.5"] == 0.0
    # ties go to the threshold closest to 0.5
    assert t["threshold"] == pytest.approx(0.25)


def _phantom_cfg(**extra):
    cfg = {
        "data": {"manifest": "phantom:n=48,size=64,seed=3", "image_size": 64, "augment": "none"},
        "model": {"backbone": "test_resnet", "fusion_stride": 8, "fusion_resize": "area"},
        "eval": {"align_corners": False},
        "train": {"stage1_epochs": 1, "stage2_epochs": 2, "batch_size": 8, "progress": False},
    }
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v)
    return resolve_config(cfg)


def test_tuned_threshold_never_reads_test_rows(tmp_path, monkeypatch) -> None:
    """Blank every *test* mask: the tuned threshold (validation only) must not move; the test scores must."""
    from lanet_core.data import dataset as dataset_mod
    from lanet_core.runs import train_or_load

    a = train_or_load(_phantom_cfg(), runs_root=tmp_path / "a", keep_last_checkpoint=False)
    orig_get = dataset_mod.LesionDataset.__getitem__

    def blank_test(self, index):
        s = orig_get(self, index)
        if not self.train and self.rows.iloc[index]["split"] == "test" and "mask" in s:
            s["mask"] = torch.zeros_like(s["mask"])
        return s

    monkeypatch.setattr(dataset_mod.LesionDataset, "__getitem__", blank_test)
    b = train_or_load(_phantom_cfg(), runs_root=tmp_path / "b")
    ta, tb = a.metrics["lesion_threshold"], b.metrics["lesion_threshold"]
    assert ta["split"] == "val" and ta == tb
    assert a.test["iou"] != b.test["iou"]  # the blanking did reach the test scores


def test_selection_criteria_recorded_in_the_run(tmp_path) -> None:
    from lanet_core.runs import train_or_load

    r = train_or_load(_phantom_cfg(train={"select_metric": "auc+iou"}), runs_root=tmp_path)
    assert r.metrics["selected"]["criterion"] == "auc+iou"
    alt = r.metrics["selection_alternatives"]
    assert set(alt) == {"accuracy"} and {"accuracy", "auc", "iou", "iou_tuned"} <= set(alt["accuracy"]["test"])
    hist = pd.read_csv(r.run_dir / "history.csv")
    assert "val_auc+iou" in hist and "selected_accuracy" in hist
    # the selected epoch maximises mean(val AUC, val IoU) among stage-2 epochs
    s2 = hist[hist["stage"] == "stage2"]
    best = s2.loc[s2["val_auc+iou"].idxmax(), "epoch"]
    assert r.metrics["selected"]["epoch"] == best
    prov = json.loads((r.run_dir / "provenance.json").read_text())
    assert "auc+iou" in prov["model_selection"]


def test_select_metric_default_keeps_old_identities() -> None:
    a = resolve_config({})
    assert "select_metric" not in identity(a)["train"]  # late key at its neutral value
    b = resolve_config({"train": {"select_metric": "auc+iou"}})
    assert identity(b)["train"]["select_metric"] == "auc+iou"
    assert plan_stages(b)[-1].select == "auc+iou" and plan_stages(b)[-1].also_track == ("accuracy",)
    assert plan_stages(resolve_config({"model": {"arch": "classifier"}}))[-1].also_track == ()


def test_split_masks_reads_every_test_row_with_a_mask_whatever_its_location_label(phantom_dir, tmp_path) -> None:
    """The oracle ceiling is taken over the rows the evaluation scores ``iou`` on: those with a mask file, whatever
    their label (``mask``, ``box`` as on BUS-BRA's test rows, or ``none``; the BUS-BRA ceiling was NaN when only
    ``mask`` rows were read); a row without a mask file is left out, and ``with_boxes`` gives the filled boxes."""
    from lanet_core.ceilings import split_masks

    rows = pd.read_csv(phantom_dir / "manifest.csv", dtype=str, keep_default_na=False)
    test = rows.index[rows["split"] == "test"]
    assert len(test) >= 4 and (rows.loc[test, "location_label"] == "mask").all()
    rows.loc[test[1], "location_label"] = "none"  # no location for training, its mask still on disk for scoring
    rows.loc[test[2:-1], "location_label"] = "box"  # boxes for training, masks still on disk for scoring
    rows.loc[test[-1], ["mask_path", "location_label"]] = ["", "box"]  # a test row with a box only
    path = tmp_path / "boxed.csv"
    rows.to_csv(path, index=False)
    masks, ids = split_masks(str(path), 32, "test", root=str(phantom_dir))
    assert ids == rows.loc[test[:-1], "image_id"].tolist()
    assert masks.shape == (len(test) - 1, 1, 32, 32) and float(masks.amax()) == 1.0
    masks2, boxes, ids2 = split_masks(str(path), 32, "test", root=str(phantom_dir), with_boxes=True)
    assert ids2 == ids and torch.equal(masks2, masks)
    # a filled box covers its lesion: at least the mask, and more than it on some image
    assert bool((boxes >= masks - 1e-6).all()) and float(boxes.sum()) > float(masks.sum())


def test_box_trained_runs_get_the_ceiling_of_their_box_target(phantom_dir, tmp_path, monkeypatch) -> None:
    """A run that trains on boxes (every located training row a box, as on BUS-BRA) is read against the oracle of
    its box target, which a fine map reaches less well than the mask oracle (a box covers more than the lesion);
    a run on masks keeps the mask oracle (every committed BUSI ceiling)."""
    from lanet_core.ceilings import oracle_scores, split_masks
    from lanet_core.study.records import _ceiling, training_location

    rows = pd.read_csv(phantom_dir / "manifest.csv", dtype=str, keep_default_na=False)
    assert training_location(rows) == "mask"
    boxed = rows.assign(location_label=np.where(rows["split"] == "train", "box", rows["location_label"]))
    boxed.loc[boxed.index[rows["split"] == "train"][:3], "location_label"] = "none"  # unboxed images (s-SSL)
    assert training_location(boxed) == "box"
    paths = {}
    for name, df in (("masks", rows), ("boxes", boxed)):
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    masks, boxes, _ = split_masks(str(paths["boxes"]), 64, "test", root=str(phantom_dir), with_boxes=True)
    want_box = float(oracle_scores(masks, 16, "area", align_corners=False, source=boxes)["iou"].mean())
    want_mask = float(oracle_scores(masks, 16, "area", align_corners=False)["iou"].mean())
    assert want_box < want_mask
    monkeypatch.setenv("LANET_DATA_ROOT", str(phantom_dir))  # the runs' data root is "auto"
    for name, want in (("boxes", want_box), ("masks", want_mask)):
        got = _ceiling(str(paths[name]), 64, 16, "area", False, 0.5, "squash")
        assert got == pytest.approx(want, abs=1e-9), name
