"""Semantic label maps for the photorealistic methods (PhotoWCT, WCT²).

A label map gives every pixel of the content (and of the style) a region label: sky,
road, building. With a pair of maps the whitening–colouring transform of each content
region takes its statistics only from the style's region of the same label; a content
label the style lacks (or has on fewer than :data:`MIN_LABEL_PIXELS` pixels) takes the
whole style's statistics, as in the PhotoWCT paper. (The reference codes leave such
regions unstylised instead.)

Label maps are PNG (or any lossless) images of one of two kinds, the same for both:

- index maps: one channel (greyscale, 16-bit or palette mode, as labelme's
  ``label.png``); the value is the label;
- colour maps: RGB, as the deep-photo-style-transfer maps (flat colours, e.g. blue sky);
  equal colours in content and style are the same label. A region colour fills at
  least one 3 × 3 block; other colours (anti-aliased edges, at most 5 % of the pixels)
  are snapped to the nearest region colour.

Maps must have their image's aspect ratio; they are resized to it with nearest
neighbours. Errors (ConfigError) name the file and what does not fit: another kind than
the other map, the wrong aspect ratio, too many labels for a label map, or no label in
common at all.

Example::

    maps = load_label_maps("day_seg.png", "dusk_seg.png")
    stats = region_statistics(style_feats, maps.style)           # once per style
    out = region_whiten_colour(content_feats, stats, maps.content)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError
from brushwork.transfer.wct import StyleStats, style_statistics, whiten_colour

#: A style label covering fewer pixels (at the image's resolution) is not used on its own.
MIN_LABEL_PIXELS = 10
#: At a feature level a style region needs this many positions for a covariance.
MIN_FEATURE_PIXELS = 2
#: Most labels a label map may hold (more means a photograph was given, not a label map).
MAX_LABELS = 256
#: Most of a colour map's pixels that may lie outside flat colour regions (edges).
MAX_EDGE_SHARE = 0.05
#: Largest relative difference of aspect ratio between a map and its image.
ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class LabelMaps:
    """A content and a style label map.

    Attributes:
        content: (H, W) int64 labels of the content image.
        style: (H', W') int64 labels of the style image.
        names: label -> how it appeared in the files (``"3"`` or ``"#87ceeb"``).
    """

    content: torch.Tensor
    style: torch.Tensor
    names: dict[int, str] = field(default_factory=dict)

    def resized(self, content_size: tuple[int, int], style_size: tuple[int, int]) -> LabelMaps:
        """The maps resized (nearest) to (height, width) of the content and style images."""
        return LabelMaps(
            labels_at(self.content, content_size), labels_at(self.style, style_size), self.names
        )

    def matched(self) -> set[int]:
        """Content labels that the style has on at least :data:`MIN_LABEL_PIXELS` pixels."""
        style_labels, counts = torch.unique(self.style, return_counts=True)
        enough = {
            int(v) for v, n in zip(style_labels, counts, strict=True) if n >= MIN_LABEL_PIXELS
        }
        return {int(v) for v in torch.unique(self.content)} & enough


def labels_at(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) integer labels resized to ``size`` = (h, w) with nearest neighbours."""
    if tuple(labels.shape) == tuple(size):
        return labels
    resized = F.interpolate(labels[None, None].double(), size=size, mode="nearest")
    return resized[0, 0].round().long()


