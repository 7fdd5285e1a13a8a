"""Tiled inference for large images: overlapping tiles, blended with linear ramps.

Memory is bounded by one tile: each tile goes through the network on its own
and is added into the output with a weight that ramps from ~0 to 1 across the
overlap, so neighbouring tiles cross-fade instead of meeting at a seam.

Tile positions are multiples of ``align`` (the network's total downsampling),
so a purely local network (convolutions, pooling) gives exactly the untiled
result wherever a pixel is further than its receptive field from a tile edge.
Networks with global statistics (instance normalisation, AdaIN, WCT) see
per-tile statistics; the blending hides the resulting differences.

Example::

    out = tiled(stylizer_fn, image, tile=1024, overlap=128, align=8)   # (B, 3, H, W)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from brushwork.errors import ConfigError


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) spans covering ``range(size)``; starts are multiples of ``align``.

    Spans are ``tile`` long (the last one may be longer to reach the end) and
    neighbours overlap by at least ``overlap`` pixels.
    """
    if tile >= size:
        return [(0, size)]
    step = max(align, (tile - overlap) // align * align)
    spans = []
    start = 0
    while start + tile < size:
        spans.append((start, start + tile))
        start += step
    last = max(0, (size - tile) // align * align)
    if spans and last <= spans[-1][0]:
        spans[-1] = (spans[-1][0], size)
    else:
        spans.append((last, size))
    return spans


def _ramp(length: int, overlap: int, *, rise: bool, fall: bool) -> torch.Tensor:
    """1-D weights: linear rise over the first / fall over the last ``overlap`` pixels."""
    weight = torch.ones(length)
    n = min(overlap, length)
    if n > 0:
        edge = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        if rise:
            weight[:n] = torch.minimum(weight[:n], edge)
        if fall:
            weight[-n:] = torch.minimum(weight[-n:], edge.flip(0))
    return weight


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 64,
    align: int = 1,
) -> torch.Tensor:
    """Apply a size-preserving image network tile by tile.

    Args:
        fn: (B, C, h, w) -> (B, C', h, w) for any tile size h, w.
        images: (B, C, H, W).
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (cross-faded).
        align: tile starts are multiples of this.

    Returns:
        (B, C', H, W) on the device and dtype of ``fn``'s outputs.
    """
    if tile < 1 or overlap < 0 or align < 1:
        raise ConfigError(f"invalid tiling: tile {tile}, overlap {overlap}, align {align}")
    if overlap >= tile:
        raise ConfigError(f"--tile-overlap ({overlap}) must be smaller than --tile ({tile})")
    h, w = images.shape[-2:]
    rows = tile_starts(h, tile, overlap, align)
    cols = tile_starts(w, tile, overlap, align)
    if len(rows) == 1 and len(cols) == 1:
        return fn(images)
    out = None
    total = torch.zeros(h, w)
    for i, (top, bottom) in enumerate(rows):
        wy = _ramp(bottom - top, overlap, rise=i > 0, fall=i < len(rows) - 1)
        for j, (left, right) in enumerate(cols):
            wx = _ramp(right - left, overlap, rise=j > 0, fall=j < len(cols) - 1)
            piece = fn(images[..., top:bottom, left:right])
            weight = wy[:, None] * wx[None, :]
            if out is None:
                out = torch.zeros(
                    (*piece.shape[:-2], h, w), dtype=torch.float32, device=piece.device
                )
            out[..., top:bottom, left:right] += piece.float() * weight.to(piece.device)
            total[top:bottom, left:right] += weight
    assert out is not None
    return out / total.to(out.device)
