"""ControlNet-guided stylisation on tiny SD-1.x / SDXL pipelines and a tiny ControlNetModel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))
sys.path.insert(0, str(Path(__file__).parents[1] / "editing"))

from editing_tiny import build_sdxl_layout_pipeline
from tiny_sd import build_sd_pipeline, write_ip_adapter

from brushwork.diffusion.controlnet_style import (
    ControlStyleSettings,
    LineartGenerator,
    canny_map,
    control_image,
    controlnet_pipeline,
    load_annotator,
    load_controlnet,
    stylize_with_controlnet,
)
from brushwork.errors import ConfigError, WeightsError

SIZE = 32


def tiny_controlnet(pipe, seed: int = 0):
    """A ControlNetModel shaped like ``pipe``'s UNet, its zero convolutions made non-zero
    (a trained ControlNet's are), so that the conditioning reaches the UNet."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        zero = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for module in [*zero, controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.3)
    return controlnet


def square(size: int = SIZE, left: int = 8) -> torch.Tensor:
    image = torch.zeros(3, size, size)
    image[:, left : left + 12, left : left + 12] = 1.0
    return image


@pytest.fixture(scope="module")
def sd_parts(tmp_path_factory):
    pipe = build_sd_pipeline(tmp_path_factory.mktemp("cn_sd"))
    return pipe, controlnet_pipeline(pipe, tiny_controlnet(pipe))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_canny_finds_the_square_edges():
    edges = canny_map(square())
    assert edges.shape == (3, SIZE, SIZE) and set(edges.unique().tolist()) <= {0.0, 1.0}
    assert edges[0, 8:20, 7:9].sum() > 0 and edges[0, 12:16, 12:16].sum() == 0
    assert edges[0, :4].sum() == 0  # flat regions have no edges


def test_zero_control_scale_is_plain_generation(sd_parts):
    pipe, control_pipe = sd_parts
    settings = ControlStyleSettings(prompt="a cat", control_scale=0.0, steps=2, seed=3)
    result = stylize_with_controlnet(control_pipe, canny_map(square()), settings=settings)
    plain = pipe(
        "a cat", num_inference_steps=2, guidance_scale=5.0, height=SIZE, width=SIZE,
        generator=torch.Generator().manual_seed(3), output_type="pt",
    ).images[0]  # fmt: skip
    torch.testing.assert_close(result.image, plain.float(), atol=1e-5, rtol=0)


def test_conditioning_changes_the_output(sd_parts):
    _, control_pipe = sd_parts
    settings = ControlStyleSettings(prompt="a cat", control_scale=1.0, steps=2, seed=3)
    a = stylize_with_controlnet(control_pipe, canny_map(square(left=4)), settings=settings)
    b = stylize_with_controlnet(control_pipe, canny_map(square(left=16)), settings=settings)
    again = stylize_with_controlnet(control_pipe, canny_map(square(left=4)), settings=settings)
    assert a.image.shape == (3, SIZE, SIZE)
    assert (a.image - b.image).abs().max() > 1e-3
    assert torch.equal(a.image, again.image)  # same seed, same result


def test_sdxl_with_instantstyle_adapter(tmp_path):
    from brushwork.diffusion.style_reference import (
        AdapterSource,
        load_style_adapter,
        set_style_preset,
        style_layer_scales,
    )

    base = build_sdxl_layout_pipeline(tmp_path / "sdxl")
    pipe = controlnet_pipeline(base, tiny_controlnet(base))
    assert type(pipe).__name__ == "StableDiffusionXLControlNetPipeline"
    folder = write_ip_adapter(pipe, tmp_path / "ip")
    load_style_adapter(
        pipe, AdapterSource(str(folder), "", "ip-adapter.safetensors", image_encoder_folder=None)
    )
    set_style_preset(pipe, "style", 1.0)
    assert sum(s != 0 for s in style_layer_scales(pipe).values()) == 1
    embeds = [torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(1))]
    settings = ControlStyleSettings(prompt="a cat", steps=2)
    styled = stylize_with_controlnet(
        pipe, canny_map(square()), image_embeds=embeds, settings=settings
    )
    set_style_preset(pipe, "style", 0.0)
    unstyled = stylize_with_controlnet(
        pipe, canny_map(square()), image_embeds=embeds, settings=settings
    )
    assert styled.image.shape == (3, SIZE, SIZE)
    assert (styled.image - unstyled.image).abs().max() > 1e-4


