"""Issue 28: the partly-labelled experiment over BUS-BRA's official folds, as the cpu profile declares it."""

from __future__ import annotations

import pandas as pd

from lanet_core.paths import project_root
from lanet_core.study.profiles import load_profile


def test_partial_labels_cv_runs(monkeypatch) -> None:
    import lanet_core.study.experiments as ex

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    prof = load_profile("cpu")
    specs = ex.EXPERIMENTS["partial_labels_cv"](prof)
    assert len(specs) == 8 * 5 * 2
    assert [s.group["boxed"] for s in specs[:40]] == [20] * 40  # the 20 % setting first, then the scarce one
    for s in specs:
        c, g = s.config, s.group
        man = c["data"]["manifest"]
        tag = 20 if s.method == "MNV2" else g["boxed"]  # the classifier ignores boxes: one run serves both fractions
        assert man == f"data_manifests/busbra_cv5_fold{g['fold']}_box{tag}.csv"
        assert (project_root() / man).is_file()
        want = "labelled" if g["regime"] == "F" else "all"
        assert c["data"]["train_images"] == want, s.label
        if s.method.startswith("MNV2"):  # the BUSI CV's strongest regime: BN rebuilt, 224 px, fex lr x0.1
            assert c["model"]["bn_rebuild"] and c["data"]["image_size"] == 224
            assert c["train"]["backbone_lr_scale"] == 0.1 and c["train"]["lr"] == 1e-3
    methods = {s.method for s in specs}
    assert methods == {"MNV2+LA-Net-s-SSL", "MNV2+LA-Net-F", "MNV2+LA-Net-fine-s-SSL", "MNV2+LA-Net-fine-F",
                       "MNV2+RMTL-s-SSL", "MNV2+RMTL-F", "MNV2", "U-Net-F"}
    names = [s.config["name"] for s in specs]
    assert len(set(names)) == len(specs) - 5  # the five vanilla runs are shared by the two fractions
    shared = [s for s in specs if s.method == "MNV2"]
    assert {s.config["name"] for s in shared if s.group["boxed"] == 5} == \
        {s.config["name"] for s in shared if s.group["boxed"] == 20}


def test_committed_fold_manifests_partition_busbra() -> None:
    """Every BUS-BRA image is tested in exactly one fold; the boxed subsets are nested within each fold."""
    tested = []
    for f in range(1, 6):
        a = pd.read_csv(project_root() / f"data_manifests/busbra_cv5_fold{f}_box20.csv", keep_default_na=False)
        b = pd.read_csv(project_root() / f"data_manifests/busbra_cv5_fold{f}_box5.csv", keep_default_na=False)
        assert a.drop(columns="location_label").equals(b.drop(columns="location_label"))
        train = a["split"] == "train"
        boxed20 = set(a.loc[train & (a["location_label"] == "box"), "image_id"])
        boxed5 = set(b.loc[train & (b["location_label"] == "box"), "image_id"])
        assert boxed5 < boxed20 and 60 <= len(boxed5) <= 70 and 250 <= len(boxed20) <= 260
        assert (a.groupby("patient_id")["split"].nunique() == 1).all()
        tested += list(a.loc[a["split"] == "test", "image_id"])
    assert len(tested) == len(set(tested)) == 1875
