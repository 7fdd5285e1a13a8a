"""Content leakage: how far a result's structure moved towards the style image's content.

A style image has content of its own (a face, a bridge, a sky line), and diffusion
style transfer often copies it into the result — the field's most common complaint.
To measure it we need the style image's *content* apart from its style. Splicing ViT
(Tumanyan et al. 2022) gives exactly that split: the cosine self-similarity of the keys
of DINO-ViT's last layer describes an image's structure (its layout and the parts of
its objects) while staying largely blind to appearance (colours, textures, strokes),
which the [CLS] token carries instead. With ``S(x)`` that (tokens × tokens) matrix,

    leakage = ⟨S(result) − S(content), S(style) − S(content)⟩ / ‖S(style) − S(content)‖²

the projection of the result's change of structure, away from the content photo's,
onto the direction from the content photo's structure to the style image's: 0 when the
result has no more of the style image's structure than the content photo itself,
1 when it has moved all the way to the style image's, negative when it moved away.
Structure changes that have nothing to do with the style image (brush strokes, a new
texture) are orthogonal to that direction and hardly count, unlike a plain difference
of similarities (``sim(result, style) − sim(result, content)``), which also rises with
good stylisation. Lower is better; report it next to a style-similarity score
(``clip_style``), since copying nothing of the style image is easy when copying
nothing of its style either.

It is undefined (NaN) when the content photo and the style image have the same
structure. All three images are compared at the result's size: the content photo is
resized to it (same aspect ratio), the style image centre-cropped to its aspect ratio
and resized. The network is the one of the ``structure`` metric
(:class:`~brushwork.metrics.structure.StructureScorer`, DINO ViT-B/8 by default).
"""

from __future__ import annotations

import torch

from brushwork.errors import ImageError
from brushwork.metrics.structure import StructureScorer, self_similarity

__all__ = ["content_leakage", "crop_to_match"]


def crop_to_match(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, h, w) -> (3, height, width): centre crop to the aspect ratio, then resize."""
    from brushwork.image import resize_to

    h, w = image.shape[-2:]
    target = width / height
    if w / h > target:  # too wide
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        image = image[..., left : left + new_w]
    elif w / h < target:  # too tall
        new_h = max(1, round(w / target))
        top = (h - new_h) // 2
        image = image[..., top : top + new_h, :]
    if tuple(image.shape[-2:]) != (height, width):
        image = resize_to(image, height, width)
    return image


@torch.no_grad()
def content_leakage(
    scorer: StructureScorer,
    results: torch.Tensor,
    contents: torch.Tensor,
    styles: torch.Tensor,
) -> torch.Tensor:
    """(B,) content leakage of each result (see the module docstring).

    Args:
        scorer: a DINO-ViT structure scorer (:func:`~brushwork.metrics.structure.load_dino`).
        results, contents, styles: (B, 3, H, W) in [0, 1], all of one size
            (:func:`crop_to_match` brings a style image to its result's size).

    Returns:
        float32 on the CPU: 0 = none of the style image's structure, 1 = all of it;
        NaN where the content and style images have the same structure.
    """
    if not results.shape == contents.shape == styles.shape:
        raise ImageError(
            "content leakage needs results, content and style images of one size; got "
            f"{tuple(results.shape)}, {tuple(contents.shape)}, {tuple(styles.shape)}"
        )
    matrices = self_similarity(scorer.keys(torch.cat([results, contents, styles])))
    s_result, s_content, s_style = matrices.double().chunk(3)
    direction = s_style - s_content
    moved = s_result - s_content
    norm = direction.pow(2).sum(dim=(1, 2))
    leakage = (moved * direction).sum(dim=(1, 2)) / norm
    leakage[norm <= 1e-12 * direction[0].numel()] = float("nan")
    return leakage.float().cpu()
