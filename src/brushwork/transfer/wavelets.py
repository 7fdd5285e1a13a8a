"""Haar wavelet pooling and unpooling (WCT², Yoo et al. 2019).

J. Yoo, Y. Uh, S. Chun, B. Kang, J.-W. Ha, *Photorealistic Style Transfer via Wavelet
Transforms*, ICCV 2019. Reference code: ``clovaai/WCT2`` (``model.py``: ``get_wav``,
``WavePool``, ``WaveUnpool``).

Pooling splits a (B, C, H, W) map into four (B, C, H/2, W/2) sub-bands with the 2 × 2
Haar filters (L = [1, 1]/√2, H = [−1, 1]/√2; first letter: along the rows' direction,
i.e. vertically, second: horizontally)::

    LL = LᵀL = ½[[ 1,  1], [ 1,  1]]      LH = LᵀH = ½[[−1,  1], [−1,  1]]
    HL = HᵀL = ½[[−1, −1], [ 1,  1]]      HH = HᵀH = ½[[ 1, −1], [−1,  1]]

The filters are orthonormal, so unpooling (the transposed convolutions, summed)
reconstructs the input exactly. They are computed here on 2 × 2 pixel blocks by slicing
(the same numbers as the reference's grouped stride-2 convolutions, which the tests
check against, and faster on CPU). :class:`WavePool` / :class:`WaveUnpool` keep the four
filters as buffers named like the reference's parameters (``pool1.LL.weight``,
``recon_block3.HH.weight``), so the published files load key for key.

Example::

    ll, lh, hl, hh = haar_pool(x)            # x: (B, C, H, W), H and W even
    x_again = haar_unpool(ll, lh, hl, hh)    # == x (up to rounding)
"""

from __future__ import annotations

import torch
from torch import nn

from brushwork.errors import ConfigError

#: Sub-band names in the reference's order.
BANDS = ("LL", "LH", "HL", "HH")


def haar_filters(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The four 2 × 2 Haar filters, (4, 2, 2), in the order of :data:`BANDS`."""
    low = torch.tensor([1.0, 1.0], dtype=torch.float64) / 2**0.5
    high = torch.tensor([-1.0, 1.0], dtype=torch.float64) / 2**0.5
    pairs = ((low, low), (low, high), (high, low), (high, high))
    return torch.stack([torch.outer(a, b) for a, b in pairs]).to(dtype)


def _check_even(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ConfigError(f"Haar pooling takes (B, C, H, W) maps, got {tuple(x.shape)}")
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ConfigError(
            f"Haar pooling needs an even height and width, got {x.shape[-2]}×{x.shape[-1]} "
            "(pad the image to a multiple of 8 first)"
        )


def haar_pool(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> LL, LH, HL, HH, each (B, C, H/2, W/2)."""
    _check_even(x)
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    top, bottom = a + b, c + d
    left_minus = b - a
    right_minus = d - c
    ll = (top + bottom) * 0.5
    lh = (left_minus + right_minus) * 0.5
    hl = (bottom - top) * 0.5
    hh = (right_minus - left_minus) * 0.5
    return ll, lh, hl, hh


def haar_unpool_bands(
    ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each band unpooled on its own (the reference's four transposed convolutions).

    Returns four (B, C, 2h, 2w) maps; their sum is :func:`haar_unpool`.
    """
    return tuple(_unpool_one(band, k) for k, band in enumerate((ll, lh, hl, hh)))  # type: ignore[return-value]


def _unpool_one(band: torch.Tensor, which: int) -> torch.Tensor:
    f = haar_filters(band.dtype).to(band.device)[which]
    b, c, h, w = band.shape
    # out[2y + i, 2x + j] = f[i, j] · band[y, x]
    blocks = band[:, :, :, None, :, None] * f[None, None, None, :, None, :]
    return blocks.reshape(b, c, 2 * h, 2 * w)


def haar_unpool(
    ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`haar_pool`: four (B, C, h, w) bands -> (B, C, 2h, 2w)."""
    shapes = {tuple(t.shape) for t in (ll, lh, hl, hh)}
    if len(shapes) != 1:
        raise ConfigError(f"the four Haar bands must have one shape, got {sorted(shapes)}")
    a = (ll - lh - hl + hh) * 0.5
    b = (ll + lh - hl - hh) * 0.5
    c = (ll - lh + hl - hh) * 0.5
    d = (ll + lh + hl + hh) * 0.5
    n, ch, h, w = ll.shape
    top = torch.stack((a, b), dim=-1).reshape(n, ch, h, 2 * w)
    bottom = torch.stack((c, d), dim=-1).reshape(n, ch, h, 2 * w)
    return torch.stack((top, bottom), dim=-2).reshape(n, ch, 2 * h, 2 * w)


class _Filter(nn.Module):
    """Holds one fixed (C, 1, 2, 2) Haar filter as ``weight`` (the reference's key)."""

    def __init__(self, channels: int, which: int) -> None:
        super().__init__()
        kernel = haar_filters()[which]
        self.register_buffer("weight", kernel.expand(channels, 1, 2, 2).clone())


class _HaarModule(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        for k, name in enumerate(BANDS):
            self.add_module(name, _Filter(channels, k))

    def check_filters(self, *, source: str) -> None:
        """ConfigError unless the loaded filters are the Haar filters (a file check)."""
        expected = haar_filters()
        for k, name in enumerate(BANDS):
            weight = getattr(self, name).weight.float().cpu()
            if not torch.allclose(weight, expected[k].expand_as(weight), atol=1e-6):
                from brushwork.errors import WeightsError

                raise WeightsError(
                    f"{source}: the {name} filter is not the Haar filter; this file is "
                    "not a WCT² model"
                )


class WavePool(_HaarModule):
    """Haar pooling of C channels: (B, C, H, W) -> LL, LH, HL, HH (B, C, H/2, W/2)."""

    def forward(self, x: torch.Tensor):
        """See :func:`haar_pool`."""
        return haar_pool(x)


class WaveUnpool(_HaarModule):
    """Haar unpooling as in WCT²'s decoder.

    ``mode="cat5"``: the four unpooled bands and the encoder's map before pooling
    concatenated, (B, 5C, H, W) (the published default); ``"sum"``: the inverse
    transform, (B, C, H, W).
    """

    def __init__(self, channels: int, mode: str = "cat5") -> None:
        super().__init__(channels)
        if mode not in ("cat5", "sum"):
            raise ConfigError(f"unpooling mode must be 'cat5' or 'sum', got {mode!r}")
        self.mode = mode

    def forward(
        self,
        ll: torch.Tensor,
        lh: torch.Tensor,
        hl: torch.Tensor,
        hh: torch.Tensor,
        original: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bands (B, C, h, w) (and, for cat5, the pre-pooling map (B, C, 2h, 2w))."""
        if self.mode == "sum":
            return haar_unpool(ll, lh, hl, hh)
        if original is None:
            raise ConfigError("cat5 unpooling needs the encoder's map before pooling")
        return torch.cat([*haar_unpool_bands(ll, lh, hl, hh), original], dim=1)
