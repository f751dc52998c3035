"""Numeric precision by hardware capability: bf16 autocast only where the device runs bf16 natively.

``train.amp`` and ``train.channels_last`` take ``auto`` (default), ``true`` or ``false``:

* ``auto``: bf16 autocast on a CUDA device that supports bf16, and on a CPU with native bf16 arithmetic
  (AVX512-BF16 or AMX tiles, as PyTorch reports them); float32 everywhere else. On a CPU without native
  bf16 (AVX2 only), PyTorch emulates bf16 and a training step is several times *slower* than float32
  (measured: 10x for R18+LA-Net at 128 px). Channels-last follows: on for CUDA and wherever bf16 runs.
* ``true`` / ``false``: forced, whatever the hardware.

Run identity: precision is an *execution* choice, like the device. ``auto`` and ``true`` hash alike (both
mean "bf16 autocast allowed"; :data:`IDENTITY_ALIASES` in :mod:`lanet_core.config`), so the committed run
records (``amp: true``, all trained with native bf16) keep their identity and a run trained in float32 on an
AVX2 machine fills the same cache slot, as a run trained on a GPU does. The precision that actually ran is
recorded in each run's ``provenance.json`` (``precision``, ``cpu_capability``).
"""

from __future__ import annotations

from typing import Any

import torch


def cpu_capability() -> dict[str, Any]:
    """What PyTorch reports about this CPU: ``{"isa": "AVX512"|"AVX2"|..., "avx512_bf16": bool, "amx": bool}``."""
    def probe(name: str) -> bool:
        fn = getattr(torch.cpu, name, None)
        try:
            return bool(fn()) if fn is not None else False
        except Exception:  # an unknown platform: treat as absent
            return False

    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        isa = "unknown"
    return {"isa": isa, "avx512_bf16": probe("_is_avx512_bf16_supported"), "amx": probe("_is_amx_tile_supported")}


def native_bf16(device: torch.device) -> bool:
    """True where bf16 arithmetic is native on ``device`` (CUDA with bf16; CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported())
        except Exception:
            return False
    if device.type == "cpu":
        cap = cpu_capability()
        return bool(cap["avx512_bf16"] or cap["amx"])
    return False


def _setting(value: Any, key: str) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    from lanet_core.errors import ConfigError

    raise ConfigError(f"{key} = {value!r}: expected auto, true or false")


def resolve_amp(value: Any, device: torch.device) -> bool:
    """``train.amp`` -> whether bf16 autocast runs on ``device``."""
    value = _setting(value, "train.amp")
    return native_bf16(device) if value == "auto" else value


def resolve_channels_last(value: Any, device: torch.device, amp: bool) -> bool:
    """``train.channels_last`` -> whether inputs and weights use channels-last (``auto``: CUDA, or with bf16)."""
    value = _setting(value, "train.channels_last")
    return (device.type == "cuda" or amp) if value == "auto" else value


def precision_name(amp: bool) -> str:
    return "bf16-autocast" if amp else "fp32"
