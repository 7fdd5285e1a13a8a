"""The recorder's complex-multiply RoPE equals diffusers' apply_rotary_emb."""

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers.models.embeddings import FluxPosEmbed, apply_rotary_emb

from brushwork.diffusion.backbones.rotary import rotate, rotation


def test_rotate_equals_diffusers_on_flux_tables():
    torch.manual_seed(0)
    ids = torch.stack(
        [torch.zeros(12), torch.arange(12.0) // 4, torch.arange(12.0) % 4], dim=-1
    )  # (S, 3): a 3×4 grid, as Flux's img_ids
    cos, sin = FluxPosEmbed(theta=10000, axes_dim=[4, 6, 6])(ids)  # (12, 16) each
    x = torch.randn(2, 3, 12, 16, dtype=torch.float64)  # (B, H, S, d)
    turn = rotation(cos, sin)
    assert turn is not None and turn.shape == (12, 8)
    expected = apply_rotary_emb(x.float(), (cos, sin), sequence_dim=2)
    torch.testing.assert_close(rotate(x, turn), expected, rtol=0, atol=1e-6)


def test_rotation_refuses_unpaired_tables():
    cos = torch.rand(5, 8)
    sin = torch.rand(5, 8)
    assert rotation(cos, sin) is None  # not repeat-interleaved: the caller falls back
