"""Checks before the work: will a run fit in memory, and can its outputs be written?

Each method offers an estimate of the memory a run needs (e.g.
:func:`brushwork.transfer.gatys.estimate_memory`); :func:`check_memory` compares it
with what the device has and refuses, with both figures in one line, before any
model loads. Users override with ``--memory-limit GIB`` (``0``: no check).

Example::

    need = estimate_memory(settings, content_size=(3000, 4000))
    check_memory(need, device, what="Gatys at 4000 px", limit_gib=args.memory_limit)
"""

from __future__ import annotations

import os
from pathlib import Path

from brushwork.errors import ConfigError, OutputPathError

__all__ = [
    "GIB",
    "available_memory",
    "check_folder_writable",
    "check_memory",
    "format_bytes",
    "probe_writable",
]

GIB = 1024**3


def format_bytes(count: float) -> str:
    """``1.5e9`` -> ``"1.4 GiB"``; below a GiB in MiB."""
    if count >= GIB:
        return f"{count / GIB:.1f} GiB"
    return f"{count / 1024**2:.0f} MiB"


def available_memory(device: str | object = "cpu") -> int | None:
    """Bytes a new run can use on ``device`` (``None`` when unknown).

    CPU (and MPS, which shares it): ``MemAvailable`` from ``/proc/meminfo``, else the
    physical memory. CUDA: free memory of that GPU (imports torch only then).
    """
    kind = str(getattr(device, "type", device)).split(":", 1)[0]
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        index = getattr(device, "index", None)
        if index is None and ":" in str(device):
            index = int(str(device).split(":", 1)[1])
        free, _total = torch.cuda.mem_get_info(index or 0)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    needed_bytes: float,
    device: str | object,
    *,
    what: str,
    limit_gib: float | None = None,
    flag: str = "--memory-limit",
) -> None:
    """Refuse a run whose estimated memory exceeds the limit.

    Args:
        needed_bytes: the estimate for the run.
        device: where it runs (``"cpu"``, ``"cuda:1"``, a ``torch.device``).
        what: the run, for the message ("Gatys at 20000 px").
        limit_gib: the user's ``--memory-limit``; ``None``: the device's available
            memory; ``0``: no check.
        flag: the option that overrides the check, named in the message.

    Raises:
        ConfigError: the estimate is above the limit.
    """
    if limit_gib == 0:
        return
    if limit_gib is not None:
        limit, source = limit_gib * GIB, f"the {flag} of {limit_gib:g} GiB"
    else:
        available = available_memory(device)
        if available is None:
            return
        limit, source = available, f"the {format_bytes(available)} available on {device}"
    if needed_bytes > limit:
        raise ConfigError(
            f"{what} needs about {format_bytes(needed_bytes)} of memory, more than {source}; "
            f"use a smaller --size, or {flag} GIB to allow more ({flag} 0: no check)"
        )


def check_folder_writable(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Check that files can be created in ``folder`` (or in the folder that will hold it).

    A folder that does not exist yet is fine when its nearest existing parent is
    writable (the command creates it); nothing is created here.
    """
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"the {what} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"cannot create the {what} {path}: {probe} is not a folder")
    probe_writable(probe, what)
    return path


def probe_writable(folder: Path, what: str = "output") -> None:
    """Create and remove a hidden file in ``folder``: the one sure test of writing there.

    Raises:
        OutputPathError: the folder is read-only, full, or not permitted.
    """
    from brushwork.atomic import create_temp_file

    try:
        fd, temp = create_temp_file(folder / "write-test", ".probe")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputPathError(f"cannot write the {what} in {folder}: {reason}") from None
    os.close(fd)
    os.unlink(temp)
