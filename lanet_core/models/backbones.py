"""Feature extractors from timm, and the one pretrained-weights path of the project.

``weights`` is one of:
    * ``"none"``: random initialisation (the default here: no model hub is reachable);
    * ``"imagenet"``: timm's default ImageNet weights through the Hugging Face hub (needs internet);
    * ``"imagenet:<tag>"``: a specific timm tag, e.g. ``"imagenet:tv_in1k"`` (torchvision's weights);
    * a path to a local ``.pth``/``.bin``/``.safetensors`` state dict (timm or torchvision key names),
      for firewalled machines. Classifier keys in the file are ignored for feature extractors;
    * ``"local:<name>"``: ``<name>.safetensors``/``.pth`` looked up in :func:`weights_dirs` (machine-independent
      in configs); ``local:mobilenetv2_100.tflite_in1k`` is the converted TFLite MobileNetV2.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
from torch import nn

from lanet_core.errors import ConfigError

N_STAGES = 4


# The converted ImageNet MobileNetV2 (lanet convert-weights), built on demand from the TFLite file.
TFLITE_MOBILENET = "mobilenetv2_100.tflite_in1k"
TFLITE_SOURCE = "mobilenet_v2_imagenet/tf2_mobilenet_v2_1.0_224_ptq.tflite"


def weights_dirs() -> list[Path]:
    """Folders searched for ``local:<name>`` weights: the lanet weights cache, ``$LANET_WEIGHTS_DIR``,
    ``<project>/../shared/weights``."""
    from lanet_core.paths import cache_dir, project_root

    dirs = [cache_dir() / "weights"]
    if os.environ.get("LANET_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["LANET_WEIGHTS_DIR"]).expanduser())
    dirs.append(project_root().parent / "shared" / "weights")
    return dirs


def resolve_weights(weights: str | os.PathLike | None) -> str:
    """Turn ``local:<name>`` into the path of ``<name>.safetensors`` / ``.pth`` in :func:`weights_dirs`.

    ``local:mobilenetv2_100.tflite_in1k`` is converted from the TFLite file on first use. Machine-independent
    names keep run configs (and their hashes) the same everywhere. Other specs are returned unchanged.
    """
    w = str(weights) if weights is not None else "none"
    if not w.startswith("local:"):
        return w
    name = w.split(":", 1)[1]
    for d in weights_dirs():
        for ext in (".safetensors", ".pth", ".bin"):
            if (d / f"{name}{ext}").is_file():
                return str(d / f"{name}{ext}")
    if name == TFLITE_MOBILENET:
        for d in weights_dirs():
            if (d / TFLITE_SOURCE).is_file():
                from lanet_core.models.tflite_mobilenet import convert_mobilenet_v2_tflite

                return str(convert_mobilenet_v2_tflite(d / TFLITE_SOURCE))
    raise ConfigError(
        f"weights {w!r}: no {name}.safetensors/.pth in {', '.join(str(d) for d in weights_dirs())}"
        + (f" and no {TFLITE_SOURCE} to convert" if name == TFLITE_MOBILENET else "")
    )


def local_weights_available(weights: str) -> bool:
    """Whether a ``local:`` spec can be resolved here (other specs: True)."""
    try:
        resolve_weights(weights)
    except ConfigError:
        return False
    return True


def _weights_kwargs(name: str, weights: str | os.PathLike | None) -> tuple[str, dict]:
    """timm ``create_model`` arguments for a weights spec: (model name with tag, kwargs)."""
    w = resolve_weights(weights)
    if w in ("none", "", "random"):
        return name, {"pretrained": False}
    if w == "imagenet":
        return name, {"pretrained": True}
    if w.startswith("imagenet:"):
        return f"{name}.{w.split(':', 1)[1]}", {"pretrained": True}
    path = Path(w).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"weights {w!r} for {name}: not 'none', 'imagenet', 'imagenet:<tag>' or an existing file"
        )
    overlay = {"file": str(path), **_file_cfg_overlay(path)}
    return name, {"pretrained": True, "pretrained_cfg_overlay": overlay}


def _hub_error(name: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"could not fetch ImageNet weights for {name!r} from the model hub ({type(exc).__name__}: {exc}). "
        "Without internet, copy a weights file onto this machine and set model.weights=/path/to/file.pth "
        "(timm or torchvision state dict; .safetensors too), or use model.weights=none. "
        "See docs/pretrained_weights.md."
    )


def create_model_with_weights(name: str, weights: str | os.PathLike | None = "none", **kwargs) -> nn.Module:
    """``timm.create_model`` with the project's weights spec and a clear error when offline."""
    weights = resolve_weights(weights)
    full_name, wkw = _weights_kwargs(name, weights)
    kwargs = {**_file_model_kwargs(weights), **kwargs}
    try:
        model = timm.create_model(full_name, **wkw, **kwargs)
        if "pretrained_cfg_overlay" in wkw:
            file = Path(wkw["pretrained_cfg_overlay"]["file"])
            _check_file_fits_model(model, file, name, features_only=kwargs.get("features_only", False))
        return model
    except ConfigError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        if wkw.get("pretrained") and "pretrained_cfg_overlay" not in wkw:
            raise _hub_error(full_name, exc) from exc
        if "pretrained_cfg_overlay" in wkw:
            raise ConfigError(f"could not load weights file {weights} into {name}: {exc}") from exc
        raise


