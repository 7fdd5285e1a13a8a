"""``brushwork video`` end to end (Gatys path with a VGG-19 file in the published layout)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from video_synth import texture

from brushwork.cli.main import main
from brushwork.video import probe_video


def test_cli_gatys_video_prints_warping_error(
    tmp_path: Path, moving_square_video: Path, vgg19_file, capsys
) -> None:
    style = tmp_path / "style.png"
    Image.fromarray(texture(32, 32, seed=5)).save(style)
    out = tmp_path / "out.mp4"
    argv = [
        "video", str(moving_square_video), "--style", str(style), "-o", str(out),
        "--weights", str(vgg19_file[0]), "--size", "24", "--steps", "2", "--later-steps", "1",
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    assert probe_video(out).frame_count == 8
    assert "warping error:" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, moving_square_video: Path, capsys) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    style = tmp_path / "style.png"
    Image.fromarray(texture(32, 32)).save(style)
    assert main(["video", str(bad), "--style", str(style), "-o", str(tmp_path / "o.mp4")]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert main(["video", str(moving_square_video), "-o", str(tmp_path / "o.mp4")]) == 1
    assert "--style" in capsys.readouterr().err
