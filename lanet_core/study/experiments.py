"""The study's experiments as lists of runs, built from a profile (one place for every grid).

Each notebook asks for its experiment by name; the study runner asks for all of them to train ahead of
rendering. A :class:`RunSpec` carries the display name of the method (the paper's row label), the seed,
the grouping values (size, ratio, ...) and the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lanet_core.errors import ConfigError
from lanet_core.models.backbones import local_weights_available
from lanet_core.models.geometry import fine_stride
from lanet_core.models.registry import architecture
from lanet_core.study.profiles import NOTEBOOK_EXPERIMENTS, Profile  # noqa: F401 (NOTEBOOK_EXPERIMENTS re-exported)

SHORT = {
    "resnet18": "R18",
    "resnet50": "R50",
    "resnet10t": "R10t",
    "efficientnet_b0": "EB0",
    "mobilenetv2_100": "MNV2",
    "vit_small_patch16_224": "ViT-S/16",
    "vit_base_patch16_224": "ViT-B/16",
    "vit_tiny_patch16_224": "ViT-Ti/16",
    "test_resnet": "TinyResNet",  # timm's test models: the smoke profile only
    "test_vit": "TinyViT",
}


def short(backbone: str) -> str:
    return SHORT.get(backbone, backbone)


@dataclass
class RunSpec:
    """One run of an experiment."""

    experiment: str
    method: str  # row label, e.g. "R18+LA-Net"
    seed: int
    config: dict[str, Any]
    group: dict[str, Any] = field(default_factory=dict)  # extra table columns (image_size, ratio, ...)
    posthoc: tuple[str, ...] = ()  # analyses computed from the checkpoint after training ("gradcam", "external:<key>")

    @property
    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.group.items())
        return f"{self.experiment}: {self.method} seed {self.seed}{' ' + extra if extra else ''}"


def method_name(arch: str, backbone: str) -> str:
    """The paper's row labels: R18, R18+LA-Net, R18+RMTL, U-Net, DeepLabV3, AGN, ViT-S/16, EB0."""
    return architecture(arch).label(short(backbone))


FINE = "-fine"  # method-name suffix of LA-Net with the finer lesion map


def fine_updates(p: Profile, target: str | None = None) -> dict[str, Any]:
    """Config updates that make LA-Net "LA-Net-fine": the lesion map at ``fusion_stride`` (8: 16x16 at 128 px),
    area fusion, the profile's training target, and evaluation geometry matching the target (area and max
    cells are centred as ``align_corners=False`` upsampling; the authors' bilinear target as ``True``)."""
    f = p.lanet_fine
    target = target or f.get("target", "area")
    return {
        "model": {"fusion_stride": fine_stride(f), "fusion_resize": f.get("fusion_resize", "area")},
        "loss": {"target_downsample": target},
        "eval": {"align_corners": target == "bilinear"},
    }


def _model(arch: str, backbone: str, **extra: Any) -> dict[str, Any]:
    return {"model": {"arch": arch, "backbone": backbone, **extra}}


def _data(manifest: str, **extra: Any) -> dict[str, Any]:
    return {"data": {"manifest": manifest, **extra}}


def _spec(p: Profile, exp: str, method: str, seed: int, *updates: dict, group=None, posthoc=(), name=None) -> RunSpec:
    cfg = p.config(*updates, {"train": {"seed": seed}}, experiment=exp)
    slug = (name or method).replace("+", "-").replace("/", "").replace(" ", "-").lower()
    cfg["name"] = f"{exp}-{slug}-s{seed}"
    group = dict(group or {})
    if "image_size" in group:  # one source of truth: the size the run's config really has
        group["image_size"] = int(cfg["data"]["image_size"])
    return RunSpec(exp, method, seed, cfg, group, tuple(posthoc))


def baseline_entries(p: Profile, backbone: str) -> list[tuple[str, str]]:
    """(arch, backbone) of the profile's baselines (names from the profile's ``baselines`` list)."""
    table = {
        "vanilla": ("classifier", backbone),
        "efficientnet": ("classifier", "efficientnet_b0"),
        "vit": ("vit", p.vit_backbone),
        "rmtl": ("rmtl", backbone),
        "unet": ("unet", backbone),
        "deeplabv3": ("deeplabv3", p.baseline_backbones.get("deeplabv3", backbone)),
        "agn": ("agn", backbone),
    }
    return [table[b] for b in p.baselines]


