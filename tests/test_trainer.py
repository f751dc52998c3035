import json

import pandas as pd
import pytest
import torch
import yaml

from lanet_core.config import resolve_config
from lanet_core.errors import BudgetExhausted
from lanet_core.runs import evaluate_run_dir, prepare_run, train_or_load
from lanet_core.training.context import RunContext
from lanet_core.training.stages import plan_stages
from lanet_core.training.trainer import Trainer


def tiny_cfg(phantom_dir, **over):
    cfg = {
        "name": "tiny",
        "data": {"manifest": str(phantom_dir / "manifest.csv"), "root": str(phantom_dir), "image_size": 32},
        "model": {"arch": "lanet", "backbone": "resnet18", "fusion_stride": 8},
        "train": {"preset": "custom", "lr": 1e-3, "batch_size": 8, "stage1_epochs": 2, "stage2_epochs": 2},
        "eval": {"sweep": [0.3, 0.5]},
    }
    for k, v in over.items():
        sec, key = k.split("__")
        cfg.setdefault(sec, {})[key] = v
    return resolve_config(cfg)


def test_stage_plans():
    assert [s.name for s in plan_stages(resolve_config({}))] == ["stage1", "stage2"]
    assert [s.loss for s in plan_stages(resolve_config({"model": {"arch": "classifier"}}))] == ["hybrid"]
    seg = plan_stages(resolve_config({"model": {"arch": "unet"}}))
    assert seg[0].select == "iou" and seg[0].images == "labelled"


def test_train_records_cache_and_determinism(phantom_dir):
    cfg = tiny_cfg(phantom_dir)
    first = train_or_load(cfg)
    d = first.run_dir
    for name in ("config.yaml", "provenance.json", "history.csv", "metrics.json", "per_image.csv", "lesion_maps.npz"):
        assert (d / name).is_file(), name
    assert (d / "checkpoints" / "best.pt").is_file() and not (d / "checkpoints" / "last.pt").exists()
    hist = pd.read_csv(d / "history.csv")
    assert hist["stage"].tolist() == ["stage1", "stage1", "stage2", "stage2"]
    assert hist["selected"].sum() >= 2 and "val_accuracy" in hist and (hist["images_per_s"] > 0).all()
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["packages"]["torch"] and "stage2" in prov["wall_seconds"]
    per = pd.read_csv(d / "per_image.csv")
    assert len(per) == first.test["n_images"] and {"p_malignant", "iou", "iou_box", "pred_box", "iou_t0.3"} <= set(per)
    assert first.metrics["selected"]["selected_on"] == "val"
    assert yaml.safe_load((d / "config.yaml").read_text()) == cfg
    # a finished config returns its cached result
    again = train_or_load(cfg)
    assert again.cached and again.test == first.test
    # the same config and seed train to the same numbers (a separate run directory via another seed, then back)
    other = train_or_load(tiny_cfg(phantom_dir, train__seed=1))
    assert other.run_dir != d
    fresh = train_or_load(cfg, force=True)
    assert not fresh.cached and fresh.test == first.test
    pd.testing.assert_frame_equal(fresh.per_image, per, check_dtype=False)


def test_resume_matches_uninterrupted(phantom_dir, tmp_path):
    cfg = tiny_cfg(phantom_dir, train__seed=5, model__use_sam=False)
    full = train_or_load(cfg)
    ref_per = full.per_image.copy()
    ref_hist = pd.read_csv(full.run_dir / "history.csv")
    resumed_cfg = tiny_cfg(phantom_dir, train__seed=5, model__use_sam=False)
    with pytest.raises(KeyboardInterrupt):  # the same config from scratch in another folder, interrupted in stage 2
        train_or_load(resumed_cfg, stop_after_epochs=3, runs_root=tmp_path)
    run_dir = prepare_run(resumed_cfg, tmp_path)[3]
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert not (run_dir / "metrics.json").exists()
    done = train_or_load(resumed_cfg, runs_root=tmp_path)
    assert done.test == full.test
    pd.testing.assert_frame_equal(done.per_image, ref_per, check_dtype=False)
    hist = pd.read_csv(done.run_dir / "history.csv")
    pd.testing.assert_series_equal(hist["train_loss"], ref_hist["train_loss"])


def test_budget_stops_cleanly(phantom_dir):
    cfg = tiny_cfg(phantom_dir, train__seed=7)
    with pytest.raises(BudgetExhausted):
        train_or_load(cfg, deadline=0.0)  # already passed: stop after the first epoch, progress kept
    _, _, _, run_dir, _ = prepare_run(cfg)
    ck = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ck["epoch"] == 0 and ck["stage_index"] == 0
    assert train_or_load(cfg).test["n_images"] > 0


def test_test_set_selection_is_explicit_and_recorded(phantom_dir):
    cfg = tiny_cfg(phantom_dir, train__select_on="test", train__stage1_epochs=0)
    r = train_or_load(cfg)
    assert r.metrics["selected"]["selected_on"] == "test"
    assert "test_accuracy" in pd.read_csv(r.run_dir / "history.csv")
    assert yaml.safe_load((r.run_dir / "config.yaml").read_text())["train"]["select_on"] == "test"


