"""ImageNet MobileNetV2 from a post-training-quantised TFLite file, as a timm ``mobilenetv2_100`` state dict.

The one ImageNet classifier reachable offline is Google Coral's int8 Keras/slim MobileNetV2 1.0/224
(``tf2_mobilenet_v2_1.0_224_ptq.tflite``). :func:`convert_mobilenet_v2_tflite` reads its flatbuffer
with the PyPI package ``tflite`` (no interpreter), dequantises every conv / depthwise conv /
fully-connected op and maps it onto timm's ``mobilenetv2_100`` built with ``pad_type="same"`` (TF
'SAME' padding) and ``num_classes=1001`` (index 0 = background). BatchNorm is folded into the TFLite
convolutions, so each timm BatchNorm becomes an identity carrying the folded bias
(weight 1, running_mean 0, running_var 1 - eps, bias b): keep it frozen when fine-tuning
(:func:`lanet_core.models.backbones.freeze_batchnorm`).

The output is a ``.safetensors`` file whose metadata (:func:`weights_metadata`) tells the project's
single weights path (:mod:`lanet_core.models.backbones`) how to build a model for it
(:func:`backbone_kwargs_for_weights`, :func:`pretrained_cfg_overlay_for_weights`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import tflite
import torch
from PIL import Image
from timm.layers import Conv2dSame
from torch import nn

from lanet_core.io import atomic_write_bytes
from lanet_core.errors import ConfigError
from lanet_core.paths import cache_dir

ARCHITECTURE = "mobilenetv2_100"
FORMAT_TAG = "lanet.tflite_mobilenet_v2.v1"
DEFAULT_FILENAME = "mobilenetv2_100.tflite_in1k.safetensors"
NUM_CLASSES = 1001
LABEL_OFFSET = 1  # index 0 = background; ImageNet class k is output k + 1
INPUT_MEAN = (0.5, 0.5, 0.5)  # x / 127.5 - 1 for x in [0, 255]
INPUT_STD = (0.5, 0.5, 0.5)
INPUT_SIZE = (3, 224, 224)
INTERPOLATION = "bilinear"
TFLITE_MOBILENET_KWARGS: dict[str, str] = {"pad_type": "same"}

_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_NUMPY_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT8: np.int8,
    tflite.TensorType.UINT8: np.uint8,
}
_PADDING_NAMES = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_") and isinstance(v, int)
}
_SCOPE_RE = re.compile(
    r"(?:^|/)(?P<scope>Conv2d_\d+_\d+|expanded_conv(?:_\d+)?(?:/(?:expand|depthwise|project))?"
    r"|top/Conv2d_1x1_output)(?:/|$)"
)


# --------------------------------------------------------------------------- pure array helpers


def dequantize(
    q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int = 0, axis: int = 0
) -> np.ndarray:
    """Affine dequantisation ``(q - zero_point) * scale`` as float32, same shape as ``q``.

    ``scale`` and ``zero_point`` hold either one value (per-tensor) or ``q.shape[axis]`` values
    (per-channel along ``axis``, e.g. axis 0 for conv kernels ``(O, kh, kw, I)``, axis 3 for
    depthwise kernels ``(1, kh, kw, C)``).
    """
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    zero_point = np.asarray(zero_point, dtype=np.float64).reshape(-1)
    for name, values in (("scale", scale), ("zero point", zero_point)):
        if values.size not in (1, q.shape[axis]):
            raise ConfigError(
                f"{values.size} quantisation {name}s for a tensor of shape {q.shape} along axis {axis}"
            )
    shape = [1] * q.ndim
    shape[axis] = -1  # broadcast per-channel values along ``axis`` (a single value broadcasts anyway)
    return ((q.astype(np.float64) - zero_point.reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def dequantize_bias(q_bias: np.ndarray, input_scale: float, weight_scale: np.ndarray | float) -> np.ndarray:
    """int32 bias ``(O,)`` to float32: ``q_bias * input_scale * weight_scale`` (per output channel)."""
    return dequantize(q_bias, float(input_scale) * np.asarray(weight_scale, dtype=np.float64), 0, axis=0)


def conv_kernel_to_torch(w: np.ndarray) -> np.ndarray:
    """TFLite conv kernel ``(O, kh, kw, I)`` to PyTorch ``(O, I, kh, kw)``."""
    if w.ndim != 4:
        raise ConfigError(f"conv kernel of shape {w.shape}: expected 4 dims (O, kh, kw, I)")
    return np.ascontiguousarray(np.transpose(w, (0, 3, 1, 2)))


def depthwise_kernel_to_torch(w: np.ndarray) -> np.ndarray:
    """TFLite depthwise kernel ``(1, kh, kw, C)`` (depth multiplier 1) to PyTorch ``(C, 1, kh, kw)``."""
    if w.ndim != 4 or w.shape[0] != 1:
        raise ConfigError(f"depthwise kernel of shape {w.shape}: expected (1, kh, kw, C)")
    return np.ascontiguousarray(np.transpose(w, (3, 0, 1, 2)))


def folded_batchnorm_state(bias: np.ndarray, eps: float) -> dict[str, torch.Tensor]:
    """BatchNorm entries that make a BN an identity plus ``bias`` in eval mode.

    weight = 1, running_mean = 0, running_var = 1 - eps (so ``(x - 0) / sqrt(var + eps) = x``),
    bias = ``bias`` ``(C,)`` (the conv bias with the original BN folded in).
    """
    b = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return {
        "weight": torch.ones_like(b),
        "bias": b,
        "running_mean": torch.zeros_like(b),
        "running_var": torch.full_like(b, 1.0 - eps),
        "num_batches_tracked": torch.tensor(0, dtype=torch.long),
    }


def tf_scope(tensor_name: str) -> str:
    """Layer scope of a TFLite tensor name, e.g. ``expanded_conv_1/project`` or ``Conv2d_0_0``.

    Fused names list several TF ops separated by ``;``; the first one names the layer.
    Returns the first name unchanged when it has no MobileNetV2 scope.
    """
    first = tensor_name.split(";")[0]
    match = _SCOPE_RE.search(first)
    return match.group("scope") if match else first


# --------------------------------------------------------------------------- reading the flatbuffer


@dataclass(frozen=True)
class TfliteLayer:
    """One weighted op of the TFLite graph, dequantised and in PyTorch layout.

    ``weight``: float32, ``(O, I, kh, kw)`` for CONV_2D, ``(C, 1, kh, kw)`` for DEPTHWISE_CONV_2D,
    ``(O, I)`` for FULLY_CONNECTED. ``bias``: float32 ``(O,)`` or ``None``.
    """

    op_index: int
    op: str
    scope: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: str
    activation: str


class _Graph:
    """Thin accessors over the ``tflite`` flatbuffer objects of one file (subgraph 0)."""

    def __init__(self, src: Path):
        self.src = src
        self.buf = src.read_bytes()
        if not tflite.Model.ModelBufferHasIdentifier(self.buf, 0):
            raise ConfigError(f"{src}: not a TFLite flatbuffer (no 'TFL3' identifier)")
        self.model = tflite.Model.GetRootAs(self.buf, 0)
        if self.model.SubgraphsLength() < 1:
            raise ConfigError(f"{src}: TFLite file has no subgraph")
        self.graph = self.model.Subgraphs(0)

    def op_name(self, op: tflite.Operator) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        return tflite.BUILTIN_OPCODE2NAME.get(builtin, f"UNKNOWN_{builtin}")

    def options(self, op: tflite.Operator, cls: type):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def tensor_name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode("utf-8", "replace")

    def quantization(self, index: int) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        """(scales, zero points, quantised axis) of tensor ``index``; ``None`` when not quantised."""
        q = self.graph.Tensors(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None, None, 0
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(1, np.int64)
        return q.ScaleAsNumpy().astype(np.float64), np.asarray(zp), q.QuantizedDimension()

    def constant(self, index: int) -> np.ndarray:
        """The constant data of tensor ``index`` with its TFLite dtype and shape."""
        t = self.graph.Tensors(index)
        name = self.tensor_name(index)
        dtype = _NUMPY_DTYPES.get(t.Type())
        if dtype is None:
            raise ConfigError(f"{self.src}: tensor {name!r} has unsupported type {t.Type()}")
        buffer = self.model.Buffers(t.Buffer())
        if buffer.DataLength() > 0:
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer.Offset() > 1:  # large models keep data after the flatbuffer
            raw = self.buf[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            raise ConfigError(f"{self.src}: tensor {name!r} holds no constant data")
        shape = tuple(int(s) for s in t.ShapeAsNumpy())
        arr = np.frombuffer(raw, dtype=dtype).copy()  # writable, independent of the file buffer
        if arr.size != int(np.prod(shape)):
            raise ConfigError(f"{self.src}: tensor {name!r} has {arr.size} values for shape {shape}")
        return arr.reshape(shape)

    def dequantized(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(float32 values, per-channel scales or ``None``) of a constant tensor."""
        data = self.constant(index)
        scale, zp, axis = self.quantization(index)
        if data.dtype == np.float32:
            return data, None
        if scale is None:
            raise ConfigError(f"{self.src}: integer tensor {self.tensor_name(index)!r} has no quantisation scale")
        return dequantize(data, scale, zp, axis), scale


