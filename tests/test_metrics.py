import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from lanet_core import metrics as M
from lanet_core.data.manifest import BBox
from lanet_core.evaluation import Predictions, per_image_records, summary_metrics


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = np.clip(y * 0.4 + rng.random(50) * 0.6, 0, 1)
    pred = (p > 0.5).astype(int)
    m = M.classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision_macro"] == pytest.approx(precision_score(y, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["precision_malignant"] == pytest.approx(precision_score(y, pred))
    assert m["recall_malignant"] == pytest.approx(recall_score(y, pred))
    assert m["specificity_malignant"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    # binary macro recall == macro specificity == balanced accuracy (why the authors' columns coincide)
    assert m["recall_macro"] == pytest.approx(m["specificity_macro"])


def test_hand_computed_confusion():
    y = np.array([1, 1, 1, 0, 0])
    pred = np.array([1, 1, 0, 0, 1])
    r = M.binary_rates(y, pred, 1)
    assert r == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "specificity": 1 / 2, "f1": 4 / 6})


def test_auc_authors():
    y = np.array([0, 0, 1, 1])
    logits = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    assert M.auc_authors(y, logits) == pytest.approx(1.0)
    # not the standard AUC (macro-interpolated per-class curves), but close to it on a noisy case
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = y + rng.normal(0, 1.0, 40)
    a = M.auc_authors(y, np.stack([-s, s], 1))
    assert a != pytest.approx(roc_auc_score(y, s)) and abs(a - roc_auc_score(y, s)) < 0.05


def test_iou_dice_hand_computed():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :3] = True  # 6 px, overlap 4
    iou, dice = M.iou_dice(a, b)
    assert iou == pytest.approx(4 / 6) and dice == pytest.approx(8 / 10)
    assert np.isnan(M.iou_dice(a, np.zeros((4, 4), bool))[0])
    assert M.iou_dice(np.zeros((4, 4), bool), b) == (0.0, 0.0)


def test_largest_component_box():
    m = np.zeros((10, 10), bool)
    m[1:3, 1:3] = True  # 4 px
    m[5:9, 4:7] = True  # 12 px
    assert M.mask_to_box_of_largest_component(m) == BBox(4, 5, 7, 9)
    assert M.mask_to_box_of_largest_component(np.zeros((3, 3), bool)) is None
    assert M.box_map(BBox(4, 5, 7, 9), (10, 10)).sum() == 12


def test_per_image_records_and_summary():
    s = 8
    mask = torch.zeros(2, 1, s, s)
    mask[:, :, 2:6, 2:6] = 1.0
    prob = torch.zeros(2, 1, s, s)
    prob[0, 0, :4, :4] = 0.9  # predicts the top-left quarter (full-resolution map: no upsampling)
    pred = Predictions(
        index=np.array([0, 1]), y_true=np.array([0, 1]),
        logits=np.array([[2.0, 0.0], [0.0, 1.0]]), lesion_prob=prob,
        mask=mask, has_mask=np.array([True, False]), box=mask.clone(), has_box=np.array([False, True]),
    )
    rows = pd.DataFrame({"image_id": ["a", "b"]})
    per = per_image_records(pred, rows, threshold=0.5, sweep=[0.5], align_corners=False)
    assert per["correct"].tolist() == [1, 1]
    assert per.loc[0, "iou"] == pytest.approx(4 / (16 + 16 - 4))  # predicted 4x4 top-left vs GT 4x4 centre
    assert np.isnan(per.loc[1, "iou"]) and per.loc[1, "iou_box"] == 0.0
    summ = summary_metrics(per)
    assert summ["accuracy"] == 1.0 and summ["n_loc_images"] == 1
    assert summ["iou_t0.5"] == pytest.approx(summ["iou"])


def test_summary_of_mixed_records_skips_absent_heads():
    """Per-image frames of classifiers and segmenters concatenated (NaN where a head is absent) re-score cleanly."""
    cls = pd.DataFrame({"image_id": ["a", "b"], "y_true": [0, 1], "y_pred": [0, 1], "p_malignant": [0.2, 0.9],
                        "logit_benign": [1.0, 0.0], "logit_malignant": [0.0, 1.0], "correct": [1, 1]})
    seg = pd.DataFrame({"image_id": ["a", "b"], "y_true": [0, 1], "iou": [0.5, 0.7], "dice": [0.6, 0.8],
                        "iou_box": [np.nan, np.nan], "dice_box": [np.nan, np.nan]})
    both = pd.concat([cls, seg], ignore_index=True)
    assert summary_metrics(both.iloc[2:])["iou"] == pytest.approx(0.6)
    assert "accuracy" not in summary_metrics(both.iloc[2:])
    assert summary_metrics(both.iloc[:2])["accuracy"] == 1.0


def test_one_decision_rule_on_an_exact_tie():
    """Issue 27: two identical logits (p_malignant exactly 0.5) are benign in every place that decides a class."""
    import pandas as pd

    from lanet_core.metrics import decide, decide_logits, decide_or_nan
    from lanet_core.evaluation import per_image_records  # noqa: F401  (the run records use decide_logits)

    logits = np.array([[-0.251953, -0.251953], [0.1, 0.3], [0.3, 0.1]], dtype=np.float32)
    p = torch.softmax(torch.from_numpy(logits), dim=1).numpy()[:, 1]
    assert p[0] == 0.5
    assert decide_logits(logits).tolist() == [0, 1, 0]
    assert decide(p).tolist() == [0, 1, 0]
    assert decide(p).tolist() == logits.argmax(1).tolist()  # argmax's first-maximum rule, the same decision
    out = decide_or_nan(np.array([0.5, np.nan, 0.7]))
    assert out[0] == 0 and np.isnan(out[1]) and out[2] == 1
    m = M.classification_metrics(np.array([0, 1, 0]), p)
    assert m["accuracy"] == 1.0


def test_pooled_cv_decides_a_tie_as_the_run_records_do():
    """The pooled CV table used ``>= 0.5`` (a tie malignant) where the run metrics used argmax (a tie benign)."""
    import pandas as pd

    from lanet_core.study import crossval

    per = pd.DataFrame({"method": ["A", "A"], "seed": [0, 0], "image_id": ["x", "y"], "split": ["test", "test"],
                        "fold": [3, 3], "y_true": [0, 1], "p_malignant": [0.5, 0.9]})

    class FakeResults:
        def per_image(self):
            return per

    oof = crossval.out_of_fold(FakeResults())
    assert oof.set_index("image_id").loc["x", "y_pred"] == 0
    assert oof["correct"].tolist() == [1.0, 1.0]