# --- Local weights files: metadata-driven defaults and a completeness check --------------------------
# (added with lanet_core/models/tflite_mobilenet.py; a converted TFLite MobileNetV2 carries its
#  pad_type / num_classes / normalisation in its safetensors metadata.)


def _file_cfg_overlay(path: Path) -> dict:
    """Extra timm ``pretrained_cfg`` entries a weights file asks for (from its metadata; ``{}`` for most)."""
    from lanet_core.models.tflite_mobilenet import pretrained_cfg_overlay_for_weights

    return pretrained_cfg_overlay_for_weights(path)


def _file_model_kwargs(weights: str | os.PathLike | None) -> dict:
    """Model kwargs a weights file needs (e.g. ``pad_type="same"``); explicit kwargs override them."""
    from lanet_core.models.tflite_mobilenet import backbone_kwargs_for_weights

    return backbone_kwargs_for_weights(weights)


def _check_file_fits_model(model: nn.Module, path: Path, name: str, features_only: bool) -> None:
    """Raise ConfigError when a local weights file does not fit ``model``.

    timm loads non-strictly whenever it drops a classifier (``features_only``, another ``num_classes``),
    so a file for another architecture would otherwise pass silently. Fails when a non-classifier
    tensor of ``model`` is absent from the file, or (full models only; a feature extractor legitimately
    drops the head layers) when the file holds non-classifier tensors the model lacks.
    """
    from timm.models import load_state_dict

    file_keys = set(load_state_dict(str(path)))
    heads = getattr(timm.get_pretrained_cfg(name) if timm.is_model(name) else None, "classifier", None)
    heads = (heads,) if isinstance(heads, str) else tuple(heads or ())
    head_prefixes = tuple(f"{h}." for h in heads)
    model_keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in model_keys - file_keys if not k.startswith(head_prefixes))
    extra = [] if features_only else sorted(
        k for k in file_keys - model_keys if not k.startswith(head_prefixes) and not k.endswith("num_batches_tracked")
    )
    if missing or extra:
        raise ConfigError(
            f"weights file {path} does not fit timm model {name!r}: "
            + (f"{len(missing)} model tensors missing from the file (e.g. {', '.join(missing[:3])}) " if missing else "")
            + (f"{len(extra)} file tensors unknown to the model (e.g. {', '.join(extra[:3])}) " if extra else "")
            + "- is it a state dict for another architecture?"
        )


def create_feature_extractor(
    name: str, weights: str | os.PathLike | None = "none", n_stages: int = N_STAGES, **kwargs
) -> nn.Module:
    """A timm ``features_only`` model returning the last ``n_stages`` feature maps, finest first.

    Works for any timm CNN with at least ``n_stages`` feature levels. Channels and strides are read
    from ``model.feature_info`` (``.channels()``, ``.reduction()``), never hard-coded. For an input of
    ``(B, 3, S, S)`` a ResNet returns maps at strides 4, 8, 16, 32.
    """
    try:
        model = create_model_with_weights(
            name, weights, features_only=True, out_indices=tuple(range(-n_stages, 0)), **kwargs
        )
    except (IndexError, AssertionError) as exc:
        raise ConfigError(f"timm model {name!r} has fewer than {n_stages} feature stages") from exc
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"model.backbone = {name!r}: unknown timm model (list them with timm.list_models(); "
                              f"e.g. resnet18, resnet50, efficientnet_b0, mobilenetv2_100)") from exc
        raise
    return model


def freeze_batchnorm(module: nn.Module) -> int:
    """Keep every BatchNorm of ``module`` in eval mode (running statistics frozen) from now on.

    Used for backbones whose BatchNorm was folded into the convolutions (the converted TFLite
    MobileNetV2): re-estimating batch statistics would destroy the pretrained scaling. The affine
    parameters stay trainable. Returns the number of BatchNorm layers frozen.
    """
    n = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.train = _stay_in_eval.__get__(m)  # type: ignore[method-assign]
            n += 1
    return n


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:  # noqa: ARG001 - signature of nn.Module.train
    """Replacement ``train`` for a frozen BatchNorm: it never leaves eval mode."""
    self.training = False
    return self


def count_parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def load_converted_mobilenet_v2(path: str | os.PathLike | None = None) -> nn.Module:
    """The converted 1001-class MobileNetV2 classifier in eval mode (input ``(B, 3, 224, 224)``, x/127.5 - 1).

    Goes through the project's weights path (``create_model_with_weights``). Output logits
    ``(B, 1001)``; index 0 = background, ImageNet class k = index k + 1.
    """
    from lanet_core.models import tflite_mobilenet as tflite

    path = Path(path).expanduser() if path is not None else tflite.default_converted_path()
    if not path.is_file():
        raise ConfigError(f"converted weights {path} not found; run `lanet convert-weights` first")
    if not tflite.is_converted_tflite(path):
        raise ConfigError(f"{path} is not a converted TFLite MobileNetV2 (metadata format != {tflite.FORMAT_TAG!r})")
    model = create_model_with_weights(tflite.ARCHITECTURE, path, num_classes=tflite.NUM_CLASSES,
                                      **tflite.backbone_kwargs_for_weights(path))
    return model.eval()
