"""Regional style during generation: IP-Adapter attention masks, one style image per region.

Two passes with the same seed:

1. (only for words without an edited mask) the prompt is generated once with the text
   attention recorded (:func:`~brushwork.diffusion.pipelines.generate_with_maps`); the
   words' maps give the region masks (:mod:`.masks`);
2. the prompt is generated again with an IP-Adapter holding one image per style and
   diffusers' ``ip_adapter_masks`` (``cross_attention_kwargs``): in every adapter layer
   image ``i``'s attention output is multiplied by its (soft) mask, so each style acts
   only in its region; regions that keep the photo (``rest`` by default) get no image.

The layout of pass 2 follows pass 1 closely (same seed, same prompt; the adapter moves it
a little), so the masks fall where the words are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brushwork.errors import ConfigError
from brushwork.regional.masks import MaskSettings, RegionMasks, word_masks

__all__ = [
    "RegionalGeneration",
    "generate_regional",
    "masks_of_generation",
    "regions_of_generation",
]


@dataclass
class RegionalGeneration:
    """The result of :func:`generate_regional`.

    Attributes:
        image: (3, H, W) in [0, 1], the styled generation.
        masks: the region masks used (at the image size).
    """

    image: torch.Tensor
    masks: RegionMasks


def masks_of_generation(
    pipe: Any,
    prompt: str,
    words: Sequence[str],
    *,
    settings: MaskSettings | None = None,
    steps: int = 30,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 1: ((words + 1, H, W) soft word masks with rest last, the (3, H, W) image)."""
    from brushwork.diffusion.pipelines import generate_with_maps

    result = generate_with_maps(
        pipe,
        prompt,
        list(words),
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
        seeds=seed,
        negative_prompt=negative_prompt,
    )
    image = result.images[0].float().cpu()
    maps = result.maps[0].maps
    return word_masks(maps, tuple(image.shape[-2:]), settings), image


def regions_of_generation(
    pipe: Any,
    prompt: str,
    specs: Sequence[Any],
    *,
    given: dict[str, torch.Tensor] | None = None,
    settings: MaskSettings | None = None,
    height: int | None = None,
    width: int | None = None,
    **generation: Any,
) -> tuple[RegionMasks, torch.Tensor | None]:
    """The specs' masks for ``prompt``: pass 1 for words without a ``given`` mask.

    Returns the masks (at the generated size) and pass 1's image (``None`` when every
    word had a given mask: no pass 1 ran). ``given``: word -> (H, W) mask at that size.
    """
    from brushwork.regional.masks import region_masks, with_given
    from brushwork.regional.of_image import region_words

    given = {k.lower(): v for k, v in (given or {}).items()}
    words = region_words(specs)
    mapped = [w for w in words if w.lower() not in given]
    side = pipe.default_sample_size * pipe.vae_scale_factor
    size = (height or side, width or side)
    weights = torch.zeros(len(words) + 1, *size)
    weights[-1] = 1
    first = None
    if mapped:
        computed, first = masks_of_generation(
            pipe, prompt, mapped, settings=settings, height=height, width=width, **generation
        )
        weights[-1] = computed[-1]
        for row, word in enumerate(mapped):
            weights[words.index(word)] = computed[row]
    fixed = {i: given[w.lower()] for i, w in enumerate(words) if w.lower() in given}
    return region_masks(with_given(weights, fixed), words, specs), first


def _as_pil(image: torch.Tensor) -> Any:
    from PIL import Image

    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
    return Image.fromarray(array)


def generate_regional(
    pipe: Any,
    prompt: str,
    masks: RegionMasks,
    styles: dict[str, torch.Tensor] | None = None,
    *,
    image_embeds: list[torch.Tensor] | None = None,
    steps: int = 30,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> RegionalGeneration:
    """Pass 2: generate ``prompt`` with each style image masked to its regions.

    The pipeline must have an IP-Adapter loaded
    (:func:`~brushwork.diffusion.style_reference.load_style_adapter`, with its scales or
    InstantStyle preset set).

    Args:
        masks: the regions; their style targets are keys of ``styles``.
        styles: style path -> (3, h, w) image in [0, 1].
        image_embeds: instead of ``styles`` (an adapter without image encoder):
            diffusers' ``ip_adapter_image_embeds`` for one adapter holding one embedding
            per style, in the order the styles first appear in ``masks.targets``.
        callback: ``callback(step, steps)`` after every step.
    """
    import os

    from brushwork.diffusion.editing import check_prompt

    check_prompt(pipe.tokenizer, prompt)
    order: list[str] = []
    for target in masks.targets:
        if target != "photo" and os.path.normpath(target) not in order:
            order.append(os.path.normpath(target))
    if not order:
        raise ConfigError("every region keeps the photo: give at least one a style image")
    if (styles is None) == (image_embeds is None):
        raise ConfigError("give exactly one of styles and image_embeds")
    generator = torch.Generator("cpu").manual_seed(seed)
    call: dict[str, Any] = dict(
        prompt=prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        negative_prompt=negative_prompt,
        generator=generator,
        output_type="pt",
    )
    if guidance_scale is not None:
        call["guidance_scale"] = guidance_scale
    if styles is not None:
        by_path = {os.path.normpath(k): v for k, v in styles.items()}
        missing = [p for p in order if p not in by_path]
        if missing:
            raise ConfigError(f"no style image given for region target '{missing[0]}'")
        call["ip_adapter_image"] = [[_as_pil(by_path[p]) for p in order]]
    else:
        call["ip_adapter_image_embeds"] = image_embeds
    side_h = height or pipe.default_sample_size * pipe.vae_scale_factor
    side_w = width or pipe.default_sample_size * pipe.vae_scale_factor
    sized = masks.resized((side_h, side_w))
    style_masks = sized.style_masks(order)  # (S, H, W)
    device = pipe.unet.device
    call["cross_attention_kwargs"] = {
        "ip_adapter_masks": [style_masks[None].to(device=device, dtype=pipe.unet.dtype)]
    }
    if callback is not None:

        def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            callback(step + 1, steps)
            return kwargs

        call["callback_on_step_end"] = on_step
    image = pipe(**call).images[0].float().cpu().clamp(0, 1)
    return RegionalGeneration(image=image, masks=sized)
