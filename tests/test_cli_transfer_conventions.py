"""``brushwork transfer``: --steps as a total, the schedule line, deprecated spellings,
memory refusal, masks and read-only outputs, all before any work."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import save_image
from cli_testing import error_line
from weights_testing import isolate_weights_env


@pytest.fixture
def files(tmp_path: Path, content_image, style_image, vgg19_file) -> dict[str, Path]:
    return {
        "content": save_image(content_image, tmp_path / "content.png"),
        "style": save_image(style_image, tmp_path / "style.png"),
        "weights": vgg19_file[0],
        "out": tmp_path / "out.png",
    }


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


def base_argv(files: dict[str, Path], *, size: str = "64", steps: str = "7") -> list[str]:
    return [
        "transfer", str(files["content"]), "--style", str(files["style"]),
        "-o", str(files["out"]), "--size", size, "--steps", steps, "--device", "cpu",
        "--weights", str(files["weights"]),
    ]  # fmt: skip


def test_steps_is_the_total_over_the_pyramid(files, capsys):
    argv = [*base_argv(files, steps="7"), "--pyramid", "on", "--pyramid-min-size", "32"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "schedule: 32 px × 4, 64 px × 3 = 7 steps" in err
    assert "— 7 steps in" in err
    assert err.index("schedule:") < err.index("saved")


def test_quiet_prints_no_schedule(files, capsys):
    assert main([*base_argv(files, size="32", steps="2"), "-q"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("old", ["positional", "--style-blend", "--optimiser", "--no-progress"])
def test_deprecated_spellings_warn_and_work(files, capsys, old):
    argv = base_argv(files, size="32", steps="2")
    if old == "positional":
        argv.remove("--style")
    elif old == "--style-blend":
        argv += ["--style-blend", "1"]
    elif old == "--optimiser":
        argv += ["--optimiser", "adam"]
    else:
        argv += ["--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "deprecated" in err.splitlines()[0]
    assert files["out"].exists()


@pytest.mark.parametrize("size", ["20000", "100000"])
def test_huge_sizes_are_refused_fast_with_the_estimate(files, capsys, size):
    began = time.perf_counter()
    assert main(base_argv(files, size=size)) == 1
    assert time.perf_counter() - began < 1.0
    line = error_line(capsys.readouterr().err, only=True)
    assert "needs about" in line and "GiB" in line and "--memory-limit" in line
    assert not files["out"].exists()


def test_memory_limit_flag_refuses_and_zero_disables(files, capsys):
    assert main([*base_argv(files, size="32", steps="1"), "--memory-limit", "0.01"]) == 1
    assert "--memory-limit of 0.01 GiB" in error_line(capsys.readouterr().err, only=True)
    assert main([*base_argv(files, size="32", steps="1"), "--memory-limit", "0", "-q"]) == 0


def test_read_only_output_is_refused_before_work(files, capsys, tmp_path):
    if os.geteuid() == 0:
        files["out"] = Path("/sys/out.png")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        files["out"] = locked / "out.png"
    began = time.perf_counter()
    assert main(base_argv(files, steps="1000")) == 1
    assert time.perf_counter() - began < 5
    error_line(capsys.readouterr().err, only=True)
    assert not files["out"].exists()


def test_wrong_mask_count_is_refused(files, capsys, tmp_path):
    mask = save_image(torch.ones(1, 64, 64), tmp_path / "mask.png")
    argv = [*base_argv(files), "--mask", str(mask), str(mask)]
    assert main(argv) == 1
    assert "2 mask(s) given for 1 style image(s)" in error_line(capsys.readouterr().err, only=True)


def test_mask_of_another_aspect_names_both_sizes(files, capsys, tmp_path, content_image):
    mask = save_image(torch.ones(1, 10, 40), tmp_path / "mask.png")
    assert main([*base_argv(files), "--mask", str(mask)]) == 1
    line = error_line(capsys.readouterr().err, only=True)
    height, width = content_image.shape[-2:]
    assert "40×10" in line and f"{width}×{height}" in line


def test_mask_of_the_same_aspect_is_resized(files, tmp_path, content_image):
    height, width = content_image.shape[-2:]
    mask = save_image(torch.ones(1, height * 2, width * 2), tmp_path / "mask.png")
    assert main([*base_argv(files, size="32", steps="1"), "--mask", str(mask), "-q"]) == 0


def test_written_files_follow_the_umask(files):
    previous = os.umask(0o022)
    try:
        argv = [*base_argv(files, size="32", steps="2"), "--save-every", "1", "-q"]
        assert main(argv) == 0
    finally:
        os.umask(previous)
    for path in files["out"].parent.glob("out*.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path
