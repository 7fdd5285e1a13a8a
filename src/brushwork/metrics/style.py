"""Feature-space content and style losses, and a colour histogram distance.

* :func:`content_feature_loss` — MSE between VGG-19 ``relu4_2`` activations of the
  result and the content image (Gatys et al. 2016's content loss);
* :func:`gram_style_loss` — sum over ``relu1_1 … relu5_1`` of the MSE between Gram
  matrices (normalised by C·H·W, :func:`brushwork.losses.gram_matrix`) of the result
  and the style image;
* :func:`color_histogram_distance` — per RGB channel, the earth mover's (1-D
  Wasserstein) distance between the 256-bin intensity histograms of the two
  images, averaged over the channels: 0 for the same colour distribution, at
  most 1; it does not depend on the image sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from brushwork.encoders import VGGEncoder
from brushwork.losses import content_loss, gram_loss, gram_matrix

__all__ = [
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "color_histogram_distance",
    "content_feature_loss",
    "gram_style_loss",
]

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
HISTOGRAM_BINS = 256


@torch.no_grad()
def content_feature_loss(
    encoder: VGGEncoder,
    result: torch.Tensor,
    content: torch.Tensor,
    *,
    layers: Sequence[str] = CONTENT_LAYERS,
) -> torch.Tensor:
    """(B,) sum over ``layers`` of the feature MSE; (B, 3, H, W) inputs of one size."""
    a = encoder(result, layers)
    b = encoder(content, layers)
    return torch.stack(
        [
            torch.stack([content_loss(a[n][i : i + 1], b[n][i : i + 1]) for n in layers]).sum()
            for i in range(result.shape[0])
        ]
    )


@torch.no_grad()
def gram_style_loss(
    encoder: VGGEncoder,
    result: torch.Tensor,
    style: torch.Tensor,
    *,
    layers: Sequence[str] = STYLE_LAYERS,
) -> torch.Tensor:
    """(B,) sum over ``layers`` of the Gram-matrix MSE between result and style.

    ``result`` is (B, 3, H, W); ``style`` is (B, 3, H', W') or (1, 3, H', W') (any size).
    """
    a = encoder(result, layers)
    b = encoder(style, layers)
    out = []
    for i in range(result.shape[0]):
        j = i if style.shape[0] > 1 else 0
        out.append(
            torch.stack(
                [gram_loss(a[n][i : i + 1], gram_matrix(b[n][j : j + 1])) for n in layers]
            ).sum()
        )
    return torch.stack(out)


def color_histogram_distance(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean over RGB of the 1-D earth mover's distance between channel histograms.

    Args:
        image: (3, H, W) in [0, 1].
        reference: (3, H', W') in [0, 1] (any size).

    Returns:
        0-dim float64 tensor in [0, 1].
    """
    distances = []
    for c in range(3):
        h1 = torch.histc(image[c].double().clamp(0, 1), bins=HISTOGRAM_BINS, min=0, max=1)
        h2 = torch.histc(reference[c].double().clamp(0, 1), bins=HISTOGRAM_BINS, min=0, max=1)
        cdf1 = torch.cumsum(h1 / h1.sum(), 0)
        cdf2 = torch.cumsum(h2 / h2.sum(), 0)
        distances.append((cdf1 - cdf2).abs().sum() / HISTOGRAM_BINS)
    return torch.stack(distances).mean()
