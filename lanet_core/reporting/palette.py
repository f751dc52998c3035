"""A fixed colour (and hatch) per method, so a method looks the same in every figure of the study."""

from __future__ import annotations

import hashlib
import re
from typing import Sequence




_TAB = {  # matplotlib's tab10, as hex so the palette does not depend on rcParams
    "blue": "#1f77b4", "orange": "#ff7f0e", "green": "#2ca02c", "red": "#d62728", "purple": "#9467bd",
    "brown": "#8c564b", "pink": "#e377c2", "gray": "#7f7f7f", "olive": "#bcbd22", "cyan": "#17becf",
}

#: Fixed colours; the R18/R50 families and baselines follow the LA-Net authors' plot script so figures look alike.
METHOD_COLORS: dict[str, str] = {
    "R50": _TAB["blue"],
    "R50+RMTL": _TAB["orange"],
    "R50+LA-Net": _TAB["green"],
    "R50+LA-Net (no CAM)": "#5d8700",
    "R50+LA-Net (no SAM)": "#82b300",
    "R50+LA-Net (no MAM)": "#2d581a",
    "R18": _TAB["red"],
    "R18+RMTL": _TAB["purple"],
    "R18+LA-Net": _TAB["brown"],
    "R18+LA-Net (no CAM)": "#fd9a24",
    "R18+LA-Net (no SAM)": "#fa8223",
    "R18+LA-Net (no MAM)": "#f55f20",
    "R18+LA-Net-fine": "#17a589",  # teal: the stride-8 lesion map (beyond the paper)
    "R18+LA-Net-fine (no CAM)": "#48c9b0",
    "R18+LA-Net-fine (no SAM)": "#76d7c4",
    "R18+LA-Net-fine (no MAM)": "#0e6655",
    "ViT": "#b03a2e",
    "EB0": "#196f3d",
    "U-Net": "#2e4053",
    "AGN": _TAB["pink"],
    "DeepLabV3": _TAB["cyan"],
    "MobileNetV2": _TAB["gray"],
    "MobileNetV2+RMTL": "#c49c94",
    "MobileNetV2+LA-Net": _TAB["olive"],
    "MobileNetV2+LA-Net-fine": "#6c7a00",
}

_ALIASES = {"unet": "U-Net", "deeplabv3+": "DeepLabV3", "deeplab": "DeepLabV3", "mnv2": "MobileNetV2",
            "mobilenet_v2": "MobileNetV2", "mobilenetv2_100": "MobileNetV2", "efficientnet-b0": "EB0",
            "effnet-b0": "EB0", "resnet18": "R18", "resnet50": "R50", "vit-ti/16": "ViT", "vit-s/16": "ViT",
            "vit-b/16": "ViT"}
_CANONICAL = {k.lower(): k for k in METHOD_COLORS}
# trailing qualifiers that keep the base method's colour: " (1)", " (0.25)", "-256", "@512", "-SSL", "-FSL",
# the partly-labelled regimes "-s-SSL" / "-F" and the initialisations " (scratch)" / " (ImageNet...)"
_SUFFIX = re.compile(r"(\s*\((?:[0-9.]+%?|full|scratch|ImageNet[^)]*)\)|[-@ ]\d{3,4}(?:px)?|-[SF]SL|-s-SSL|-F)$",
                     re.IGNORECASE)
#: Hatches that tell apart variants sharing a method's colour: supervised-only subsets ("-F") and initialisations.
_HATCHES = ((re.compile(r"-F$|\(scratch\)$", re.IGNORECASE), "///"),
            (re.compile(r"\(ImageNet\)$", re.IGNORECASE), "..."))

#: Colours for names not in :data:`METHOD_COLORS`, picked by a stable hash of the name.
FALLBACK_COLORS: tuple[str, ...] = (
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
    "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#de9ed6", "#e7ba52", "#ad494a",
)


def _canonical_method(name: str) -> str | None:
    """The :data:`METHOD_COLORS` key for ``name`` (case-insensitive, aliases, trailing qualifiers stripped)."""
    candidate = name.strip()
    while True:
        low = candidate.lower()
        for prefix, canon in _ALIASES.items():
            if low == prefix or low.startswith(prefix + "+"):
                low = canon.lower() + low[len(prefix):]
                break
        if low in _CANONICAL:
            return _CANONICAL[low]
        stripped = _SUFFIX.sub("", candidate)
        if stripped == candidate:
            return None
        candidate = stripped


def method_color(name: str) -> str:
    """The fixed hex colour of a method name; unknown names get a colour chosen by an MD5 hash of the name."""
    canon = _canonical_method(str(name))
    if canon is not None:
        return METHOD_COLORS[canon]
    digest = int(hashlib.md5(str(name).encode("utf-8")).hexdigest(), 16)
    return FALLBACK_COLORS[digest % len(FALLBACK_COLORS)]


def method_hatch(name: str) -> str:
    """Bar hatch of a variant that shares its method's colour ("" for the plain method)."""
    return next((h for pattern, h in _HATCHES if pattern.search(str(name))), "")


def method_palette(methods: Sequence[str]) -> dict[str, str]:
    """``{method: hex colour}`` with a fixed colour per method name, identical across figures and runs."""
    return {m: method_color(m) for m in methods}
