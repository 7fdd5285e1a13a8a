"""IP-Adapter loading and InstantStyle block presets on a tiny SDXL-layout pipeline."""

from __future__ import annotations

import pytest
import torch
from tiny_sd import write_ip_adapter

from brushwork.diffusion.attention import AttentionRecorder
from brushwork.diffusion.style_reference import (
    AdapterSource,
    generate_with_style,
    instantstyle_scales,
    load_style_adapter,
    set_style_preset,
    style_layer_scales,
)
from brushwork.errors import ConfigError, WeightsError

STYLE = "up_blocks.0.attentions.1.transformer_blocks.0.attn2"
LAYOUT = "down_blocks.2.attentions.1.transformer_blocks.0.attn2"


def _load(pipe, tmp_path):
    folder = write_ip_adapter(pipe, tmp_path / "ip")
    source = AdapterSource(
        repo=str(folder), subfolder="", weight_name="ip-adapter.safetensors",
        image_encoder_folder=None,
    )  # fmt: skip
    return load_style_adapter(pipe, source)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("style", {STYLE}), ("style+layout", {STYLE, LAYOUT}), ("full", None)],
)
def test_presets_map_to_the_right_layers(sdxl_style_pipe, tmp_path, preset, expected):
    pipe = _load(sdxl_style_pipe, tmp_path)
    scales = style_layer_scales(pipe)
    assert len(scales) == 2 * 2 + 1 + 3 * 2  # down 1-2: 2 each, mid 1, up 0-1: 3 each
    set_style_preset(pipe, preset, 0.7)
    scales = style_layer_scales(pipe)
    on = {name for name, s in scales.items() if s != 0}
    assert on == (set(scales) if expected is None else expected)
    assert all(scales[name] == pytest.approx(0.7) for name in on)


def test_instantstyle_dicts():
    assert instantstyle_scales("style", 1.0) == {"up": {"block_0": [0.0, 1.0, 0.0]}}
    assert instantstyle_scales("style+layout", 0.5) == {
        "down": {"block_2": [0.0, 0.5]},
        "up": {"block_0": [0.0, 0.5, 0.0]},
    }
    assert instantstyle_scales("full", 0.3) == 0.3
    with pytest.raises(ConfigError, match="unknown style preset"):
        instantstyle_scales("layout")


def test_style_generation_and_attention_maps_with_adapter(sdxl_style_pipe, tmp_path):
    pipe = _load(sdxl_style_pipe, tmp_path)
    set_style_preset(pipe, "style", 1.0)
    gen = torch.Generator().manual_seed(1)
    embeds = [torch.randn(2, 1, 16, generator=gen)]  # (negative, positive) image embeds
    kwargs = dict(image_embeds=embeds, steps=2, height=32, width=32, seed=3)
    styled = generate_with_style(pipe, "a cat", **kwargs)
    assert styled.shape == (3, 32, 32)
    set_style_preset(pipe, "style", 0.0)
    plain = generate_with_style(pipe, "a cat", **kwargs)
    assert not torch.allclose(styled, plain)
    set_style_preset(pipe, "style", 1.0)
    with AttentionRecorder(pipe) as recorder:
        again = generate_with_style(pipe, "a cat", **kwargs)
        maps = recorder.token_maps()
    assert torch.equal(again, styled)
    assert torch.isfinite(maps).all() and maps.sum() > 0


def test_errors(sdxl_style_pipe, sd_edit_pipe, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no IP-Adapter is loaded"):
        set_style_preset(sdxl_style_pipe, "style")
    with pytest.raises(ConfigError, match="targets SDXL"):
        set_style_preset(sd_edit_pipe, "style")
    with pytest.raises(WeightsError, match="does not exist"):
        load_style_adapter(sdxl_style_pipe, AdapterSource(repo=str(tmp_path / "none")))
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="h94/IP-Adapter"):
        load_style_adapter(sdxl_style_pipe)


def test_the_missing_weights_hint_names_the_adapter_repository():
    from brushwork.cli import generate, options, stylize_controlnet
    from brushwork.diffusion.style_reference import IP_ADAPTER_REPO

    assert options.IP_ADAPTER_WEIGHT_FLAGS == {IP_ADAPTER_REPO: "--ip-adapter"}
    for module in (generate, stylize_controlnet):
        assert module.WEIGHT_FLAGS[IP_ADAPTER_REPO] == "--ip-adapter"