def read_tflite_layers(src: str | os.PathLike) -> list[TfliteLayer]:
    """Every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op of ``src``, in graph order, dequantised.

    Weights: int8 x per-output-channel scale; biases: int32 x input scale x weight scale (checked
    against the bias tensor's own scales). Kernels are transposed to PyTorch layout.
    """
    try:
        return _read_layers(_Graph(Path(src)))
    except ConfigError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{src}: truncated or damaged TFLite file ({type(exc).__name__}: {str(exc)[:120]}); download "
                          "it again (its SHA-256 is in the weights README)") from None


def _read_layers(g: "_Graph") -> list[TfliteLayer]:
    layers = []
    for i in range(g.graph.OperatorsLength()):
        op = g.graph.Operators(i)
        name = g.op_name(op)
        if name not in _WEIGHTED_OPS:
            continue
        inputs = [int(t) for t in op.InputsAsNumpy()]
        if len(inputs) < 2:
            raise ConfigError(f"{g.src}: op {i} ({name}) has no weight input")
        weight, w_scale = g.dequantized(inputs[1])
        bias = _op_bias(g, i, inputs, w_scale)
        if name == "CONV_2D":
            opts = g.options(op, tflite.Conv2DOptions)
            weight = conv_kernel_to_torch(weight)
        elif name == "DEPTHWISE_CONV_2D":
            opts = g.options(op, tflite.DepthwiseConv2DOptions)
            weight = depthwise_kernel_to_torch(weight)
        else:
            opts = g.options(op, tflite.FullyConnectedOptions)
        is_conv = name != "FULLY_CONNECTED"
        layers.append(
            TfliteLayer(
                op_index=i,
                op=name,
                scope=tf_scope(g.tensor_name(inputs[1])),
                weight=weight,
                bias=bias,
                stride=(opts.StrideH(), opts.StrideW()) if is_conv else (1, 1),
                padding=_PADDING_NAMES.get(opts.Padding(), "?") if is_conv else "VALID",
                activation=_ACTIVATION_NAMES.get(opts.FusedActivationFunction(), "?"),
            )
        )
    if not layers:
        raise ConfigError(f"{g.src}: no conv / depthwise conv / fully-connected op found")
    return layers