def _read(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(array, kind): (H, W) int64 for an index map, (H, W, 3) uint8 for a colour map."""
    from PIL import Image

    from brushwork.errors import ImageError

    file = Path(path)
    if not file.is_file():
        raise ImageError(f"label map {file} does not exist")
    try:
        with Image.open(file) as img:
            img.load()
            mode = img.mode
            if mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
                return np.asarray(img).astype(np.int64), "index"
            if mode == "LA":
                return np.asarray(img)[..., 0].astype(np.int64), "index"
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ImageError(f"cannot read label map {file}: {error}") from error
    if np.all(rgb[..., :1] == rgb):  # a grey image saved as RGB: an index map
        return rgb[..., 0].astype(np.int64), "index"
    return rgb, "colour"


def _main_colours(arrays: list[np.ndarray]) -> np.ndarray:
    """The colours that fill some 3 × 3 block of a map, (K, 3): region colours, not edges."""
    keep = []
    for rgb in arrays:
        code = rgb.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
        h, w = code.shape
        if h < 3 or w < 3:
            keep.append(np.unique(rgb.reshape(-1, 3), axis=0))
            continue
        centre = code[1:-1, 1:-1]
        flat = np.ones_like(centre, dtype=bool)
        for dy in range(3):
            for dx in range(3):
                flat &= code[dy : dy + h - 2, dx : dx + w - 2] == centre
        keep.append(rgb[1:-1, 1:-1][flat].reshape(-1, 3))
    return np.unique(np.concatenate(keep), axis=0)


def _snap(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index into ``palette`` of each pixel's nearest colour (L1), (H, W) int64."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    dist = np.abs(colours[:, None, :] - palette[None].astype(np.int32)).sum(-1)
    return dist.argmin(1)[inverse.ravel()].reshape(rgb.shape[:2]).astype(np.int64)


def label_maps_from_arrays(
    content: np.ndarray, style: np.ndarray, *, names: tuple[str, str] = ("content", "style")
) -> LabelMaps:
    """:class:`LabelMaps` from two arrays of one kind: (H, W) integers or (H, W, 3) colours.

    Raises:
        ConfigError: the kinds differ, a map holds more than :data:`MAX_LABELS` labels,
            or the two maps have no label in common.
    """
    kinds = ["colour" if a.ndim == 3 else "index" for a in (content, style)]
    if kinds[0] != kinds[1]:
        raise ConfigError(
            f"the {names[0]} mask is a{'n' if kinds[0] == 'index' else ''} {kinds[0]} map but "
            f"the {names[1]} mask a{'n' if kinds[1] == 'index' else ''} {kinds[1]} map; give "
            "both as label indices (one channel) or both as flat colours (RGB)"
        )
    label_names: dict[int, str] = {}
    if kinds[0] == "colour":
        palette = _main_colours([content, style])
        for name, rgb in zip(names, (content, style), strict=True):
            code = rgb.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
            known = np.isin(code, palette.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1]))
            if len(palette) > MAX_LABELS or known.mean() < 1 - MAX_EDGE_SHARE:
                raise ConfigError(
                    f"the {name} mask is not a label map: {100 * (1 - known.mean()):.0f} % of "
                    f"its pixels are not in flat colour regions ({len(palette)} colours); a "
                    f"label map has flat colours (at most {MAX_LABELS}); save it as PNG, not JPEG"
                )
        maps = [_snap(a, palette) for a in (content, style)]
        label_names = {i: "#" + "".join(f"{int(v):02x}" for v in c) for i, c in enumerate(palette)}
    else:
        maps = [a.astype(np.int64) for a in (content, style)]
        for name, m in zip(names, maps, strict=True):
            count = len(np.unique(m))
            if count > MAX_LABELS:
                raise ConfigError(
                    f"the {name} mask holds {count} different values; a label map holds at "
                    f"most {MAX_LABELS} labels (is it a photograph?)"
                )
        label_names = {
            int(v): str(int(v)) for v in np.unique(np.concatenate([m.ravel() for m in maps]))
        }
    result = LabelMaps(torch.from_numpy(maps[0]), torch.from_numpy(maps[1]), label_names)
    if not result.matched():
        shown = [label_names[int(v)] for v in torch.unique(result.content)][:8]
        theirs = [label_names[int(v)] for v in torch.unique(result.style)][:8]
        raise ConfigError(
            f"the {names[0]} mask's labels ({', '.join(shown)}) and the {names[1]} mask's "
            f"({', '.join(theirs)}) have none in common (on {MIN_LABEL_PIXELS}+ pixels); "
            "regions are matched by equal labels or colours"
        )
    return result


def load_label_maps(
    content_path: str | os.PathLike,
    style_path: str | os.PathLike,
    *,
    content_size: tuple[int, int] | None = None,
    style_size: tuple[int, int] | None = None,
) -> LabelMaps:
    """Read a content and a style label map (see the module), checked and resized.

    Args:
        content_size, style_size: (height, width) of the images they label; each map
            must have its image's aspect ratio and is resized to that size.
    """
    arrays = []
    for path, size, what in (
        (content_path, content_size, "content"),
        (style_path, style_size, "style"),
    ):
        array, _kind = _read(path)
        if size is not None:
            check_aspect(array.shape[:2], size, what=f"{what} mask {path}")
        arrays.append(array)
    maps = label_maps_from_arrays(
        arrays[0], arrays[1], names=(f"content ({content_path})", f"style ({style_path})")
    )
    content_size = content_size or tuple(maps.content.shape)
    style_size = style_size or tuple(maps.style.shape)
    return maps.resized(content_size, style_size)


def check_aspect(map_size: tuple[int, int], image_size: tuple[int, int], *, what: str) -> None:
    """ConfigError unless a (height, width) map has the image's aspect ratio."""
    mh, mw = map_size
    ih, iw = image_size
    ratio = iw / ih
    if abs(mw / mh - ratio) > ASPECT_TOLERANCE * ratio:
        raise ConfigError(
            f"{what} is {mw}×{mh} but its image is {iw}×{ih}; a label map must have its "
            "image's aspect ratio"
        )


# --------------------------------------------------------------------------- transforms


@dataclass
class RegionStats:
    """A style feature map's :class:`StyleStats`: of the whole map and per label."""

    whole: StyleStats
    regions: dict[int, StyleStats] = field(default_factory=dict)


def region_statistics(
    style: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    use: set[int] | None = None,
    eps: float = 1e-5,
    ridge: float = 0.0,
) -> RegionStats:
    """Statistics of (C, h, w) style features, whole and per label.

    Args:
        labels: (H', W') style labels (resized here to h × w); ``None``: whole only.
        use: the labels to compute (default: every label of ``labels``); a label with
            fewer than :data:`MIN_FEATURE_PIXELS` positions at this size is left out.
    """
    stats = RegionStats(style_statistics(style, eps=eps, ridge=ridge))
    if labels is None:
        return stats
    c, h, w = style.shape
    small = labels_at(labels.to(style.device), (h, w)).reshape(-1)
    flat = style.reshape(c, -1)
    wanted = use if use is not None else {int(v) for v in torch.unique(small)}
    for label in sorted(wanted):
        index = (small == label).nonzero().squeeze(1)
        if index.numel() >= MIN_FEATURE_PIXELS:
            region = flat.index_select(1, index)[:, :, None]
            stats.regions[label] = style_statistics(region, eps=eps, ridge=ridge)
    return stats


def region_whiten_colour(
    content: torch.Tensor,
    stats: RegionStats | StyleStats,
    labels: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    ridge: float = 0.0,
    clamp: bool = False,
) -> torch.Tensor:
    """Whitening–colouring of (C, h, w) content features, region by region.

    Args:
        stats: the style's :func:`region_statistics` (or plain :class:`StyleStats`).
        labels: (H, W) content labels (resized here); ``None``: one region.
        ridge: added to the content covariance (see :func:`whiten_colour`).
        clamp: clamp each region's result to the range of its content features
            (WCT²'s reference does).

    Returns:
        (C, h, w) features in the content's dtype.
    """
    if isinstance(stats, StyleStats):
        stats = RegionStats(stats)
    if labels is None:
        return _one(content, stats.whole, eps=eps, ridge=ridge, clamp=clamp)
    c, h, w = content.shape
    small = labels_at(labels.to(content.device), (h, w)).reshape(-1)
    flat = content.reshape(c, -1)
    out = torch.empty_like(flat)
    for label in torch.unique(small).tolist():
        index = (small == label).nonzero().squeeze(1)
        target = stats.regions.get(int(label), stats.whole)
        region = flat.index_select(1, index)[:, :, None]
        out[:, index] = _one(region, target, eps=eps, ridge=ridge, clamp=clamp)[:, :, 0]
    return out.reshape(c, h, w)


def _one(
    content: torch.Tensor, stats: StyleStats, *, eps: float, ridge: float, clamp: bool
) -> torch.Tensor:
    return whiten_colour(content, stats, eps=eps, ridge=ridge, clamp=clamp)