def fully_labelled(p: Profile) -> list[RunSpec]:
    """Tables 5-6: LA-Net and every baseline on BUSI, full location labels, main size and backbone."""
    bb, out = p.main_backbone, []
    entries = [("lanet", bb)] + baseline_entries(p, bb)
    for seed in p.seeds:
        for arch, b in entries:
            post = ("gradcam",) if arch in ("lanet", "classifier") and b == bb else ()
            if arch == "lanet" or (arch == "classifier" and b == bb):
                post += ("external:busbra",)
            out.append(_spec(p, "fully_labelled", method_name(arch, b), seed, _data(p.dataset("busi")), _model(arch, b),
                             group={"image_size": p.main_size}, posthoc=post))
        if p.lanet_fine:
            out.append(_spec(p, "fully_labelled", method_name("lanet", bb) + FINE, seed, _data(p.dataset("busi")),
                             _model("lanet", bb), fine_updates(p), group={"image_size": p.main_size},
                             posthoc=("gradcam", "external:busbra")))
    return out


def lesion_target(p: Profile) -> list[RunSpec]:
    """Issue 11: the training target of the fine lesion map (area / max / the authors' bilinear), LA-Net-fine on
    fully-labelled BUSI; the profile's ``lanet_fine.target`` is the one with the best *validation* IoU."""
    f, bb, out = p.lanet_fine, p.main_backbone, []
    if not f:
        return out
    for seed in p.seeds:
        for target in f.get("targets", [f.get("target", "area")]):
            m = method_name("lanet", bb) + FINE
            out.append(_spec(p, "lesion_target", m, seed, _data(p.dataset("busi")), _model("lanet", bb),
                             fine_updates(p, target), group={"target": target}, name=f"{m}-{target}"))
    return out


def depth(p: Profile) -> list[RunSpec]:
    """Figs 6-7: feature-extractor depth (R18 vs R50) for vanilla, RMTL and LA-Net."""
    out = []
    for seed in p.seeds:
        for bb in p.backbones:
            for arch in ("classifier", "rmtl", "lanet"):
                out.append(_spec(p, "depth", method_name(arch, bb), seed, _data(p.dataset("busi")), _model(arch, bb),
                                 group={"backbone": short(bb), "family": {"classifier": "Vanilla", "rmtl": "RMTL", "lanet": "LA-Net"}[arch]},
                                 posthoc=("gradcam",) if arch in ("lanet", "classifier") and bb == p.main_backbone else ()))
    return out


def attention_ablation(p: Profile) -> list[RunSpec]:
    """Tables 7-8: LA-Net without CAM, SAM or MAM (each module really removed)."""
    bb, out = p.backbone_for("attention_ablation"), []
    variants = [("", {}), (" (no CAM)", {"use_cam": False}), (" (no SAM)", {"use_sam": False}), (" (no MAM)", {"use_mam": False})]
    for seed in p.seeds:
        for suffix, flags in variants:
            out.append(_spec(p, "attention_ablation", method_name("lanet", bb) + suffix, seed, _data(p.dataset("busi")),
                             _model("lanet", bb, **flags)))
        if p.lanet_fine:
            for suffix, flags in variants:
                out.append(_spec(p, "attention_ablation", method_name("lanet", bb) + FINE + suffix, seed,
                                 _data(p.dataset("busi")), _model("lanet", bb, **flags), fine_updates(p)))
    return out


def label_ratio(p: Profile) -> list[RunSpec]:
    """Figs 8-9: LA-Net on all images with x % location labels; U-Net and RMTL on the x % only."""
    bb, out = p.backbone_for("label_ratio"), []
    for seed in p.seeds:
        for r in p.label_ratios:
            man = p.dataset("busi") if r >= 1.0 else p.dataset("busi_ratio", pct=int(round(r * 100)), ratio=r, seed=seed)
            for arch, images in (("lanet", "all"), ("unet", "labelled"), ("rmtl", "labelled")):
                out.append(_spec(p, "label_ratio", method_name(arch, bb), seed, _data(man, train_images=images),
                                 _model(arch, bb), group={"ratio": r}, name=f"{method_name(arch, bb)}-{int(r * 100)}"))
            if p.lanet_fine and r in [float(x) for x in p.lanet_fine.get("label_ratios", p.label_ratios)]:
                m = method_name("lanet", bb) + FINE
                out.append(_spec(p, "label_ratio", m, seed, _data(man, train_images="all"), _model("lanet", bb),
                                 fine_updates(p), group={"ratio": r}, name=f"{m}-{int(r * 100)}"))
    return out