def _op_bias(g: _Graph, op_index: int, inputs: list[int], w_scale: np.ndarray | None) -> np.ndarray | None:
    """The dequantised bias of a weighted op (``None`` when the op has none)."""
    if len(inputs) < 3 or inputs[2] < 0:
        return None
    q_bias = g.constant(inputs[2])
    if q_bias.dtype == np.float32:
        return q_bias
    in_scale, _, _ = g.quantization(inputs[0])
    if in_scale is None or w_scale is None:
        raise ConfigError(f"{g.src}: op {op_index}: integer bias without input / weight scales")
    expected = in_scale[0] * w_scale
    stored, _, _ = g.quantization(inputs[2])
    if stored is not None and not np.allclose(stored, expected, rtol=1e-4, atol=0):
        raise ConfigError(
            f"{g.src}: op {op_index}: bias scales differ from input scale x weight scales "
            f"(max relative difference {np.max(np.abs(stored / expected - 1)):.2e})"
        )
    return dequantize_bias(q_bias, in_scale[0], w_scale)


# --------------------------------------------------------------------------- mapping onto timm


@dataclass(frozen=True)
class TargetLayer:
    """A timm conv/linear module with its BatchNorm and the TF scope expected to fill it."""

    scope: str
    kind: str  # "conv" | "depthwise" | "linear"
    conv: str
    bn: str | None


