"""From recorded token maps to word maps, masks and pictures.

The steps follow the DAAM package: a word's map is the mean of its tokens' maps
(:func:`merge_tokens`), resized bicubically to the image (:func:`upsample`), min–max
normalised per map as ``(m − min) / (max − min + 1e-8)`` (:func:`normalize`), and
binarised at a fixed threshold or at a per-map quantile (:func:`binarize`). Every
function works on a stack of maps at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.diffusion.tokens import PromptTokens, TextStream, prompt_tokens, word_positions
from brushwork.errors import ConfigError

__all__ = [
    "BINARIZE_MODES",
    "COLORMAPS",
    "WordMaps",
    "bicubic_matrix",
    "binarize",
    "colorize",
    "merge_tokens",
    "normalize",
    "overlay",
    "quantiles",
    "sheet",
    "upsample",
    "word_maps",
]

BINARIZE_MODES = ("fixed", "quantile")

# matplotlib's "jet" segment data (x, value) per channel, so overlays look like the paper's.
_JET = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)
COLORMAPS = ("jet", "gray")


def merge_tokens(token_maps: torch.Tensor, positions: Sequence[Sequence[int]]) -> torch.Tensor:
    """(words, h, w): for each word, the mean of the token maps at its positions.

    Args:
        token_maps: (tokens, h, w) maps of one image.
        positions: per word, the text positions (see :func:`~.tokens.word_positions`).
    """
    rows = []
    for where in positions:
        if max(where) >= token_maps.shape[0]:
            raise ConfigError(
                f"token position {max(where)} was not recorded (only {token_maps.shape[0]})"
            )
        rows.append(token_maps[list(where)].mean(dim=0))
    return torch.stack(rows)


def bicubic_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) matrix M with ``M @ x`` = 1-D bicubic resize of ``x``.

    Equals ``F.interpolate(..., mode="bicubic", align_corners=False)`` along one axis, so
    a 2-D bicubic resize is ``M_h @ X @ M_wᵀ`` (two matrix products instead of a
    16-tap gather per output pixel).
    """
    eye = torch.eye(size_in, dtype=torch.float64).view(size_in, 1, size_in, 1)
    columns = F.interpolate(eye, size=(size_out, 1), mode="bicubic", align_corners=False)
    return columns.view(size_in, size_out).T.contiguous().float()


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, H, W) float32: bicubic resize of (n, h, w) maps to ``size`` = (H, W).

    ``F.interpolate(mode="bicubic", align_corners=False)``'s result, computed as two
    matrix products (:func:`bicubic_matrix`): ten times faster on CPU at 64² → 1024².
    """
    maps = maps.float()
    height, width = (int(v) for v in size)
    rows = bicubic_matrix(maps.shape[-2], height).to(maps.device)
    columns = bicubic_matrix(maps.shape[-1], width).to(maps.device)
    return torch.matmul(torch.matmul(rows, maps), columns.T)


def normalize(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min–max to [0, 1]: ``(m − min) / (max − min + 1e-8)``; constant → zeros."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.ndim - 1))
    high = flat.max(dim=1).values.view(-1, *[1] * (maps.ndim - 1))
    return (maps - low) / (high - low + 1e-8)


def quantiles(maps: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
    """(levels, n) per-map quantiles with linear interpolation (numpy's default).

    One sort per map serves every level.
    """
    flat = maps.flatten(1).float()
    ordered = flat.sort(dim=1).values
    count = ordered.shape[1]
    out = []
    for level in levels:
        position = float(level) * (count - 1)
        low = int(np.floor(position))
        high = min(low + 1, count - 1)
        frac = position - low
        out.append(ordered[:, low] + (ordered[:, high] - ordered[:, low]) * frac)
    return torch.stack(out)


def binarize(
    maps: torch.Tensor, thresholds: Sequence[float] | float, mode: str = "fixed"
) -> torch.Tensor:
    """(thresholds, n, H, W) bool masks ``map ≥ t`` (fixed) or ``map ≥ quantile(map, t)``.

    Comparisons are in float32 against float32 thresholds, as the study protocol fixes.
    An all-zero map gives an empty mask in fixed mode and a full one in quantile mode.
    """
    if mode not in BINARIZE_MODES:
        raise ConfigError(
            f"unknown binarisation mode '{mode}': choose from {', '.join(BINARIZE_MODES)}"
        )
    levels = [float(thresholds)] if isinstance(thresholds, (int, float)) else list(thresholds)
    values = maps.float()
    if mode == "fixed":
        cut = torch.tensor(levels, dtype=torch.float32).view(-1, 1)
        cut = cut.expand(-1, values.shape[0])
    else:
        cut = quantiles(values, levels)
    return values[None] >= cut.view(*cut.shape, *[1] * (values.ndim - 1))


def colorize(heat: torch.Tensor, colormap: str = "jet") -> torch.Tensor:
    """(3, H, W) colours of a (H, W) map in [0, 1]."""
    if colormap not in COLORMAPS:
        raise ConfigError(f"unknown colormap '{colormap}': choose from {', '.join(COLORMAPS)}")
    values = heat.clamp(0, 1).float()
    if colormap == "gray":
        return values.expand(3, *values.shape).clone()
    flat = values.flatten().numpy()
    channels = [np.interp(flat, *zip(*segments, strict=True)) for segments in _JET]
    return torch.from_numpy(np.stack(channels)).float().view(3, *values.shape)


def overlay(
    image: torch.Tensor, heat: torch.Tensor, *, alpha: float = 0.5, colormap: str = "jet"
) -> torch.Tensor:
    """(3, H, W): ``image`` (3, H, W) in [0, 1] blended with the colour-mapped ``heat``."""
    if heat.shape[-2:] != image.shape[-2:]:
        heat = upsample(heat[None], tuple(image.shape[-2:]))[0].clamp(0, 1)
    return (1 - alpha) * image.float() + alpha * colorize(heat, colormap)


def sheet(
    tiles: Sequence[torch.Tensor], labels: Sequence[str] | None = None, *, gap: int = 4
) -> torch.Tensor:
    """(3, H + label band, n·W + gaps): tiles side by side, each with its label under it."""
    from PIL import Image, ImageDraw

    height = max(t.shape[-2] for t in tiles)
    band = 16 if labels else 0
    width = sum(t.shape[-1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = torch.ones(3, height + band, width)
    x = 0
    for tile in tiles:
        canvas[:, : tile.shape[-2], x : x + tile.shape[-1]] = tile.clamp(0, 1)
        x += tile.shape[-1] + gap
    if not labels:
        return canvas
    array = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    draw = ImageDraw.Draw(picture)
    x = 0
    for tile, label in zip(tiles, labels, strict=True):
        draw.text((x + 2, height + 2), label, fill=(0, 0, 0))
        x += tile.shape[-1] + gap
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).float() / 255


@dataclass
class WordMaps:
    """Word maps of one generated image.

    Attributes:
        prompt: the prompt.
        words: the words asked for.
        positions: per word, the text positions merged into its map.
        maps: (words, h, w) raw maps at the recording grid (float32, not normalised).
        image_size: (H, W) of the generated image.
    """

    prompt: str
    words: list[str]
    positions: list[list[int]]
    maps: torch.Tensor
    image_size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def heatmaps(self, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(words, H, W) in [0, 1]: upsampled to the image (or ``size``) and normalised."""
        return normalize(upsample(self.maps, size or self.image_size))

    def masks(self, thresholds: Sequence[float] | float = 0.4, mode: str = "fixed") -> torch.Tensor:
        """(thresholds, words, H, W) bool masks of the image-size heat maps."""
        return binarize(self.heatmaps(), thresholds, mode)


def word_maps(
    token_maps: torch.Tensor,
    tokenizer: Any,
    prompt: str,
    words: Sequence[str],
    *,
    image_size: tuple[int, int],
    rule: str = "mean",
    occurrence: int | None = None,
    stream: TextStream | None = None,
) -> WordMaps:
    """Word maps of one image from its (tokens, h, w) token maps.

    ``stream``: the text stream whose positions the words take (default: a CLIP stream
    at key 0, as in UNets). Raises WordNotFoundError naming the first missing word.
    """
    tokens: PromptTokens = prompt_tokens(tokenizer, prompt, stream=stream)
    positions = [
        word_positions(tokenizer, tokens, word, occurrence=occurrence, rule=rule) for word in words
    ]
    return WordMaps(
        prompt=prompt,
        words=list(words),
        positions=positions,
        maps=merge_tokens(token_maps, positions),
        image_size=(int(image_size[0]), int(image_size[1])),
    )
