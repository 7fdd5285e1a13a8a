"""Losses of neural style transfer.

Each loss is a plain function plus a thin :class:`torch.nn.Module` that holds
its fixed target and calls the function (the kornia convention). Feature maps
are (B, C, H, W); Gram matrices (B, C, C). Statistics are computed in float32
whatever the dtype of the features, so reduced-precision encoders keep exact
loss arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix G = F Fᵀ / (C·H·W).

    Args:
        features: (B, C, H, W).

    Returns:
        (B, C, C) float32 (float64 for float64 features), symmetric.
    """
    b, c, h, w = features.shape
    return _Gram.apply(features.reshape(b, c, h * w), 1.0 / (c * h * w))


class _Gram(torch.autograd.Function):
    """G = s·F Fᵀ in float32 (float64 for float64) for (B, C, N) features.

    ``s``: a number, or a (B, 1, 1) tensor (a scale per batch element; no gradient).

    Autograd's own backward of ``bmm(F, Fᵀ)`` runs two products (one per
    operand) plus dtype casts; since G is symmetric, dF = s·(dG + dGᵀ) F is one
    product, returned in the features' dtype.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.scale = scale
        wide = _at_least_float32(flat)
        return torch.bmm(wide, wide.transpose(1, 2)) * scale

    @staticmethod
    def backward(ctx, grad_gram: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        symmetric = (grad_gram + grad_gram.transpose(1, 2)) * ctx.scale
        return torch.bmm(symmetric, _at_least_float32(flat)).to(flat.dtype), None


def _at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def masked_gram_matrix(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram matrix of the features inside a (soft) region ("guided Gram").

    G = (F·m)(F·m)ᵀ / (C·Σm²), so an all-ones mask gives :func:`gram_matrix`
    and a region's statistics do not depend on how large the region is.

    Args:
        features: (B, C, H, W).
        mask: (B, 1, H', W') or (1, 1, H', W') in [0, 1]; resized to (H, W) by
            area averaging when the sizes differ.

    Returns:
        (B, C, C) float32.
    """
    b, c, h, w = features.shape
    mask = _at_least_float32(resize_mask(mask, (h, w)))
    weighted = (features * mask).reshape(b, c, h * w)
    area = mask.square().sum(dim=(1, 2, 3)).clamp_min(1e-8)
    return _Gram.apply(weighted, 1.0 / (c * area.view(-1, 1, 1)))


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, 1, H, W) mask to ``size`` by area averaging (no-op if equal)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_avg_pool2d(mask, size)


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over space: two (B, C) float32 tensors."""
    flat = features.float().flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=False) + eps).sqrt()


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between feature maps (B, C, H, W); a scalar."""
    return F.mse_loss(features.float(), target.float())


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the Gram matrix of ``features`` and ``target_gram``."""
    return F.mse_loss(gram_matrix(features), target_gram.float())


def mean_std_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of channel means plus that of channel stds (AdaIN's style loss)."""
    mean, std = mean_std(features)
    target_mean, target_std = mean_std(target)
    return F.mse_loss(mean, target_mean) + F.mse_loss(std, target_std)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels, both directions.

    Args:
        image: (B, C, H, W).

    Returns:
        scalar: mean (Δx)² + mean (Δy)².
    """
    image = image.float()
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.square().mean() + dy.square().mean()


def weighted_sum(
    per_layer: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float] | None = None
) -> torch.Tensor:
    """Σ_l w_l · loss_l over the layers of ``per_layer`` (weight 1 for unlisted layers)."""
    total = None
    for name, value in per_layer.items():
        term = value * (1.0 if layer_weights is None else layer_weights.get(name, 1.0))
        total = term if total is None else total + term
    if total is None:
        raise ConfigError("no layers given to the loss")
    return total


class _PerLayerLoss(nn.Module):
    """Σ_l w_l · loss_fn(features[l], targets[l]) over fixed per-layer targets."""

    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __init__(
        self, targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        self.targets = {name: t.detach() for name, t in targets.items()}
        self.layer_weights = dict(layer_weights or {})

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``features``: layer name -> (B, C, H, W); returns the weighted scalar loss."""
        return weighted_sum(
            {n: self.loss_fn(features[n], t) for n, t in self.targets.items()}, self.layer_weights
        )


class ContentLoss(_PerLayerLoss):
    """Feature MSE to fixed targets at several layers, with per-layer weights.

    Args:
        targets: layer name -> (B, C, H, W) target features.
        layer_weights: layer name -> weight (default 1 each).
    """

    loss_fn = staticmethod(content_loss)


class GramStyleLoss(_PerLayerLoss):
    """Gram-matrix style loss to fixed style features at several layers.

    Args:
        targets: layer name -> (B, C, H, W) style features (their Gram matrices
            are computed once here), or (B, C, C) Gram matrices if ``grams``.
        layer_weights: layer name -> weight (default 1 each).
        grams: whether ``targets`` already holds Gram matrices.
    """

    loss_fn = staticmethod(gram_loss)

    def __init__(
        self,
        targets: Mapping[str, torch.Tensor],
        layer_weights: Mapping[str, float] | None = None,
        *,
        grams: bool = False,
    ) -> None:
        target_grams = {
            n: (t.float() if grams else gram_matrix(t.detach())) for n, t in targets.items()
        }
        super().__init__(target_grams, layer_weights)


class MeanStdStyleLoss(_PerLayerLoss):
    """Mean/std style loss (AdaIN) to fixed style features at several layers."""

    loss_fn = staticmethod(mean_std_loss)


class TotalVariationLoss(nn.Module):
    """Module form of :func:`total_variation`."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image``: (B, C, H, W); returns a scalar."""
        return total_variation(image)
