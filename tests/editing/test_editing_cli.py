"""`brushwork edit` and `brushwork generate` end to end on tiny pipelines saved to folders."""

from __future__ import annotations

import pytest
import torch
from editing_tiny import build_sdxl_layout_pipeline
from tiny_sd import write_ip_adapter

from brushwork.cli.main import main
from brushwork.image import load_image, save_image


@pytest.fixture(scope="module")
def sd_dir(sd_edit_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd_model")
    sd_edit_pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tiny_clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip_model")
    tiny_clip.model.save_pretrained(folder)
    tiny_clip.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "cat.png"
    save_image(torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(0)), path)
    return path


def test_edit_cds_writes_result_and_sheet(sd_dir, photo, tmp_path, capsys):
    out = tmp_path / "pig.png"
    args = ["edit", str(photo), "--source", "a cat", "--target", "a dog", "-o", str(out),
            "--model", str(sd_dir), "--iterations", "2", "--patches", "8", "--sheet"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "edited at 32×24, resized back to 40×30" in err
    assert load_image(out).shape == (3, 30, 40)  # the input's size, not the model's
    assert load_image(tmp_path / "pig_sheet.png").shape == (3, 30, 40 + 8 + 40)
    dds = tmp_path / "pig_dds.png"
    assert main([*args[:7], str(dds), *args[8:], "--method", "dds", "-q"]) == 0
    assert not torch.equal(load_image(out), load_image(dds))


def test_edit_errors(sd_dir, photo, tmp_path, capsys, monkeypatch):
    base = ["edit", str(photo), "--source", "a cat", "-o", str(tmp_path / "x.png"), "-q"]
    assert main([*base, "--target", "a dog", "--model", str(sd_dir), "--keep-size"]) == 1
    assert "multiples of 4" in capsys.readouterr().err
    assert main([*base, "--target", "a dog " * 50, "--model", str(sd_dir)]) == 1
    assert "target prompt is" in capsys.readouterr().err
    assert main([*base, "--target", "a dog", "--model", str(sd_dir), "--patch-sizes", "x"]) == 1
    assert "--patch-sizes" in capsys.readouterr().err
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main([*base, "--target", "a dog", "--model", "nobody/no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "nobody/no-such-model" in err and "offline" in err
    assert not (tmp_path / "x.png").exists()


def test_generate_saliency_guided_with_sheet(sd_dir, clip_dir, tmp_path, capsys):
    out = tmp_path / "lighthouse.png"
    args = ["generate", "a cat", "--saliency-guided", "--iterations", "2", "--steps", "2",
            "--model", str(sd_dir), "--clip-model", str(clip_dir), "--sheet",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "CLIP similarity to the prompt" in capsys.readouterr().err
    assert load_image(out).shape == (3, 32, 32)
    assert load_image(tmp_path / "lighthouse_sheet.png").shape == (3, 32, 3 * 32 + 2 * 8)


def test_generate_plain_and_size_errors(sd_dir, tmp_path, capsys):
    out = tmp_path / "plain.png"
    assert main(["generate", "a cat", "--steps", "2", "--model", str(sd_dir), "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    assert load_image(out).shape == (3, 32, 32)
    bad = ["generate", "a cat", "--model", str(sd_dir), "--size", "30", "-o", str(out), "-q"]
    assert main(bad) == 1
    assert "--size 30 is not a multiple of 8 (the VAE's factor); use 24 or 32" in (
        capsys.readouterr().err
    )
    assert main(["generate", "a cat", "--style-only", "-o", str(out), "-q"]) == 1
    assert "need --style" in capsys.readouterr().err


def test_generate_with_style_image(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    pipe = build_sdxl_layout_pipeline(tmp_path / "build")
    model_dir = tmp_path / "sdxl"
    pipe.save_pretrained(model_dir)
    adapter = write_ip_adapter(pipe, tmp_path / "ip")
    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, image_size=224, patch_size=32, projection_dim=16)
    )  # fmt: skip
    encoder.save_pretrained(adapter / "image_encoder")
    style = tmp_path / "starry.png"
    save_image(torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(2)), style)
    out = tmp_path / "cat.png"
    args = ["generate", "a cat", "--style", str(style), "--style-only", "--model",
            str(model_dir), "--ip-adapter", str(adapter), "--ip-adapter-subfolder", "",
            "--ip-adapter-weight", "ip-adapter.safetensors", "--steps", "2", "--size", "32",
            "--sheet", "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    assert load_image(out).shape == (3, 32, 32)
    assert load_image(tmp_path / "cat_sheet.png").shape == (3, 20, 20 + 8 + 20)


def test_generate_without_the_published_adapter_names_the_adapter_flag(
    sd_dir, photo, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    args = ["generate", "a cat", "--style", str(photo), "--model", str(sd_dir), "--steps", "1",
            "--size", "32", "-q", "-o", str(tmp_path / "styled.png")]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "h94/IP-Adapter" in err
    assert err.rstrip().endswith("with --ip-adapter")
    assert not (tmp_path / "styled.png").exists()
