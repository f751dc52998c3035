"""Run configuration: defaults, named presets, YAML files and ``key=value`` overrides.

A run is defined by its *resolved* config: the nested dict below after merging, in order, the defaults,
the architecture's defaults, the training preset, the YAML file and the command-line overrides. The
resolved config is stored in every run directory and hashed to key the run cache (``lanet_core.runs``).

Every key is documented next to its default. Units: sizes in pixels, learning rate per Adam step.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from lanet_core.errors import ConfigError
from lanet_core.models.geometry import FUSION_STRIDES, PAPER_FUSION_STRIDE
from lanet_core.models.registry import ARCHITECTURES
from lanet_core.paths import project_root

_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

DEFAULTS: dict[str, Any] = {
    "name": "run",  # a readable run name; not part of the run's identity
    "data": {
        "manifest": "data_manifests/busi.csv",  # CSV path (relative to the project) or "phantom:n=240,size=128,seed=0"
        "root": "auto",  # data root the manifest's paths are relative to; "auto" = discovery
        "image_size": 256,  # S: the network sees S x S images
        "resize": "squash",  # squash (paper text) | shorter_side_crop (authors' code: shorter side -> S, centre crop)
        "normalize": "half",  # half: (x - 0.5) / 0.5 as the authors (and the TFLite MobileNetV2) | imagenet | unit ([0, 1], paper text)
        "augment": "paper",  # paper: rot90 + random resized crop + flips + colour jitter (authors' code) | paper_text (no crop) | none
        "rotation": "authors",  # authors: always 90/180/270 degrees | any: 0/90/180/270
        "train_images": "all",  # all | labelled (only location-labelled training images: supervised-only runs)
        "num_workers": 0,  # DataLoader workers (not part of the run identity)
    },
    "model": {
        "arch": "lanet",  # lanet | classifier | vit | unet | deeplabv3 | rmtl | agn
        "backbone": "resnet18",  # any timm CNN with >= 4 feature stages (ViT name for arch=vit)
        "weights": "none",  # none | imagenet | imagenet:<tag> | path to a local weights file
        "freeze_bn": "auto",  # auto: frozen for BatchNorm-folded weights (unless bn_rebuild) | true | false
        "bn_rebuild": False,  # BN-folded weights: rebuild trainable BatchNorm from training-image statistics
        "use_cam": True,  # channel attention in every CBAM
        "use_sam": True,  # spatial attention in every CBAM
        "use_mam": True,  # mask-attention module f_att = f_n + f_n * f_mask
        "sam": "authors",  # authors: 3x(3x3 conv + BN) 2->8->8->1 | cbam: one 7x7 conv + BN (Woo et al. 2018)
        "cam_reduction": 16,  # channel-attention MLP reduction ratio r
        "fusion_stride": PAPER_FUSION_STRIDE,  # lesion-map stride: 32 = the paper (input/32); 16 or 8 beyond the paper
        "fusion_resize": "bilinear",  # bilinear (authors, align_corners=True) | area (average-pool when shrinking)
        "init": "kaiming",  # LA-Net init: kaiming (authors' code) | xavier (paper text)
        "drop_rate": 0.0,  # dropout before the classifier (timm classifiers)
        "head_init": "timm",  # new head of classifier/vit: timm (the model's own; MobileNetV2/EfficientNet: U(+-1/sqrt(classes))) | torch (nn.Linear default, fan-in)
    },
    "loss": {
        "lam": 0.5,  # lambda: L = lam * CE + (1 - lam) * (L_w + alpha * L_wo)
        "alpha": 0.1,  # weight of the pseudo-label loss of images without location labels
        "tau": 0.8,  # class-confidence gate of the pseudo labels (max softmax probability)
        "pseudo": "paper",  # paper: 1[P>0.5] where max P_cls > tau | authors: 1[P>=0.8], no gate | none
        "target_downsample": "area",  # area: fraction of lesion pixels per map cell | bilinear (authors) | max: any lesion pixel
    },
    "train": {
        "preset": "authors",  # authors (as-run: lr 1e-4, batch 12) | paper (text: lr 1e-3, batch 8) | custom
        "lr": 1e-4,
        "batch_size": 12,
        "stage1_epochs": 100,  # LA-Net pre-training on location-labelled images (0 = skip; 0 for other archs)
        "stage2_epochs": 100,  # joint training (the only stage of single-task baselines)
        "weight_decay": 0.0,
        "backbone_lr_scale": 1.0,  # lr of the feature extractor = lr x this (e.g. 0.1 for pretrained weights)
        "seed": 0,
        "select_on": "val",  # val (paper) | test (the authors' as-run test-set selection; recorded)
        "select_metric": "accuracy",  # stage-2 criterion of joint models: accuracy (paper) | auc+iou (mean of AUC and IoU)
        "stage2_init": "fex+lanet",  # fex+lanet (Algorithm 1) | lanet (authors: only LA-Net weights carried over)
        "device": "auto",  # auto | cpu | cuda
        "deterministic": True,  # deterministic kernels (cuBLAS workspace, cuDNN) on CUDA; ops without one are recorded
        "amp": "auto",  # bf16 autocast: auto = where native (CUDA bf16; CPU AVX512-BF16/AMX), else fp32 | true | false
        "channels_last": "auto",  # auto: on for CUDA and wherever bf16 autocast runs | true | false
        "progress": True,  # tqdm bars (not part of the run identity)
    },
    "eval": {
        "split": "test",
        "threshold": 0.5,  # lesion-map binarisation threshold for IoU / Dice
        "sweep": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],  # thresholds of the IoU / Dice sweep
        "align_corners": True,  # bilinear upsampling of the lesion map (authors: True)
        "gt": "binarize",  # binarize: GT = resized mask >= 0.5 | authors: only pixels exactly 1 after resizing
        "map_store_size": 64,  # lesion maps saved per test image at most this size (for figures)
    },
}

# Architecture-specific defaults applied before the preset and the user's file (from the registry).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {n: a.config_defaults() for n, a in ARCHITECTURES.items()}

PRESETS: dict[str, dict[str, Any]] = {
    "authors": {"train": {"lr": 1e-4, "batch_size": 12}},  # the authors' as-run scripts
    "paper": {"train": {"lr": 1e-3, "batch_size": 8}},  # section 4.3 of the paper
    "custom": {},
}

# Keys that do not change results; they are left out of the run's identity (hash).
NON_IDENTITY_KEYS: tuple[str, ...] = ("name", "data.root", "data.num_workers", "train.progress", "train.device",
                                      "train.deterministic")

# Keys added after runs were first recorded, with the value that reproduces the older behaviour: left out
# of the identity while they hold that value, so adding an option does not invalidate finished runs.
LATE_KEYS: dict[str, Any] = {"train.select_metric": "accuracy", "model.bn_rebuild": False, "train.backbone_lr_scale": 1.0,
                             "model.head_init": "timm"}

# Values hashed as another value. Precision is an execution choice, like the device: ``auto`` (bf16 where
# the hardware has it natively) and ``true`` both say "bf16 autocast allowed", and every committed run was
# recorded as ``true`` on hardware with native bf16. What actually ran is in each run's provenance.
IDENTITY_ALIASES: dict[str, dict[Any, Any]] = {
    "train.amp": {"auto": True},
    "train.channels_last": {"auto": True},
}

CHOICES: dict[str, tuple[Any, ...]] = {
    "data.resize": ("squash", "shorter_side_crop"),
    "data.normalize": ("half", "imagenet", "unit"),
    "data.augment": ("paper", "none", "paper_text"),
    "data.rotation": ("authors", "any"),
    "data.train_images": ("all", "labelled"),
    "model.arch": tuple(ARCH_DEFAULTS),
    "model.sam": ("authors", "cbam"),
    "model.fusion_resize": ("bilinear", "area"),
    "model.head_init": ("timm", "torch"),
    "model.init": ("kaiming", "xavier"),
    "model.fusion_stride": FUSION_STRIDES,
    "loss.pseudo": ("paper", "authors", "none"),
    "loss.target_downsample": ("area", "bilinear", "max"),
    "train.preset": tuple(PRESETS),
    "train.select_on": ("val", "test"),
    "train.select_metric": ("accuracy", "auc+iou"),
    "train.stage2_init": ("fex+lanet", "lanet"),
    "eval.gt": ("binarize", "authors"),
    "train.amp": ("auto", True, False),
    "train.channels_last": ("auto", True, False),
}


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any], *, path: str = "", strict: bool = True) -> dict:
    """Recursive dict merge; with ``strict`` an unknown key raises :class:`ConfigError`."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        where = f"{path}{key}"
        if strict and key not in out:
            valid = ", ".join(sorted(out))
            raise ConfigError(f"unknown config key {where!r}; valid keys here: {valid}")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value, path=f"{where}.", strict=strict)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=3e-4"`` -> ``{"train": {"lr": 0.0003}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-4" as text
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _set(cfg: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _numbers(cfg: dict) -> None:
    """Coerce numeric strings such as ``"1e-4"`` (YAML 1.1 reads them as text)."""
    for section in ("train", "loss"):
        for key, value in cfg[section].items():
            default = DEFAULTS[section].get(key)
            if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
                if not _FLOAT_RE.fullmatch(value.strip()):
                    raise ConfigError(f"{section}.{key} must be a number, got {value!r}")
                cfg[section][key] = float(value)


# Keys whose value is "auto" or a boolean.
AUTO_OR_BOOL = ("model.freeze_bn", "train.amp", "train.channels_last")


def _type_name(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else type(value).__name__


RANGES = {
    "train.backbone_lr_scale": "> 0", "train.batch_size": ">= 1", "train.stage1_epochs": ">= 0", "train.stage2_epochs": ">= 1", "train.lr": "> 0",
    "model.cam_reduction": ">= 1", "data.num_workers": ">= 0", "train.seed": ">= 0", "loss.lam": "0 <= lam <= 1",
    "loss.alpha": ">= 0", "loss.tau": "0 <= tau <= 1", "eval.threshold": "0 < threshold < 1",
}


def check_types(cfg: Mapping[str, Any], defaults: Mapping[str, Any] = DEFAULTS, path: str = "") -> None:
    """Every key holds a value of its default's type: booleans only ``true``/``false`` (not "false", 1 or
    "maybe"), integers only integers, numbers only numbers, text only text, lists only lists. Raises
    :class:`ConfigError` naming the key, the value and what is allowed."""
    for key, default in defaults.items():
        where = f"{path}{key}"
        if key not in cfg:
            continue
        value = cfg[key]
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} = {value!r}: expected a section (mapping of keys)")
            check_types(value, default, f"{where}.")
            continue
        if where in AUTO_OR_BOOL:
            if not (value == "auto" and isinstance(value, str)) and not isinstance(value, bool):
                raise ConfigError(f"{where} = {value!r}: expected auto, true or false")
            continue
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false (a YAML boolean, unquoted)"
        elif isinstance(default, int):
            ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, want = isinstance(value, str), "text"
        elif isinstance(default, list):
            ok, want = isinstance(value, list), "a list"
        else:
            ok, want = True, ""
        if not ok:
            allowed = CHOICES.get(where)
            extra = f" (one of {list(allowed)})" if allowed else ""
            raise ConfigError(f"{where} = {value!r} is {_type_name(value)}; expected {want}{extra}")


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check types, choices and ranges; raises :class:`ConfigError` naming the key, the value and what is allowed."""
    check_types(cfg)
    for dotted, allowed in CHOICES.items():
        value = _get(cfg, dotted)
        if value not in allowed:  # types are already checked, so 1 cannot pass for true here
            raise ConfigError(f"{dotted} = {value!r} is not one of {list(allowed)}")
    size = _get(cfg, "data.image_size")
    if size < 32 or size % 32:
        raise ConfigError(f"data.image_size = {size!r}: must be a multiple of 32 (the feature extractor's stride), >= 32")
    checks = {
        "train.batch_size": lambda v: isinstance(v, int) and v >= 1,
        "train.stage1_epochs": lambda v: isinstance(v, int) and v >= 0,
        "train.stage2_epochs": lambda v: isinstance(v, int) and v >= 1,
        "train.lr": lambda v: isinstance(v, (int, float)) and v > 0,
        "train.backbone_lr_scale": lambda v: v > 0,
        "model.cam_reduction": lambda v: v >= 1,
        "data.num_workers": lambda v: v >= 0,
        "train.seed": lambda v: v >= 0,
        "loss.lam": lambda v: 0 <= v <= 1,
        "loss.alpha": lambda v: v >= 0,
        "loss.tau": lambda v: 0 <= v <= 1,
        "eval.threshold": lambda v: 0 < v < 1,
    }
    for dotted, ok in checks.items():
        value = _get(cfg, dotted)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{dotted} = {value!r} is not a finite number ({RANGES[dotted]})")
        if not ok(value):
            raise ConfigError(f"{dotted} = {value!r} is out of range ({RANGES[dotted]})")


def resolve_config(user: Mapping[str, Any] | None = None, overrides: Iterable[str] | None = None) -> dict[str, Any]:
    """Defaults < architecture defaults < preset < ``user`` < ``overrides`` -> a validated resolved config."""
    user = dict(user or {})
    over: dict[str, Any] = {}
    for text in overrides or []:
        over = deep_merge(over, parse_override(text), strict=False)
    merged_user = deep_merge(user, over, strict=False)
    arch = merged_user.get("model", {}).get("arch", DEFAULTS["model"]["arch"])
    if arch not in ARCH_DEFAULTS:
        raise ConfigError(f"model.arch = {arch!r} is not one of {list(ARCH_DEFAULTS)}")
    preset = merged_user.get("train", {}).get("preset", DEFAULTS["train"]["preset"])
    if preset not in PRESETS:
        raise ConfigError(f"train.preset = {preset!r} is not one of {list(PRESETS)}")
    cfg = deep_merge(DEFAULTS, ARCH_DEFAULTS[arch])
    cfg = deep_merge(cfg, PRESETS[preset])
    cfg = deep_merge(cfg, merged_user)
    if not ARCHITECTURES[arch].stage1:
        cfg["train"]["stage1_epochs"] = 0  # stage 1 is LA-Net's pre-training; baselines train in one stage
    _numbers(cfg)
    validate_config(cfg)
    return cfg


def load_config(source: str | os.PathLike | Mapping[str, Any], overrides: Iterable[str] | None = None) -> dict[str, Any]:
    """Resolve a config from a YAML file (or a dict) plus ``key=value`` overrides.

    A relative path is looked up from the working directory, then from the project root and its
    ``configs/`` folder, so ``lanet train busi_lanet_r18.yaml`` works from anywhere in the project.
    """
    if isinstance(source, Mapping):
        return resolve_config(source, overrides)
    path, user = read_config_file(source)
    try:
        return resolve_config(user, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def read_config_file(source: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """``(path, sections)`` of a config YAML (found by :func:`find_config_file`); a clear error if it is not
    valid YAML or not a mapping of sections."""
    path = find_config_file(source)
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    return path, user


def find_config_file(source: str | os.PathLike) -> Path:
    cand = Path(source)
    tries = [cand, project_root() / cand, project_root() / "configs" / cand]
    if cand.suffix == "":
        tries += [t.with_suffix(".yaml") for t in tries]
    for t in tries:
        if t.is_file():
            return t
    raise ConfigError(f"config file {source!r} not found (tried {', '.join(str(t) for t in tries)})")


def identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that defines the run's results (non-identity keys removed)."""
    out = copy.deepcopy(dict(cfg))
    for dotted, aliases in IDENTITY_ALIASES.items():
        try:
            value = _get(out, dotted)
        except KeyError:
            continue
        if isinstance(value, str) and value in aliases:
            _set(out, dotted, aliases[value])
    for dotted, neutral in LATE_KEYS.items():
        try:
            if _get(out, dotted) == neutral:
                parts = dotted.split(".")
                _get(out, ".".join(parts[:-1])).pop(parts[-1])
        except KeyError:
            pass
    for dotted in NON_IDENTITY_KEYS:
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            node = node.get(part, {})
        node.pop(parts[-1], None)
    return out


def dump_config(cfg: Mapping[str, Any]) -> str:
    """YAML text of a config with stable key order (sections in schema order)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None, width=100)


def with_overrides(cfg: Mapping[str, Any], **dotted: Any) -> dict[str, Any]:
    """A copy of a resolved config with dotted keys replaced, re-validated: ``with_overrides(cfg, **{"train.seed": 1})``."""
    out = copy.deepcopy(dict(cfg))
    for key, value in dotted.items():
        try:
            _get(out, key)
        except KeyError:
            raise ConfigError(f"unknown config key {key!r}") from None
        _set(out, key, value)
    validate_config(out)
    return out


def _leaves(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_leaves(v, key + "."))
        else:
            out[key] = v
    return out


def resolve_with_sources(user: Mapping[str, Any], overrides: Iterable[str] | None = None, *,
                         user_layers: Sequence[tuple[str, Mapping[str, Any]]] | None = None
                         ) -> tuple[dict[str, Any], dict[str, str]]:
    """The resolved config and, per dotted key, the layer its value came from: ``default``, ``arch <a>``,
    ``preset <p>``, each of ``user_layers`` in order (e.g. a profile's base, then the file; default: one layer
    ``file`` = ``user``), ``--set``, or ``rule`` (LA-Net's stage 1 forced to 0 for other architectures)."""
    layers = list(user_layers) if user_layers is not None else [("file", user)]
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer, strict=False)
    over: dict[str, Any] = {}
    for text in overrides or []:
        over = deep_merge(over, parse_override(text), strict=False)
    everything = deep_merge(merged, over, strict=False)  # what resolve_config(merged, overrides) merges
    cfg = resolve_config(everything)
    arch, preset = cfg["model"]["arch"], cfg["train"]["preset"]
    sources = {k: "default" for k in _leaves(DEFAULTS)}
    for name, layer in [(f"arch {arch}", ARCH_DEFAULTS[arch]), (f"preset {preset}", PRESETS[preset]), *layers,
                        ("--set", over)]:
        for k in _leaves(layer):
            sources[k] = name
    if not ARCHITECTURES[arch].stage1 and _leaves(everything).get("train.stage1_epochs", 0) not in (0, None):
        sources["train.stage1_epochs"] = "rule (no stage 1 for this arch)"
    return cfg, sources


def format_sources(cfg: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    """``key = value  # source`` lines of a resolved config, keys in config order."""
    flat = _leaves(cfg)
    width = max(len(f"{k} = {v!r}") for k, v in flat.items())
    return "\n".join(f"{f'{k} = {v!r}':<{width}}  # {sources.get(k, 'default')}" for k, v in flat.items())
