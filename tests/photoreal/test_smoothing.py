"""Photorealistic smoothing: the closed-form matting solve and the guided filter."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import ConfigError
from brushwork.transfer.smoothing import (
    SmoothSettings,
    affinity_matrix,
    nested_dissection_order,
    smooth,
    smooth_exact,
    smooth_fast,
)

#: Mean absolute difference allowed between fast and exact smoothing on the test image
#: (measured 0.0067 with the defaults, r = 35, ε = 1e-4, on a 48² image).
FAST_EXACT_TOLERANCE = 0.01


def _guide(n: int = 40) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    return torch.stack([torch.sin(6 * xx) * 0.5 + 0.5, yy, xx * yy]).float()


def _noisy(guide: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(guide.shape, generator=torch.Generator().manual_seed(0))
    return (guide + 0.1 * noise).clamp(0, 1)


def _gradient_energy(x: torch.Tensor) -> float:
    return float((x.diff(dim=1) ** 2).mean() + (x.diff(dim=2) ** 2).mean())


def test_affinity_is_symmetric_with_nine_windows_per_inner_pixel() -> None:
    w = affinity_matrix(_guide(12))
    assert abs(w - w.T).max() < 1e-12
    degree = w.sum(axis=1).A.ravel().reshape(12, 12)
    assert abs(degree[2:-2, 2:-2] - 9).max() < 1e-6  # Σ_j W_ij = windows holding i


def test_smoothing_a_smooth_image_changes_it_little() -> None:
    guide = _guide()
    out = smooth_exact(guide, guide)
    assert (out - guide).abs().max() < 0.02
    assert (out - guide).abs().mean() < 2e-3


def test_smoothing_lowers_the_gradient_energy_of_a_noisy_image() -> None:
    guide = _guide()
    noisy = _noisy(guide)
    for mode in ("exact", "fast"):
        out = smooth(noisy, guide, mode)
        assert _gradient_energy(out) < 0.1 * _gradient_energy(noisy), mode
        assert (out - guide).abs().mean() < 0.5 * (noisy - guide).abs().mean(), mode
    paper = smooth_exact(noisy, guide, SmoothSettings(normalised=True))
    assert _gradient_energy(paper) < 0.1 * _gradient_energy(noisy)


def test_fast_and_exact_agree_on_a_small_image() -> None:
    guide = _guide(48)
    noisy = _noisy(guide)
    diff = (smooth_exact(noisy, guide) - smooth_fast(noisy, guide)).abs().mean()
    assert diff < FAST_EXACT_TOLERANCE


def test_bad_smoothing_inputs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="one size"):
        smooth_fast(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ConfigError, match="unknown smoothing 'exakt'; did you mean 'exact'"):
        smooth(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), "exakt")
    with pytest.raises(ConfigError, match="beta"):
        smooth_exact(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), SmoothSettings(beta=1.0))


def test_nested_dissection_order_is_a_permutation_with_less_fill_than_row_order() -> None:
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    n = 40
    order = nested_dissection_order(n, n)
    assert sorted(order.tolist()) == list(range(n * n))
    w = affinity_matrix(_guide(n))
    degree = np.asarray(w.sum(axis=1)).ravel()
    system = (sp.diags(1.0001 * degree) - w).tocsc()

    def fill(matrix) -> int:
        kw = {"diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
        lu = spl.splu(matrix.tocsc(), permc_spec="NATURAL", **kw)
        return lu.L.nnz + lu.U.nnz

    assert fill(system[order][:, order]) < 0.8 * fill(system)  # 0.74 measured at 40²