def input_size(p: Profile) -> list[RunSpec]:
    """Figs 10-11: input size (e.g. 128 vs 256 on CPU; 256 vs 512 in the paper)."""
    bb, out = p.main_backbone, []
    for seed in p.seeds:
        for size in p.sizes:
            out.append(_spec(p, "input_size", method_name("lanet", bb), seed, _data(p.dataset("busi"), image_size=size),
                             _model("lanet", bb), group={"image_size": size}, name=f"{method_name('lanet', bb)}-{size}"))
    return out


def pretrained_source(p: Profile) -> tuple[str, str]:
    """``(backbone, weights)`` of the profile's ImageNet experiments (``pretrained``)."""
    cfg = p.pretrained or {}
    return cfg.get("backbone", "mobilenetv2_100"), cfg.get("weights", "local:mobilenetv2_100.tflite_in1k")


def pretraining(p: Profile) -> list[RunSpec]:
    """Issue 6: LA-Net and a vanilla classifier with MobileNetV2, ImageNet-pretrained (converted TFLite) vs scratch."""
    cfg = p.pretrained
    if not cfg:
        return []
    bb, weights = pretrained_source(p)
    inits = [("scratch", "none")]
    if local_weights_available(weights):
        inits.append(("ImageNet", weights))
    out = []
    for seed in p.seeds:
        for init, w in inits:
            for arch in ("lanet", "classifier"):
                m = method_name(arch, bb)
                out.append(_spec(p, "pretraining", m, seed, _data(p.dataset("busi")), _model(arch, bb, weights=w),
                                 group={"init": init, "image_size": p.main_size}, name=f"{m}-{init}"))
    out += _pretrained_fine_tuning(p)
    return out


PRETRAINED_REBUILT = "ImageNet, BN rebuilt"  # the ``init`` group of the fine-tuning runs (issue 13)


def fine_tuning_entries(p: Profile) -> list[dict[str, Any]]:
    """The profile's ``pretrained.fine_tuning`` regimes (the main one first, then named variants). A variant's
    ``compare_to`` names the regime its differences are taken against (default: the main one, ``""``)."""
    entries = (p.pretrained or {}).get("fine_tuning") or []
    if isinstance(entries, dict):
        entries = [entries]
    names = [ft.get("variant", "") for ft in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"pretrained.fine_tuning: every entry after the first needs its own `variant` name "
                          f"(got {names}); entries with the same name would share runs' table rows")
    for ft in entries[1:]:
        if ft.get("compare_to", "") not in names or ft.get("compare_to", "") == ft.get("variant", ""):
            raise ConfigError(f"pretrained.fine_tuning: variant {ft.get('variant', '')!r} has compare_to "
                              f"{ft.get('compare_to')!r}, which is not another entry's variant name ({names})")
    return list(entries)


def fine_tuning_comparisons(p: Profile) -> list[tuple[str, str]]:
    """``(init, init)`` pairs: each variant's ``init`` group against its ``compare_to`` regime's (the main one by
    default), for the regime-difference tables."""
    return [(fine_tuning_init(ft["variant"]), fine_tuning_init(ft.get("compare_to", "")))
            for ft in fine_tuning_entries(p) if ft.get("variant")]


def fine_tuning_init(variant: str = "") -> str:
    """The ``init`` group (and regime key) of the fine-tuning runs of regime ``variant`` ("" = the main one)."""
    return PRETRAINED_REBUILT + (f", {variant}" if variant else "")


def fine_tuning_method(p: Profile, kind: str) -> str:
    """Method name of a fine-tuned ImageNet run: ``kind`` classifier | lanet | lanet_fine -> "MNV2", ...;
    the cross-validation adds :data:`IMAGENET` (:func:`imagenet_cv_method`)."""
    arch = "lanet" if kind == "lanet_fine" else kind
    return method_name(arch, pretrained_source(p)[0]) + (FINE if kind == "lanet_fine" else "")


