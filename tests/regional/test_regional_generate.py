"""IP-Adapter masks per region on a tiny SDXL-layout pipeline; `generate --region` end to end."""

from __future__ import annotations

import torch
from editing_tiny import build_sdxl_layout_pipeline
from tiny_sd import write_ip_adapter

from brushwork.cli.main import main
from brushwork.diffusion.style_reference import AdapterSource, load_style_adapter
from brushwork.image import load_image, save_image
from brushwork.regional.generate import generate_regional
from brushwork.regional.masks import RegionMasks


def _masks(left: float) -> RegionMasks:
    weights = torch.zeros(2, 32, 32)
    weights[0, :, :16] = left
    weights[1] = 1 - weights[0]
    return RegionMasks(["cat", "rest"], weights, ["red.png", "photo"])


def test_a_style_acts_only_inside_its_mask(tmp_path):
    pipe = build_sdxl_layout_pipeline(tmp_path / "sdxl")
    folder = write_ip_adapter(pipe, tmp_path / "ip")
    source = AdapterSource(repo=str(folder), subfolder="", weight_name="ip-adapter.safetensors",
                           image_encoder_folder=None)  # fmt: skip
    load_style_adapter(pipe, source)
    pipe.set_ip_adapter_scale(1.0)
    embeds = [torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(1)) * 3]
    kwargs = dict(image_embeds=embeds, steps=2, height=32, width=32, seed=3)
    empty = generate_regional(pipe, "a cat", _masks(0.0), **kwargs).image
    half = generate_regional(pipe, "a cat", _masks(1.0), **kwargs).image
    pipe.set_ip_adapter_scale(0.0)
    plain = generate_regional(pipe, "a cat", _masks(1.0), **kwargs).image
    torch.testing.assert_close(empty, plain, atol=1e-5, rtol=0)  # a zero mask: no style
    assert not torch.allclose(half, plain, atol=1e-3)


def test_generate_with_regions_from_its_own_maps(tmp_path, capsys):
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
    red = save_image(torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(2)),
                     tmp_path / "red.png")  # fmt: skip
    out = tmp_path / "gen.png"
    argv = ["generate", "a cat and a dog", "--region", f"cat={red}", "--region", f"rest={red}",
            "--model", str(model_dir), "--ip-adapter", str(adapter), "--ip-adapter-subfolder",
            "", "--ip-adapter-weight", "ip-adapter.safetensors", "--steps", "2", "--size", "32",
            "--device", "cpu", "--sheet", "-q", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert load_image(out).shape == (3, 32, 32)
    assert load_image(tmp_path / "gen_sheet.png").shape[-1] == 3 * 32 + 2 * 8
    bad = [*argv[:3], "horse=" + str(red), *argv[6:]]
    assert main(bad) == 1
    assert "'horse' is not in the caption" in capsys.readouterr().err
