"""Tiny test models for the editing tests (import after tests/diffusion is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import torch


def build_sdxl_layout_pipeline(tmp: Path):
    """The tiny SDXL pipeline with a UNet in SDXL's block layout (3 levels, the first
    without attention; 2 transformer layers per down block, 3 per up block), so that
    InstantStyle's block names (down block 2, up block 0) exist."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from tiny_sd import build_sdxl_pipeline

    base = build_sdxl_pipeline(tmp)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32, 32),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 8),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=1,
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=8,
    )
    pipe = StableDiffusionXLPipeline(**{**base.components, "unet": unet})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_ip_adapter(pipe, folder: Path, *, embed_dim: int = 16) -> Path:
    """An IP-Adapter weight file in the published layout (random values)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cross = pipe.unet.config.cross_attention_dim
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "image_proj.proj.weight": torch.randn(cross * 4, embed_dim, generator=gen) * 0.1,
        "image_proj.proj.bias": torch.zeros(cross * 4),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in pipe.unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = pipe.unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
            for part in ("to_k_ip", "to_v_ip"):
                tensors[f"ip_adapter.{key_id}.{part}.weight"] = (
                    torch.randn(hidden, cross, generator=gen) * 0.1
                )
            key_id += 2
    save_file(tensors, str(folder / "ip-adapter.safetensors"))
    return folder
