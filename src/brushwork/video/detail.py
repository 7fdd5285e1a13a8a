"""Sharpness of video frames, and detail re-injection after warping.

Warping a stylised frame into the next one resamples it at sub-pixel positions;
with the estimated (never exactly integer) optical flow every warp acts as a small
low-pass filter. A video method that starts each frame from the previous result,
warped, and pulls it towards that warped result (Ruder et al.'s temporal loss)
compounds the filter frame after frame: fine texture fades over a clip. Measured
on a sharp texture carried through 30 DIS-flow warps, the mean absolute gradient
falls by 41 % with bilinear sampling, 31 % with bicubic and 29 % with a prefiltered
cubic B-spline — a sharper kernel alone does not stop it, since most of the loss
comes from the flow's sub-pixel noise, not the kernel (see docs/video.md).

:func:`restore_detail` puts the lost detail back: it adds the warped image's own
high-pass band (image minus a 3×3 binomial blur), scaled so that the result's
:func:`mean_abs_gradient` equals the unwarped frame's. The texture stays where the
flow put it (nothing is re-synthesised), so temporal consistency is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["blur_to_sharpness", "gaussian_blur", "mean_abs_gradient", "restore_detail"]

_BINOMIAL = torch.tensor([0.25, 0.5, 0.25])


def mean_abs_gradient(image: torch.Tensor) -> float:
    """Sharpness: mean absolute difference of neighbouring pixels, both directions.

    Args:
        image: ``(C, H, W)`` image in [0, 1].

    Returns:
        ``(mean |x[:, :, 1:] − x[:, :, :-1]| + mean |x[:, 1:, :] − x[:, :-1, :]|) / 2``
        on the 0–255 scale (a sharp photograph: 10–20; a blurred one: a few).
    """
    image = image.detach().float()
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return float((horizontal + vertical) / 2 * 255)


def _blur(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` image blurred with a separable 3×3 binomial kernel (edges replicated)."""
    channels = image.shape[0]
    kernel = _BINOMIAL.to(image)
    batch = F.pad(image[None], (1, 1, 1, 1), mode="replicate")
    batch = F.conv2d(batch, kernel.view(1, 1, 1, 3).expand(channels, 1, 1, 3), groups=channels)
    batch = F.conv2d(batch, kernel.view(1, 1, 3, 1).expand(channels, 1, 3, 1), groups=channels)
    return batch[0]


def restore_detail(
    warped: torch.Tensor,
    reference: torch.Tensor,
    *,
    max_gain: float = 4.0,
    iterations: int = 12,
) -> torch.Tensor:
    """Sharpen ``warped`` back to the sharpness of the frame it was warped from.

    ``out = clamp(warped + g · (warped − blur(warped)), 0, 1)`` with the gain
    ``g ∈ [0, max_gain]`` found by bisection so that
    ``mean_abs_gradient(out) ≈ mean_abs_gradient(reference)``. A warped image
    already as sharp as the reference is returned unchanged.

    Args:
        warped: ``(C, H, W)`` image in [0, 1], ``reference`` resampled by a warp.
        reference: ``(C, H, W)`` image before the warp (any size).
        max_gain: Largest gain tried (caps the sharpening of a very blurred input).
        iterations: Bisection steps (12 gives the gain to 1e-3 of ``max_gain``).

    Returns:
        ``(C, H, W)`` float tensor in [0, 1] on ``warped``'s device.
    """
    warped = warped.float()
    target = mean_abs_gradient(reference)
    if mean_abs_gradient(warped) >= target:
        return warped
    detail = warped - _blur(warped)
    low, high = 0.0, max_gain
    for _ in range(iterations):
        gain = (low + high) / 2
        if mean_abs_gradient((warped + gain * detail).clamp(0, 1)) < target:
            low = gain
        else:
            high = gain
    return (warped + high * detail).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, C, H, W)`` images blurred with a separable Gaussian of ``sigma`` px (edges
    replicated; radius 4σ); ``sigma <= 0`` returns them as they are."""
    from brushwork.metrics.ssim import gaussian_window

    if sigma <= 0:
        return images
    window = gaussian_window(sigma, 4.0, dtype=images.dtype).to(images.device)
    radius, channels = window.numel() // 2, images.shape[1]
    batch = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    batch = F.conv2d(batch, window.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(batch, window.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def blur_to_sharpness(
    images: torch.Tensor, target: float, *, quantise: bool = False, iterations: int = 20
) -> torch.Tensor:
    """``images`` Gaussian-blurred just enough that their mean sharpness is ``target``.

    σ is found by bisection in [0, 8] px so that the mean over the images of
    :func:`mean_abs_gradient` equals ``target``; images already at or below it are
    returned as they are.

    Args:
        images: ``(N, C, H, W)`` or ``(C, H, W)`` in [0, 1].
        target: mean absolute gradient to reach (0–255 scale).
        quantise: round to 8 bits (as saved frames are) before measuring and returning.

    Returns:
        Tensor of ``images``' shape, float, in [0, 1].
    """
    batch = images.float() if images.dim() == 4 else images.float()[None]

    def blurred(sigma: float) -> torch.Tensor:
        out = gaussian_blur(batch, sigma).clamp(0, 1)
        return (out * 255).round() / 255 if quantise else out

    def sharpness(video: torch.Tensor) -> float:
        return sum(mean_abs_gradient(frame) for frame in video) / len(video)

    sigma = 0.0
    if sharpness(blurred(0.0)) > target:
        low, high = 0.0, 8.0  # 8 px blurs any texture flat
        for _ in range(iterations):
            sigma = (low + high) / 2
            low, high = (sigma, high) if sharpness(blurred(sigma)) > target else (low, sigma)
        sigma = (low + high) / 2
    out = blurred(sigma) if sigma > 0 else batch
    return out if images.dim() == 4 else out[0]
