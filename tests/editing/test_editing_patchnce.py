"""PatchNCE / CUT loss against a direct formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from brushwork.diffusion.patchnce import PatchNCELoss, cut_loss, patch_nce_loss, sample_locations
from brushwork.errors import ConfigError


def _unit(n: int, c: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, c, generator=torch.Generator().manual_seed(seed)), dim=1)


def _direct(ref: torch.Tensor, trg: torch.Tensor, tau: float) -> list[float]:
    """Loop form: −log(e^{r_i·t_i/τ} / (e^{r_i·t_i/τ} + e^{−10/τ} + Σ_{j≠i} e^{r_i·t_j/τ}))."""
    n = ref.shape[0]
    out = []
    for i in range(n):
        pos = math.exp(float(ref[i] @ trg[i]) / tau)
        neg = math.exp(-10.0 / tau)  # the masked diagonal
        neg += sum(math.exp(float(ref[i] @ trg[j]) / tau) for j in range(n) if j != i)
        out.append(-math.log(pos / (pos + neg)))
    return out


def test_patch_nce_equals_the_direct_formula():
    ref, trg = _unit(6, 5, 0).double(), _unit(6, 5, 1).double()
    ours = patch_nce_loss(ref, trg, temperature=0.5)
    assert ours.shape == (6,)
    torch.testing.assert_close(ours, torch.tensor(_direct(ref, trg, 0.5), dtype=torch.double))


def test_aligned_features_give_a_lower_loss_and_reference_is_detached():
    ref = _unit(8, 4, 2)
    noisy = F.normalize(ref + 0.8 * torch.randn(8, 4, generator=torch.Generator().manual_seed(3)))
    assert patch_nce_loss(ref, ref).mean() < patch_nce_loss(ref, noisy).mean()
    ref_g = ref.clone().requires_grad_(True)
    trg_g = noisy.clone().requires_grad_(True)
    patch_nce_loss(ref_g, trg_g).sum().backward()
    assert ref_g.grad is None and trg_g.grad.abs().sum() > 0


def test_cut_loss_pools_normalises_and_samples_shared_locations():
    gen = torch.Generator().manual_seed(4)
    ref = torch.randn(1, 3, 4, 4, generator=gen)
    trg = torch.randn(1, 3, 4, 4, generator=gen)
    loss = cut_loss(ref, trg, patch_sizes=(1, 2), num_patches=5, temperature=0.07,
                    generator=torch.Generator().manual_seed(9))  # fmt: skip
    ids = torch.Generator().manual_seed(9)
    expected = 0.0
    for k in (1, 2):
        r = F.avg_pool2d(ref, k) if k > 1 else ref
        t = F.avg_pool2d(trg, k) if k > 1 else trg
        r = F.normalize(r, dim=1).flatten(2)[0].T
        t = F.normalize(t, dim=1).flatten(2)[0].T
        pick = sample_locations(5, r.shape[0], generator=ids)
        assert len(pick) == min(5, r.shape[0]) and len(set(pick.tolist())) == len(pick)
        expected += sum(_direct(r[pick].double(), t[pick].double(), 0.07)) / len(pick)
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    module = PatchNCELoss(num_patches=5)
    again = module(ref, trg, generator=torch.Generator().manual_seed(9))
    assert float(again) == pytest.approx(float(loss), rel=1e-6)


def test_shape_errors():
    with pytest.raises(ConfigError):
        patch_nce_loss(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ConfigError):
        cut_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), patch_sizes=())
