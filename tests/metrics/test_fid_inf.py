"""FID∞: the extrapolation is the least-squares line of FID_N against 1/N at N → ∞."""

from __future__ import annotations

import numpy as np
import pytest

from brushwork.errors import ImageError
from brushwork.metrics.fid import fid_from_features, fid_infinity


def _features(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)) + shift


def test_equals_a_direct_linear_fit() -> None:
    a, b = _features(0, 300), _features(1, 300, shift=0.5)
    result = fid_infinity(a, b, num_points=6, seed=3)
    rng = np.random.default_rng(3)
    fids = [fid_from_features(a, b[rng.permutation(300)[:n]]) for n in result.sizes]
    design = np.stack([np.ones(len(fids)), 1.0 / np.array(result.sizes)], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, np.array(fids), rcond=None)
    assert result.fids == pytest.approx(fids)
    assert result.value == pytest.approx(intercept, rel=1e-9)
    assert result.slope == pytest.approx(slope, rel=1e-9)
    assert result.sizes[0] == 30 and result.sizes[-1] == 300


def test_removes_the_small_sample_bias() -> None:
    """Same Gaussian (true FID 0) with a known bias ≈ k/N: FID∞ is far nearer 0 than FID."""
    a, b = _features(4, 4000), _features(5, 400)
    plain = fid_from_features(a, b)
    extrapolated = fid_infinity(a, b, seed=0)
    assert extrapolated.slope > 0
    assert abs(extrapolated.value) < plain / 4


def test_paired_draws_the_same_rows_and_is_deterministic() -> None:
    a, b = _features(6, 100), _features(7, 100, shift=1.0)
    first = fid_infinity(a, b, paired=True, seed=1)
    assert first == fid_infinity(a, b, paired=True, seed=1)
    assert first.fids[-1] == pytest.approx(fid_from_features(a, b))


def test_too_few_images_is_an_error() -> None:
    with pytest.raises(ImageError, match="FID∞"):
        fid_infinity(_features(0, 2), _features(1, 2))
