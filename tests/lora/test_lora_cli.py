"""``brushwork lora train|info`` and ``--lora`` end to end on a tiny SD folder."""

from __future__ import annotations

import json

import pytest
import torch
from lora_tiny import TRIGGER, build
from safetensors.torch import load_file

from brushwork.cli.main import main
from brushwork.cli.options import lora_spec
from brushwork.image import load_image


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_sd") / "tiny-sd"
    build("sd", folder.parent / "build").save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _train(sd_folder, images, out, *extra):
    argv = ["lora", "train", "--images", str(images), "--trigger", TRIGGER, "--model",
            str(sd_folder), "--rank", "2", "--size", "32", "--lr", "1e-2", "-o", str(out),
            "--device", "cpu", "-q", *extra]  # fmt: skip
    assert main(argv) == 0


def test_train_resume_info_and_generate(sd_folder, training_images, tmp_path, capsys):
    whole = tmp_path / "whole.safetensors"
    _train(sd_folder, training_images, whole, "--steps", "4", "--sample-steps", "2,4")
    assert sorted(p.name for p in (tmp_path / "whole_samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]
    assert load_image(tmp_path / "whole_samples" / "step_000004.png").shape == (3, 32, 32)
    half = tmp_path / "half.safetensors"
    _train(sd_folder, training_images, half, "--steps", "2")
    resumed = tmp_path / "resumed.safetensors"
    _train(sd_folder, training_images, resumed, "--steps", "4", "--resume",
           str(half) + ".ckpt")  # fmt: skip
    a, b = load_file(str(whole)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    capsys.readouterr()
    assert main(["lora", "info", str(whole), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["base_model"] == str(sd_folder) and facts["rank"] == 2
    assert facts["trigger"] == TRIGGER and facts["steps"] == 4 and facts["family"] == "sd"
    assert main(["lora", "info", str(whole)]) == 0
    text = capsys.readouterr().out
    assert "up_blocks.1.attentions.0" in text and "trigger" in text

    def generate(name, *lora):
        out = tmp_path / name
        argv = ["generate", "a cat in sks style", "--model", str(sd_folder), "--steps", "2",
                "--size", "32", "-o", str(out), "--device", "cpu", "-q", *lora]  # fmt: skip
        assert main(argv) == 0
        return load_image(out)

    base = generate("base.png")
    styled = generate("styled.png", "--lora", f"{whole}:1.0")
    fused = generate("fused.png", "--lora", str(whole), "--fuse-lora")
    mixed = generate("mixed.png", "--lora", f"{whole}:0.5", "--lora", f"{half}:0.5")
    assert torch.equal(generate("zero.png", "--lora", f"{whole}:0"), base)
    assert (styled - base).abs().max() > 0.01
    assert (fused - styled).abs().max() <= 2 / 255
    assert not torch.equal(mixed, styled)


def test_lora_spec_parsing():
    assert lora_spec("a.safetensors") == ("a.safetensors", 1.0, None)
    assert lora_spec("a.safetensors:0.8") == ("a.safetensors", 0.8, None)
    assert lora_spec("C:/x/a.safetensors:-0.5@style") == ("C:/x/a.safetensors", -0.5, "style")
    assert lora_spec("C:/x/a.safetensors@content") == ("C:/x/a.safetensors", 1.0, "content")


def test_attend_with_a_lora(sd_folder, training_images, tmp_path):
    lora = tmp_path / "l.safetensors"
    _train(sd_folder, training_images, lora, "--steps", "2")

    def attend(name, *extra):
        out = tmp_path / name
        argv = ["attend", "a cat", "--words", "cat", "--model", str(sd_folder), "--steps", "2",
                "--size", "32", "-o", str(out), "--device", "cpu", "-q", *extra]  # fmt: skip
        assert main(argv) == 0
        return load_image(out / "image.png")

    base, styled = attend("base"), attend("styled", "--lora", f"{lora}:1.5")
    assert (styled - base).abs().max() > 0.01
    assert torch.equal(attend("zero", "--lora", f"{lora}:0"), base)


def test_stylize_styleid_with_a_lora(sd_folder, training_images, tmp_path):
    from brushwork.image import save_image

    lora = tmp_path / "l.safetensors"
    _train(sd_folder, training_images, lora, "--steps", "2")
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    save_image(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1)), photo)
    save_image(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(2)), style)

    def stylize(name, *extra):
        out = tmp_path / name
        argv = ["stylize", str(photo), "--method", "styleid", "--style", str(style),
                "--model", str(sd_folder), "--steps", "2", "--size", "32", "-o", str(out),
                "--device", "cpu", "-q", *extra]  # fmt: skip
        assert main(argv) == 0
        return load_image(out)

    base, styled = stylize("base.png"), stylize("styled.png", "--lora", f"{lora}:1.5")
    assert (styled - base).abs().max() > 0.01
    assert torch.equal(stylize("zero.png", "--lora", f"{lora}:0"), base)


@pytest.mark.parametrize("method", ["controlnet", "styleid", "adain"])
def test_stylize_lora_errors_before_loading(method, sd_folder, tmp_path, capsys):
    from brushwork.image import save_image
    from cli_testing import error_line

    photo = tmp_path / "photo.png"
    save_image(torch.rand(3, 16, 16), photo)
    damaged = tmp_path / "bad.safetensors"
    damaged.write_bytes(b"not a safetensors file")
    argv = ["stylize", str(photo), "--method", method, "--style", str(photo),
            "--model", str(sd_folder), "--lora", str(damaged),
            "-o", str(tmp_path / "out.png")]  # fmt: skip
    assert main(argv) == 1
    line = error_line(capsys.readouterr().err)
    if method == "adain":
        assert "--lora is for the diffusion methods" in line
    else:
        assert "bad.safetensors" in line
    assert not (tmp_path / "out.png").exists()
