"""`brushwork attend` end to end on a tiny pipeline saved with save_pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from brushwork.cli.main import main


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
