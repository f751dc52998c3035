"""Losses of the two-stage sequential semi-supervised training (paper Eq. 6-7).

Stage 1: ``L_floc`` = BCE between the lesion map and the location target at map resolution, averaged
over the pixels of location-labelled images only.

Stage 2: ``L_hyb = lam * CE + (1 - lam) * (L_sloc_w + alpha * L_sloc_wo)`` where ``L_sloc_w`` is the BCE
on location-labelled images and ``L_sloc_wo`` the BCE of the other images against their pseudo targets.

Pseudo targets (``pseudo``):
    * ``"paper"``: ``1[P_pixel > 0.5]``, used only for images whose max class probability exceeds tau;
    * ``"authors"``: the released code: ``1[P_pixel >= 0.8]`` for every unlabelled image, no class gate,
      and one mean over all images of the batch with weight 1 (labelled) or alpha (unlabelled);
    * ``"none"``: images without location labels contribute only to CE.
Pseudo targets are detached (no gradient flows through them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lanet_core.models.output import ModelOutput

AUTHORS_PIXEL_THRESHOLD = 0.8


def downsample_target(target: torch.Tensor, size: tuple[int, int], mode: str = "area") -> torch.Tensor:
    """``(B, 1, S, S)`` target in [0, 1] -> ``(B, 1, h, w)``.

    ``area``: mean over each map cell (the fraction of lesion pixels; below 0.5 in every cell of a lesion
    smaller than about half a cell). ``bilinear``: the authors' bilinear interpolation with
    ``align_corners=True`` (point sampling when shrinking: small lesions can vanish). ``max``: 1 in every
    cell that holds any lesion pixel (max-pooling: never vanishes, dilates the lesion by up to one cell).
    ``area`` and ``max`` cells are centred like ``align_corners=False`` upsampling; evaluate them so.
    """
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    if mode == "area":
        return F.adaptive_avg_pool2d(target, size)
    if mode == "max":
        return F.adaptive_max_pool2d(target, size)
    if mode == "bilinear":
        return F.interpolate(target, size=size, mode="bilinear", align_corners=True)
    raise ValueError(f"unknown target downsampling {mode!r}")


def per_image_bce(lesion_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the pixels of each image: ``(B,1,h,w), (B,1,h,w) -> (B,)``."""
    bce = F.binary_cross_entropy_with_logits(lesion_logits.float(), target.float(), reduction="none")
    return bce.flatten(1).mean(dim=1)


def pseudo_targets(
    lesion_logits: torch.Tensor, class_logits: torch.Tensor | None, *, variant: str = "paper", tau: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor]:
    """(detached pseudo targets ``(B,1,h,w)``, per-image use mask ``(B,) bool``).

    ``paper``: target ``P_pixel > 0.5``; an image is used when its max softmax class probability > tau
    (no classifier: no image is used). ``authors``: target ``P_pixel >= 0.8``; every image is used.
    """
    with torch.no_grad():
        prob = torch.sigmoid(lesion_logits.float())
        if variant == "paper":
            target = (prob > 0.5).float()
            if class_logits is None:
                use = torch.zeros(prob.shape[0], dtype=torch.bool, device=prob.device)
            else:
                use = torch.softmax(class_logits.float(), dim=1).amax(dim=1) > tau
        elif variant == "authors":
            target = (prob >= AUTHORS_PIXEL_THRESHOLD).float()
            use = torch.ones(prob.shape[0], dtype=torch.bool, device=prob.device)
        else:
            raise ValueError(f"unknown pseudo-label variant {variant!r}")
    return target, use


@dataclass
class LossParts:
    """The loss of one batch and its parts (for the per-epoch history)."""

    total: torch.Tensor
    cls: float = float("nan")  # CE
    loc: float = float("nan")  # BCE on location-labelled images (L_floc / L_sloc_w)
    pseudo: float = float("nan")  # BCE on pseudo-labelled images (L_sloc_wo)
    n_labelled: int = 0
    n_pseudo: int = 0  # images that received a pseudo target


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values[mask].mean() if bool(mask.any()) else values.sum() * 0.0


def localisation_loss(out: ModelOutput, target: torch.Tensor, has_location: torch.Tensor, downsample: str = "area") -> LossParts:
    """Stage 1, ``L_floc``: BCE on location-labelled images only (0 when the batch has none)."""
    t = downsample_target(target, tuple(out.lesion_logits.shape[-2:]), downsample)
    bce = per_image_bce(out.lesion_logits, t)
    loc = _masked_mean(bce, has_location)
    return LossParts(total=loc, loc=float(loc.detach()), n_labelled=int(has_location.sum()))


def hybrid_loss(
    out: ModelOutput,
    labels: torch.Tensor,
    target: torch.Tensor,
    has_location: torch.Tensor,
    *,
    lam: float = 0.5,
    alpha: float = 0.1,
    tau: float = 0.8,
    pseudo: str = "paper",
    downsample: str = "area",
) -> LossParts:
    """Stage 2, ``L_hyb``. A model without a lesion head gets plain CE; without a classifier, plain
    localisation BCE (single-task baselines)."""
    parts = LossParts(total=torch.zeros((), device=labels.device))
    cls = F.cross_entropy(out.logits.float(), labels) if out.logits is not None else None
    if out.lesion_logits is None:
        parts.total, parts.cls = cls, float(cls.detach())
        return parts
    t = downsample_target(target, tuple(out.lesion_logits.shape[-2:]), downsample)
    bce_w = per_image_bce(out.lesion_logits, t)
    parts.n_labelled = int(has_location.sum())
    unlabelled = ~has_location
    if pseudo == "none" or not bool(unlabelled.any()):
        loc = _masked_mean(bce_w, has_location)
        wo = None
    else:
        p_t, use = pseudo_targets(out.lesion_logits, out.logits, variant=pseudo, tau=tau)
        bce_wo = per_image_bce(out.lesion_logits, p_t)
        use = use & unlabelled
        parts.n_pseudo = int(use.sum())
        if pseudo == "authors":
            # one mean over every image of the batch: weight 1 (labelled), alpha (pseudo)
            w = has_location.float() + alpha * use.float()
            per = torch.where(has_location, bce_w, bce_wo)
            loc = (w * per).mean()
            wo = _masked_mean(bce_wo, use)
        else:
            wo = _masked_mean(bce_wo, use)
            loc = _masked_mean(bce_w, has_location) + alpha * wo
    parts.loc = float(_masked_mean(bce_w, has_location).detach()) if parts.n_labelled else float("nan")
    parts.pseudo = float(wo.detach()) if wo is not None and parts.n_pseudo else float("nan")
    if cls is None:
        parts.total = loc
    else:
        parts.total = lam * cls + (1.0 - lam) * loc
        parts.cls = float(cls.detach())
    return parts
