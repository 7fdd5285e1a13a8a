"""stylize / train / export: the shared conventions (counts, sizes, colour preservation,
deprecated spellings, read-only outputs, file modes), all checked before any work."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from brushwork.cli.main import main
from brushwork.image import load_image, save_image
from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
from brushwork.transfer.modelfile import save_model
from brushwork.transfer.stylize import AdaINStylizer, JohnsonStylizer, preserve_color_mode
from cli_testing import error_line, read_only_folder
from weights_testing import isolate_weights_env


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


@pytest.fixture
def johnson_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", TransformerNet(JohnsonConfig(4, 1)))


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def stylize(content_dir: Path, model: Path, out: Path, *extra: str) -> list[str]:
    argv = ["stylize", str(content_dir / "img01.png"), "--model", str(model), "-o", str(out)]
    return [*argv, "--device", "cpu", "-q", *extra]


@pytest.mark.parametrize("mode", ["none", "luminance", "histogram", "mean-cov"])
def test_stylize_preserve_color_choices(content_dir, johnson_file, tmp_path, capsys, mode):
    out = tmp_path / f"{mode}.png"
    code, err = run(stylize(content_dir, johnson_file, out, "--preserve-color", mode), capsys)
    assert code == 0, err
    assert load_image(out).shape == (3, 40, 48)


def test_johnson_histogram_matches_the_output_to_the_content(content_batch):
    torch.manual_seed(0)
    net = TransformerNet(JohnsonConfig(4, 1))
    plain = JohnsonStylizer(net, device=torch.device("cpu"))(content_batch[:1])
    matched = JohnsonStylizer(net, device=torch.device("cpu"), preserve_color="histogram")(
        content_batch[:1]
    )
    content_means = content_batch[:1].mean(dim=(2, 3))
    assert (matched.mean(dim=(2, 3)) - content_means).abs().max() < (
        plain.mean(dim=(2, 3)) - content_means
    ).abs().max()


def test_adain_histogram_and_mean_cov_recolour_the_style(tiny_adain, content_batch, style_tensor):
    outs = {}
    for mode in ("none", "histogram", "mean-cov", "luminance"):
        stylizer = AdaINStylizer(
            tiny_adain,
            styles=[style_tensor],
            style_weights=None,
            alpha=1.0,
            device=torch.device("cpu"),
            preserve_color=mode,
        )
        assert stylizer.recolours_style == (mode in ("histogram", "mean-cov"))
        outs[mode] = stylizer(content_batch[:1])
    assert not torch.equal(outs["none"], outs["histogram"])
    assert not torch.equal(outs["histogram"], outs["mean-cov"])


def test_old_boolean_preserve_color_keeps_its_meaning():
    assert preserve_color_mode(True, "johnson") == "luminance"
    assert preserve_color_mode(True, "adain") == "mean-cov"
    assert preserve_color_mode(False, "wct") == "none"


@pytest.mark.parametrize(
    ("flags", "code", "needle"),
    [
        (["--size", "0"], 2, "--size"),
        (["--tile", "0"], 2, "--tile"),
        (["--alpha", "1.5"], 2, "--alpha"),
        (["--precision", "fp16"], 1, "fp16"),
        (["--preserve-color", "sepia"], 2, "--preserve-color"),
    ],
)
def test_stylize_bad_values(content_dir, johnson_file, tmp_path, capsys, flags, code, needle):
    out = tmp_path / "out.png"
    got, err = run(stylize(content_dir, johnson_file, out, *flags), capsys)
    assert got == code and needle in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("size", ["20000", "100000"])
def test_stylize_huge_size_is_refused_fast(content_dir, johnson_file, tmp_path, capsys, size):
    out = tmp_path / "out.png"
    began = time.perf_counter()
    code, err = run(stylize(content_dir, johnson_file, out, "--size", size), capsys)
    assert time.perf_counter() - began < 1.0
    assert code == 1
    line = error_line(err, only=True)
    assert "needs about" in line and "GiB" in line and "--memory-limit" in line


def test_stylize_folder_output_is_created_only_after_validation(
    content_dir, johnson_file, tmp_path, capsys
):
    out = tmp_path / "new_folder"
    argv = ["stylize", str(content_dir), "--model", str(johnson_file), "-o", str(out), "-q"]
    code, err = run([*argv, "--memory-limit", "0.001"], capsys)
    assert code == 1
    error_line(err, only=True)
    assert not out.exists()
    code, err = run([*argv, "--device", "cpu"], capsys)
    assert code == 0, err
    assert len(list(out.glob("*.png"))) == len(list(content_dir.glob("*.png")))


def test_stylize_read_only_output_is_refused(content_dir, johnson_file, tmp_path, capsys):
    locked = read_only_folder(tmp_path)
    for out in (locked / "out.png", locked / "frames"):
        source = content_dir / "img01.png" if out.suffix else content_dir
        argv = ["stylize", str(source), "--model", str(johnson_file), "-o", str(out), "-q"]
        code, err = run(argv, capsys)
        assert code == 1
        error_line(err, only=True)
        assert not out.exists()


def test_stylize_masks_are_checked_before_loading(content_dir, style_dir, tmp_path, capsys):
    mask = save_image(torch.ones(1, 40, 48), tmp_path / "mask.png")
    wide = save_image(torch.ones(1, 10, 60), tmp_path / "wide.png")
    base = ["stylize", str(content_dir / "img01.png"), "--method", "adain"]
    base += ["--style", str(style_dir / "img00.png"), "-o", str(tmp_path / "o.png"), "-q"]
    code, err = run([*base, "--mask", str(mask), str(mask)], capsys)
    assert code == 1 and "2 mask(s) given for 1 style image(s)" in error_line(err, only=True)
    code, err = run([*base, "--mask", str(wide)], capsys)
    assert code == 1 and "60×10" in err and "48×40" in error_line(err, only=True)


def test_stylize_weights_flag_is_named_when_published_files_are_missing(
    content_dir, style_dir, tmp_path, capsys
):
    argv = ["stylize", str(content_dir / "img01.png"), "--method", "adain"]
    argv += ["--style", str(style_dir / "img00.png"), "-o", str(tmp_path / "o.png"), "-q"]
    code, err = run(argv, capsys)
    assert code == 1 and "--weights PATH" in error_line(err, only=True)
    code, err = run([*argv, "--weights", str(tmp_path / "nowhere")], capsys)
    assert code == 1
    error_line(err, only=True)


def test_stylize_files_follow_the_umask(content_dir, johnson_file, tmp_path):
    previous = os.umask(0o022)
    try:
        out = tmp_path / "out.png"
        assert main(stylize(content_dir, johnson_file, out)) == 0
        onnx = tmp_path / "tiny.onnx"
        assert main(["export", str(johnson_file), "-o", str(onnx), "-q"]) == 0
    finally:
        os.umask(previous)
    for path in (out, onnx):
        assert path.stat().st_mode & 0o777 == 0o644, path


# --------------------------------------------------------------------------- train


def train_argv(content_dir: Path, style_dir: Path, out: Path, vgg16_file: Path) -> list[str]:
    return [
        "train", "johnson", "--style", str(style_dir / "img00.png"), "--content-dir",
        str(content_dir), "-o", str(out), "--steps", "1", "--batch-size", "1",
        "--channels", "4", "--residual-blocks", "1", "--device", "cpu", "-q",
    ]  # fmt: skip


@pytest.fixture
def vgg16_path(tmp_path: Path) -> Path:
    from brushwork.encoders import VGGEncoder

    path = tmp_path / "my-vgg16.pth"
    torch.save(VGGEncoder("vgg16", generator=torch.Generator().manual_seed(0)).state_dict(), path)
    return path


def test_train_deprecated_aliases_warn_and_work(
    content_dir, style_dir, tmp_path, vgg16_path, capsys
):
    out = tmp_path / "j.safetensors"
    argv = train_argv(content_dir, style_dir, out, vgg16_path)
    argv += ["--image-size", "32", "--vgg-weights", str(vgg16_path), "--lr", "0.002"]
    previous = os.umask(0o022)
    try:
        code, err = run(argv, capsys)
    finally:
        os.umask(previous)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "deprecated" in line]
    assert len(warnings) == 2
    assert any("--crop-size" in w for w in warnings) and any("--weights" in w for w in warnings)
    assert out.stat().st_mode & 0o777 == 0o644
    from brushwork.transfer import modelfile

    info, _ = modelfile.read_info(out)
    assert info.settings["image_size"] == 32 and info.settings["learning_rate"] == 0.002


@pytest.mark.parametrize("flag", ["--steps", "--batch-size", "--crop-size", "--checkpoint-every"])
def test_train_counts_must_be_positive(content_dir, style_dir, tmp_path, vgg16_path, capsys, flag):
    out = tmp_path / "j.safetensors"
    argv = [*train_argv(content_dir, style_dir, out, vgg16_path), flag, "0"]
    code, err = run(argv, capsys)
    assert code == 2 and flag in err
    assert not list(tmp_path.glob("j.*"))


def test_train_read_only_output_is_refused_before_training(
    content_dir, style_dir, tmp_path, vgg16_path, capsys
):
    out = read_only_folder(tmp_path) / "j.safetensors"
    argv = [*train_argv(content_dir, style_dir, out, vgg16_path), "--weights", str(vgg16_path)]
    began = time.perf_counter()
    code, err = run(argv, capsys)
    assert code == 1 and time.perf_counter() - began < 2
    assert "cannot write the model file" in error_line(err, only=True)


def test_export_errors_are_one_line(johnson_file, tmp_path, capsys):
    code, err = run(["export", str(johnson_file), "-o", str(tmp_path / "x.txt")], capsys)
    assert code == 1 and ".onnx" in error_line(err, only=True)
    code, err = run(["export", str(johnson_file), "-o", str(tmp_path / "x.onnx"), "--int8"], capsys)
    assert code == 1 and "--calibration-dir" in error_line(err, only=True)
    code, err = run(
        ["export", str(johnson_file), "-o", "y.onnx", "--calibration-count", "0"], capsys
    )
    assert code == 2 and "--calibration-count" in err
