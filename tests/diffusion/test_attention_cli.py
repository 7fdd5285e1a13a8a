"""`brushwork attend` end to end on a tiny pipeline saved with save_pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from brushwork.cli.main import main
from cli_testing import error_line


@pytest.fixture(scope="module")
def model_dir(sd_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny-sd"
    sd_pipe.save_pretrained(folder)
    return folder


def _attend(model_dir, out, *extra):
    return main(
        [
            "attend",
            "a giraffe in the Analytical Cubism style",
            "--words",
            "giraffe",
            "Analytical Cubism",
            "--model",
            str(model_dir),
            "--steps",
            "2",
            "--size",
            "64",
            "--device",
            "cpu",
            "-q",
            "-o",
            str(out),
            *extra,
        ]
    )


def test_writes_image_overlays_masks_sheet_and_raw_maps(model_dir, tmp_path):
    out = tmp_path / "giraffe"
    assert _attend(model_dir, out, "--keep-layers", "--keep-steps") == 0
    for name in (
        "image.png",
        "sheet.png",
        "overlay_giraffe.png",
        "overlay_analytical_cubism.png",
        "mask_giraffe.png",
        "mask_analytical_cubism.png",
        "maps.json",
    ):
        assert (out / name).is_file(), name
    assert Image.open(out / "image.png").size == (64, 64)
    assert Image.open(out / "sheet.png").size[0] > 3 * 64
    meta = json.loads((out / "maps.json").read_text())
    assert meta["words"] == ["giraffe", "Analytical Cubism"]
    assert meta["recorded_steps"] == [0, 1]
    with safe_open(out / "maps.safetensors", "pt") as f:
        words = f.get_tensor("word_maps")
        tokens = f.get_tensor("token_maps")
        assert f.get_tensor("step_maps").shape[0] == 2
        assert f.get_tensor("layer_maps").shape[0] == len(meta["layers"]) == 6
        assert json.loads(f.metadata()["brushwork"])["prompt"].startswith("a giraffe")
    assert words.shape == (2, 32, 32)
    positions = meta["token_positions"]
    torch.testing.assert_close(words[1], tokens[positions[1]].mean(dim=0))
    assert not list(out.glob(".*tmp"))


def test_same_seed_same_maps_and_npy_output(model_dir, tmp_path):
    assert _attend(model_dir, tmp_path / "a", "--format", "npy", "--seed", "3") == 0
    assert _attend(model_dir, tmp_path / "b", "--format", "npy", "--seed", "3") == 0
    first = np.load(tmp_path / "a" / "word_maps.npy")
    np.testing.assert_array_equal(first, np.load(tmp_path / "b" / "word_maps.npy"))


def test_bad_word_is_a_clear_error_and_writes_nothing(model_dir, tmp_path, capsys):
    out = tmp_path / "zebra"
    code = main(
        ["attend", "a giraffe", "--words", "zebra", "--model", str(model_dir), "-q",
         "--steps", "2", "--device", "cpu", "-o", str(out)]
    )  # fmt: skip
    assert code == 1
    assert "'zebra' is not in the prompt" in capsys.readouterr().err
    assert not out.exists()


def test_missing_model_folder_and_bad_options(tmp_path, capsys):
    code = _attend(tmp_path / "nope", tmp_path / "out")
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["attend", "a cat", "--words", "cat", "-o", "x", "--colormpa", "jet"])
    assert exc.value.code == 2
    assert "did you mean --colormap" in capsys.readouterr().err


def test_record_steps_out_of_range(model_dir, tmp_path, capsys):
    assert _attend(model_dir, tmp_path / "o", "--record-steps", "1:5") == 1
    assert "outside the 2 steps" in capsys.readouterr().err


# --------------------------------------------------------------------------- --image


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _attend_image(model_dir, out, photo, *extra, caption="a giraffe in the painting style"):
    return main(
        ["attend", "--image", str(photo), "--caption", caption, "--words", "giraffe",
         "painting", "--model", str(model_dir), "--device", "cpu", "-q", "-o", str(out),
         *extra]
    )  # fmt: skip


def test_image_maps_written_with_their_description(model_dir, tmp_path, photo):
    out = tmp_path / "photo_maps"
    code = _attend_image(model_dir, out, photo, "--timesteps", "700,300", "--seed", "2",
                         "--keep-steps")  # fmt: skip
    assert code == 0
    for name in ("image.png", "sheet.png", "overlay_giraffe.png", "mask_painting.png"):
        assert (out / name).is_file(), name
    assert Image.open(out / "image.png").size == (56, 40)  # the input, at its own size
    assert np.array_equal(np.asarray(Image.open(out / "image.png")), np.asarray(Image.open(photo)))
    assert Image.open(out / "mask_giraffe.png").size == (56, 40)
    meta = json.loads((out / "maps.json").read_text())
    assert meta["mode"] == "image"
    assert meta["prompt"] == "a giraffe in the painting style"
    assert meta["method"] == "cross-attention"
    assert (meta["normalisation"], meta["clamp"], meta["stream"]) == ("text", "after-steps", "clip")
    assert meta["timesteps"] == [700.0, 300.0]
    assert meta["recorded_steps"] == [0, 1]
    assert meta["blocks"] == ["down", "up"]
    assert meta["image_size"] == [40, 56]
    with safe_open(out / "maps.safetensors", "pt") as f:
        assert f.get_tensor("step_maps").shape[0] == 2
        assert f.get_tensor("word_maps").shape[0] == 2


def test_image_maps_match_the_library(model_dir, tmp_path, photo, sd_pipe):
    from brushwork.diffusion.image_maps import maps_of_image
    from brushwork.image import load_image

    out = tmp_path / "same"
    assert _attend_image(model_dir, out, photo, "--format", "npy", "--timesteps", "500") == 0
    expected = maps_of_image(sd_pipe, load_image(photo), "a giraffe in the painting style",
                             ["giraffe", "painting"], timesteps=[500])  # fmt: skip
    np.testing.assert_allclose(
        np.load(out / "word_maps.npy"), expected.maps[0].maps.numpy(), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a giraffe", "--image", "{photo}", "--caption", "a giraffe"], "not both"),
        (["--image", "{photo}"], "--image needs --caption"),
        (["--caption", "a giraffe"], "--caption needs --image FILE"),
        (["a giraffe", "--caption", "a giraffe"], "--caption is for --image"),
        (["a giraffe", "--timesteps", "500"], "--timesteps is for --image"),
        ([], "give a prompt to generate, or --image"),
        (["--image", "{text}", "--caption", "a giraffe"], "not an image"),
        (["--image", "{missing}", "--caption", "a giraffe"], "image file not found"),
        (["--image", "{photo}", "--caption", "a giraffe", "--size", "32x48"], "one number N"),
        (["--image", "{photo}", "--caption", "a giraffe", "--record-steps", "0:1"],
         "--record-steps is for a generation"),
        (["--image", "{photo}", "--caption", "a giraffe", "--timesteps", "5,x"],
         "comma-separated numbers"),
        (["--image", "{photo}", "--caption", "a giraffe", "--blocks", "left"],
         "unknown block kind"),
    ],
)  # fmt: skip
def test_bad_image_inputs_refused_before_loading(tmp_path, capsys, photo, args, message):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    values = {"photo": photo, "text": text, "missing": tmp_path / "none.png"}
    args = [a.format(**values) for a in args]
    out = tmp_path / "maps"
    code = main(["attend", *args, "--words", "giraffe", "--model", "nobody/no-such-model",
                 "--device", "cpu", "-q", "-o", str(out)])  # fmt: skip
    assert code == 1
    line = error_line(capsys.readouterr().err)
    assert message in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--words", "zebra"], "'zebra' is not in the prompt"),
        (["--timesteps", "1000"], "out of range"),
        (["--text-stream", "t5"], "no 't5' text stream"),
        (["--blocks", "joint"], "unknown block kind"),
    ],
)
def test_bad_image_inputs_known_once_loaded(model_dir, tmp_path, capsys, photo, extra, message):
    out = tmp_path / "maps"
    assert _attend_image(model_dir, out, photo, *extra) == 1
    line = error_line(capsys.readouterr().err)
    assert message in line, line
    assert not out.exists()


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    from tiny_flux import build_flux_pipeline

    folder = tmp_path_factory.mktemp("tiny-flux")
    build_flux_pipeline(folder / "build", guidance_embeds=True).save_pretrained(folder / "model")
    return folder / "model"


def test_method_concept_writes_concept_maps(flux_dir, tmp_path):
    out = tmp_path / "maps"
    argv = ["attend", "a cow on a hill under the sky", "--words", "cow", "sky", "tree",
            "--method", "concept", "--model", str(flux_dir), "--steps", "2", "--size", "32",
            "--device", "cpu", "--precision", "fp32", "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((out / "maps.json").read_text())
    assert meta["method"] == "concept" and meta["words"] == ["cow", "sky", "tree"]
    assert meta["token_positions"] == [[0], [1], [2]]  # "tree" is not in the prompt: open-set
    from safetensors.torch import load_file

    maps = load_file(out / "maps.safetensors")["word_maps"]  # (concepts, h, w)
    torch.testing.assert_close(maps.sum(dim=0), torch.ones(maps.shape[1:]))
    assert (out / "overlay_tree.png").is_file() and (out / "sheet.png").is_file()


def test_method_concept_maps_an_existing_image(flux_dir, tmp_path):
    from brushwork.image import save_image

    photo = tmp_path / "photo.png"
    save_image(torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(1)), photo)
    out = tmp_path / "maps"
    argv = ["attend", "--image", str(photo), "--caption", "a cow on a hill",
            "--words", "cow", "sky", "tree", "--method", "concept", "--model", str(flux_dir),
            "--timesteps", "600", "--size", "32", "--device", "cpu", "--precision", "fp32",
            "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((out / "maps.json").read_text())
    assert meta["method"] == "concept" and meta["mode"] == "image"
    assert meta["words"] == ["cow", "sky", "tree"] and meta["timesteps"] == [600.0]
    from safetensors.torch import load_file

    maps = load_file(out / "maps.safetensors")["word_maps"]  # (concepts, h, w)
    torch.testing.assert_close(maps.sum(dim=0), torch.ones(maps.shape[1:]))
    assert (out / "overlay_tree.png").is_file() and (out / "sheet.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--words", "cow"], "at least 2 concepts"),
        (["--words", "cow", "sky", "--text-stream", "t5"], "--text-stream is for --method"),
    ],
)
def test_method_concept_bad_inputs_before_loading(tmp_path, capsys, extra, message):
    out = tmp_path / "maps"
    argv = ["attend", "a cow under the sky", "--method", "concept", "--model",
            str(tmp_path / "no-model"), "-o", str(out), *extra]  # fmt: skip
    assert main(argv) == 1
    assert message in error_line(capsys.readouterr().err)
    assert not out.exists()