def mobilenet_v2_targets(model: nn.Module) -> list[TargetLayer]:
    """The conv / depthwise / linear layers of a timm MobileNetV2 in forward order, with TF scopes."""
    for attr in ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "classifier"):
        if not hasattr(model, attr):
            raise ConfigError(f"{type(model).__name__} is not a timm MobileNetV2 (no {attr!r})")
    targets = [TargetLayer("Conv2d_0_0", "conv", "conv_stem", "bn1")]
    blocks = [(f"blocks.{s}.{i}", blk) for s, stage in enumerate(model.blocks) for i, blk in enumerate(stage)]
    for j, (prefix, blk) in enumerate(blocks, start=1):
        scope = f"expanded_conv_{j}"
        if hasattr(blk, "conv_pwl"):  # InvertedResidual: expand, depthwise, project
            parts = [("expand", "conv", "conv_pw", "bn1"), ("depthwise", "depthwise", "conv_dw", "bn2"),
                     ("project", "conv", "conv_pwl", "bn3")]
        elif hasattr(blk, "conv_dw") and hasattr(blk, "conv_pw"):  # DepthwiseSeparable: depthwise, project
            parts = [("depthwise", "depthwise", "conv_dw", "bn1"), ("project", "conv", "conv_pw", "bn2")]
        else:
            raise ConfigError(f"block {prefix} ({type(blk).__name__}) is not a MobileNetV2 block")
        targets += [TargetLayer(f"{scope}/{p}", k, f"{prefix}.{c}", f"{prefix}.{b}") for p, k, c, b in parts]
    targets.append(TargetLayer(f"Conv2d_{len(blocks) + 1}_1", "conv", "conv_head", "bn2"))
    targets.append(TargetLayer("top/Conv2d_1x1_output", "linear", "classifier", None))
    return targets


def _check_layer_matches(target: TargetLayer, layer: TfliteLayer, model: nn.Module) -> None:
    """Raise unless op type, TF scope, stride, padding and activation of ``layer`` fit ``target``."""
    where = f"TFLite op {layer.op_index} ({layer.op}, scope {layer.scope!r}) -> timm {target.conv!r}"
    expected_ops = {"conv": ("CONV_2D",), "depthwise": ("DEPTHWISE_CONV_2D",),
                    "linear": ("CONV_2D", "FULLY_CONNECTED")}[target.kind]
    if layer.op not in expected_ops:
        raise ConfigError(f"{where}: expected a {' or '.join(expected_ops)} op")
    if layer.scope != target.scope:
        raise ConfigError(f"{where}: expected TF scope {target.scope!r}")
    module = model.get_submodule(target.conv)
    if target.kind == "linear":
        expected_act = "NONE"
    else:
        if tuple(module.stride) != layer.stride:
            raise ConfigError(f"{where}: TFLite stride {layer.stride}, timm stride {tuple(module.stride)}")
        k = tuple(module.kernel_size)
        if max(k) > 1 and layer.padding != "SAME":
            raise ConfigError(f"{where}: TFLite padding {layer.padding}, only SAME is supported")
        if max(module.stride) > 1 and max(k) > 1 and not isinstance(module, Conv2dSame):
            raise ConfigError(f"{where}: strided conv without TF 'SAME' padding; create the model with pad_type='same'")
        act = getattr(model.get_submodule(target.bn), "act", nn.Identity())
        expected_act = "RELU6" if isinstance(act, nn.ReLU6) else "NONE" if isinstance(act, nn.Identity) else "?"
    if layer.activation != expected_act:
        raise ConfigError(f"{where}: TFLite activation {layer.activation}, timm expects {expected_act}")


