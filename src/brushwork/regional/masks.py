"""Soft region masks from word maps: every pixel's weights over the regions sum to 1.

The steps (:func:`word_masks`), on the raw (words, h, w) maps of an image
(:class:`~brushwork.diffusion.maps.WordMaps` ``.maps``):

1. each map is resized bicubically to the image, clamped at 0 and min–max normalised
   (DAAM's heat maps, :meth:`WordMaps.heatmaps`): ``a_w(p)`` in [0, 1];
2. **competition** (:func:`compete`): a softmax over the words and a virtual ``rest``
   word of constant strength ``threshold``:
   ``weight_w(p) = exp(a_w(p)/T) / (exp(threshold/T) + Σ_v exp(a_v(p)/T))``,
   so a pixel belongs to the word whose map is strongest there, ``rest`` takes the
   pixels where no word's map reaches ``threshold``, and the temperature ``T`` sets how
   soft the boundaries are (``T → 0``: hard argmax);
3. **minimum-area cleanup** (:func:`drop_small`): a connected piece of a word's hard
   region (argmax) smaller than ``min_area`` of the image gives that word's weight there
   to the other words and rest (renormalised), so a stray blob does not get a style;
4. **feathering** (:func:`feather`): a Gaussian blur (σ = ``feather`` × the long side)
   of every weight map; the blur is linear with reflected borders, so the weights still
   sum to 1.

Edited masks (``--mask cow=cow.png``) replace a word's weights (:func:`with_given`);
the computed words share what the given ones leave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError
from brushwork.regional.spec import REST, RegionSpec

__all__ = [
    "MaskSettings",
    "RegionMasks",
    "compete",
    "drop_small",
    "feather",
    "region_masks",
    "with_given",
    "word_masks",
]


@dataclass(frozen=True)
class MaskSettings:
    """How word maps become masks (defaults: DAAM's 0.4 threshold, fairly hard edges).

    Attributes:
        temperature: softness of the competition between words (> 0; 0.1: a word 0.2
            stronger than another takes 88 % of the pixel).
        threshold: strength (in normalised map units, 0…1) of ``rest``: pixels where no
            word's map reaches it go mostly to ``rest``.
        feather: σ of the edge blur as a fraction of the image's long side (0: none).
        min_area: pieces of a word's region smaller than this fraction of the image are
            dropped (0: keep all).
    """

    temperature: float = 0.1
    threshold: float = 0.4
    feather: float = 0.01
    min_area: float = 0.005

    def validate(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"the region temperature must be > 0, got {self.temperature}")
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"the region threshold must be in [0, 1], got {self.threshold}")
        if not 0 <= self.feather <= 0.5:
            raise ConfigError(f"the region feather must be in [0, 0.5], got {self.feather}")
        if not 0 <= self.min_area < 1:
            raise ConfigError(f"the region minimum area must be in [0, 1), got {self.min_area}")


@dataclass
class RegionMasks:
    """Soft masks of the regions of one image.

    Attributes:
        names: region names (``"cow"``, ``"hill,sky"``, …, ``"rest"`` last).
        weights: (regions, H, W) float32 in [0, 1], summing to 1 at every pixel.
        targets: per region, its style image path or ``"photo"``.
    """

    names: list[str]
    weights: torch.Tensor
    targets: list[str]

    def resized(self, size: tuple[int, int]) -> RegionMasks:
        """The masks at (H, W) (bilinear; still summing to 1)."""
        if tuple(self.weights.shape[-2:]) == tuple(size):
            return self
        weights = F.interpolate(self.weights[None], size=size, mode="bilinear", align_corners=False)
        weights = weights[0].clamp_min(0)
        return RegionMasks(self.names, weights / weights.sum(0, keepdim=True), self.targets)

    def style_masks(self, styles: Sequence[str]) -> torch.Tensor:
        """(len(styles), H, W): per style path, the summed weights of its regions."""
        import os

        out = torch.zeros(len(styles), *self.weights.shape[-2:])
        index = {os.path.normpath(s): i for i, s in enumerate(styles)}
        for weight, target in zip(self.weights, self.targets, strict=True):
            if target != "photo":
                out[index[os.path.normpath(target)]] += weight
        return out

    def keep(self) -> torch.Tensor:
        """(H, W): the summed weights of the regions that keep the photo."""
        out = torch.zeros(self.weights.shape[-2:])
        for weight, target in zip(self.weights, self.targets, strict=True):
            if target == "photo":
                out += weight
        return out


# --------------------------------------------------------------------------- steps


def compete(heat: torch.Tensor, *, temperature: float, threshold: float) -> torch.Tensor:
    """(words + 1, H, W) weights from (words, H, W) heat maps in [0, 1]; the last is rest."""
    rest = torch.full_like(heat[:1], float(threshold))
    return torch.softmax(torch.cat([heat.float(), rest]) / temperature, dim=0)


def drop_small(weights: torch.Tensor, min_pixels: int) -> torch.Tensor:
    """Weights (n, H, W) with each word's hard pieces under ``min_pixels`` given away.

    The last row (rest) is never dropped; the other rows' weights inside a dropped piece
    are set to 0 and each pixel renormalised, so the runner-up there takes it.
    """
    if min_pixels <= 1:
        return weights
    import numpy as np
    from scipy import ndimage

    hard = weights.argmax(0).numpy()
    out = weights.clone()
    for row in range(weights.shape[0] - 1):
        pieces, count = ndimage.label(hard == row)
        if not count:
            continue
        sizes = np.bincount(pieces.ravel(), minlength=count + 1)
        small = np.flatnonzero(sizes < min_pixels)
        small = small[small > 0]
        if small.size:
            out[row][torch.from_numpy(np.isin(pieces, small))] = 0
    total = out.sum(0, keepdim=True)
    empty = total <= 0
    if empty.any():  # every word dropped and rest was 0 there: rest takes it
        out[-1:][empty] = 1
        total = out.sum(0, keepdim=True)
    return out / total


def _gaussian(sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def feather(weights: torch.Tensor, sigma: float) -> torch.Tensor:
    """(n, H, W) weights blurred by a Gaussian of σ = ``sigma`` pixels (reflected borders)."""
    if sigma <= 0:
        return weights
    kernel = _gaussian(sigma)
    radius = len(kernel) // 2
    x = weights[:, None].float()
    h, w = x.shape[-2:]
    if radius >= min(h, w):  # reflection needs a border narrower than the image
        radius = min(h, w) - 1
        kernel = kernel[len(kernel) // 2 - radius : len(kernel) // 2 + radius + 1]
        kernel = kernel / kernel.sum()
    if radius < 1:
        return weights
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    out = x[:, 0].clamp_min(0)
    return out / out.sum(0, keepdim=True).clamp_min(1e-12)


def word_masks(
    maps: torch.Tensor, size: tuple[int, int], settings: MaskSettings | None = None
) -> torch.Tensor:
    """(words + 1, H, W) soft masks (rest last) from raw (words, h, w) word maps.

    See the module docstring for the steps. Every pixel's weights sum to 1.
    """
    from brushwork.diffusion.maps import normalize, upsample

    settings = settings or MaskSettings()
    settings.validate()
    if maps.ndim != 3 or maps.shape[0] < 1:
        raise ConfigError(f"word maps must be (words, h, w), got {tuple(maps.shape)}")
    heat = normalize(upsample(maps.float().cpu(), size).clamp_min(0))
    weights = compete(heat, temperature=settings.temperature, threshold=settings.threshold)
    height, width = size
    weights = drop_small(weights, int(settings.min_area * height * width))
    return feather(weights, settings.feather * max(height, width))


def with_given(weights: torch.Tensor, given: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """(n, H, W) weights (rest last) with rows ``given`` (index -> (H, W) in [0, 1]) fixed.

    The given masks are kept as drawn (scaled down together where they sum above 1);
    the other words and rest share what is left in their computed proportions.
    """
    if not given:
        return weights
    fixed = torch.zeros_like(weights)
    for index, mask in given.items():
        fixed[index] = mask.float().clamp(0, 1)
    taken = fixed.sum(0)
    over = taken > 1
    if over.any():
        fixed[:, over] = fixed[:, over] / taken[over]
        taken = taken.clamp(max=1)
    free = weights.clone()
    free[list(given)] = 0
    share = free.sum(0)
    # where every free row is 0 (all computed weight was on a given word), rest takes it
    free[-1] = torch.where(share > 0, free[-1], torch.ones_like(share))
    free = free / free.sum(0, keepdim=True)
    return fixed + free * (1 - taken)


def region_masks(
    weights: torch.Tensor, words: Sequence[str], specs: Sequence[RegionSpec]
) -> RegionMasks:
    """Per-word weights (words + 1, H, W; rest last) summed into the specs' regions.

    The regions are the specs without ``rest`` in their order, then ``rest``: its target
    is the ``rest`` spec's, or ``"photo"`` when none is given.
    """
    if weights.shape[0] != len(words) + 1:
        raise ConfigError(f"{weights.shape[0]} weight maps for {len(words)} words and rest")
    row = {w.lower(): i for i, w in enumerate(words)}
    names, targets, rows = [], [], []
    rest_target = "photo"
    for spec in specs:
        if spec.is_rest:
            rest_target = spec.target
            continue
        missing = [w for w in spec.words if w.lower() not in row]
        if missing:
            raise ConfigError(f"no map for the region word '{missing[0]}'")
        names.append(spec.name)
        targets.append(spec.target)
        rows.append(sum(weights[row[w.lower()]] for w in spec.words))
    rows.append(weights[-1])
    names.append(REST)
    targets.append(rest_target)
    return RegionMasks(names, torch.stack(rows).float(), targets)
