"""Tests for brushwork.color: colour matching and luminance-only transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.exposure import match_histograms

from brushwork.color import (
    _match_mean_cov_unclamped,
    combine_luminance,
    match_color,
    match_histogram,
    match_luminance_stats,
    match_mean_cov,
)
from brushwork.errors import ConfigError
from brushwork.image import luminance, rgb_to_yiq


def _correlated_image(
    mean: tuple[float, float, float], scale: float, seed: int, size: int = 48
) -> torch.Tensor:
    """(3, size, size) image with correlated channels, well inside [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(3, 3, generator=generator)
    noise = torch.randn(3, size * size, generator=generator)
    pixels = scale * (mixing @ noise) / mixing.norm(dim=1, keepdim=True)
    pixels = pixels + torch.tensor(mean).view(3, 1)
    return pixels.clamp(0, 1).view(3, size, size).double()


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1)
    centred = pixels - pixels.mean(dim=1, keepdim=True)
    return pixels.mean(dim=1), centred @ centred.T / pixels.shape[1]


# --------------------------------------------------------------------------- mean / covariance


def test_mean_cov_matches_statistics() -> None:
    source = _correlated_image((0.5, 0.45, 0.55), 0.06, seed=1)
    reference = _correlated_image((0.4, 0.6, 0.5), 0.05, seed=2, size=32)
    matched = match_mean_cov(source, reference)
    unclamped = _match_mean_cov_unclamped(source[None], reference[None], 1e-5)[0]
    assert torch.equal(matched, unclamped)  # nothing was clamped
    ref_mean, ref_cov = _stats(reference)
    out_mean, out_cov = _stats(matched)
    assert torch.allclose(out_mean, ref_mean, atol=1e-4)
    assert torch.allclose(out_cov, ref_cov, atol=1e-4)
    src_cov = _stats(source)[1]
    assert not torch.allclose(src_cov, ref_cov, atol=1e-4)  # the test is not vacuous


def test_mean_cov_float32_and_batch() -> None:
    sources = torch.stack(
        [_correlated_image((0.5, 0.5, 0.5), 0.06, seed=s) for s in (3, 4)]
    ).float()
    reference = _correlated_image((0.3, 0.5, 0.6), 0.04, seed=5).float()
    matched = match_mean_cov(sources, reference)
    assert matched.shape == sources.shape
    assert matched.dtype == torch.float32
    ref_mean, ref_cov = _stats(reference.double())
    for image in matched:
        mean, cov = _stats(image.double())
        assert torch.allclose(mean, ref_mean, atol=1e-4)
        assert torch.allclose(cov, ref_cov, atol=1e-4)


def test_mean_cov_clamps_and_survives_flat_source() -> None:
    grey = torch.linspace(0, 1, 64).view(1, 8, 8).expand(3, 8, 8).clone()
    constant = torch.full((3, 8, 8), 0.5)
    reference = torch.rand(3, 8, 8)
    for source in (grey, constant):
        matched = match_mean_cov(source, reference)
        assert torch.isfinite(matched).all()
        assert matched.min() >= 0 and matched.max() <= 1
    strong = _match_mean_cov_unclamped(grey[None], reference[None] * 4 - 1.5, 1e-5)
    assert strong.min() < 0 or strong.max() > 1
    clamped = match_mean_cov(grey, reference * 4 - 1.5)
    assert clamped.min() >= 0 and clamped.max() <= 1


# --------------------------------------------------------------------------- histogram


@pytest.mark.parametrize("quantised", [False, True])
def test_histogram_matches_skimage(quantised: bool) -> None:
    generator = torch.Generator().manual_seed(7)
    source = torch.rand(3, 30, 40, generator=generator)
    reference = torch.rand(3, 25, 19, generator=generator) ** 2
    if quantised:  # many ties
        source = (source * 10).round() / 10
        reference = (reference * 7).round() / 7
    ours = match_histogram(source, reference)
    expected = match_histograms(
        source.permute(1, 2, 0).numpy(), reference.permute(1, 2, 0).numpy(), channel_axis=-1
    )
    assert ours.shape == source.shape and ours.dtype == source.dtype
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert not torch.allclose(ours, source, atol=1e-2)


