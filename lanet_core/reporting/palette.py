"""A fixed colour, marker and hatch per method, so a method looks the same in every figure of the study.

Colours are Okabe & Ito's colour-blind-safe set (Okabe & Ito 2008, "Color Universal Design"), with three of Paul
Tol's muted colours where eight are not enough (their yellow is too light for lines). The hue names the method's *head* (vanilla classifier, RMTL,
LA-Net, LA-Net-fine) or baseline; the feature extractor shades it (ResNet18: the base colour, ResNet50: darker,
MobileNetV2: lighter) and the attention ablations are lighter tints of their LA-Net. Because colour alone does not
survive greyscale printing or every colour vision, each method also has a marker (lines, dots) and variants that
share a hue have a hatch (bars); figures name every bar and line in text as well.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

#: Okabe-Ito (the eight colour-universal-design colours); Paul Tol's "muted" colours used beyond them below.
OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
_TOL = {"indigo": "#332288", "olive": "#999933", "grey": "#999999"}


def _mix(hex_color: str, other: str, share: float) -> str:
    """``hex_color`` moved ``share`` (0-1) of the way towards ``other`` (e.g. white for a tint), as hex."""
    a = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b))


def _tint(c: str, share: float) -> str:
    return _mix(c, "#ffffff", share)


def _shade(c: str, share: float) -> str:
    return _mix(c, "#000000", share)


#: The heads and baselines: (colour, marker). Markers are distinct, so lines and dots read in greyscale too.
_BASE: dict[str, tuple[str, str]] = {
    "": (OKABE_ITO["blue"], "o"),  # the vanilla classifier
    "+RMTL": (OKABE_ITO["reddish_purple"], "s"),
    "+LA-Net": (OKABE_ITO["vermillion"], "D"),
    "+LA-Net-fine": (OKABE_ITO["bluish_green"], "^"),
}
_BASELINES: dict[str, tuple[str, str]] = {
    "U-Net": (OKABE_ITO["sky_blue"], "v"),
    "DeepLabV3": (_TOL["olive"], "P"),  # Okabe-Ito's yellow is too light for a line on white
    "AGN": (OKABE_ITO["orange"], "X"),
    "EB0": (_TOL["indigo"], "h"),
    "ViT": (_TOL["grey"], "p"),
}
_BACKBONES = {"R18": lambda c: c, "R50": lambda c: _shade(c, 0.35), "MobileNetV2": lambda c: _tint(c, 0.4)}
_ABLATIONS = {" (no CAM)": 0.3, " (no SAM)": 0.5, " (no MAM)": 0.7}  # tint of the full model's colour


def _build() -> tuple[dict[str, str], dict[str, str]]:
    colors: dict[str, str] = {}
    markers: dict[str, str] = {}
    for bb, shade in _BACKBONES.items():
        for head, (c, mk) in _BASE.items():
            colors[bb + head], markers[bb + head] = shade(c), mk
    for head in ("+LA-Net", "+LA-Net-fine"):
        for suffix, share in _ABLATIONS.items():
            name = "R18" + head + suffix
            colors[name], markers[name] = _tint(colors["R18" + head], share), _BASE[head][1]
            if head == "+LA-Net":
                colors["R50" + head + suffix] = _tint(colors["R50" + head], share)
                markers["R50" + head + suffix] = _BASE[head][1]
    for name, (c, mk) in _BASELINES.items():
        colors[name], markers[name] = c, mk
    return colors, markers


#: Fixed colours per canonical method name (aliases and trailing qualifiers resolve to these: :func:`method_color`).
METHOD_COLORS, METHOD_MARKERS = _build()

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
_HATCHES = ((re.compile(r"-F$|\(scratch\)$", re.IGNORECASE), "////"),
            (re.compile(r"\(ImageNet\)$", re.IGNORECASE), "...."))
#: Hatches of the ablations and of the feature extractors other than ResNet18 (their colours are shades/tints).
_NAME_HATCHES = ((re.compile(r"\(no CAM\)"), "\\\\\\\\"), (re.compile(r"\(no SAM\)"), "xxxx"),
                 (re.compile(r"\(no MAM\)"), "----"), (re.compile(r"^R50\b"), "||||"),
                 (re.compile(r"^(MobileNetV2|MNV2)\b", re.IGNORECASE), "...."))

#: Colours for names not in :data:`METHOD_COLORS`, picked by a stable hash of the name (Paul Tol's muted and
#: light schemes: colour-blind-safe, distinct from the named methods' pure Okabe-Ito colours).
FALLBACK_COLORS: tuple[str, ...] = (
    "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499", "#77AADD",
    "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#AAAA00",
)
#: Markers for names not in :data:`METHOD_MARKERS` (by the same hash).
FALLBACK_MARKERS: tuple[str, ...] = ("o", "s", "D", "^", "v", "P", "X", "h", "p", "<", ">", "*")


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


def _digest(name: str) -> int:
    return int(hashlib.md5(str(name).encode("utf-8")).hexdigest(), 16)


def method_color(name: str) -> str:
    """The fixed hex colour of a method name; unknown names get a colour chosen by an MD5 hash of the name."""
    canon = _canonical_method(str(name))
    if canon is not None:
        return METHOD_COLORS[canon]
    return FALLBACK_COLORS[_digest(name) % len(FALLBACK_COLORS)]


def method_marker(name: str) -> str:
    """The fixed matplotlib marker of a method name (unknown names: chosen by a hash of the name)."""
    canon = _canonical_method(str(name))
    if canon is not None:
        return METHOD_MARKERS[canon]
    return FALLBACK_MARKERS[_digest(name) % len(FALLBACK_MARKERS)]


def method_hatch(name: str) -> str:
    """Bar hatch of a variant that shares its method's hue ("" for the plain ResNet18 method): "-F" subsets and
    initialisations first, then ablations and feature extractors, so bars differ in greyscale too."""
    name = str(name)
    hit = next((h for pattern, h in _HATCHES if pattern.search(name)), "")
    if hit:
        return hit
    canon = _canonical_method(name) or name
    return next((h for pattern, h in _NAME_HATCHES if pattern.search(canon)), "")


def method_palette(methods: Sequence[str]) -> dict[str, str]:
    """``{method: hex colour}`` with a fixed colour per method name, identical across figures and runs."""
    return {m: method_color(m) for m in methods}
