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
