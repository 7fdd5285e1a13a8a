"""What a benchmark measures besides the scores: time, peak memory, the environment.

Peak memory of one job:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — the
  tensors' peak during the job (the caching allocator's extra is not counted);
* CPU on Linux: the process's resident-set high-water mark (``VmHWM``), reset before the
  job by writing ``5`` to ``/proc/self/clear_refs``; the figure is that peak minus the
  resident size when the job began, i.e. the extra memory the job needed. Memory that
  earlier jobs freed is handed back to the system first (glibc's ``malloc_trim``):
  otherwise the allocator reuses it without the resident size growing, and a job after
  a larger one measures as needing nothing;
* elsewhere: ``ru_maxrss`` minus the resident size at the start (never reset: an upper
  bound after an earlier larger job).

Example::

    with Measurement(device) as m:
        result = method.stylise(content, style, name)
    m.seconds, m.peak_bytes
"""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["Measurement", "environment"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _release_free_memory() -> None:
    """Return the C allocator's free memory to the system (glibc; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return


def _max_rss_kib() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # bytes on macOS


class Measurement:
    """Context manager: wall seconds and peak memory (bytes) of the code inside.

    Attributes (after the block): ``seconds``, ``peak_bytes``, ``memory_kind``
    (``"cuda-allocated"``, ``"rss-peak"`` or ``"rss-max"``).
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.seconds = 0.0
        self.peak_bytes = 0
        self.memory_kind = ""

    def __enter__(self) -> Measurement:
        self._cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if self._cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()
            self._reset = _reset_rss_peak()
            self._base = (_status_kib("VmRSS") or 0) * 1024
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
        if self._cuda:
            peak = torch.cuda.max_memory_allocated(self.device)
            self.memory_kind = "cuda-allocated"
        elif self._reset and (hwm := _status_kib("VmHWM")) is not None:
            peak = hwm * 1024
            self.memory_kind = "rss-peak"
        else:
            peak = _max_rss_kib() * 1024
            self.memory_kind = "rss-max"
        self.peak_bytes = max(0, int(peak - self._base))


_PACKAGES = (
    "brushwork",
    "torch",
    "numpy",
    "scipy",
    "pillow",
    "safetensors",
    "diffusers",
    "transformers",
    "onnxruntime",
)


def environment(device: str | torch.device) -> dict[str, Any]:
    """Device, platform and software versions a run records (without importing the
    packages: versions come from their installed metadata)."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    dev = torch.device(device)
    info: dict[str, Any] = {
        "device": str(dev),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "versions": versions,
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info