def layers_to_state_dict(layers: list[TfliteLayer], model: nn.Module) -> dict[str, torch.Tensor]:
    """A complete state dict for the timm MobileNetV2 ``model`` from the TFLite ``layers``.

    Layers are paired with :func:`mobilenet_v2_targets` by graph order and checked by TF scope, op
    type, stride, padding, activation and shape. Each folded bias goes into the BN after the conv
    (:func:`folded_batchnorm_state`). Raises :class:`ConfigError` unless every entry of
    ``model.state_dict()`` is filled exactly once with the right shape.
    """
    targets = mobilenet_v2_targets(model)
    if len(layers) != len(targets):
        raise ConfigError(
            f"the TFLite graph has {len(layers)} conv / depthwise / fully-connected ops, "
            f"timm {type(model).__name__} has {len(targets)} conv / linear layers"
        )
    expected = model.state_dict()
    filled: dict[str, torch.Tensor] = {}

    def put(key: str, value: np.ndarray | torch.Tensor, source: str) -> None:
        if key not in expected:
            raise ConfigError(f"{source}: {key!r} is not an entry of the timm state dict")
        if key in filled:
            raise ConfigError(f"{source}: {key!r} filled twice")
        tensor = torch.as_tensor(value)
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ConfigError(f"{source}: {key!r} has shape {tuple(tensor.shape)}, timm expects "
                              f"{tuple(expected[key].shape)}")
        filled[key] = tensor.to(expected[key].dtype).contiguous()

    for target, layer in zip(targets, layers):
        _check_layer_matches(target, layer, model)
        source = f"TFLite op {layer.op_index} ({layer.scope})"
        module = model.get_submodule(target.conv)
        n_out = layer.weight.shape[0]
        bias = layer.bias if layer.bias is not None else np.zeros(n_out, np.float32)
        if target.kind == "linear":
            if layer.weight.size != module.weight.numel():
                raise ConfigError(f"{source}: classifier of shape {layer.weight.shape}, timm expects "
                                  f"{tuple(module.weight.shape)} (create the model with num_classes={n_out})")
            put(f"{target.conv}.weight", layer.weight.reshape(tuple(module.weight.shape)), source)
            put(f"{target.conv}.bias", bias, source)
            continue
        put(f"{target.conv}.weight", layer.weight, source)
        bn = model.get_submodule(target.bn)
        for name, value in folded_batchnorm_state(bias, bn.eps).items():
            put(f"{target.bn}.{name}", value, source)
    missing = [k for k in expected if k not in filled]
    if missing:
        raise ConfigError(f"{len(missing)} timm state-dict entries not filled from the TFLite file: {missing[:5]}")
    return {k: filled[k] for k in expected}


# --------------------------------------------------------------------------- int8 activation emulation


def activation_quantization(src: str | os.PathLike) -> dict[str, list[tuple[float, int]]]:
    """Output (scale, zero point) of the quantised activations of ``src``, in graph order.

    Keys: ``"weighted"`` (one per conv / depthwise / fully-connected op, after its fused activation),
    ``"ADD"`` (residual sums) and ``"MEAN"`` (global average pool).
    """
    g = _Graph(Path(src))
    points: dict[str, list[tuple[float, int]]] = {"weighted": [], "ADD": [], "MEAN": []}
    for i in range(g.graph.OperatorsLength()):
        op = g.graph.Operators(i)
        name = g.op_name(op)
        key = "weighted" if name in _WEIGHTED_OPS else name
        if key in points:
            scale, zp, _ = g.quantization(int(op.OutputsAsNumpy()[0]))
            if scale is None:
                raise ConfigError(f"{g.src}: op {i} ({name}) has a float output; not a fully int8 model")
            points[key].append((float(scale[0]), int(zp[0])))
    return points


