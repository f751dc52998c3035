"""The pretraining table (issue 13): regimes side by side, the paper's rows, Welch differences."""

from __future__ import annotations

import pandas as pd
import pytest

from lanet_core.study import pretraining
from lanet_core.study.notebook import paper_numbers


def _runs(method: str, init: str | None, accs, size: int = 128) -> list[dict]:
    return [{"method": method, "seed": i, "accuracy": a, "auc": a, "iou": 0.2 if "LA-Net" in method else None,
             "image_size": size, **({"init": init} if init else {})} for i, a in enumerate(accs)]


def test_regimes_table_and_differences() -> None:
    full = pd.DataFrame(_runs("R18", None, [0.70, 0.72, 0.71]) + _runs("R18+LA-Net", None, [0.72, 0.73, 0.74])
                        + _runs("R50", None, [0.6, 0.6, 0.6]))
    pre = pd.DataFrame(_runs("MNV2", "scratch", [0.58, 0.59, 0.57]) + _runs("MNV2", "ImageNet", [0.76, 0.75, 0.77])
                       + _runs("MNV2", "ImageNet, BN rebuilt", [0.85, 0.86, 0.84], size=224))
    labels = {"R18": "R18, scratch", "scratch": "MNV2, scratch", "ImageNet": "MNV2, ImageNet, BN folded+frozen, lr 1e-4",
              "ImageNet, BN rebuilt": "MNV2, ImageNet, BN rebuilt, lr 1e-3"}
    runs = pretraining.regime_runs(full, pre, labels)
    assert "R50" not in set(runs["method"])
    assert set(runs["kind"]) == {"vanilla", "LA-Net"}
    table = pretraining.regimes_table(runs, paper_numbers())
    paper = table[table["source"] == "paper"].set_index("kind")
    assert paper.loc["vanilla", "accuracy"] == "88.6 ± 1.7" and paper.loc["LA-Net", "iou"] == "0.429 ± 0.024"
    rebuilt = table[table["regime"] == "MNV2, ImageNet, BN rebuilt, lr 1e-3"].iloc[0]
    assert rebuilt["input (px)"] == 224 and rebuilt["seeds"] == 3 and rebuilt["accuracy"].startswith("85.0")
    d = pretraining.regime_differences(runs, [("MNV2, ImageNet, BN rebuilt, lr 1e-3", "MNV2, scratch")], table)
    ours = d[d["comparison"].str.startswith("MNV2, ImageNet, BN rebuilt")].iloc[0]
    assert ours["accuracy_diff"] == pytest.approx(0.27) and ours["accuracy_p"] < 0.001
    theirs = d[d["comparison"] == "R18, ImageNet (paper)  minus  MNV2, scratch"]
    assert theirs["accuracy_diff"].iloc[0] == pytest.approx(0.886 - 0.58)


def test_method_kind() -> None:
    assert [pretraining.method_kind(m) for m in ("R18", "MNV2+LA-Net", "R18+LA-Net-fine")] == \
        ["vanilla", "LA-Net", "LA-Net-fine"]


def test_regime_labels_come_from_the_configs(monkeypatch) -> None:
    import lanet_core.study.experiments as ex
    from lanet_core.study.profiles import load_profile

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    labels = pretraining.regime_labels(load_profile("cpu"))
    assert labels == {"R18": "R18, scratch", "scratch": "MNV2, scratch",
                      "ImageNet": "MNV2, ImageNet, BN folded+frozen, lr 1e-4",
                      "ImageNet, BN rebuilt": "MNV2, ImageNet, BN rebuilt, lr 1e-3",
                      "ImageNet, BN rebuilt, fex lr x0.1": "MNV2, ImageNet, BN rebuilt, lr 1e-3 (feature extractor 1e-4)"}
    paper = pretraining.regime_labels(load_profile("paper"))
    assert paper["R18"] == "R18, ImageNet"  # the paper profile's R18 is ImageNet-pretrained


def test_fine_tuning_variants_need_their_own_names(monkeypatch) -> None:
    import dataclasses

    import lanet_core.study.experiments as ex
    from lanet_core.errors import ConfigError
    from lanet_core.study.profiles import load_profile

    monkeypatch.setattr(ex, "local_weights_available", lambda w: True)
    prof = load_profile("cpu")
    entry = {"image_size": 224, "methods": ["classifier"], "seeds": [0]}
    bad = dataclasses.replace(prof, pretrained={**prof.pretrained, "fine_tuning": [entry, dict(entry)]})
    with pytest.raises(ConfigError, match="variant"):
        ex.EXPERIMENTS["pretraining"](bad)
    assert pretraining._lr(2.5e-4) == "2.5e-4" and pretraining._lr(1e-4) == "1e-4"
