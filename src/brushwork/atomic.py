"""Writing files atomically, with the permissions any other file would get.

Every file brushwork writes (images, model files, maps, tables, checkpoints) goes to a
hidden temporary file beside its target and is renamed over the target only once it is
complete, so a crash or Ctrl-C never leaves a half-written file under the final name.

Unlike :func:`tempfile.mkstemp` (mode 0600), the temporary file is created with mode
``0o666`` minus the umask, so the final file gets the user's usual permissions (0644
under umask 022).

Example::

    with atomic_path("out/maps.safetensors") as tmp:
        save_file(tensors, tmp)          # any writer that takes a path
    write_text_atomic("out/maps.json", text)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "create_temp_file", "write_bytes_atomic", "write_text_atomic"]


def create_temp_file(target: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new hidden file in ``target``'s folder; return its descriptor and path.

    The file's mode is ``0o666`` minus the umask (as :func:`open` would give).
    """
    out = Path(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = out.with_name(f".{out.stem[:64]}.{secrets.token_hex(6)}{suffix}{out.suffix}")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to '{out}'")


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On an exception (including KeyboardInterrupt) the temporary file is removed and
    ``target`` is left as it was.
    """
    out = Path(target)
    fd, temp = create_temp_file(out, suffix)
    os.close(fd)
    try:
        yield temp
        # Some writers (safetensors) replace the file with one of their own, mode 0600.
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    out = Path(target)
    with atomic_path(out) as temp, open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return out


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically (newlines as given)."""
    return write_bytes_atomic(target, text.encode("utf-8"))
