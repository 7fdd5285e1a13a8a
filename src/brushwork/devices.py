"""Choosing the device and the numeric precision a method runs with."""

from __future__ import annotations

import contextlib
import functools
import sys

import torch

from brushwork.choices import DEVICE_CHOICES, PRECISION_CHOICES
from brushwork.errors import ConfigError

__all__ = [
    "DEVICE_CHOICES",
    "PRECISION_CHOICES",
    "autocast",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_precision",
]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an unavailable device is a ConfigError."""
    if isinstance(name, torch.device):
        return name
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device '{name}' (valid: {', '.join(DEVICE_CHOICES)})")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but no CUDA GPU is visible to PyTorch")
    if kind == "cuda" and ":" in name:
        index, count = name.split(":", 1)[1], torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise ConfigError(
                f"--device {name}: PyTorch sees {count} CUDA GPU(s), numbered 0 to {count - 1}"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps was asked for but MPS is not available on this machine")
    return torch.device(name)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bfloat16 dot products (AVX512-BF16 or AMX)."""
    if sys.platform != "linux":
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype for convolutions: ``"auto"`` picks bf16 where it is fast.

    ``auto`` means bfloat16 on CUDA GPUs that support it and on CPUs with native
    bf16 instructions, float32 elsewhere (MPS, older CPUs). Losses, Gram
    matrices and the optimised image always stay float32.
    """
    if name not in PRECISION_CHOICES:
        raise ConfigError(f"unknown precision '{name}' (valid: {', '.join(PRECISION_CHOICES)})")
    if name == "fp32":
        return torch.float32
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type == "cpu":
            raise ConfigError("fp16 is not supported on the CPU; use --precision bf16 or fp32")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