def test_histogram_batch_and_constant_reference() -> None:
    sources = torch.rand(2, 3, 10, 10)
    reference = torch.rand(1, 3, 12, 12)
    matched = match_histogram(sources, reference)
    assert matched.shape == sources.shape
    for b in range(2):
        assert torch.allclose(matched[b], match_histogram(sources[b], reference[0]))
    flat = match_histogram(sources[0], torch.full((3, 4, 4), 0.25))
    assert torch.allclose(flat, torch.tensor(0.25))


def test_histogram_sorted_values_equal_reference_quantiles() -> None:
    source = torch.rand(3, 8, 8)
    reference = torch.rand(3, 8, 8)
    matched = match_histogram(source, reference)
    # Same pixel count and no ties: the matched values are a permutation of the reference's.
    for c in range(3):
        assert torch.allclose(
            matched[c].flatten().sort().values, reference[c].flatten().sort().values
        )


# --------------------------------------------------------------------------- dispatch


def test_match_color_dispatches() -> None:
    source, reference = torch.rand(3, 9, 9), torch.rand(3, 7, 7)
    assert torch.equal(
        match_color(source, reference, "histogram"), match_histogram(source, reference)
    )
    assert torch.equal(
        match_color(source, reference, "mean-cov"), match_mean_cov(source, reference)
    )


def test_match_color_unknown_method_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        match_color(torch.rand(3, 4, 4), torch.rand(3, 4, 4), "mean_cov")
    message = str(info.value)
    assert "did you mean 'mean-cov'" in message
    assert "histogram" in message
    with pytest.raises(ConfigError, match="histogram") as info:
        match_color(torch.rand(3, 4, 4), torch.rand(3, 4, 4), "zzz")
    assert "did you mean" not in str(info.value)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        match_mean_cov(torch.rand(4, 5, 5), torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match="batch"):
        match_histogram(torch.rand(2, 3, 5, 5), torch.rand(3, 3, 5, 5))


# --------------------------------------------------------------------------- luminance only


def test_match_luminance_stats() -> None:
    style = torch.rand(2, 1, 20, 30) ** 3
    content = 0.3 + 0.2 * torch.rand(2, 1, 16, 16)
    matched = match_luminance_stats(style, content)
    assert matched.shape == style.shape
    dims = (1, 2, 3)
    assert torch.allclose(matched.mean(dim=dims), content.mean(dim=dims), atol=1e-5)
    assert torch.allclose(
        matched.std(dim=dims, correction=0), content.std(dim=dims, correction=0), atol=1e-5
    )

    # The map is affine with a positive slope: standardised values are unchanged.
    def standardised(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True)

    assert torch.allclose(standardised(matched), standardised(style), atol=1e-4)


def test_match_luminance_stats_constant_style() -> None:
    content = torch.rand(1, 10, 10)
    style = torch.full((1, 8, 8), 0.7, requires_grad=True)
    matched = match_luminance_stats(style, content)
    assert torch.allclose(matched, content.mean(), atol=1e-6)
    matched.sum().backward()
    assert torch.isfinite(style.grad).all()


def test_combine_luminance_keeps_chroma() -> None:
    generator = torch.Generator().manual_seed(3)
    chroma_source = 0.4 + 0.2 * torch.rand(2, 3, 12, 14, generator=generator)
    luma = 0.45 + 0.1 * torch.rand(2, 1, 12, 14, generator=generator)
    out = combine_luminance(luma, chroma_source)
    assert out.shape == chroma_source.shape
    assert out.min() > 0 and out.max() < 1  # no clamping happened
    out_yiq, src_yiq = rgb_to_yiq(out), rgb_to_yiq(chroma_source)
    assert torch.allclose(out_yiq[:, 1:], src_yiq[:, 1:], atol=1e-5)
    assert torch.allclose(luminance(out), luma, atol=1e-5)
    assert not torch.allclose(out, chroma_source, atol=1e-2)


def test_combine_luminance_clamps_and_broadcasts() -> None:
    chroma_source = torch.rand(3, 6, 6)
    bright = combine_luminance(torch.full((2, 1, 6, 6), 2.0), chroma_source)
    assert bright.shape == (2, 3, 6, 6)
    assert bright.min() >= 0 and bright.max() <= 1
    with pytest.raises(ValueError, match="resize"):
        combine_luminance(torch.rand(1, 5, 6), chroma_source)
