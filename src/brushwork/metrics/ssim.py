"""Structural similarity (SSIM) with a Gaussian window (Wang et al. 2004).

The standard settings: an 11×11 Gaussian window of σ = 1.5 (truncated at 3.5 σ),
K1 = 0.01, K2 = 0.03, population (not sample) covariances. The SSIM map is
taken only where the whole window fits inside the image, and averaged; colour
images give the mean over their channels. This is what scikit-image's
``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=0)`` computes.

Example::

    score = ssim(result, content)          # (B,) in [-1, 1]; 1 for identical images
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ImageError

__all__ = ["SSIM", "SSIMSettings", "gaussian_window", "ssim"]


@dataclass(frozen=True)
class SSIMSettings:
    """SSIM constants (Wang et al. 2004 defaults)."""

    sigma: float = 1.5
    truncate: float = 3.5
    k1: float = 0.01
    k2: float = 0.03
    data_range: float = 1.0


def gaussian_window(sigma: float, truncate: float, *, dtype: torch.dtype) -> torch.Tensor:
    """1-D normalised Gaussian of radius ``int(truncate·sigma + 0.5)`` (as scipy.ndimage)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-0.5 * (x / sigma) ** 2)
    return (window / window.sum()).to(dtype)


def ssim(
    image: torch.Tensor,
    reference: torch.Tensor,
    *,
    settings: SSIMSettings = SSIMSettings(),
) -> torch.Tensor:
    """Mean SSIM between two images or batches of images.

    Args:
        image: (B, C, H, W) or (C, H, W) in [0, ``data_range``].
        reference: Same shape as ``image``.
        settings: Window and constants.

    Returns:
        (B,) float64 (a 0-dim tensor for unbatched input): the SSIM map averaged over
        the valid region and the channels.

    Raises:
        ImageError: the shapes differ or the image is smaller than the window.
    """
    if image.shape != reference.shape:
        raise ImageError(
            f"SSIM needs two images of one size; got {tuple(image.shape)} and "
            f"{tuple(reference.shape)}"
        )
    unbatched = image.dim() == 3
    a = (image[None] if unbatched else image).double()
    b = (reference[None] if unbatched else reference).double()
    if a.dim() != 4:
        raise ImageError(f"SSIM needs (C, H, W) or (B, C, H, W) images, got {tuple(image.shape)}")
    window = gaussian_window(settings.sigma, settings.truncate, dtype=a.dtype).to(a.device)
    size = window.numel()
    if min(a.shape[-2:]) < size:
        raise ImageError(
            f"images of {a.shape[-2]}×{a.shape[-1]} px are smaller than the {size}×{size} SSIM "
            "window; use larger images"
        )
    channels = a.shape[1]

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, window.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(x, window.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1 = (settings.k1 * settings.data_range) ** 2
    c2 = (settings.k2 * settings.data_range) ** 2
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    score = (numerator / denominator).mean(dim=(1, 2, 3))
    return score[0] if unbatched else score


class SSIM(nn.Module):
    """Module form of :func:`ssim`."""

    def __init__(self, settings: SSIMSettings = SSIMSettings()) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(B,) SSIM of ``image`` to ``reference``, both (B, C, H, W)."""
        return ssim(image, reference, settings=self.settings)
