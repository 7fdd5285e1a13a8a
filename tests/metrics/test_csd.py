"""CSD: a tiny random CSD checkpoint in the published layout loads through the real loader,
matches an independent forward pass of OpenAI's ViT layout, and scores as a cosine."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import WeightsError
from brushwork.metrics.clip import clip_pixels
from brushwork.metrics.csd import csd_vision_config, load_csd

WIDTH, LAYERS, HEADS, PATCH, SIZE, OUT = 32, 2, 4, 14, 28, 16


def tiny_config():
    return csd_vision_config(
        hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, image_size=SIZE, patch_size=PATCH, projection_dim=OUT,
    )  # fmt: skip


def openai_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the keys and shapes of CSD_CLIP.state_dict() (OpenAI's ViT)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    grid = (SIZE // PATCH) ** 2
    state = {
        "backbone.conv1.weight": r(WIDTH, 3, PATCH, PATCH, scale=0.05),
        "backbone.class_embedding": r(WIDTH),
        "backbone.positional_embedding": r(grid + 1, WIDTH),
        "backbone.ln_pre.weight": 1 + r(WIDTH, scale=0.1),
        "backbone.ln_pre.bias": r(WIDTH, scale=0.1),
        "backbone.ln_post.weight": 1 + r(WIDTH, scale=0.1),
        "backbone.ln_post.bias": r(WIDTH, scale=0.1),
        "last_layer_style": r(WIDTH, OUT),
        "last_layer_content": r(WIDTH, OUT),
    }
    for i in range(LAYERS):
        b = f"backbone.transformer.resblocks.{i}."
        state |= {
            b + "attn.in_proj_weight": r(3 * WIDTH, WIDTH),
            b + "attn.in_proj_bias": r(3 * WIDTH, scale=0.1),
            b + "attn.out_proj.weight": r(WIDTH, WIDTH),
            b + "attn.out_proj.bias": r(WIDTH, scale=0.1),
            b + "ln_1.weight": 1 + r(WIDTH, scale=0.1),
            b + "ln_1.bias": r(WIDTH, scale=0.1),
            b + "mlp.c_fc.weight": r(64, WIDTH),
            b + "mlp.c_fc.bias": r(64, scale=0.1),
            b + "mlp.c_proj.weight": r(WIDTH, 64),
            b + "mlp.c_proj.bias": r(WIDTH, scale=0.1),
            b + "ln_2.weight": 1 + r(WIDTH, scale=0.1),
            b + "ln_2.bias": r(WIDTH, scale=0.1),
        }
    return state


def reference_style(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """CSD_CLIP.forward's style output written from OpenAI's VisionTransformer code."""

    def ln(x, name):
        return F.layer_norm(x, (WIDTH,), state[name + ".weight"], state[name + ".bias"], 1e-5)

    x = F.conv2d(clip_pixels(images, SIZE), state["backbone.conv1.weight"], stride=PATCH)
    x = x.reshape(x.shape[0], WIDTH, -1).permute(0, 2, 1)
    cls = state["backbone.class_embedding"].expand(x.shape[0], 1, WIDTH)
    x = ln(torch.cat([cls, x], 1) + state["backbone.positional_embedding"], "backbone.ln_pre")
    for i in range(LAYERS):
        b = f"backbone.transformer.resblocks.{i}."
        attn = nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
        attn.load_state_dict({k: state[b + "attn." + k] for k in attn.state_dict()})
        h = ln(x, b + "ln_1")
        x = x + attn(h, h, h, need_weights=False)[0]
        h = F.linear(ln(x, b + "ln_2"), state[b + "mlp.c_fc.weight"], state[b + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU
        x = x + F.linear(h, state[b + "mlp.c_proj.weight"], state[b + "mlp.c_proj.bias"])
    feature = ln(x[:, 0], "backbone.ln_post")
    return F.normalize(feature @ state["last_layer_style"], dim=-1)


@pytest.fixture(scope="module")
def csd_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training checkpoint as CSD's train_csd.py saves it (DDP ``module.`` prefixes)."""
    state = openai_state()
    checkpoint = {
        "model_state_dict": {f"module.{k}": v for k, v in state.items()},
        "opt_bb": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": []},
        "iter": 5000,
        "args": argparse.Namespace(arch="vit_large", lr=np.float64(3e-4), eval_k=[1, 10]),
    }
    path = tmp_path_factory.mktemp("csd") / "checkpoint.pth"
    torch.save(checkpoint, path)
    return path


def _images(seed: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 40, 52, generator=torch.Generator().manual_seed(seed))


def test_published_layout_loads_and_matches_openai_forward(csd_checkpoint: Path) -> None:
    model = load_csd(csd_checkpoint, config=tiny_config())
    images = _images(1)
    ours = model.style_embeddings(images)
    expected = reference_style(openai_state(), images)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_score_is_one_for_identical_images_symmetric_and_differs(csd_checkpoint: Path) -> None:
    model = load_csd(csd_checkpoint, config=tiny_config())
    a, b = _images(2), _images(3)
    torch.testing.assert_close(model.style_similarity(a, a), torch.ones(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.style_similarity(a, b), model.style_similarity(b, a))
    assert (model.style_similarity(a, b) < 0.9999).all()


def test_safetensors_copy_and_round_trip(tmp_path: Path, csd_checkpoint: Path) -> None:
    from safetensors.torch import save_file

    model = load_csd(csd_checkpoint, config=tiny_config())
    path = tmp_path / "csd.safetensors"
    save_file(model.csd_state_dict(), str(path))
    again = load_csd(path, config=tiny_config())
    images = _images(4)
    torch.testing.assert_close(again.style_embeddings(images), model.style_embeddings(images))


def test_wrong_layout_is_one_clear_error(tmp_path: Path) -> None:
    state = openai_state()
    del state["last_layer_style"]
    path = tmp_path / "broken.pth"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(WeightsError, match="missing last_layer_style"):
        load_csd(path, config=tiny_config())


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pth"
    torch.save({"model_state_dict": openai_state(), "extra": Path("x")}, path)
    with pytest.raises(WeightsError, match=r"convert it once to \.safetensors"):
        load_csd(path, config=tiny_config())
