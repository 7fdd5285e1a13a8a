"""SSIM, Fréchet distance, summaries and histogram distance against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats
from skimage.metrics import structural_similarity

from brushwork.errors import ImageError
from brushwork.metrics.fid import (
    MIN_FID_IMAGES,
    art_fid,
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from brushwork.metrics.ssim import ssim
from brushwork.metrics.style import color_histogram_distance
from brushwork.metrics.summary import paired_comparison, summarize


def test_ssim_of_image_with_itself_is_one():
    image = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0))
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_scikit_image(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, 37, 45, generator=g)
    b = (a + 0.3 * torch.rand(3, 37, 45, generator=g) - 0.15).clamp(0, 1)
    expected = structural_similarity(
        a.numpy(),
        b.numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=0,
    )
    assert float(ssim(a, b)) == pytest.approx(float(expected), abs=1e-4)
    batched = ssim(torch.stack([a, a]), torch.stack([b, a]))
    assert batched.shape == (2,)
    assert float(batched[0]) == pytest.approx(float(expected), abs=1e-4)
    assert float(batched[1]) == pytest.approx(1.0)


def test_ssim_rejects_mismatched_and_tiny_images():
    with pytest.raises(ImageError, match="one size"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 21))
    with pytest.raises(ImageError, match="smaller than the 11×11"):
        ssim(torch.rand(3, 8, 20), torch.rand(3, 8, 20))


def _direct_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n,d", [(50, 8), (200, 32), (20, 64)])  # (20, 64): n < d path
def test_frechet_distance_matches_direct_computation(n, d):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
    assert fid_from_features(a, b) == pytest.approx(_direct_fid(a, b), rel=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) vs N(m, 4I) in 3-d: |m|² + 3·(1 + 4 − 2·2) = |m|² + 3.
    m = np.array([1.0, 2.0, 0.0])
    assert frechet_distance(np.zeros(3), np.eye(3), m, 4 * np.eye(3)) == pytest.approx(8.0)


def test_fid_names_the_minimum_number_of_images():
    with pytest.raises(ImageError, match=f"at least {MIN_FID_IMAGES} images"):
        feature_statistics(np.zeros((1, 4)))


def test_art_fid_combines_lpips_and_fid():
    assert art_fid(fid=20.0, lpips=0.5) == pytest.approx(31.5)


def test_summary_matches_scipy():
    values = [0.2, 0.5, 0.4, 0.9, 0.1]
    s = summarize(values)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert (s.n, s.mean) == (5, pytest.approx(0.42))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(summarize([1.0]).std)
    assert summarize([1.0, math.nan, 3.0]).n == 2


def test_paired_comparison_matches_scipy():
    a = [0.30, 0.40, 0.35, 0.50, 0.45, 0.20]
    b = [0.35, 0.46, 0.36, 0.58, 0.47, 0.27]
    c = paired_comparison(a, b)
    assert c.n == 6
    assert c.difference.mean == pytest.approx(np.mean(np.subtract(b, a)))
    assert c.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert c.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(b, a).pvalue)


def test_color_histogram_distance():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 20, 30, generator=g)
    assert float(color_histogram_distance(image, image)) == 0.0
    # Same distribution, other size and order of pixels: still 0.
    shuffled = image.flatten(1)[:, torch.randperm(600, generator=g)].view(3, 30, 20)
    assert float(color_histogram_distance(image, shuffled)) == pytest.approx(0.0, abs=1e-12)
    darker = float(color_histogram_distance(image, image * 0.5))
    darkest = float(color_histogram_distance(image, image * 0.1))
    assert 0 < darker < darkest <= 1
