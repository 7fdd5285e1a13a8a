"""Colour preservation and colour transfer between images.

Following Gatys et al., "Controlling Perceptual Factors in Neural Style
Transfer" (CVPR 2017), the colours of a style image can be matched to those of a
content image before style transfer (:func:`match_color`), or style transfer can
be done on luminance only and the content's chroma put back afterwards
(:func:`match_luminance_stats` and :func:`combine_luminance`).

RGB images are float tensors in [0, 1] of shape (3, H, W) or (B, 3, H, W).
Statistics are computed per image; a reference with batch size 1 is used for
every image of a batched source. Source and reference may differ in size.
"""

from __future__ import annotations

import difflib

import torch

from brushwork.errors import ConfigError
from brushwork.image import rgb_to_yiq, yiq_to_rgb

__all__ = [
    "COLOR_METHODS",
    "combine_luminance",
    "match_color",
    "match_histogram",
    "match_luminance_stats",
    "match_mean_cov",
]

COLOR_METHODS = ("mean-cov", "histogram")


def _as_batch(image: torch.Tensor, name: str) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) → (B, 3, H, W); ValueError for anything else."""
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"{name} must have shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {image.dtype}")
    return image if image.ndim == 4 else image.unsqueeze(0)


def _paired_batches(
    source: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch both images; the reference batch is broadcast to the source's."""
    src = _as_batch(source, "source")
    ref = _as_batch(reference, "reference")
    if ref.shape[0] not in (1, src.shape[0]):
        raise ValueError(
            f"reference batch size {ref.shape[0]} must be 1 or match the source's {src.shape[0]}"
        )
    return src, ref.expand(src.shape[0], -1, -1, -1)


