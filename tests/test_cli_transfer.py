"""``brushwork transfer``: a real run at tiny size, and every bad input the issue lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import load_image, save_image
from cli_testing import error_line
from weights_testing import isolate_weights_env


@pytest.fixture
def files(tmp_path: Path, content_image, style_image, vgg19_file) -> dict[str, Path]:
    paths = {
        "content": save_image(content_image, tmp_path / "content.png"),
        "style": save_image(style_image, tmp_path / "style.png"),
        "weights": vgg19_file[0],
        "out": tmp_path / "out.png",
    }
    return paths


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Never touch the network or the user's cache."""
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


def transfer(files: dict[str, Path], *extra: str, style: Path | None = None, styles=()) -> int:
    argv = ["transfer", str(files["content"]), "--style", str(style or files["style"])]
    argv += [
        *map(str, styles),
        "-o",
        str(files["out"]),
        "--size",
        "32",
        "--steps",
        "3",
        "--device",
        "cpu",
        "-q",
    ]
    argv += ["--weights", str(files["weights"]), *extra]
    return main(argv)


def test_transfer_writes_the_image_and_intermediates(files):
    assert transfer(files, "--save-every", "2") == 0
    out = load_image(files["out"])
    assert out.shape == (3, 32, 32)
    assert (files["out"].parent / "out_step00002.png").exists()
    assert not list(files["out"].parent.glob(".*"))  # no temp files left behind


def test_two_styles_with_blend_and_luminance_preservation(files):
    code = transfer(
        files,
        "--style-weights",
        "0.7,0.3",
        "--preserve-color",
        "luminance",
        "--no-line-search",
        styles=[files["content"]],
    )
    assert code == 0


def test_missing_file(files, capsys):
    files["content"] = files["content"].with_name("nope.jpg")
    assert transfer(files) == 1
    assert "nope.jpg" in error_line(capsys.readouterr().err, only=True)
    assert not files["out"].exists()


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_unreadable_images(files, capsys, kind):
    bad = files["style"].with_name(f"bad-{kind}.png")
    data = files["style"].read_bytes()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "text": b"hello, not an image\n", "empty": b""}[kind]
    )
    assert transfer(files, style=bad) == 1
    assert bad.name in error_line(capsys.readouterr().err, only=True)
    assert not files["out"].exists()


def test_too_many_pixels_names_the_override(files, capsys):
    assert transfer(files, "--max-pixels", "100") == 1
    assert "--max-pixels" in error_line(capsys.readouterr().err, only=True)


def test_output_in_a_missing_folder(files, capsys):
    files["out"] = files["out"].parent / "missing" / "out.png"
    assert transfer(files) == 1
    assert "missing" in error_line(capsys.readouterr().err, only=True)


def test_output_equal_to_an_input_is_refused(files, capsys):
    before = files["content"].read_bytes()
    files["out"] = files["content"].parent / "." / "content.png"
    assert transfer(files) == 1
    assert "input" in error_line(capsys.readouterr().err, only=True)
    assert files["content"].read_bytes() == before


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--style-layers", "relu1_1,relu9_1"], "relu9_1"),
        (["--content-layers", "relu4_22"], "did you mean 'relu4_2'"),
        (["--style-weights", "0.5,0.5"], "--style-weights"),
        (["--coarse-share", "1"], "--coarse-share"),
    ],
)
def test_bad_settings(files, capsys, flags, needle):
    assert transfer(files, *flags) == 1
    assert needle in error_line(capsys.readouterr().err, only=True)
    assert not files["out"].exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--style-weight", "-1"], "--style-weight"),
        (["--content-weight", "-0.5"], "--content-weight"),
        (["--steps", "-3"], "--steps"),
        (["--steps", "0"], "--steps"),
        (["--save-every", "-1"], "--save-every"),
        (["--pyramid-threshold", "-1"], "--pyramid-threshold"),
        (["--size", "0"], "--size"),
        (["--lbfgs-history", "0"], "--lbfgs-history"),
    ],
)
def test_bad_values_are_usage_errors(files, capsys, flags, needle):
    with pytest.raises(SystemExit) as exit_info:
        transfer(files, *flags)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err
    assert not files["out"].exists()


def test_mask_of_the_wrong_size(files, capsys, tmp_path):
    mask = save_image(torch.ones(1, 10, 12), tmp_path / "mask.png")
    assert transfer(files, "--mask", str(mask)) == 1
    assert "mask" in error_line(capsys.readouterr().err, only=True)


def test_unknown_option_suggests_the_nearest(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        transfer(files, "--stpes", "4")
    assert exit_info.value.code == 2
    assert "did you mean --steps" in capsys.readouterr().err


def test_missing_weights_offline_say_how_to_provide_them(files, capsys):
    argv = ["transfer", str(files["content"]), "--style", str(files["style"])]
    argv += ["-o", str(files["out"])]
    assert main([*argv, "--size", "32", "--steps", "1", "--device", "cpu", "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in ("vgg19-dcbb9e9d.pth", "--weights", "BRUSHWORK_WEIGHTS_DIR"):
        assert needle in err
    assert not files["out"].exists()
