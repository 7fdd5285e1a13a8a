"""``brushwork video``: checks before work leave no work folder, -q, --preserve-color,
--precision, memory refusal and file modes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from video_synth import texture

from brushwork.cli.main import main
from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
from brushwork.transfer.modelfile import save_model
from brushwork.video import probe_video
from brushwork.video.feedforward_video import FeedForwardVideo
from brushwork.video.render import render_video, work_folder
from weights_testing import isolate_weights_env


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", TransformerNet(JohnsonConfig(4, 1)))


@pytest.fixture
def style(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    Image.fromarray(texture(32, 32, seed=5)).save(path)
    return path


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize(
    "flags",
    [
        ["--memory-limit", "0.001"],
        ["--precision", "fp16"],
        ["--size", "8"],
        ["--steps", "0"],
        ["--preserve-color", "sepia"],
    ],
)
def test_validation_failures_leave_no_work_folder(
    tmp_path, moving_square_video, style, flags, capsys
):
    out = tmp_path / "out.mp4"
    argv = ["video", str(moving_square_video), "--style", str(style), "-o", str(out)]
    code, err = run([*argv, "--device", "cpu", "-q", *flags], capsys)
    assert code in (1, 2) and "Traceback" not in err
    assert not work_folder(out).exists() and not out.exists()
    assert leftovers(tmp_path, {"square.mp4", "style.png", "weights"}) == []


def test_missing_weights_leave_no_work_folder(tmp_path, moving_square_video, style, capsys):
    out = tmp_path / "out.mp4"
    argv = ["video", str(moving_square_video), "--style", str(style), "-o", str(out), "-q"]
    code, err = run([*argv, "--device", "cpu", "--size", "24"], capsys)
    assert code == 1 and "--weights PATH" in err
    assert not work_folder(out).exists()


def test_a_render_failing_before_its_first_frame_leaves_nothing(tmp_path, moving_square_video):
    class Broken(FeedForwardVideo):
        def stylise(self, frame, previous):
            raise RuntimeError("broken")

    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        render_video(moving_square_video, out, Broken(lambda x: x))
    assert not work_folder(out).exists()


def test_huge_size_is_refused_fast(tmp_path, moving_square_video, model, capsys):
    out = tmp_path / "out.mp4"
    argv = ["video", str(moving_square_video), "--model", str(model), "-o", str(out)]
    began = time.perf_counter()
    code, err = run([*argv, "--size", "100000", "--device", "cpu"], capsys)
    assert time.perf_counter() - began < 1.0
    assert code == 1 and "needs about" in err and "--memory-limit" in err
    assert not work_folder(out).exists()


@pytest.mark.parametrize("quiet", ["-q", "--quiet"])
def test_quiet_and_preserve_color_with_a_model(tmp_path, moving_square_video, model, capsys, quiet):
    out = tmp_path / "frames"
    argv = ["video", str(moving_square_video), "--model", str(model), "-o", str(out)]
    argv += ["--preserve-color", "histogram", "--device", "cpu", quiet, "--no-warping-error"]
    previous = os.umask(0o022)
    try:
        code, err = run(argv, capsys)
    finally:
        os.umask(previous)
    assert code == 0 and err == ""
    assert probe_video(out).frame_count == 8
    for frame in out.iterdir():
        assert frame.stat().st_mode & 0o777 == 0o644, frame
    assert not work_folder(out).exists()