def _restore_rank(result: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    return result if source.ndim == 4 else result[0]


# --------------------------------------------------------------------------- mean / covariance


def _mean_and_covariance(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean (B, 3, 1) and population covariance (B, 3, 3) of pixels (B, 3, N)."""
    mean = pixels.mean(dim=-1, keepdim=True)
    centred = pixels - mean
    return mean, centred @ centred.transpose(-1, -2) / pixels.shape[-1]


def _symmetric_power(matrix: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    """matrix^power for symmetric PSD matrices (B, 3, 3), eigenvalues clamped at ``floor``."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    scaled = eigenvalues.clamp(min=floor) ** power
    return eigenvectors @ torch.diag_embed(scaled) @ eigenvectors.transpose(-1, -2)


def _match_mean_cov_unclamped(
    source: torch.Tensor, reference: torch.Tensor, eps: float
) -> torch.Tensor:
    """Affine colour map of (B, 3, H, W) ``source`` onto the mean/covariance of ``reference``.

    x ↦ Σ_ref^{1/2} Σ_src^{-1/2} (x − μ_src) + μ_ref, computed in float64. The
    source's eigenvalues are clamped at ``eps`` (so flat directions are not blown
    up), the reference's at 0. Returns (B, 3, H, W) in the source's dtype.
    """
    batch, _, height, width = source.shape
    src = source.reshape(batch, 3, -1).double()
    ref = reference.reshape(reference.shape[0], 3, -1).double()
    src_mean, src_cov = _mean_and_covariance(src)
    ref_mean, ref_cov = _mean_and_covariance(ref)
    transform = _symmetric_power(ref_cov, 0.5, 0.0) @ _symmetric_power(src_cov, -0.5, eps)
    matched = transform @ (src - src_mean) + ref_mean
    return matched.reshape(batch, 3, height, width).to(source.dtype)


def match_mean_cov(
    source: torch.Tensor, reference: torch.Tensor, *, eps: float = 1e-5
) -> torch.Tensor:
    """Match the colour mean and covariance of ``source`` to those of ``reference``.

    The colour-matching step of Gatys et al. 2017: every RGB pixel x of the
    source becomes A (x − μ_s) + μ_r with A = Σ_r^{1/2} Σ_s^{-1/2} (symmetric
    matrix square roots), so the result has the reference's per-pixel RGB mean
    and 3×3 covariance. The result is clamped to [0, 1]; where clamping changes
    pixels, the statistics match only approximately.

    Args:
        source: Image to recolour, (3, H, W) or (B, 3, H, W).
        reference: Image whose colour statistics to take, (3, H', W') or
            (B or 1, 3, H', W').
        eps: Floor on the source covariance's eigenvalues, guarding against
            flat (e.g. greyscale or constant) source images.

    Returns:
        Tensor of the source's shape, values in [0, 1].
    """
    if not eps > 0:
        raise ConfigError(f"eps must be positive, got {eps!r}")
    src, ref = _paired_batches(source, reference)
    matched = _match_mean_cov_unclamped(src, ref, eps).clamp(0.0, 1.0)
    return _restore_rank(matched, source)


# --------------------------------------------------------------------------- histogram


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """1-D linear interpolation with the semantics of :func:`numpy.interp` (xp increasing)."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    right = torch.searchsorted(xp, x, right=True).clamp(1, xp.numel() - 1)
    left = right - 1
    x0, x1 = xp[left], xp[right]
    weight = (x - x0) / (x1 - x0)
    values = fp[left] + weight * (fp[right] - fp[left])
    values = torch.where(x <= xp[0], fp[0], values)
    return torch.where(x >= xp[-1], fp[-1], values)


def _match_cdf(source: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Map the values of 1-D ``source`` so its empirical CDF matches ``template``'s.

    Same algorithm as scikit-image's ``match_histograms`` for float images: the
    quantile of each distinct source value is looked up in the template's
    quantile function by linear interpolation.
    """
    _, src_lookup, src_counts = torch.unique(
        source, sorted=True, return_inverse=True, return_counts=True
    )
    tmpl_values, tmpl_counts = torch.unique(template, sorted=True, return_counts=True)
    src_quantiles = torch.cumsum(src_counts, 0).double() / source.numel()
    tmpl_quantiles = torch.cumsum(tmpl_counts, 0).double() / template.numel()
    return _interp(src_quantiles, tmpl_quantiles, tmpl_values.double())[src_lookup]


def match_histogram(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Match the histogram of each colour channel of ``source`` to ``reference``'s.

    Exact CDF matching per channel (as ``skimage.exposure.match_histograms``
    does for float images); the output takes only values interpolated between
    reference values, so it stays in the reference's range. Not differentiable.

    Args:
        source: Image to recolour, (3, H, W) or (B, 3, H, W).
        reference: Image whose histograms to take, (3, H', W') or (B or 1, 3, H', W').

    Returns:
        Tensor of the source's shape and dtype.
    """
    src, ref = _paired_batches(source, reference)
    src_flat = src.detach().reshape(src.shape[0], 3, -1).double()
    ref_flat = ref.detach().reshape(ref.shape[0], 3, -1).double()
    matched = torch.empty_like(src_flat)
    for b in range(src_flat.shape[0]):
        for c in range(3):
            matched[b, c] = _match_cdf(src_flat[b, c], ref_flat[b, c])
    return _restore_rank(matched.reshape(src.shape).to(source.dtype), source)


# --------------------------------------------------------------------------- dispatch


def match_color(source: torch.Tensor, reference: torch.Tensor, method: str) -> torch.Tensor:
    """Recolour ``source`` to the colours of ``reference`` with the named method.

    Args:
        source: (3, H, W) or (B, 3, H, W) image in [0, 1].
        reference: (3, H', W') or (B or 1, 3, H', W') image in [0, 1].
        method: ``"mean-cov"`` (:func:`match_mean_cov`) or ``"histogram"``
            (:func:`match_histogram`).

    Returns:
        Tensor of the source's shape, values in [0, 1].

    Raises:
        ConfigError: ``method`` is not one of :data:`COLOR_METHODS`.
    """
    if method == "mean-cov":
        return match_mean_cov(source, reference)
    if method == "histogram":
        return match_histogram(source, reference)
    raise ConfigError(_unknown_method_message(method))


def _unknown_method_message(method: object) -> str:
    message = f"unknown colour matching method {method!r}; choose one of {', '.join(COLOR_METHODS)}"
    close = difflib.get_close_matches(str(method), COLOR_METHODS, n=1, cutoff=0.5)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message


# --------------------------------------------------------------------------- luminance only


def match_luminance_stats(
    style_luma: torch.Tensor, content_luma: torch.Tensor, *, eps: float = 1e-5
) -> torch.Tensor:
    """Affinely map style luminance to the content luminance's mean and standard deviation.

    L_s ↦ (σ_c / σ_s)(L_s − μ_s) + μ_c, per image (Gatys et al. 2017,
    luminance-only transfer). A (nearly) constant style image, σ_s ≤ ``eps``,
    maps to the constant μ_c. The result is not clamped.

    Args:
        style_luma: (..., 1, H, W) style luminance.
        content_luma: (..., 1, H', W') content luminance; leading dimensions
            broadcast against the style's.

    Returns:
        Tensor of shape (..., 1, H, W).
    """
    _check_single_channel(style_luma, "style_luma")
    _check_single_channel(content_luma, "content_luma")
    dims = (-3, -2, -1)
    style_mean = style_luma.mean(dim=dims, keepdim=True)
    style_std = style_luma.std(dim=dims, keepdim=True, correction=0)
    content_mean = content_luma.mean(dim=dims, keepdim=True)
    content_std = content_luma.std(dim=dims, keepdim=True, correction=0)
    ratio = content_std / style_std.clamp(min=eps)
    scale = torch.where(style_std > eps, ratio, torch.zeros_like(ratio))
    return (style_luma - style_mean) * scale + content_mean


def _check_single_channel(image: torch.Tensor, name: str) -> None:
    if image.ndim < 3 or image.shape[-3] != 1:
        raise ValueError(f"{name} must have shape (..., 1, H, W), got {tuple(image.shape)}")


def combine_luminance(luma: torch.Tensor, chroma_source: torch.Tensor) -> torch.Tensor:
    """RGB image with luminance ``luma`` and the YIQ chroma (I, Q) of ``chroma_source``.

    The last step of luminance-only style transfer: the stylised luminance is
    recombined with the content image's colour.

    Args:
        luma: (..., 1, H, W) luminance (Y of YIQ).
        chroma_source: (..., 3, H, W) RGB image giving I and Q; leading dimensions
            broadcast against ``luma``'s.

    Returns:
        RGB tensor (..., 3, H, W) clamped to [0, 1].
    """
    _check_single_channel(luma, "luma")
    if chroma_source.ndim < 3 or chroma_source.shape[-3] != 3:
        raise ValueError(
            f"chroma_source must have shape (..., 3, H, W), got {tuple(chroma_source.shape)}"
        )
    if luma.shape[-2:] != chroma_source.shape[-2:]:
        raise ValueError(
            f"luma is {tuple(luma.shape[-2:])} pixels but chroma_source is "
            f"{tuple(chroma_source.shape[-2:])}; resize one to match the other"
        )
    chroma = rgb_to_yiq(chroma_source)[..., 1:, :, :]
    leading = torch.broadcast_shapes(luma.shape[:-3], chroma.shape[:-3])
    height, width = luma.shape[-2:]
    luma = luma.expand(*leading, 1, height, width)
    chroma = chroma.expand(*leading, 2, height, width)
    yiq = torch.cat((luma, chroma.to(luma.dtype)), dim=-3)
    return yiq_to_rgb(yiq).clamp(0.0, 1.0)
