"""Region masks of an existing image: its word maps (:func:`maps_of_image`) -> masks.

Words with an edited mask (``--mask cow=cow.png``) are not mapped; the others are, with
one recorder pass over the caption, and share what the edited masks leave
(:func:`~.masks.with_given`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from brushwork.regional.masks import MaskSettings, RegionMasks, region_masks, with_given, word_masks
from brushwork.regional.spec import RegionSpec

__all__ = ["region_words", "regions_of_image", "word_weights_of_image"]


def region_words(specs: Sequence[RegionSpec]) -> list[str]:
    """Every word the specs name (``rest`` excluded), in order."""
    return [w for spec in specs if not spec.is_rest for w in spec.words]


def word_weights_of_image(
    pipe: Any | None,
    image: torch.Tensor,
    caption: str | None,
    words: Sequence[str],
    *,
    given: Mapping[str, torch.Tensor] | None = None,
    settings: MaskSettings | None = None,
    seed: int = 0,
    side: int | None = None,
    rule: str = "mean",
) -> torch.Tensor:
    """(words + 1, H, W) soft masks of ``image`` (3, H, W), rest last, summing to 1.

    Args:
        pipe: a diffusers pipeline for :func:`~brushwork.diffusion.image_maps.maps_of_image`
            (``None`` when every word has a ``given`` mask).
        given: word -> (H, W) mask in [0, 1] at the image's size (edited masks).
        side: long side of the model input (default: the model's size).
    """
    given = {k.lower(): v for k, v in (given or {}).items()}
    size = (int(image.shape[-2]), int(image.shape[-1]))
    mapped = [w for w in words if w.lower() not in given]
    weights = torch.zeros(len(words) + 1, *size)
    if mapped:
        from brushwork.diffusion.image_maps import maps_of_image

        if pipe is None or caption is None:
            raise ValueError("a pipeline and a caption are needed to map words")
        result = maps_of_image(pipe, image, caption, mapped, seed=seed, side=side, rule=rule)
        computed = word_masks(result.maps[0].maps, size, settings)
        for row, word in enumerate(mapped):
            weights[words.index(word)] = computed[row]
        weights[-1] = computed[-1]
    else:
        weights[-1] = 1
    fixed = {i: given[w.lower()] for i, w in enumerate(words) if w.lower() in given}
    return with_given(weights, fixed)


def regions_of_image(
    pipe: Any | None,
    image: torch.Tensor,
    caption: str | None,
    specs: Sequence[RegionSpec],
    **kwargs: Any,
) -> RegionMasks:
    """The specs' :class:`~.masks.RegionMasks` of ``image`` (see :func:`word_weights_of_image`)."""
    words = region_words(specs)
    return region_masks(word_weights_of_image(pipe, image, caption, words, **kwargs), words, specs)
