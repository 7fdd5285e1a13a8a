"""Reading and writing videos, GIFs and folders of frames, one frame at a time (PyAV).

Inputs: any container and codec FFmpeg decodes (MP4, MOV, MKV, WebM, AVI, GIF, ...)
or a folder of numbered image files. Outputs, chosen by the output path:

* ``.mp4``, ``.m4v``, ``.mov``, ``.mkv``, ``.avi``: H.264 (libx264, CRF 18; 4:2:0, or
  4:4:4 when a side is odd); ``.webm``: VP9. The input's audio stream is copied
  unchanged (no re-encoding) when the output container can hold its codec.
* ``.gif``: an animated GIF (no audio).
* a path without a suffix (or an existing folder): a folder of PNG frames
  ``frame_000001.png, ...`` (no audio).

Frames are decoded and encoded as a stream; memory holds a few frames, whatever the
video's length. The frame rate and the number of frames are kept: frame ``i`` of the
output is shown at ``i / fps``. Every problem with a file raises :class:`VideoError`
(a :class:`~brushwork.errors.ImageError`) naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import ImageError, OutputPathError

__all__ = [
    "FRAME_SUFFIXES",
    "VIDEO_OUTPUT_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "WriteResult",
    "check_video_output",
    "frame_to_uint8",
    "iter_frames",
    "probe_video",
    "uint8_to_frame",
    "write_video",
]

#: Image suffixes read from (and, as PNG, written to) a folder of frames.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: Output suffixes and the video codec each gets.
VIDEO_OUTPUT_SUFFIXES = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".avi": "libx264",
    ".webm": "libvpx-vp9",
    ".gif": "gif",
}
#: Audio codecs each container can hold (copied as they are); None: any.
_AUDIO_CODECS: dict[str, frozenset[str] | None] = {
    ".mp4": frozenset({"aac", "mp3", "alac", "opus", "ac3", "eac3", "flac"}),
    ".m4v": frozenset({"aac", "mp3", "alac", "ac3", "eac3"}),
    ".mov": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be"}),
    ".mkv": None,
    ".avi": frozenset({"mp3", "aac", "ac3", "pcm_s16le", "pcm_u8"}),
    ".webm": frozenset({"opus", "vorbis"}),
    ".gif": frozenset(),
}
DEFAULT_FOLDER_FPS = Fraction(25)


class VideoError(ImageError):
    """A video, GIF or frame folder is missing, unreadable, corrupt or unsupported."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` finds out about an input.

    Attributes:
        path: The file or folder.
        kind: ``"video"`` (any container, GIF included) or ``"frames"`` (a folder).
        width, height: Frame size in pixels.
        fps: Frames per second (exact fraction, e.g. 30000/1001).
        frame_count: Number of frames.
        container: FFmpeg's container name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"gif"``,
            ``"frames"``).
        codec: Video codec name (``"h264"``, ``"gif"``, ``"png"``, ...).
        audio_codec: Codec of the first audio stream, or ``None`` without audio.
    """

    path: Path
    kind: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    container: str
    codec: str
    audio_codec: str | None

    @property
    def duration(self) -> float:
        """Seconds: ``frame_count / fps``."""
        return float(self.frame_count / self.fps)


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_video` wrote: the path, frame count and whether audio was copied."""

    path: Path
    frames: int
    audio_copied: bool
    note: str | None = None


# --------------------------------------------------------------------------- frames <-> tensors