def test_depth_annotator_from_a_folder(tmp_path):
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=16, head_in_index=-1,
        reassemble_factors=[4, 2, 1, 0.5],
    )  # fmt: skip
    DPTForDepthEstimation(config).save_pretrained(tmp_path / "dpt")
    annotator = load_annotator("depth", str(tmp_path / "dpt"))
    depth = control_image(square(), "depth", annotator)
    assert depth.shape == (3, SIZE, SIZE)
    assert depth.min() == 0 and depth.max() == pytest.approx(1.0)
    assert not torch.equal(depth, control_image(square(left=16), "depth", annotator))


def test_lineart_annotator_in_the_published_layout(tmp_path):
    torch.manual_seed(0)
    generator = LineartGenerator()
    (tmp_path / "annotators").mkdir()
    torch.save(generator.state_dict(), tmp_path / "annotators" / "sk_model.pth")
    annotate = load_annotator("lineart", str(tmp_path / "annotators"))
    photo = torch.rand(3, 30, 26, generator=torch.Generator().manual_seed(0))
    lines = annotate(photo)
    assert lines.shape == (3, 30, 26)
    with torch.no_grad():
        padded = torch.nn.functional.pad(photo[None], (0, 2, 0, 2), mode="reflect")
        expected = 1 - generator(padded)[0, 0, :30, :26]
    torch.testing.assert_close(lines[0], expected)
    torch.save({"model0.1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="not the line-art annotator"):
        load_annotator("lineart", str(tmp_path / "bad.pth"))


def test_errors(sd_parts, tmp_path, monkeypatch):
    pipe, control_pipe = sd_parts
    with pytest.raises(ConfigError, match="control scale"):
        stylize_with_controlnet(
            control_pipe, canny_map(square()), settings=ControlStyleSettings(control_scale=-1)
        )
    with pytest.raises(ConfigError, match="unknown control"):
        control_image(square(), "pose")
    with pytest.raises(ConfigError, match="needs its annotator"):
        control_image(square(), "depth")
    sdxl = build_sdxl_layout_pipeline(tmp_path / "sdxl")
    with pytest.raises(ConfigError, match="text width"):
        controlnet_pipeline(sdxl, tiny_controlnet(pipe))
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsError, match="lllyasviel/control_v11p_sd15_canny"):
        load_controlnet("sd", "canny")
    with pytest.raises(WeightsError, match="Intel/dpt-hybrid-midas"):
        load_annotator("depth")


def test_cli_end_to_end_on_a_saved_tiny_pipeline(tmp_path, capsys):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from brushwork.cli.main import main
    from brushwork.image import load_image, save_image

    pipe = build_sd_pipeline(tmp_path / "build")
    pipe.save_pretrained(tmp_path / "sd")
    tiny_controlnet(pipe).save_pretrained(tmp_path / "controlnet")
    adapter = write_ip_adapter(pipe, tmp_path / "ip")
    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, image_size=224, patch_size=32, projection_dim=16)
    )  # fmt: skip
    encoder.save_pretrained(adapter / "image_encoder")
    photo, style = tmp_path / "photo.png", tmp_path / "starry.png"
    save_image(square(40, left=10)[:, :, :36], photo)  # 36×40: fitted to multiples of 2
    save_image(torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(2)), style)
    out = tmp_path / "out.png"
    args = ["stylize", str(photo), "--method", "controlnet", "--control", "canny",
            "--style", str(style), "--model", str(tmp_path / "sd"),
            "--controlnet", str(tmp_path / "controlnet"), "--ip-adapter", str(adapter),
            "--ip-adapter-subfolder", "", "--ip-adapter-weight", "ip-adapter.safetensors",
            "--steps", "2", "--prompt", "a cat", "--device", "cpu", "-q",
            "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    image = load_image(out)
    assert image.shape == (3, 32, 28)  # long side: the model's own 32 px
    assert main([*args[:-1], str(tmp_path / "again.png")]) == 0
    assert torch.equal(load_image(tmp_path / "again.png"), image)  # same seed, same image
    bad = [*args, "--style-only"]  # InstantStyle's blocks need SDXL
    assert main(bad) == 1
    assert "preset targets SDXL" in capsys.readouterr().err


def test_style_aligned_runs_inside_a_controlnet_pipeline(sd_parts):
    from brushwork.diffusion.style_aligned import generate_style_aligned

    _, control_pipe = sd_parts
    hint = canny_map(square())[None]
    kwargs = dict(steps=2, height=SIZE, width=SIZE, seed=1, guidance_scale=5.0)
    result = generate_style_aligned(control_pipe, ["a cat", "a dog"], image=hint, **kwargs)
    alone = generate_style_aligned(control_pipe, ["a cat"], image=hint, **kwargs)
    assert result.images.shape == (2, 3, SIZE, SIZE)
    torch.testing.assert_close(result.images[0], alone.images[0], atol=1e-4, rtol=0)