def imagenet_cv_method(p: Profile, kind: str) -> str:
    """Method name of the ImageNet runs in the cross-validation, e.g. "MNV2+LA-Net (ImageNet)"."""
    return fine_tuning_method(p, kind) + IMAGENET


def _fine_tuning_run(p: Profile, ft: dict[str, Any], kind: str, manifest: str) -> tuple[str, list[dict], str]:
    """One fine-tuning run of the converted ImageNet weights: ``(method, config updates, name slug)`` for
    ``kind`` (classifier | lanet | lanet_fine) under regime ``ft`` on ``manifest``."""
    bb, weights = pretrained_source(p)
    size = int(ft.get("image_size", p.main_size))
    train = {k: ft[k] for k in ("lr", "backbone_lr_scale", "batch_size", "stage1_epochs", "stage2_epochs") if k in ft}
    variant = ft.get("variant", "")
    arch = "lanet" if kind == "lanet_fine" else kind
    m = fine_tuning_method(p, kind)
    head = {"head_init": "torch"} if arch == "classifier" else {}  # timm's 1000-class init: reset_head
    ups = [_data(manifest, image_size=size), _model(arch, bb, weights=weights, bn_rebuild=True, **head),
           {"train": train}]
    if kind == "lanet_fine":
        ups.append(fine_updates(p))
    slug = f"{m}-imagenet-bn" + (f"-{variant}".replace(" ", "-") if variant else "") + f"-{size}"
    return m, ups, slug


def _pretrained_fine_tuning(p: Profile) -> list[RunSpec]:
    """Issue 13: the converted ImageNet weights fine-tuned as a normal network (``pretrained.fine_tuning``):
    BatchNorm rebuilt from the training images and trainable, the profile's lr (the paper's 1e-3) unless the
    entry names one, at ``image_size`` (ImageNet resolution), for ``methods`` (classifier, lanet, lanet_fine)."""
    entries = fine_tuning_entries(p)
    if not entries or not local_weights_available(pretrained_source(p)[1]):
        return []
    out = []
    for ft in entries:  # the main regime, then variants (``variant``: their name, e.g. another lr)
        init = fine_tuning_init(ft.get("variant", ""))
        for seed in ft.get("seeds", p.seeds):
            for kind in ft.get("methods", ["classifier", "lanet"]):
                m, ups, slug = _fine_tuning_run(p, ft, kind, p.dataset("busi"))
                size = int(ups[0]["data"]["image_size"])
                out.append(_spec(p, "pretraining", m, seed, *ups, group={"init": init, "image_size": size},
                                 posthoc=("gradcam",), name=slug))
    return out


def partial_labels(p: Profile) -> list[RunSpec]:
    """Tables 3-4, 9-10 on the BUS-BRA stand-in for MBUD (boxes on 20 % of training images).

    s-SSL = all training images (boxes on some, class labels on all); F = the boxed subset only (F-MBUD).
    """
    bb, out = p.backbone_for("partial_labels"), []
    for seed in p.seeds:
        man = p.dataset("busbra_partial", seed=seed)
        rows = [
            ("lanet", bb, "all", "s-SSL", ("external:busi",)),
            ("lanet", bb, "labelled", "F", ()),
            ("rmtl", bb, "all", "s-SSL", ()),
            ("rmtl", bb, "labelled", "F", ()),
            ("classifier", bb, "all", "class labels", ("external:busi",)),
            ("unet", bb, "labelled", "F", ()),
            ("deeplabv3", bb, "labelled", "F", ()),
            ("agn", bb, "labelled", "F", ()),
        ]
        for arch, b, images, regime, post in rows:
            if arch in ("unet", "deeplabv3", "agn", "rmtl") and arch not in p.baselines:
                continue
            m = method_name(arch, b)
            out.append(_spec(p, "partial_labels", f"{m}-{regime}" if regime in ("s-SSL", "F") else m, seed,
                             _data(man, train_images=images), _model(arch, b),
                             group={"regime": regime, "family": m}, posthoc=post, name=f"{m}-{regime}"))
        if p.lanet_fine:
            m = method_name("lanet", bb) + FINE
            for images, regime in (("all", "s-SSL"), ("labelled", "F")):
                out.append(_spec(p, "partial_labels", f"{m}-{regime}", seed, _data(man, train_images=images),
                                 _model("lanet", bb), fine_updates(p), group={"regime": regime, "family": m},
                                 name=f"{m}-{regime}"))
    return out


