"""Decoding and encoding videos, GIFs and frame folders; clear errors for bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
from video_synth import moving_square_frames, static_frames, write_video

from brushwork.errors import OutputPathError
from brushwork.video.io import VideoError, check_video_output, iter_frames, probe_video
from brushwork.video.io import write_video as encode


def test_probe_reads_size_fps_frames_and_audio(tone_video: Path) -> None:
    info = probe_video(tone_video)
    assert (info.width, info.height, info.frame_count) == (48, 32, 10)
    assert info.fps == 10 and info.audio_codec == "aac" and info.codec == "h264"
    frames = list(iter_frames(tone_video))
    assert len(frames) == 10 and frames[0].shape == (3, 32, 48)
    assert next(iter_frames(tone_video, start=8)).allclose(frames[8])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".gif", ""])
def test_round_trip_keeps_frames_fps_and_size(tmp_path: Path, suffix: str) -> None:
    source = write_video(tmp_path / "in.mp4", moving_square_frames(count=6), fps=Fraction(25))
    out = encode(iter_frames(source), tmp_path / f"out{suffix}", fps=Fraction(25))
    info = probe_video(out.path)
    assert info.frame_count == 6 and (info.width, info.height) == (64, 48)
    if suffix:
        assert info.fps == 25
    else:
        assert info.kind == "frames"
    originals = list(iter_frames(source))
    decoded = list(iter_frames(out.path))
    tolerance = 0.2 if suffix == ".gif" else 0.05
    assert (decoded[3] - originals[3]).abs().mean() < tolerance
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left


def test_audio_is_copied_unchanged(tmp_path: Path, tone_video: Path) -> None:
    result = encode(iter_frames(tone_video), tmp_path / "out.mp4", fps=10, audio_from=tone_video)
    assert result.audio_copied and result.note is None

    def audio_payload(path: Path) -> list[bytes]:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            return [bytes(p) for p in container.demux(stream) if p.size]

    assert audio_payload(result.path) == audio_payload(tone_video)
    webm = encode(iter_frames(tone_video), tmp_path / "out.webm", fps=10, audio_from=tone_video)
    assert not webm.audio_copied and "mkv" in webm.note


def test_gif_input_is_read(gif_video: Path) -> None:
    info = probe_video(gif_video)
    assert info.frame_count == 5 and (info.width, info.height) == (64, 48)
    assert len(list(iter_frames(gif_video))) == 5


def test_frame_folder_input_is_sorted_naturally(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = static_frames(count=3)
    frames[2] = 255 - frames[2]
    for index, array in zip((1, 2, 10), frames, strict=True):
        Image.fromarray(array).save(folder / f"f{index}.png")
    info = probe_video(folder)
    assert info.kind == "frames" and info.frame_count == 3
    loaded = list(iter_frames(folder))
    assert torch.allclose(loaded[2], torch.from_numpy(frames[2]).permute(2, 0, 1).float() / 255)


def test_corrupt_and_unsupported_files_give_clear_errors(tmp_path: Path, tone_video: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="corrupt or not in a format"):
        probe_video(garbage)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(tone_video.read_bytes()[:300])
    with pytest.raises(VideoError, match=r"truncated\.mp4"):
        probe_video(truncated)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoError, match="empty"):
        probe_video(empty)
    with pytest.raises(VideoError, match="does not exist"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="no frames"):
        probe_video(tmp_path)  # a folder without images
    with pytest.raises(OutputPathError, match=r"\.xyz"):
        check_video_output(tmp_path / "out.xyz")
    with pytest.raises(OutputPathError, match="is the input"):
        check_video_output(tone_video, inputs=[tone_video])
