"""Fixtures for the editing / SGOOL / style-reference tests: tiny pipelines and a tiny CLIP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))
sys.path.insert(0, str(Path(__file__).parent))

from editing_tiny import build_sdxl_layout_pipeline
from tiny_sd import build_sd_pipeline, tiny_tokenizer


@pytest.fixture(scope="session")
def sd_edit_pipe(tmp_path_factory):
    """The tiny SD-1.x-shaped pipeline (UNet down/up with cross-attention at 16² and 8²)."""
    pipe = build_sd_pipeline(tmp_path_factory.mktemp("edit_sd"))
    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    return pipe


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A CLIPScorer around a transformers CLIPModel at tiny size, with the tiny tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    from brushwork.metrics.clip import CLIPScorer

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=1000,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    model = CLIPModel(config)
    tokenizer = tiny_tokenizer(tmp_path_factory.mktemp("clip_tok"))
    return CLIPScorer(model, tokenizer)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest on one thread (no spin-waiting on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def sdxl_style_pipe(tmp_path):
    """SDXL-layout tiny pipeline (fresh per test: loading an adapter changes it)."""
    return build_sdxl_layout_pipeline(tmp_path / "sdxl")