def emulate_int8_activations(model: nn.Module, src: str | os.PathLike) -> list[torch.utils.hooks.RemovableHandle]:
    """Fake-quantise the activations of the converted ``model`` where the TFLite graph ``src`` does.

    For verification only: the converted float network differs from the int8 TFLite network by
    its activation quantisation; with these forward hooks (int8 grid of each op's output, clamped
    to [-128, 127]) it computes nearly what the interpreter computes. Returns the hook handles
    (call ``.remove()`` on each to get the float network back).
    """
    points = activation_quantization(src)
    targets = mobilenet_v2_targets(model)
    skips = [blk for stage in model.blocks for blk in stage if getattr(blk, "has_skip", False)]
    if (len(points["weighted"]), len(points["ADD"]), len(points["MEAN"])) != (len(targets), len(skips), 1):
        raise ConfigError(
            f"{src}: {len(points['weighted'])} weighted ops, {len(points['ADD'])} residual adds and "
            f"{len(points['MEAN'])} means do not fit the model's {len(targets)} layers / {len(skips)} skips"
        )
    layer_outputs = [model.get_submodule(t.bn or t.conv) for t in targets]  # BN includes the fused ReLU6
    pairs = list(zip(layer_outputs, points["weighted"])) + list(zip(skips, points["ADD"]))
    pairs.append((model.global_pool, points["MEAN"][0]))
    return [module.register_forward_hook(_fake_quant_hook(scale, zp)) for module, (scale, zp) in pairs]


def _fake_quant_hook(scale: float, zero_point: int):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(output / scale) + zero_point, -128, 127)
        return (q - zero_point) * scale

    return hook


# --------------------------------------------------------------------------- files and metadata


def default_converted_path() -> Path:
    """Where the converted weights go by default: ``<lanet cache>/weights/<DEFAULT_FILENAME>``."""
    return cache_dir() / "weights" / DEFAULT_FILENAME


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def new_mobilenet_v2() -> nn.Module:
    """A randomly initialised timm ``mobilenetv2_100`` shaped like the TFLite network (SAME padding, 1001 classes)."""
    import timm

    # timm directly (no weights to resolve): the project's weights path (models.backbones) imports this module
    return timm.create_model(ARCHITECTURE, pretrained=False, num_classes=NUM_CLASSES, **TFLITE_MOBILENET_KWARGS)


