"""Rotary position embeddings as the recorder applies them: one complex multiply.

Flux.1 and Flux.2 rotate each query and key by ``(cos, sin)`` tables whose entries come in
equal pairs (``repeat_interleave_real``): dimensions ``2i`` and ``2i+1`` of a head form
one complex number that is turned by the angle of pair ``i``. diffusers'
``apply_rotary_emb`` does this with real tensors and several copies; as a complex
multiply in float32 it is the same rotation (to float32 rounding) in one pass over a
chunk, which is what lets the recorder rotate the image queries a few heads at a time
inside its loop instead of all at once before it.
"""

from __future__ import annotations

import torch

__all__ = ["rotate", "rotation"]


def rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor | None:
    """The complex rotation ``(S, d/2)`` of a ``(cos, sin)`` pair of ``(S, d)`` tables.

    Returns ``None`` when the tables are not in pairs (another RoPE layout): the caller
    then rotates with diffusers' own function.
    """
    even_cos, odd_cos = cos[..., 0::2], cos[..., 1::2]
    even_sin, odd_sin = sin[..., 0::2], sin[..., 1::2]
    if not (torch.equal(even_cos, odd_cos) and torch.equal(even_sin, odd_sin)):
        return None
    return torch.complex(even_cos.float(), even_sin.float())


def rotate(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """``x`` rotated in float32: ``(..., S, d)`` times the ``(S, d/2)`` complex ``turn``.

    Equals ``apply_rotary_emb(x.float(), (cos, sin))`` for the tables ``turn`` came from:
    pair ``(x₂ᵢ, x₂ᵢ₊₁)`` becomes ``(x₂ᵢ·c − x₂ᵢ₊₁·s, x₂ᵢ₊₁·c + x₂ᵢ·s)``.
    """
    x = x.to(torch.float32, memory_format=torch.contiguous_format)  # one copy, whatever x is
    pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * turn).flatten(-2)
