"""Tiny pipelines and images for the StyleID / inversion tests (tests/diffusion/tiny_sd.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))

from tiny_sd import build_sd_pipeline, build_sdxl_pipeline

__all__ = ["build_pipeline", "smooth_image"]


def build_pipeline(kind: str, tmp: Path):
    """``"sd"`` (SD 1.x-shaped, ε), ``"sd2"`` (linear projections, v-prediction) or ``"sdxl"``."""
    if kind == "sdxl":
        return build_sdxl_pipeline(tmp)
    return build_sd_pipeline(tmp, sd2=kind == "sd2")


def smooth_image(seed: int, size: int = 32) -> torch.Tensor:
    """(3, size, size) in [0, 1]: seeded noise, blurred (a picture-like input for the VAE)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=g)
    return torch.nn.functional.avg_pool2d(image, 5, 1, 2, count_include_pad=False)[0]


def unet_without_decoder_attention():
    """A tiny SD-shaped UNet whose decoder has no attention (StyleID must refuse it)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=16,
    )