def convert_mobilenet_v2_tflite(src: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Convert the TFLite MobileNetV2 1.0/224 at ``src`` to a timm ``mobilenetv2_100`` safetensors file.

    The result (written atomically to ``out``, default :func:`default_converted_path`) is the full
    1001-class classifier (index 0 = background) with BatchNorm as identity + folded bias; see
    :func:`save_converted_weights` for its metadata. Returns the output path.
    """
    src = Path(src).expanduser()
    if not src.is_file():
        raise ConfigError(f"TFLite file {src} not found (expected tf2_mobilenet_v2_1.0_224_ptq.tflite)")
    model = new_mobilenet_v2()
    state = layers_to_state_dict(read_tflite_layers(src), model)
    model.load_state_dict(state, strict=True)
    return save_converted_weights(state, out, source_file=src.name, source_sha256=_sha256(src))


def save_converted_weights(
    state: dict[str, torch.Tensor], out: str | os.PathLike | None, source_file: str, source_sha256: str
) -> Path:
    """Write a converted state dict atomically as safetensors with the metadata the weights path reads.

    Metadata: the format tag, architecture, source file name and sha256, ``pad_type=same``,
    ``bn_folded=true``, ``num_classes=1001``, ``label_offset=1`` (index 0 = background), the input
    normalisation (mean = std = 0.5 on [0, 1], i.e. x / 127.5 - 1), input size, interpolation, licence.
    """
    metadata = {
        "format": FORMAT_TAG,
        "architecture": ARCHITECTURE,
        "source_file": source_file,
        "source_sha256": source_sha256,
        "pad_type": TFLITE_MOBILENET_KWARGS["pad_type"],
        "bn_folded": "true",
        "num_classes": str(NUM_CLASSES),
        "label_offset": str(LABEL_OFFSET),
        "mean": ",".join(str(v) for v in INPUT_MEAN),
        "std": ",".join(str(v) for v in INPUT_STD),
        "input_size": ",".join(str(v) for v in INPUT_SIZE),
        "interpolation": INTERPOLATION,
        "license": "Apache-2.0 (google-coral/test_data); keep the LICENSE next to copies",
    }
    out = Path(out).expanduser() if out is not None else default_converted_path()
    atomic_write_bytes(out, safetensors.torch.save(state, metadata=metadata))
    return out


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a ``.safetensors`` file; ``{}`` for other or missing files."""
    path = Path(path).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with safetensors.safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"weights file {path}: not a readable safetensors file ({exc})") from exc


def is_converted_tflite(weights: str | os.PathLike | None) -> bool:
    """Whether ``weights`` names a file written by :func:`convert_mobilenet_v2_tflite`."""
    spec = "none" if weights is None else str(weights)
    if spec in ("none", "", "random", "imagenet") or spec.startswith("imagenet:"):
        return False  # the keyword specs of the weights path, never files
    return Path(spec).expanduser().is_file() and weights_metadata(spec).get("format") == FORMAT_TAG


def backbone_kwargs_for_weights(weights: str | os.PathLike | None) -> dict[str, str]:
    """timm model kwargs a weights spec needs: :data:`TFLITE_MOBILENET_KWARGS` for a converted file, else ``{}``."""
    return dict(TFLITE_MOBILENET_KWARGS) if is_converted_tflite(weights) else {}


def pretrained_cfg_overlay_for_weights(weights: str | os.PathLike | None) -> dict:
    """timm ``pretrained_cfg`` entries for a converted file (``{}`` otherwise).

    ``num_classes=1001`` makes timm drop the 1001-class head whenever the model's ``num_classes``
    differs (features_only, ``num_classes=2``) and load it strictly when it is 1001; mean/std and
    interpolation describe the TFLite preprocessing (x / 127.5 - 1, bilinear resize, no crop).
    """
    if not is_converted_tflite(weights):
        return {}
    meta = weights_metadata(str(weights))
    return {
        "num_classes": int(meta.get("num_classes", NUM_CLASSES)),
        "mean": tuple(float(v) for v in meta.get("mean", "0.5,0.5,0.5").split(",")),
        "std": tuple(float(v) for v in meta.get("std", "0.5,0.5,0.5").split(",")),
        "input_size": tuple(int(v) for v in meta.get("input_size", "3,224,224").split(",")),
        "interpolation": meta.get("interpolation", INTERPOLATION),
        "crop_pct": 1.0,
    }


def tflite_input(image: str | os.PathLike | Image.Image, size: int = 224, zero_point: float = 127.5) -> torch.Tensor:
    """The TFLite model's preprocessing: RGB, bilinear resize to ``size`` x ``size``, (x - zero_point) / 127.5.

    The default gives x / 127.5 - 1; ``zero_point=127`` reproduces the TFLite uint8 input quantisation
    exactly (use it with :func:`emulate_int8_activations`). Returns float32 ``(1, 3, size, size)``.
    """
    if not isinstance(image, Image.Image):
        try:
            image = Image.open(image)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read image {image}: {exc}") from exc
    rgb = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy((rgb - zero_point) / 127.5).permute(2, 0, 1).unsqueeze(0).contiguous()
