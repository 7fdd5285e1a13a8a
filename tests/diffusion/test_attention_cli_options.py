"""`brushwork attend` options: sizes checked before loading, deprecated spellings, the
output folder checked first and never left behind by a failing run."""

from __future__ import annotations

import os

import pytest

from brushwork.cli.main import main
from cli_testing import error_line


@pytest.fixture(scope="module")
def model_dir(sd_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_options") / "tiny-sd"
    sd_pipe.save_pretrained(folder)
    return folder


def _args(model, out, *extra):
    return ["attend", "a giraffe", "--words", "giraffe", "--model", str(model), "--steps", "1",
            "--device", "cpu", "-q", "-o", str(out), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (["--height", "50"], "--height 50 is not a multiple of 8 (the VAE's factor); use 48 or 56"),
        (["--size", "50"], "--size 50 is not a multiple of 8 (the VAE's factor); use 48 or 56"),
    ],
)
def test_sizes_refused_before_loading_and_no_folder(tmp_path, capsys, size, message):
    out = tmp_path / "maps"
    code = main(_args("nobody/no-such-model", out, *size))
    assert code == 1
    assert error_line(capsys.readouterr().err) == f"error: {message}"
    assert not out.exists()


def test_size_below_eight_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_args("nobody/no-such-model", tmp_path / "m", "--size", "64x3"))
    assert exc.value.code == 2
    assert "sides must be 8 px or more" in capsys.readouterr().err


def test_steps_zero_and_bad_opacity_are_argparse_errors(tmp_path, capsys):
    for extra in (["--steps", "0"], ["--overlay-opacity", "2"], ["--alpha", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(_args("nobody/no-such-model", tmp_path / "m", *extra))
        assert exc.value.code == 2
    assert not (tmp_path / "m").exists()


def test_deprecated_spellings_warn_and_work(model_dir, tmp_path, capsys):
    out = tmp_path / "maps"
    extra = ["--alpha", "0.3", "--dtype", "float32", "--height", "32", "--width", "40"]
    assert main(_args(model_dir, out, *extra)) == 0
    err = capsys.readouterr().err
    for old, new in (("--alpha", "--overlay-opacity"), ("--dtype", "--precision"),
                     ("--height", "--size HxW"), ("--width", "--size HxW")):  # fmt: skip
        assert (
            f"warning: {old} is deprecated and will be removed in the next release; use {new}"
            in err
        )
    from PIL import Image

    assert Image.open(out / "image.png").size == (40, 32)


def test_read_only_output_refused_before_loading(tmp_path, capsys):
    if os.geteuid() == 0:
        parent = "/sys"
    else:
        parent = str(tmp_path / "ro")
        os.mkdir(parent, 0o500)
    code = main(_args("nobody/no-such-model", f"{parent}/maps"))
    assert code == 1
    assert "cannot" in error_line(capsys.readouterr().err)
    assert not os.path.exists(f"{parent}/maps")


def test_memory_estimate_and_cuda_1(model_dir, tmp_path, capsys):
    import torch

    out = tmp_path / "maps"
    assert main(_args(model_dir, out, "--size", "8192", "--memory-limit", "2")) == 1
    assert "attend at 8192x8192 needs about" in error_line(capsys.readouterr().err)
    assert not out.exists()
    if not torch.cuda.is_available():
        args = _args(model_dir, out)
        args[args.index("--device") + 1] = "cuda:1"
        assert main(args) == 1
        assert "no CUDA GPU" in error_line(capsys.readouterr().err)
        assert not out.exists()


def test_failure_while_writing_leaves_no_folder(model_dir, tmp_path, capsys, monkeypatch):
    import brushwork.cli.attend as attend

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(attend, "_write_maps", broken)
    out = tmp_path / "maps"
    with pytest.raises(OSError):
        main(_args(model_dir, out))
    assert not out.exists()


def test_map_options_recorded_in_maps_json(model_dir, tmp_path):
    import json

    out = tmp_path / "maps"
    extra = ["--normalisation", "joint", "--clamp", "per-step", "--text-stream", "clip",
             "--blocks", "up", "--method", "cross-attention"]  # fmt: skip
    assert main(_args(model_dir, out, *extra)) == 0
    meta = json.loads((out / "maps.json").read_text())
    assert meta["mode"] == "generate"
    assert (meta["method"], meta["normalisation"], meta["clamp"]) == (
        "cross-attention",
        "joint",
        "per-step",
    )
    assert (meta["stream"], meta["stream_offset"], meta["blocks"]) == ("clip", 0, ["up"])
    assert len(meta["timesteps"]) == 1  # the run's schedule: --steps 1
    assert meta["tokens"][0] == "<start>" and meta["tokens"][-1] == "<end>"
    default = tmp_path / "default"
    assert main(_args(model_dir, default)) == 0
    meta = json.loads((default / "maps.json").read_text())
    assert (meta["normalisation"], meta["clamp"]) == ("text", "after-steps")
    assert meta["blocks"] == ["down", "up"]  # the UNet family's default, as DAAM


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--block-indices", "a,b"], "--block-indices expects comma-separated integers"),
        (["--block-indices", "-1"], "block indices must be ≥ 0"),
        (["--blocks", "down,sideways"], "unknown block kind(s) ['sideways']"),
    ],
)
def test_bad_map_options_refused_before_loading(tmp_path, capsys, extra, message):
    out = tmp_path / "maps"
    assert main(_args("nobody/no-such-model", out, *extra)) == 1
    assert message in error_line(capsys.readouterr().err)
    assert not out.exists()


def test_bad_stream_choice_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_args("nobody/no-such-model", tmp_path / "m", "--text-stream", "bert"))
    assert exc.value.code == 2
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory):
    tiny_sd3 = pytest.importorskip("tiny_sd3")
    pipe = tiny_sd3.build_sd3_pipeline(tmp_path_factory.mktemp("sd3_cli"))
    folder = tmp_path_factory.mktemp("model_sd3") / "tiny-sd3"
    pipe.save_pretrained(folder)
    return folder


def test_sd3_generation_and_image_maps_on_the_t5_stream(sd3_dir, tmp_path):
    import json

    import numpy as np
    from PIL import Image

    generated = tmp_path / "generated"
    extra = ["--size", "32x48", "--text-stream", "t5", "--block-indices", "1"]
    assert main(_args(sd3_dir, generated, *extra)) == 0
    meta = json.loads((generated / "maps.json").read_text())
    assert (meta["stream"], meta["stream_offset"]) == ("t5", 77)
    assert meta["blocks"] == ["joint"] and meta["block_indices"] == [1]
    assert "<start>" not in meta["tokens"]  # T5 has no start token
    photo = tmp_path / "photo.png"
    pixels = np.random.default_rng(1).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    out = tmp_path / "photo_maps"
    code = main(["attend", "--image", str(photo), "--caption", "a giraffe on a hill",
                 "--words", "giraffe", "--model", str(sd3_dir), "--device", "cpu", "-q",
                 "--normalisation", "joint", "--timesteps", "600.5", "-o", str(out)])  # fmt: skip
    assert code == 0
    meta = json.loads((out / "maps.json").read_text())
    assert (meta["mode"], meta["stream"], meta["normalisation"]) == ("image", "clip", "joint")
    assert meta["timesteps"] == [600.5] and meta["image_size"] == [30, 44]
    assert Image.open(out / "overlay_giraffe.png").size == (44, 30)
