"""The resumable frame loop with the feed-forward method (tiny real conv net)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from video_synth import TinyStylizer

from brushwork.errors import ConfigError
from brushwork.video import FeedForwardVideo, iter_frames, probe_video, render_video
from brushwork.video.render import work_folder


def test_output_keeps_frame_count_fps_size_and_audio(tmp_path: Path, tone_video: Path) -> None:
    method = FeedForwardVideo(TinyStylizer().eval(), stable=0.8)
    result = render_video(tone_video, tmp_path / "out.mp4", method)
    info, source = probe_video(result.output), probe_video(tone_video)
    assert (info.frame_count, info.fps, info.width, info.height) == (
        source.frame_count,
        source.fps,
        source.width,
        source.height,
    )
    assert info.audio_codec == "aac" and result.audio_copied
    assert result.warping_error is not None and result.warping_error >= 0
    assert not work_folder(result.output).exists()


def test_gif_in_gif_out_with_size(tmp_path: Path, gif_video: Path) -> None:
    method = FeedForwardVideo(TinyStylizer().eval(), stable=0.5)
    result = render_video(gif_video, tmp_path / "out.gif", method, size=32)
    info = probe_video(result.output)
    assert info.frame_count == 5 and (info.width, info.height) == (32, 24)


def test_stabilised_output_has_lower_warping_error(
    tmp_path: Path, moving_square_video: Path
) -> None:
    stylizer = TinyStylizer().eval()
    plain = render_video(
        moving_square_video, tmp_path / "plain", FeedForwardVideo(stylizer, stable=0.0)
    )
    stable = render_video(
        moving_square_video, tmp_path / "stable", FeedForwardVideo(stylizer, stable=0.8)
    )
    assert stable.warping_error < 0.7 * plain.warping_error


class _Crash(Exception):
    pass


class _CrashAfter:
    """Wraps a method and raises after ``count`` frames, as a crash would."""

    def __init__(self, method: FeedForwardVideo, count: int) -> None:
        self.method, self.count = method, count
        self.history = method.history

    def describe(self) -> dict[str, object]:
        return self.method.describe()

    def stylise(self, frame, previous):
        if self.count == 0:
            raise _Crash
        self.count -= 1
        return self.method.stylise(frame, previous)


def test_interrupted_and_resumed_render_equals_an_uninterrupted_one(
    tmp_path: Path, moving_square_video: Path
) -> None:
    stylizer = TinyStylizer(seed=3).eval()
    whole = render_video(moving_square_video, tmp_path / "whole", FeedForwardVideo(stylizer))
    out = tmp_path / "resumed"
    with pytest.raises(_Crash):
        render_video(moving_square_video, out, _CrashAfter(FeedForwardVideo(stylizer), 3))
    assert len(list(work_folder(out).glob("frame_*.png"))) == 3 and not out.exists()
    with pytest.raises(ConfigError, match="--resume"):
        render_video(moving_square_video, out, FeedForwardVideo(stylizer))
    with pytest.raises(ConfigError, match="other settings"):
        render_video(moving_square_video, out, FeedForwardVideo(stylizer, stable=0.3), resume=True)
    seen = []
    resumed = render_video(
        moving_square_video,
        out,
        FeedForwardVideo(stylizer),
        resume=True,
        progress=lambda done, total: seen.append(done),
    )
    assert resumed.resumed_from == 3 and seen[0] == 3 and seen[-1] == 8
    a, b = list(iter_frames(whole.output)), list(iter_frames(resumed.output))
    assert len(a) == len(b) == 8
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert resumed.warping_error == pytest.approx(whole.warping_error)


def test_stable_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="--stable"):
        FeedForwardVideo(TinyStylizer(), stable=1.5)