def test_stage2_init_lanet_only_resets_feature_extractor(phantom_dir):
    cfg = tiny_cfg(phantom_dir, train__stage2_init="lanet")
    _, rows, root, run_dir, _ = prepare_run(cfg)
    ctx = RunContext(cfg, rows, root)
    tr = Trainer(ctx, run_dir)
    model = ctx.build_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    best = {"state": {k: v.clone() for k, v in model.state_dict().items()}}
    out = tr.begin_next_stage(model, best)
    fresh = ctx.build_model()
    assert torch.equal(out.feature_extractor.conv1.weight, fresh.feature_extractor.conv1.weight)
    assert torch.equal(out.lanet.fuse[0].weight, best["state"]["lanet.fuse.0.weight"])


def test_classifier_and_segmenter_through_the_same_machinery(phantom_dir):
    cls = train_or_load(tiny_cfg(phantom_dir, model__arch="classifier", train__stage2_epochs=1))
    assert cls.test["accuracy"] is not None and "iou" not in cls.test
    seg = train_or_load(tiny_cfg(phantom_dir, model__arch="unet", train__stage2_epochs=1))
    assert "accuracy" not in seg.test and seg.test["iou"] is not None


def test_evaluate_run_dir(phantom_dir):
    r = train_or_load(tiny_cfg(phantom_dir, train__seed=2))
    again = evaluate_run_dir(r.run_dir)
    assert again.test == r.test
    val = evaluate_run_dir(r.run_dir, split="val")
    assert val.metrics["split"] == "val"


def test_fit_returns_a_result_the_record_writer_reads(phantom_dir, tmp_path):
    """``Trainer.fit`` returns a ``FitResult``: the selected model (weights of the selected epoch), the history with
    one selection flag per epoch, and the other criterion's epoch for a joint model; the trainer keeps no state."""
    from lanet_core.training.evaluator import evaluate_split
    from lanet_core.training.trainer import FitResult

    cfg = tiny_cfg(phantom_dir, train__seed=7)
    _, rows, root, _, _ = prepare_run(cfg)
    ctx = RunContext(cfg, rows, root)
    fit = Trainer(ctx, tmp_path / "run").fit()
    assert isinstance(fit, FitResult)
    assert [h["stage"] for h in fit.history] == ["stage1", "stage1", "stage2", "stage2"]
    last_flag = max(i for i, h in enumerate(fit.history) if h["stage"] == "stage2" and h["selected"])
    assert fit.selected["epoch"] == fit.history[last_flag]["epoch"] and fit.selected["criterion"] == "accuracy"
    assert set(fit.alternatives) == {"auc+iou"} and fit.selection_rule == "best val accuracy, ties broken by the lower loss"
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(v, best[k]) for k, v in fit.model.state_dict().items())
    assert not hasattr(Trainer(ctx, tmp_path / "x"), "history")  # records live in the result, not the trainer
    per, _, _ = evaluate_split(ctx, fit.model)  # evaluation needs only the context and a model
    assert len(per) == len(ctx.rows_for("test"))


@pytest.mark.parametrize("train_images", ["labelled", "all"])
def test_an_f_run_never_sees_an_unboxed_training_image(phantom_dir, tmp_path, monkeypatch, train_images):
    """Issue 28: an F run (``data.train_images: labelled``) trains, selects and rebuilds its BatchNorm statistics on
    the location-labelled training images only; an s-SSL run (``all``) sees the others too. Every training-split
    row any dataset of the run is built from is recorded (training loaders, stage 1, the BN-rebuild pass)."""
    import lanet_core.models.bn_rebuild as bn_rebuild

    rows = pd.read_csv(phantom_dir / "manifest.csv")
    train = rows.index[rows["split"] == "train"]
    unboxed = set(rows.loc[train[::2], "image_id"])  # every other training image loses its location label
    rows.loc[train[::2], "location_label"] = "none"
    manifest = tmp_path / "manifest.csv"
    rows.to_csv(manifest, index=False)
    cfg = tiny_cfg(phantom_dir, data__manifest=str(manifest), data__train_images=train_images, train__seed=3)
    _, prepared, root, _, _ = prepare_run(cfg)
    ctx = RunContext(cfg, prepared, root)
    seen: list[set[str]] = []
    built = RunContext.dataset

    def recording(self, rows_, train):
        seen.append(set(rows_.loc[rows_["split"] == "train", "image_id"]))
        return built(self, rows_, train=train)

    monkeypatch.setattr(RunContext, "dataset", recording)
    trainer = Trainer(ctx, tmp_path / "run")
    calibrated: list[int] = []

    def fake_rebuild(fex, batches, forward):  # the real one needs BN-folded weights; count what it is fed
        calibrated.append(sum(len(b) for b in batches))
        return 0

    monkeypatch.setattr(bn_rebuild, "rebuild_batchnorm", fake_rebuild)
    model = ctx.build_model()
    monkeypatch.setattr(type(model), "batchnorm_trunk", lambda self: self.feature_extractor, raising=False)
    trainer.rebuild_batchnorm(model)
    n_train = len(train)
    assert calibrated == [n_train - len(unboxed) if train_images == "labelled" else n_train]
    trainer.fit()
    everything = set().union(*seen)
    if train_images == "labelled":
        assert not everything & unboxed, f"an F run saw unboxed training images: {sorted(everything & unboxed)[:3]}"
    else:
        assert unboxed <= everything  # s-SSL trains on them in stage 2
