"""The frame loop: decode, stylise, save each finished frame, then encode atomically.

Finished frames are saved as PNGs in a work folder next to the output
(``.<output name>.frames/``), each written atomically, so a crash loses at most the
frame in progress and ``resume=True`` continues from the frames already there.
Each frame's stylisation sees the previous frames' outputs as saved (8-bit), so a
resumed render gives exactly the frames an uninterrupted one gives. A ``job.json``
in the folder records the input and settings; resuming a different job is refused.
When all frames are done they are encoded (audio copied from the input) to a
temporary file renamed over the output, and the work folder is removed.

A method with ``passes > 1`` (Gatys video's multi-pass mode) then gets its refining
sweeps in alternating directions (:mod:`brushwork.video.passes`); the output is the
last sweep's frames.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image

from brushwork import image as imageops
from brushwork.atomic import atomic_path, write_text_atomic
from brushwork.errors import ConfigError
from brushwork.flow import WarpingErrorMeter
from brushwork.video.io import (
    VideoError,
    VideoInfo,
    check_video_output,
    frame_to_uint8,
    iter_frames,
    probe_video,
    uint8_to_frame,
    write_video,
)
from brushwork.video.passes import (
    frame_file,
    frames_done_in_passes,
    input_file,
    run_refining_passes,
)

__all__ = ["RenderResult", "VideoMethod", "render_video", "work_folder"]


class VideoMethod(Protocol):
    """What the frame loop needs of a video stylisation method."""

    @property
    def history(self) -> int:
        """How many previous (input, output) pairs :meth:`stylise` uses."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-serialisable settings that change the result."""
        ...

    def stylise(
        self, frame: torch.Tensor, previous: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """``(3, H, W)`` frame and previous (input, output) pairs, newest first -> output."""
        ...


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_video` did.

    Attributes:
        output: The written video, GIF or folder.
        frames: Number of frames written.
        resumed_from: Frames found done in the work folder (0 for a fresh render;
            with several passes, frames of all passes).
        seconds: Wall time of this call.
        warping_error: Warping error of the result (``None`` when not measured).
        audio_copied: Whether the input's audio was copied.
        note: Why audio was not copied, if it was not.
        info: The input's :class:`~brushwork.video.io.VideoInfo`.
    """

    output: Path
    frames: int
    resumed_from: int
    seconds: float
    warping_error: float | None
    audio_copied: bool
    note: str | None
    info: VideoInfo


def work_folder(output: str | os.PathLike) -> Path:
    """The folder of finished frames for ``output`` (``.<name>.frames`` beside it)."""
    out = Path(output).expanduser().absolute()
    return out.with_name(f".{out.name}.frames")


def render_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    method: VideoMethod,
    *,
    size: int | None = None,
    resume: bool = False,
    measure: bool = True,
    flow: str = "dis",
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Stylise every frame of ``source`` with ``method`` and write ``output``.

    Args:
        source: Input video, GIF or folder of frames.
        output: Output path (video suffix, ``.gif``, or no suffix for a PNG folder).
        method: A :class:`VideoMethod` (``GatysVideo``, ``FeedForwardVideo``, ...).
        size: Long side of the processed frames (``None``: the input's size).
        resume: Continue from the frames already in the work folder. Without it, a
            work folder left by an earlier run is an error (nothing is overwritten).
        measure: Compute the warping error of the result at the end.
        flow: Optical flow method of the warping-error measurement.
        progress: Called as ``progress(done, total)`` after each frame (and once at the
            start with the frames already done); with several passes ``total`` is
            frames × passes.

    Returns:
        A :class:`RenderResult`.

    Raises:
        VideoError: The input cannot be read. OutputPathError: bad output path.
        ConfigError: A work folder exists without ``resume``, or belongs to another job.
    """
    info = probe_video(source)
    out = check_video_output(output, inputs=[source])
    if size is not None and size < 16:
        raise ConfigError(f"--size must be at least 16 pixels, got {size}")
    folder = work_folder(out)
    job = {
        "source": str(Path(source).expanduser().absolute()),
        "source_bytes": _size_of(Path(source)),
        "frame_count": info.frame_count,
        "size": size,
        "settings": method.describe(),
    }
    created = not folder.exists()
    done = _prepare_folder(folder, job, resume=resume)
    try:
        return _render(source, out, method, folder, info, done, size, measure, flow, progress)
    except BaseException:
        # A render that never finished a frame leaves nothing behind (nothing to resume).
        if created and not any(folder.glob("frame_*.png")):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _render(
    source: str | os.PathLike,
    out: Path,
    method: VideoMethod,
    folder: Path,
    info,
    done: int,
    size: int | None,
    measure: bool,
    flow: str,
    progress: Callable[[int, int], None] | None,
) -> RenderResult:
    """The frame loop, refining passes, measurement and writing of :func:`render_video`."""
    start_time = time.perf_counter()
    passes = getattr(method, "passes", 1)
    total = info.frame_count * passes
    resumed_from = done + frames_done_in_passes(folder, info.frame_count, passes)
    if progress is not None:
        progress(resumed_from, total)

    history: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=max(method.history, 1))
    decoded = 0
    for index, frame in enumerate(_sized_frames(source, size)):
        decoded = index + 1
        if passes > 1 and not input_file(folder, index).is_file():
            _save_png_atomically(frame_to_uint8(frame), input_file(folder, index))
        if index < done:
            if index >= done - history.maxlen:
                saved = _load_png(frame_file(folder, index))
                history.appendleft((frame, saved))
            continue
        out_frame = method.stylise(frame, list(history))
        array = frame_to_uint8(out_frame)
        _save_png_atomically(array, frame_file(folder, index))
        history.appendleft((frame, uint8_to_frame(array)))
        if progress is not None:
            progress(index + 1, total)
    frames = decoded
    final = folder
    if passes > 1:

        def save(out_frame: torch.Tensor, file: Path) -> torch.Tensor:
            array = frame_to_uint8(out_frame)
            _save_png_atomically(array, file)
            return uint8_to_frame(array)

        final = run_refining_passes(
            folder,
            frames,
            method,
            load=_load_png,
            save=save,
            progress=None if progress is None else lambda n: progress(frames + n, total),
        )

    error = None
    if measure:
        meter = WarpingErrorMeter(method=flow)
        for index, frame in enumerate(_sized_frames(source, size)):
            meter.update(frame, _load_png(frame_file(final, index)))
        error = meter.value
    written = write_video(
        (_load_array(frame_file(final, i)) for i in range(frames)),
        out,
        fps=info.fps,
        audio_from=source,
    )
    shutil.rmtree(folder, ignore_errors=True)
    return RenderResult(
        output=written.path,
        frames=written.frames,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - start_time,
        warping_error=error,
        audio_copied=written.audio_copied,
        note=written.note,
        info=info,
    )


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


def _prepare_folder(folder: Path, job: dict[str, object], *, resume: bool) -> int:
    """Create or check the work folder; return how many leading frames are done."""
    job_file = folder / "job.json"
    if folder.exists():
        if not resume:
            raise ConfigError(
                f"an unfinished render of this output exists in '{folder}'; add --resume to "
                "continue it, or delete that folder to start again"
            )
        try:
            saved = json.loads(job_file.read_text())
        except (OSError, ValueError):
            saved = None
        if saved != json.loads(json.dumps(job)):
            raise ConfigError(
                f"the unfinished render in '{folder}' used another input or other settings; "
                "run with the same ones to resume, or delete that folder to start again"
            )
        done = 0
        while frame_file(folder, done).is_file():
            done += 1
        return done
    folder.mkdir()
    write_text_atomic(job_file, json.dumps(job, indent=2))
    return 0


def _sized_frames(source: str | os.PathLike, size: int | None) -> Iterator[torch.Tensor]:
    for frame in iter_frames(source):
        yield imageops.resize_long_side(frame, size).clamp(0, 1) if size is not None else frame


def _save_png_atomically(array, file: Path) -> None:
    with atomic_path(file) as temp:
        Image.fromarray(array, mode="RGB").save(temp, format="PNG")


def _load_array(file: Path):
    import numpy as np

    try:
        with Image.open(file) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as error:
        raise VideoError(
            f"finished frame '{file}' cannot be read ({error}); delete it and run with --resume"
        ) from None


def _load_png(file: Path) -> torch.Tensor:
    return uint8_to_frame(_load_array(file))
