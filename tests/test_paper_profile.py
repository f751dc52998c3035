"""The paper profile is the paper's protocol, and every model it would train builds and takes an optimiser
step (at a tiny size, without hub weights) on CPU (issue 15)."""

from __future__ import annotations

import copy

import pytest
import torch

from lanet_core.config import with_overrides
from lanet_core.study.experiments import EXPERIMENTS
from lanet_core.study.profiles import load_profile


def test_paper_profile_follows_section_4_3() -> None:
    p = load_profile("paper")
    cfg = p.config()
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["batch_size"] == 8  # Adam lr 1e-3, batch 8
    assert cfg["train"]["stage2_epochs"] == 100 and cfg["data"]["image_size"] == 256
    assert cfg["model"]["weights"] == "imagenet" and cfg["model"]["init"] == "xavier"
    assert cfg["train"]["select_on"] == "val"
    methods = {e: {s.method for s in EXPERIMENTS[e](p)} for e in ("attention_ablation", "label_ratio", "fully_labelled")}
    assert "R50+LA-Net (no MAM)" in methods["attention_ablation"] and "R50+LA-Net" in methods["label_ratio"]
    dl = [s for s in EXPERIMENTS["fully_labelled"](p) if s.method == "DeepLabV3"][0]
    assert dl.config["model"]["backbone"] == "resnet50"
    assert p.vit_backbone == "vit_base_patch16_224"


def _unique_models(p) -> list[dict]:
    seen, out = set(), []
    for exp in EXPERIMENTS:
        for s in EXPERIMENTS[exp](p):
            m = s.config["model"]
            key = (m["arch"], m["backbone"], m["use_cam"], m["use_sam"], m["use_mam"], m["fusion_stride"], m["weights"] == "none")
            if key not in seen:
                seen.add(key)
                out.append(s.config)
    return out


@pytest.mark.parametrize("cfg", _unique_models(load_profile("paper")),
                         ids=lambda c: f"{c['model']['arch']}-{c['model']['backbone']}-s{c['model']['fusion_stride']}"
                                       f"{'' if c['model']['use_mam'] else '-noMAM'}{'' if c['model']['use_cam'] else '-noCAM'}"
                                       f"{'' if c['model']['use_sam'] else '-noSAM'}-{c['model']['weights'][:8]}")
def test_every_paper_model_takes_an_optimiser_step(cfg) -> None:
    from lanet_core.models.factory import build_model
    from lanet_core.training.losses import hybrid_loss

    weights = cfg["model"]["weights"]
    small = with_overrides(copy.deepcopy(cfg), **{"data.image_size": 64,
                                                   "model.weights": "none" if weights == "imagenet" else weights})
    model = build_model(small)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 16:40, 20:44] = 1
    loss = hybrid_loss(out, torch.tensor([0, 1]), target, torch.tensor([True, True])).total
    opt.zero_grad()
    loss.backward()
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad][:3]
    opt.step()
    after = [p.detach() for p in model.parameters() if p.requires_grad][:3]
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, after))


def test_paper_profile_follows_the_text_on_normalisation_augmentation_and_init(capsys) -> None:
    """Issue 29 item 11: inputs in [0, 1], no random resized crop, Xavier init, each shown with its source."""
    import torch

    from lanet_core.cli import main
    from lanet_core.data.dataset import NORMALIZATION, PaperAugment
    from lanet_core.paths import project_root
    from lanet_core.study.profiles import load_profile

    cfg = load_profile("paper").config()
    assert (cfg["data"]["normalize"], cfg["data"]["augment"], cfg["model"]["init"]) == ("unit", "paper_text", "xavier")
    assert NORMALIZATION["unit"] == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    names = [type(t).__name__ for t in PaperAugment(64, crop=False).geometry.transforms]
    assert "RandomResizedCrop" not in names and "RandomHorizontalFlip" in names
    assert "RandomResizedCrop" in [type(t).__name__ for t in PaperAugment(64).geometry.transforms]
    torch.manual_seed(0)
    img = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
    out, _ = PaperAugment(64, crop=False)(img, torch.zeros(1, 64, 64, dtype=torch.uint8))
    assert out.shape == img.shape
    assert main(["resolve", str(project_root() / "configs" / "busi_lanet_r18.yaml"), "--profile", "paper"]) == 0
    text = capsys.readouterr().out
    for key in ("data.normalize", "data.augment", "model.init"):
        line = next(ln for ln in text.splitlines() if key in ln)
        assert "profile paper" in line, line