def sensitivity(p: Profile) -> list[RunSpec]:
    """Beyond the paper: the pseudo-label gate tau and weight alpha of s-SSL (LA-Net, BUS-BRA partial labels)."""
    s = p.sensitivity
    if not s:
        return []
    bb, out = p.backbone_for("sensitivity"), []
    grid = [(t, 0.1) for t in s.get("tau", [])] + [(0.8, a) for a in s.get("alpha", [])]
    for seed in s.get("seeds", p.seeds[:1]):
        for tau, alpha in dict.fromkeys(grid):
            out.append(_spec(p, "sensitivity", method_name("lanet", bb), seed,
                             _data(p.dataset("busbra_partial", seed=seed), train_images="all"), _model("lanet", bb),
                             {"loss": {"tau": tau, "alpha": alpha}}, group={"tau": tau, "alpha": alpha},
                             name=f"lanet-tau{tau}-alpha{alpha}"))
    return out


# (kind, training images, regime) of the partly-labelled cross-validation: the ImageNet arms as s-SSL and F,
# vanilla on every class label, U-Net (the profile's scratch baseline) on the boxed images for localisation.
PARTIAL_CV_ARMS = (("lanet", "all", "s-SSL"), ("lanet", "labelled", "F"), ("lanet_fine", "all", "s-SSL"),
                   ("lanet_fine", "labelled", "F"), ("rmtl", "all", "s-SSL"), ("rmtl", "labelled", "F"),
                   ("classifier", "all", "class labels"), ("unet", "labelled", "F"))


def partial_cv_box_fractions(p: Profile) -> list[int]:
    """The box-fraction tags of the partly-labelled CV, in training order (``partial_labels_cv.box_fractions``,
    default ``[20]``); empty where the profile does not run the experiment."""
    return list(p.partial_labels_cv.get("box_fractions", [20])) if p.partial_labels_cv else []


def partial_labels_cv(p: Profile) -> list[RunSpec]:
    """Issue 28: the partly-labelled experiment over BUS-BRA's official 5 patient-level folds (every image tested
    once), in the pretrained regime the BUSI cross-validation found strongest (``partial_labels_cv.regime``: a
    ``pretrained.fine_tuning`` variant). Boxed fractions in order (20 % first, then the scarce one); fold-major,
    so a partial run leaves complete folds. ``box_fractions`` are the tags of the committed manifests
    ``busbra_cv5_fold{f}_box{tag}.csv`` (``lanet prepare busbra``)."""
    cv = p.partial_labels_cv
    if not cv:
        return []
    ft = fine_tuning_regime(p, cv.get("regime", ""), "partial_labels_cv.regime")
    pretrained_ok = local_weights_available(pretrained_source(p)[1])
    arms = [a for a in PARTIAL_CV_ARMS if a[0] in cv.get("methods", [k for k, _, _ in PARTIAL_CV_ARMS])]
    out = []
    tags = partial_cv_box_fractions(p)
    for tag in tags:
        for seed in cv.get("seeds", p.seeds[:1]):
            for fold in range(1, int(cv.get("folds", 5)) + 1):
                group = {"fold": fold, "boxed": int(tag)}
                for kind, images, regime in arms:
                    # a classifier ignores boxes: one run per fold serves every fraction (first fraction's manifest)
                    tag_kind = tags[0] if kind == "classifier" else tag
                    man = p.dataset("busbra_cv", fold=fold, box=tag_kind)
                    if kind == "unet":  # localisation reference: the profile's scratch U-Net
                        m = method_name("unet", p.main_backbone)
                        out.append(_spec(p, "partial_labels_cv", f"{m}-{regime}", seed, _data(man, train_images=images),
                                         _model("unet", p.main_backbone), group={**group, "regime": regime, "family": m},
                                         name=f"{m}-{regime}-box{tag}-fold{fold}"))
                        continue
                    if not pretrained_ok:
                        continue
                    m, ups, slug = _fine_tuning_run(p, ft, kind, man)
                    ups[0]["data"]["train_images"] = images
                    method = f"{m}-{regime}" if regime in ("s-SSL", "F") else m
                    out.append(_spec(p, "partial_labels_cv", method, seed, *ups,
                                     group={**group, "regime": regime, "family": m},
                                     name=f"{slug}-{regime}-box{tag_kind}-fold{fold}"))
    return out


