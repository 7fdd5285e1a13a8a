"""The train / stylize / export subcommands end to end, on generated images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_fast_adain import _reference_vgg

from brushwork.cli.main import main
from brushwork.encoders import VGGEncoder
from brushwork.image import load_image
from brushwork.transfer import modelfile


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory) -> Path:
    """VGG-16 weights in torchvision's layout (random, seeded), under a non-published name."""
    path = tmp_path_factory.mktemp("weights") / "my-vgg16.pth"
    torch.save(VGGEncoder("vgg16", generator=torch.Generator().manual_seed(0)).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def vgg_normalised_file(tmp_path_factory) -> Path:
    """A normalised VGG-19 in the layout of the published vgg_normalised.pth (random)."""
    torch.manual_seed(0)
    vgg = _reference_vgg()
    with torch.no_grad():
        vgg[0].weight.mul_(1 / 255)
    path = tmp_path_factory.mktemp("weights") / "my_vgg_normalised.pth"
    torch.save(vgg.state_dict(), path)
    return path


def test_johnson_train_stylize_export(tmp_path, content_dir, style_dir, vgg16_file, capsys):
    model = tmp_path / "starry.safetensors"
    style = style_dir / "img00.png"
    args = [
        "train",
        "johnson",
        "--style",
        str(style),
        "--content-dir",
        str(content_dir),
        "-o",
        str(model),
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--crop-size",
        "32",
        "--channels",
        "4",
        "--residual-blocks",
        "1",
        "--weights",
        str(vgg16_file),
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    assert main(args) == 0
    assert (tmp_path / "starry.safetensors.ckpt").is_file()
    info, _ = modelfile.read_info(model)
    assert info.architecture == "johnson" and info.settings["steps"] == 2
    assert info.style_sha256 == modelfile.file_sha256(style)
    # resume to 3 steps from the checkpoint
    args[args.index("--steps") + 1] = "3"
    assert main([*args, "--resume", str(tmp_path / "starry.safetensors.ckpt")]) == 0

    out = tmp_path / "out.png"
    assert (
        main(
            [
                "stylize",
                str(content_dir / "img01.png"),
                "--model",
                str(model),
                "-o",
                str(out),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    assert load_image(out).shape == (3, 40, 48)

    onnx = tmp_path / "starry.onnx"
    assert main(["export", str(model), "-o", str(onnx)]) == 0
    folder = tmp_path / "folder_out"
    assert (
        main(
            [
                "stylize",
                str(content_dir),
                "--model",
                str(onnx),
                "-o",
                str(folder),
                "--size",
                "24",
                "--tile",
                "16",
                "--tile-overlap",
                "4",
                "-q",
            ]
        )
        == 0
    )
    written = sorted(p.name for p in folder.iterdir())
    assert written == sorted(p.with_suffix(".png").name for p in content_dir.iterdir())
    assert load_image(folder / written[0]).shape == (3, 20, 24)

    capsys.readouterr()
    int8 = tmp_path / "starry-int8.onnx"
    assert main(["export", str(model), "-o", str(int8), "--int8"]) == 1
    assert "--calibration-dir" in capsys.readouterr().err and not int8.exists()
    argv = ["export", str(model), "-o", str(int8), "--int8", "--calibration-dir", str(content_dir)]
    assert main(argv) == 0
    assert "int8 differs from the float model by" in capsys.readouterr().err
    out = tmp_path / "int8.png"
    assert (
        main(["stylize", str(content_dir / "img00.png"), "--model", str(int8), "-o", str(out)]) == 0
    )
    assert load_image(out).shape == load_image(content_dir / "img00.png").shape


def test_adain_and_wct_train_and_stylize(tmp_path, content_dir, style_dir, vgg_normalised_file):
    adain = tmp_path / "adain.safetensors"
    assert (
        main(
            [
                "train",
                "adain",
                "--content-dir",
                str(content_dir),
                "--style-dir",
                str(style_dir),
                "-o",
                str(adain),
                "--steps",
                "1",
                "--batch-size",
                "1",
                "--resize",
                "32",
                "--crop-size",
                "32",
                "--weights",
                str(vgg_normalised_file),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    masks = []
    for i, (lo, hi) in enumerate(((0, 24), (24, 48))):
        m = torch.zeros(1, 40, 48)
        m[..., lo:hi] = 1
        from brushwork.image import save_image

        masks.append(save_image(m.expand(3, -1, -1), tmp_path / f"mask{i}.png"))
    out = tmp_path / "adain.png"
    assert (
        main(
            [
                "stylize",
                str(content_dir / "img00.png"),
                "--model",
                str(adain),
                "--style",
                str(style_dir / "img00.png"),
                str(style_dir / "img01.png"),
                "--mask",
                *map(str, masks),
                "--alpha",
                "0.7",
                "--style-size",
                "48",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    assert load_image(out).shape == (3, 40, 48)

    wct = tmp_path / "wct.safetensors"
    assert (
        main(
            [
                "train",
                "wct",
                "--content-dir",
                str(content_dir),
                "-o",
                str(wct),
                "--steps",
                "1",
                "--batch-size",
                "1",
                "--resize",
                "32",
                "--crop-size",
                "32",
                "--levels",
                "2,1",
                "--weights",
                str(vgg_normalised_file),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    out = tmp_path / "wct.png"
    assert (
        main(
            [
                "stylize",
                str(content_dir / "img00.png"),
                "--model",
                str(wct),
                "--style",
                str(style_dir / "img00.png"),
                "--alpha",
                "0.6",
                "--preserve-color",
                "--style-size",
                "48",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    assert load_image(out).shape == (3, 40, 48)


def test_cli_errors_are_one_line(tmp_path, content_dir, style_dir, capsys) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"junk")
    assert (
        main(
            [
                "stylize",
                str(content_dir / "img00.png"),
                "--model",
                str(bogus),
                "-o",
                str(tmp_path / "x.png"),
            ]
        )
        == 1
    )
    assert "not a valid safetensors" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "train",
                "johnson",
                "--style",
                str(style_dir / "img00.png"),
                "--content-dir",
                str(tmp_path / "empty"),
                "-o",
                str(tmp_path / "m.safetensors"),
                "-q",
            ]
        )
        == 1
    )
    assert "holds no images" in capsys.readouterr().err
    assert main(["export", str(bogus), "-o", str(tmp_path / "x.txt")]) == 1
    assert "must end in .onnx" in capsys.readouterr().err
