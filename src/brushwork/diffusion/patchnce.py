"""PatchNCE / CUT loss (Park et al. 2020) as used by Contrastive Denoising Score.

For one pair of feature maps — a *reference* (held fixed) and a *target* (with
gradient) — and one patch size k:

1. average-pool both maps k×k (stride k) when k > 1;
2. L2-normalise every location over channels;
3. pick ``num_patches`` random locations, the same for both maps;
4. for sampled location i, the logits are

   ``[ r_i·t_i ,  r_i·t_j (j ≠ i) ] / τ``

   (positive first; the diagonal of the negative matrix ``r tᵀ`` is filled with −10
   before dividing by τ, as in the published CUT/CDS code, so it weighs ≈ 0), and
   the loss of the location is the cross-entropy with the positive as the label;
5. the loss of the patch size is the mean over locations.

:func:`cut_loss` sums that over patch sizes; CDS sums it over layers. The reference is
always detached.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError

__all__ = ["DIAGONAL_FILL", "PatchNCELoss", "cut_loss", "patch_nce_loss", "sample_locations"]

#: Value written on the diagonal of the negative logits before dividing by τ.
DIAGONAL_FILL = -10.0


def patch_nce_loss(
    reference: torch.Tensor, target: torch.Tensor, *, temperature: float = 0.07
) -> torch.Tensor:
    """Per-location PatchNCE loss.

    Args:
        reference: (N, C) unit-length features of N locations (detached here).
        target: (N, C) unit-length features at the same locations.
        temperature: τ.

    Returns:
        (N,) cross-entropy of each location, positive ``r_i·t_i`` as the label.
    """
    if reference.shape != target.shape or reference.ndim != 2:
        raise ConfigError(
            f"PatchNCE needs two (N, C) tensors of one shape, got {tuple(reference.shape)} "
            f"and {tuple(target.shape)}"
        )
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    reference = reference.detach()
    positive = (reference * target).sum(dim=1, keepdim=True)  # (N, 1)
    negative = reference @ target.T  # (N, N): r_i · t_j
    eye = torch.eye(negative.shape[0], dtype=torch.bool, device=negative.device)
    negative = negative.masked_fill(eye, DIAGONAL_FILL)
    logits = torch.cat([positive, negative], dim=1) / temperature
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels, reduction="none")


def sample_locations(
    count: int, available: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``min(count, available)`` distinct random indices in ``[0, available)``."""
    order = torch.randperm(available, generator=generator)
    return order[: min(count, available)]


def cut_loss(
    reference: torch.Tensor,
    target: torch.Tensor,
    *,
    patch_sizes: Sequence[int] = (1, 2),
    num_patches: int = 256,
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CUT loss of one layer: sum over patch sizes of the mean PatchNCE loss.

    Args:
        reference: (1, C, h, w) feature map, held fixed.
        target: (1, C, h, w) feature map with gradient.
        patch_sizes: average-pooling sizes (1 = no pooling).
        num_patches: locations sampled per patch size (all when the map has fewer).
        temperature: τ.
        generator: for the location sampling (CPU generator; seeded = repeatable).

    Returns:
        scalar tensor (float32).
    """
    if reference.shape != target.shape or reference.ndim != 4:
        raise ConfigError(
            f"cut_loss needs two (1, C, h, w) maps of one shape, got {tuple(reference.shape)} "
            f"and {tuple(target.shape)}"
        )
    if num_patches < 1 or not patch_sizes or any(k < 1 for k in patch_sizes):
        raise ConfigError("num_patches and every patch size must be ≥ 1")
    reference = reference.detach().float()
    target = target.float()
    total = target.new_zeros(())
    for k in patch_sizes:
        ref, trg = reference, target
        if k > 1:
            ref, trg = F.avg_pool2d(ref, k), F.avg_pool2d(trg, k)
        ref = F.normalize(ref, dim=1).flatten(2)[0].T  # (h·w, C)
        trg = F.normalize(trg, dim=1).flatten(2)[0].T
        ids = sample_locations(num_patches, ref.shape[0], generator=generator).to(ref.device)
        total = total + patch_nce_loss(ref[ids], trg[ids], temperature=temperature).mean()
    return total


class PatchNCELoss(nn.Module):
    """:func:`cut_loss` as a module, with the CDS defaults.

    ``forward(reference, target, generator=None)`` takes two (1, C, h, w) maps.
    """

    def __init__(
        self,
        *,
        patch_sizes: Sequence[int] = (1, 2),
        num_patches: int = 256,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.patch_sizes = tuple(patch_sizes)
        self.num_patches = num_patches
        self.temperature = temperature

    def forward(
        self,
        reference: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return cut_loss(
            reference,
            target,
            patch_sizes=self.patch_sizes,
            num_patches=self.num_patches,
            temperature=self.temperature,
            generator=generator,
        )