CV_METHODS = ("vanilla", "lanet", "lanet_fine", "rmtl", "agn", "unet")


def cross_validation(p: Profile) -> list[RunSpec]:
    """Issue 12: the headline methods on every BUSI fold (near-duplicate clusters kept within a fold), so every
    image gets out-of-fold predictions for paired tests over all images. Fold-major: a partial run leaves
    complete folds."""
    cv, bb, out = p.cross_validation, p.main_backbone, []
    if not cv:
        return out
    pretrained = _cv_pretrained(p)
    seeds = list(cv.get("seeds", p.seeds[:1]))
    single = set(cv.get("single_seed", []))  # method keys trained at the first seed only (issue 27: U-Net)
    for seed in seeds:
        for fold in range(1, int(cv.get("folds", 5)) + 1):
            man = p.dataset("busi_cv", fold=fold)
            for key in cv.get("methods", CV_METHODS):
                if key in single and seed != seeds[0]:
                    continue
                updates: list[dict] = []
                if key == "lanet_fine":
                    if not p.lanet_fine:
                        continue
                    arch, m, updates = "lanet", method_name("lanet", bb) + FINE, [fine_updates(p)]
                else:
                    arch = {"vanilla": "classifier"}.get(key, key)
                    m = method_name(arch, bb)
                out.append(_spec(p, "cross_validation", m, seed, _data(man), _model(arch, bb), *updates,
                                 group={"fold": fold}, name=f"{m}-fold{fold}"))
            for kind, ft in pretrained:
                _, ups, slug = _fine_tuning_run(p, ft, kind, man)
                out.append(_spec(p, "cross_validation", imagenet_cv_method(p, kind), seed, *ups, group={"fold": fold},
                                 name=f"{slug}-fold{fold}"))
    return out


IMAGENET = " (ImageNet)"  # method-name suffix of the fine-tuned ImageNet MobileNetV2 in the cross-validation


def _cv_pretrained(p: Profile) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, fine-tuning regime)`` of the ImageNet runs in the cross-validation (issue 13):
    ``cross_validation.pretrained: {regime: <variant name, "" = the main regime>, methods: [...]}``; none where
    the profile names none or the converted weights are absent (as for the fixed-split pretraining runs)."""
    want = (p.cross_validation or {}).get("pretrained")
    if not want or not local_weights_available(pretrained_source(p)[1]):
        return []
    ft = fine_tuning_regime(p, want.get("regime", ""), "cross_validation.pretrained.regime")
    return [(kind, ft) for kind in want.get("methods", ["classifier", "lanet"])]


def fine_tuning_regime(p: Profile, variant: str, where: str) -> dict[str, Any]:
    """The ``pretrained.fine_tuning`` entry named ``variant`` ("" = the main regime); ``where`` names the profile key
    that asked for it in the error."""
    regimes = {ft.get("variant", ""): ft for ft in fine_tuning_entries(p)}
    if variant not in regimes:
        raise ConfigError(f"{where} {variant!r} is not a pretrained.fine_tuning entry (variants: {sorted(regimes)})")
    return regimes[variant]


EXPERIMENTS: dict[str, Callable[[Profile], list[RunSpec]]] = {
    "lesion_target": lesion_target,
    "fully_labelled": fully_labelled,
    "pretraining": pretraining,
    "partial_labels": partial_labels,
    "attention_ablation": attention_ablation,
    "label_ratio": label_ratio,
    "input_size": input_size,
    "depth": depth,
    "sensitivity": sensitivity,
    "cross_validation": cross_validation,
    "partial_labels_cv": partial_labels_cv,
}




def experiment_runs(name: str, profile: Profile) -> list[RunSpec]:
    return EXPERIMENTS[name](profile)
