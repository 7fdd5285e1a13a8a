"""Fixtures of the video tests: synthetic video files and a tiny per-frame stylizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_synth import (
    TinyStylizer,
    moving_square_frames,
    static_frames,
    write_video,
)


@pytest.fixture
def moving_square_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "square.mp4", moving_square_frames())


@pytest.fixture
def tone_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "tone.mp4", static_frames(count=10), audio=True)


@pytest.fixture
def gif_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.gif", moving_square_frames(count=5), codec="gif")


@pytest.fixture
def tiny_stylizer() -> TinyStylizer:
    return TinyStylizer().eval()