def frame_to_uint8(frame: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8 (rounded, clamped)."""
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise ImageError(f"a video frame must be a (3, H, W) tensor; got {tuple(frame.shape)}")
    pixels = frame.detach().float().cpu()
    if torch.isnan(pixels).any():
        raise ImageError("a video frame contains NaN values; the stylisation diverged")
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def uint8_to_frame(array: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [0, 1]."""
    return (
        torch.from_numpy(np.array(array, dtype=np.uint8))
        .permute(2, 0, 1)
        .float()
        .div(255)
        .contiguous()
    )


# --------------------------------------------------------------------------- reading


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open an input (video file, GIF or folder of frames) and describe it.

    The frame count of a video is found by reading its packets (no decoding).

    Raises:
        VideoError: Missing, empty, corrupt or unsupported input, or no video stream.
    """
    source = Path(path)
    if source.is_dir():
        return _probe_folder(source)
    if not source.is_file():
        raise VideoError(f"video '{source}' does not exist; check the path")
    if source.stat().st_size == 0:
        raise VideoError(f"video '{source}' is empty (0 bytes); re-export or re-download it")
    with _open_input(source) as container:
        stream = _video_stream(container, source)
        fps = _stream_fps(stream, source)
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
        except _av_errors() as error:
            raise _corrupt(source, error) from None
        if count == 0:
            raise VideoError(f"video '{source}' has no frames; it is empty or truncated")
        audio = container.streams.audio
        codec_ctx = stream.codec_context
        return VideoInfo(
            path=source,
            kind="video",
            width=int(codec_ctx.width),
            height=int(codec_ctx.height),
            fps=fps,
            frame_count=count,
            container=str(container.format.name),
            codec=str(codec_ctx.name),
            audio_codec=str(audio[0].codec_context.name) if audio else None,
        )


def iter_frames(
    path: str | os.PathLike, *, start: int = 0, stop: int | None = None
) -> Iterator[torch.Tensor]:
    """Decode frames one at a time as ``(3, H, W)`` float32 tensors in [0, 1].

    Args:
        path: A video file, GIF or folder of frames.
        start: Index of the first frame to yield (earlier frames are decoded and
            dropped, or skipped for a folder).
        stop: Index after the last frame to yield; ``None`` for all.

    Raises:
        VideoError: The input cannot be opened, or is corrupt part-way (the message
            says at which frame).
    """
    source = Path(path)
    if source.is_dir():
        for index, file in enumerate(_folder_frames(source)):
            if stop is not None and index >= stop:
                return
            if index >= start:
                yield _load_folder_frame(file)
        return
    if not source.is_file():
        raise VideoError(f"video '{source}' does not exist; check the path")
    with _open_input(source) as container:
        stream = _video_stream(container, source)
        stream.thread_type = "AUTO"
        index = 0
        decoded = container.decode(stream)
        while stop is None or index < stop:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except _av_errors() as error:
                raise VideoError(
                    f"video '{source}' is corrupt at frame {index + 1} ({_one_line(error)}); "
                    "re-export or repair it (e.g. ffmpeg -i in.mp4 -c copy fixed.mp4)"
                ) from None
            if index >= start:
                yield uint8_to_frame(frame.to_ndarray(format="rgb24"))
            index += 1


@contextlib.contextmanager
def _open_input(source: Path):
    import av

    try:
        container = av.open(str(source), "r")
    except _av_errors() as error:
        raise _corrupt(source, error) from None
    try:
        yield container
    finally:
        container.close()


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, UnicodeDecodeError, ValueError)


def _corrupt(source: Path, error: BaseException) -> VideoError:
    return VideoError(
        f"cannot read '{source}' as a video ({_one_line(error)}); it is corrupt or not in a "
        "format FFmpeg knows — convert it to MP4 (H.264) or pass a folder of frames"
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _video_stream(container, source: Path):
    if not container.streams.video:
        raise VideoError(f"'{source}' has no video stream (audio only?); pass a video file")
    return container.streams.video[0]


def _stream_fps(stream, source: Path) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate).limit_denominator(1_000_000)
    raise VideoError(f"video '{source}' does not say its frame rate; re-export it with one")


_NUMBER = re.compile(r"(\d+)")


def _natural_key(file: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(file.name)]


def _folder_frames(folder: Path) -> list[Path]:
    files = [
        f
        for f in folder.iterdir()
        if f.suffix.lower() in FRAME_SUFFIXES and f.is_file() and not f.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


def _load_folder_frame(file: Path) -> torch.Tensor:
    from brushwork.image import load_image

    return load_image(file)


def _probe_folder(folder: Path) -> VideoInfo:
    files = _folder_frames(folder)
    if not files:
        raise VideoError(
            f"folder '{folder}' holds no frames; put numbered image files "
            f"({', '.join(FRAME_SUFFIXES)}) in it"
        )
    first = _load_folder_frame(files[0])
    return VideoInfo(
        path=folder,
        kind="frames",
        width=int(first.shape[2]),
        height=int(first.shape[1]),
        fps=DEFAULT_FOLDER_FPS,
        frame_count=len(files),
        container="frames",
        codec=files[0].suffix.lower().lstrip("."),
        audio_codec=None,
    )


# --------------------------------------------------------------------------- writing


def check_video_output(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Check an output path: a known video suffix, or no suffix (a folder of frames).

    Returns:
        The path, made absolute.

    Raises:
        OutputPathError: Unknown suffix, missing or read-only parent folder, a non-empty
            existing folder, or the same path as an input.
    """
    out = Path(path).expanduser().absolute()
    suffix = out.suffix.lower()
    if not out.parent.is_dir():
        raise OutputPathError(f"output folder '{out.parent}' does not exist; create it first")
    from brushwork.resources import probe_writable

    probe_writable(out.parent, "output")
    for source in inputs:
        source_path = Path(source).expanduser().absolute()
        if source_path == out or (
            out.exists() and source_path.exists() and _same(source_path, out)
        ):
            raise OutputPathError(f"output '{out}' is the input; choose another output path")
    if out.is_dir() or suffix == "":
        if out.is_dir() and any(out.iterdir()):
            raise OutputPathError(
                f"output folder '{out}' is not empty; choose a new or empty folder for the frames"
            )
        return out
    if suffix not in VIDEO_OUTPUT_SUFFIXES:
        raise OutputPathError(
            f"cannot write a video as '{suffix}'; use one of "
            f"{', '.join(VIDEO_OUTPUT_SUFFIXES)} or a folder path (no suffix) for PNG frames"
        )
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def write_video(
    frames: Iterable[torch.Tensor | np.ndarray],
    path: str | os.PathLike,
    *,
    fps: Fraction | float,
    audio_from: str | os.PathLike | None = None,
    crf: int = 18,
) -> WriteResult:
    """Encode frames to a video, GIF or folder of PNGs, atomically.

    The output is written to a hidden temporary file (or folder) next to ``path`` and
    renamed over it when complete, so an interrupted write never leaves a partial
    file under the final name.

    Args:
        frames: ``(3, H, W)`` float tensors in [0, 1] or ``(H, W, 3)`` uint8 arrays, all
            of one size; consumed lazily.
        path: Output path (see the module docstring for the formats).
        fps: Frames per second.
        audio_from: A video whose first audio stream is copied into the output.
        crf: H.264/VP9 constant rate factor (lower is better quality).

    Returns:
        A :class:`WriteResult`; its ``note`` says why audio was not copied, if it was not.
    """
    out = Path(path).expanduser().absolute()
    fps = Fraction(fps).limit_denominator(1_000_000)
    if fps <= 0:
        raise VideoError(f"frame rate must be positive; got {fps}")
    suffix = out.suffix.lower()
    arrays = (f if isinstance(f, np.ndarray) else frame_to_uint8(f) for f in frames)
    if out.is_dir() or suffix == "":
        count = _write_folder(arrays, out)
        note = "a folder of frames has no audio track" if _has_audio(audio_from) else None
        return WriteResult(out, count, False, note)
    if suffix not in VIDEO_OUTPUT_SUFFIXES:
        raise OutputPathError(
            f"cannot write a video as '{suffix}'; use one of {', '.join(VIDEO_OUTPUT_SUFFIXES)}"
        )
    temp = out.with_name(f".{out.stem[:64]}.{secrets.token_hex(6)}.tmp{out.suffix}")
    try:
        result = _encode(arrays, temp, suffix=suffix, fps=fps, audio_from=audio_from, crf=crf)
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return WriteResult(out, result[0], result[1], result[2])


def _has_audio(source: str | os.PathLike | None) -> bool:
    if source is None or Path(source).is_dir():
        return False
    try:
        with _open_input(Path(source)) as container:
            return bool(container.streams.audio)
    except VideoError:
        return False


def _write_folder(arrays: Iterator[np.ndarray], out: Path) -> int:
    from PIL import Image

    temp = out.with_name(f".{out.name[:64]}.{secrets.token_hex(6)}.tmp")
    temp.mkdir()
    count = 0
    try:
        for count, array in enumerate(arrays, start=1):
            Image.fromarray(array, mode="RGB").save(temp / f"frame_{count:06d}.png")
        if out.is_dir():
            out.rmdir()  # checked empty by check_video_output; fails loudly otherwise
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return count


def _encode(
    arrays: Iterator[np.ndarray],
    temp: Path,
    *,
    suffix: str,
    fps: Fraction,
    audio_from: str | os.PathLike | None,
    crf: int,
) -> tuple[int, bool, str | None]:
    import av

    first = next(arrays, None)
    if first is None:
        raise VideoError("no frames to write; the input video has no frames")
    height, width = first.shape[:2]
    codec = VIDEO_OUTPUT_SUFFIXES[suffix]
    audio_input = None
    audio_out = None
    note = None
    count = 0
    try:
        with av.open(str(temp), "w") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = width, height
            frame_time_base = Fraction(1, 1) / fps
            stream.time_base = frame_time_base
            if codec == "gif":
                stream.pix_fmt = "rgb8"
            else:
                odd = width % 2 or height % 2
                stream.pix_fmt = "yuv444p" if odd else "yuv420p"
                stream.options = {"crf": str(crf)}
                if codec == "libvpx-vp9":
                    stream.options["b:v"] = "0"
            audio_in, audio_out, note = _audio_copy(container, suffix, audio_from)
            audio_input = audio_in
            packets = _audio_packets(audio_in) if audio_in is not None else iter(())
            pending = next(packets, None)

            def mux_video(packet) -> None:
                nonlocal pending
                if packet.pts is not None and packet.time_base is not None:
                    until = float(packet.pts * packet.time_base)
                    while pending is not None and _packet_time(pending) <= until:
                        pending.stream = audio_out
                        container.mux(pending)
                        pending = next(packets, None)
                container.mux(packet)

            for count, array in enumerate(_chain(first, arrays), start=1):
                if array.shape[:2] != (height, width):
                    raise VideoError(
                        f"frame {count} is {array.shape[1]}x{array.shape[0]} but the video is "
                        f"{width}x{height}; all frames must have one size"
                    )
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = count - 1
                frame.time_base = frame_time_base  # the muxer may change the stream's
                for packet in stream.encode(frame):
                    mux_video(packet)
            for packet in stream.encode():
                mux_video(packet)
            while pending is not None:
                pending.stream = audio_out
                container.mux(pending)
                pending = next(packets, None)
    except av.FFmpegError as error:
        raise VideoError(f"could not write '{temp.name}' ({_one_line(error)})") from None
    finally:
        if audio_input is not None:
            audio_input[0].close()
    return count, audio_out is not None, note


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _audio_copy(container, suffix: str, audio_from: str | os.PathLike | None):
    """Open the audio source and add a copy of its stream; (input, out stream, note)."""
    if audio_from is None or Path(audio_from).is_dir():
        return None, None, None
    import av

    source = Path(audio_from)
    try:
        audio_container = av.open(str(source), "r")
    except av.FFmpegError:
        return None, None, None
    if not audio_container.streams.audio:
        audio_container.close()
        return None, None, None
    in_stream = audio_container.streams.audio[0]
    name = in_stream.codec_context.name
    allowed = _AUDIO_CODECS.get(suffix)
    if allowed is not None and name not in allowed:
        audio_container.close()
        hint = "use .mkv to keep it" if suffix != ".gif" else "GIF has no audio"
        return None, None, f"audio ({name}) not copied: {suffix} cannot hold it; {hint}"
    try:
        out_stream = container.add_stream_from_template(in_stream)
    except (av.FFmpegError, ValueError) as error:
        audio_container.close()
        return None, None, f"audio ({name}) not copied ({_one_line(error)})"
    return (audio_container, in_stream), out_stream, None


def _audio_packets(audio_input) -> Iterator:
    container, stream = audio_input
    for packet in container.demux(stream):
        if packet.dts is None or packet.size == 0:
            continue
        yield packet


def _packet_time(packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None else 0.0
