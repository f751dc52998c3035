"""Issue 29 item 1: one policy on same-scan opposite-label twins."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lanet_core.data.conflicts import conflict_exposure, find_label_conflicts, label_conflict_ids, read_label_conflicts


def test_find_label_conflicts_pairs_only_opposite_labels_within_the_threshold() -> None:
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2, (4, 64)).astype(bool)
    h[1] = h[0]
    h[1, :3] = ~h[1, :3]  # 3 bits from image 0
    h[2] = h[0]  # identical hash, same label as 0: not a conflict
    pairs = find_label_conflicts(["a", "b", "c", "d"], ["benign", "malignant", "benign", "malignant"], h, 6)
    assert sorted(map(tuple, pairs[["image_id", "twin_id"]].to_numpy())) == [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")]
    assert set(pairs["distance"]) == {3}


def test_committed_conflicts_cover_both_known_pairs_and_cv_scoring_leaves_them_out() -> None:
    ids = label_conflict_ids()
    assert {"malignant (145)", "benign (433)", "malignant (77)", "benign (333)"} <= ids
    conf = read_label_conflicts()
    assert len(conf) % 2 == 0  # every pair listed from both sides

    from lanet_core.study import crossval

    per = pd.DataFrame({"image_id": ["malignant (77)", "benign (1)"], "split": ["test", "test"], "method": "A",
                        "seed": 0, "fold": 3, "y_true": [1, 0], "p_malignant": [0.2, 0.1]})

    class Res:
        def per_image(self):
            return per

    assert list(crossval.out_of_fold(Res())["image_id"]) == ["benign (1)"]
    assert len(crossval.out_of_fold(Res(), exclude=())) == 2


def test_conflict_exposure_reports_where_each_pair_sits() -> None:
    conf = pd.DataFrame({"image_id": ["x", "y"], "twin_id": ["y", "x"]})
    rows = pd.DataFrame({"image_id": ["x", "y"], "split": ["train", "test"]})
    out = conflict_exposure(rows, conf)
    assert out.to_dict("records") == [{"pair": "x / y", "split_a": "train", "split_b": "test", "trained_with": True}]
