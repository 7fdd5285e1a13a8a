"""Regional style transfer: one style per region, the photo kept where a region says so.

* :func:`regional_gatys`: Gatys with one masked Gram target per style (the soft masks of
  every region that uses it, :func:`~brushwork.losses.masked_gram_matrix`), then the
  content blended back where regions keep the photo;
* :func:`regional_stylize`: the feed-forward methods. AdaIN and WCT run once with one
  mask per style: each region's content statistics are taken inside its mask
  (:func:`~brushwork.transfer.adain.masked_adain`,
  :func:`~brushwork.transfer.wct.masked_whiten_colour`). WCT² and PhotoWCT (whose
  region support is label maps matched between content and style) stylise the whole
  image once per style and the results are blended with the masks;
* :func:`keep_photo`: ``out · (1 − keep) + content · keep`` at the output's size.

Masks are :class:`~.masks.RegionMasks`; they are resized here to whatever size each
method works at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from brushwork.errors import ConfigError
from brushwork.regional.masks import RegionMasks

__all__ = ["PER_REGION_STATISTICS", "keep_photo", "regional_gatys", "regional_stylize"]

#: Feed-forward methods whose regions get their own statistics in one pass.
PER_REGION_STATISTICS = ("adain", "wct")


def keep_photo(image: torch.Tensor, content: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(3, H, W): ``image`` with ``content`` (3, H', W') blended back by ``keep`` (H'', W'').

    Content and mask are resized to the image (bilinear); where ``keep`` is 1 the result
    is the content exactly.
    """
    from brushwork.image import resize_to

    height, width = image.shape[-2:]
    if tuple(content.shape[-2:]) != (height, width):
        content = resize_to(content.float(), height, width)
    if tuple(keep.shape[-2:]) != (height, width):
        keep = resize_to(keep[None].float(), height, width)[0]
    keep = keep.clamp(0, 1).to(image.device)
    return torch.lerp(image.float(), content.float().to(image.device), keep[None])


def _styles_in_order(masks: RegionMasks, styles: dict[str, torch.Tensor]) -> list[str]:
    import os

    order: list[str] = []
    for target in masks.targets:
        if target != "photo" and os.path.normpath(target) not in order:
            order.append(os.path.normpath(target))
    normalised = {os.path.normpath(k) for k in styles}
    missing = [s for s in order if s not in normalised]
    if missing:
        raise ConfigError(f"no style image given for region target '{missing[0]}'")
    if not order:
        raise ConfigError("every region keeps the photo: give at least one a style image")
    return order


def _style_list(order: Sequence[str], styles: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    import os

    by_path = {os.path.normpath(k): v for k, v in styles.items()}
    return [by_path[path] for path in order]


def regional_gatys(
    content: torch.Tensor,
    styles: dict[str, torch.Tensor],
    masks: RegionMasks,
    **gatys_kwargs: Any,
):
    """Gatys transfer with a style per region.

    Args:
        content: (3, H, W) in [0, 1].
        styles: style path -> (3, H', W') image, for every target of ``masks``.
        masks: the regions (any size: resized to the content).
        gatys_kwargs: passed to :func:`~brushwork.transfer.gatys.gatys` (``settings``,
            ``encoder``, ``weights``, ``device``, ``callback``).

    Returns:
        The :class:`~brushwork.transfer.gatys.GatysResult`, its image with the content
        kept in the photo regions.
    """
    from brushwork.transfer.gatys import gatys

    order = _styles_in_order(masks, styles)
    at_content = masks.resized(tuple(content.shape[-2:]))
    style_masks = at_content.style_masks(order)
    result = gatys(
        content,
        _style_list(order, styles),
        masks=[m[None] for m in style_masks],
        **gatys_kwargs,
    )
    keep = at_content.keep()
    if not keep.any():
        return result
    return replace(result, image=keep_photo(result.image, content, keep).cpu())


def regional_stylize(
    content: torch.Tensor,
    styles: dict[str, torch.Tensor],
    masks: RegionMasks,
    make_stylizer: Callable[[list[torch.Tensor], torch.Tensor | None], Any],
    *,
    method: str,
) -> torch.Tensor:
    """A feed-forward stylisation with a style per region.

    Args:
        content: (3, H, W) in [0, 1], at the size it is stylised at.
        styles: style path -> (3, H', W') image.
        masks: the regions (resized here to the content).
        make_stylizer: ``(style images, masks (1, S, H, W) or None) -> Stylizer`` (e.g.
            :func:`~brushwork.transfer.stylize.load_stylizer` with the run's options).
        method: ``"adain"``, ``"wct"`` (one pass, per-region statistics) or ``"wct2"``,
            ``"photowct"`` (one pass per style, blended).

    Returns:
        (3, H, W) in [0, 1].
    """
    order = _styles_in_order(masks, styles)
    images = _style_list(order, styles)
    at_content = masks.resized(tuple(content.shape[-2:]))
    style_masks = at_content.style_masks(order)
    keep = at_content.keep()
    if method in PER_REGION_STATISTICS:
        stylizer = make_stylizer(images, style_masks[None])
        out = stylizer(content[None])[0]
        return keep_photo(out, content, keep).clamp(0, 1)
    out = content.float() * keep[None]
    for image, mask in zip(images, style_masks, strict=True):
        stylizer = make_stylizer([image], None)
        out = out + stylizer(content[None])[0].float() * mask[None]
    return out.clamp(0, 1)
