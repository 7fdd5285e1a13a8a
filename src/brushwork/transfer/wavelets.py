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


# --------------------------------------------------------------------------- fused cat5

# For output row 2y + p, the 3 × 3 window's rows u = −1, 0, 1 read the unpooled map's
# rows 2y + p + u, i.e. low-resolution row y + r − 1 + p (r = 0, 1) at filter phase i:
# _TAPS[p][r] lists the (u, i) pairs (the same for columns).
_TAPS = (
    (((-1, 1),), ((0, 0), (1, 1))),
    (((-1, 0), (0, 1)), ((1, 0),)),
)


def _phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, 4C, 3, 3) weights on the four unpooled bands -> (2, 2, Cout, 4C, 2, 2).

    ``out[p, q]`` is the 2 × 2 kernel on the low-resolution bands that gives the output
    pixels (2y + p, 2x + q) of unpooling followed by the 3 × 3 convolution.
    """
    cout, cin4 = weight.shape[:2]
    w = weight.reshape(cout, 4, cin4 // 4, 3, 3)
    f = haar_filters(weight.dtype).to(weight.device)  # (4, 2, 2)
    kernels = weight.new_zeros(2, 2, cout, 4, cin4 // 4, 2, 2)
    for p in range(2):
        for q in range(2):
            for r in range(2):
                for s in range(2):
                    for u, i in _TAPS[p][r]:
                        for v, j in _TAPS[q][s]:
                            kernels[p, q, :, :, :, r, s] += (
                                w[:, :, :, u + 1, v + 1] * f[None, :, None, i, j]
                            )
    return kernels.reshape(2, 2, cout, cin4, 2, 2)


def _unpooled(bands: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The four bands unpooled and concatenated: (B, C, h, w) each -> (B, 4C, 2h, 2w)."""
    return torch.cat(haar_unpool_bands(*bands), dim=1)


def unpool_conv_cat5(
    bands: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    original: torch.Tensor,
    conv: nn.Conv2d,
) -> torch.Tensor:
    """``conv(reflect_pad(cat(unpooled bands, original)))`` without forming the 5C map.

    WCT²'s cat5 decoder concatenates the four unpooled (B, C, 2h, 2w) bands and the
    encoder's map, then applies a 3 × 3 convolution with reflection padding. Unpooling
    puts each low-resolution value, times a ±½ filter, on a 2 × 2 block, so the
    convolution of the unpooled bands is, for each output phase (p, q), a 2 × 2
    convolution of the (B, 4C, h, w) bands: 128·Cout·C·h·w multiply-adds instead of
    288, and no 4C × 2h × 2w copies. Reflection at the outer rows and columns reads
    other phases than the zero-padded low-resolution map gives, so those one-pixel
    strips are recomputed from the unpooled border rows and columns.

    Args:
        bands: LL, LH, HL, HH, each (B, C, h, w).
        original: (B, C, 2h, 2w) encoder map before pooling.
        conv: the 3 × 3 convolution on 5C channels (unpadded; bias optional).

    Returns:
        (B, Cout, 2h, 2w), equal to the unfused computation up to rounding.
    """
    f = torch.nn.functional
    n, c, h, w = bands[0].shape
    on_bands, on_original = conv.weight[:, : 4 * c], conv.weight[:, 4 * c :]
    padded = f.pad(torch.cat(bands, dim=1), (1, 1, 1, 1))  # (B, 4C, h + 2, w + 2)
    # One convolution for the four phases: phase (p, q) is its output block p·2 + q,
    # shifted by (p, q).
    kernels = _phase_kernels(on_bands).flatten(0, 2)  # (4·Cout, 4C, 2, 2)
    every = f.conv2d(padded, kernels)  # (B, 4·Cout, h + 1, w + 1)
    cout = on_bands.shape[0]
    out = f.conv2d(f.pad(original, (1, 1, 1, 1), "reflect"), on_original, conv.bias)
    out = out.contiguous(memory_format=torch.channels_last)  # (the CPU fast path's already)
    # The outer rows and columns as reflection gives them (row −1 is row 1, and so on),
    # recomputed below: keep the original's share of them.
    edges = [out[:, :, :1].clone(), out[:, :, -1:].clone(), out[..., :1].clone()]
    edges.append(out[..., -1:].clone())
    # Add phase (p, q), block p·2 + q of ``every`` shifted by (p, q), onto out's pixels
    # (2i + p, 2j + q), in place: in channels-last memory, (B, h, 2, w, 2, Cout) views.
    out_pixels = out.permute(0, 2, 3, 1).view(n, h, 2, w, 2, cout)
    every_pixels = every.permute(0, 2, 3, 1)
    for p in (0, 1):
        for q in (0, 1):
            block = every_pixels[
                :, p : p + h, q : q + w, (2 * p + q) * cout : (2 * p + q + 1) * cout
            ]
            out_pixels[:, :, p, :, q] += block
    top = _unpooled(tuple(b[:, :, :1] for b in bands))  # unpooled rows 0, 1
    bottom = _unpooled(tuple(b[:, :, -1:] for b in bands))  # rows 2h − 2, 2h − 1
    left = _unpooled(tuple(b[..., :1] for b in bands))
    right = _unpooled(tuple(b[..., -1:] for b in bands))
    out[:, :, :1] = edges[0] + f.conv2d(
        f.pad(top[:, :, [1, 0, 1]], (1, 1, 0, 0), "reflect"), on_bands
    )
    out[:, :, -1:] = edges[1] + f.conv2d(
        f.pad(bottom[:, :, [0, 1, 0]], (1, 1, 0, 0), "reflect"), on_bands
    )
    out[..., :1] = edges[2] + f.conv2d(
        f.pad(left[..., [1, 0, 1]], (0, 0, 1, 1), "reflect"), on_bands
    )
    out[..., -1:] = edges[3] + f.conv2d(
        f.pad(right[..., [0, 1, 0]], (0, 0, 1, 1), "reflect"), on_bands
    )
    return out
