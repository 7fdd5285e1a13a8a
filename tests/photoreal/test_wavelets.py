"""Haar pooling and unpooling (WCT²)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from photoreal_testing import reference_haar

from brushwork.errors import ConfigError
from brushwork.transfer.wavelets import (
    WavePool,
    WaveUnpool,
    haar_pool,
    haar_unpool,
    haar_unpool_bands,
    unpool_conv_cat5,
)


def test_pool_then_unpool_reconstructs_exactly() -> None:
    x = torch.randn(2, 5, 12, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    again = haar_unpool(*haar_pool(x))
    assert torch.allclose(again, x, atol=1e-12, rtol=0)


def test_bands_equal_the_reference_grouped_convolutions() -> None:
    """Slicing gives the numbers of the reference's stride-2 grouped (transposed) convs."""
    c = 6
    x = torch.randn(1, c, 8, 10, generator=torch.Generator().manual_seed(1))
    filters = reference_haar(c)
    bands = haar_pool(x)
    for band, f in zip(bands, filters, strict=True):
        assert torch.allclose(band, F.conv2d(x, f, stride=2, groups=c), atol=1e-6)
    unpooled = haar_unpool_bands(*bands)
    for band, up, f in zip(bands, unpooled, filters, strict=True):
        assert torch.allclose(up, F.conv_transpose2d(band, f, stride=2, groups=c), atol=1e-6)
    assert torch.allclose(sum(unpooled), x, atol=1e-5)


def test_modules_hold_the_filters_under_the_reference_keys() -> None:
    pool, unpool = WavePool(4), WaveUnpool(4, "cat5")
    assert sorted(pool.state_dict()) == sorted(f"{b}.weight" for b in ("LL", "LH", "HL", "HH"))
    for band, f in zip(("LL", "LH", "HL", "HH"), reference_haar(4), strict=True):
        assert torch.allclose(pool.state_dict()[f"{band}.weight"], f)
    x = torch.randn(1, 4, 6, 6)
    bands = pool(x)
    assert unpool(*bands, x).shape == (1, 20, 6, 6)
    assert torch.allclose(WaveUnpool(4, "sum")(*bands), x, atol=1e-5)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="even height and width"):
        haar_pool(torch.zeros(1, 1, 5, 4))
    with pytest.raises(ConfigError, match="needs the encoder's map"):
        WaveUnpool(2, "cat5")(*haar_pool(torch.zeros(1, 2, 4, 4)))
    with pytest.raises(ConfigError, match="cat5' or 'sum"):
        WaveUnpool(2, "mean")


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (2, 7)])
def test_fused_cat5_unpool_conv_equals_unpooling_then_convolving(h: int, w: int) -> None:
    """The phase-kernel form gives the numbers of cat + reflection pad + 3 × 3 conv."""
    gen = torch.Generator().manual_seed(h * 10 + w)
    c, cout = 4, 6
    bands = tuple(torch.randn(2, c, h, w, dtype=torch.float64, generator=gen) for _ in range(4))
    original = torch.randn(2, c, 2 * h, 2 * w, dtype=torch.float64, generator=gen)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5 * c, cout, 3).double()
    unpooled = WaveUnpool(c, "cat5").double()(*bands, original)
    expected = conv(F.pad(unpooled, (1, 1, 1, 1), mode="reflect"))
    got = unpool_conv_cat5(bands, original, conv)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-12, rtol=0)


def test_cat5_decoder_fused_path_equals_the_unfused_path() -> None:
    from brushwork.transfer.wct2 import WCT2Model

    torch.manual_seed(0)
    model = WCT2Model("cat5", widths=(8, 8, 8, 8, 8)).double().eval()
    x = torch.rand(1, 3, 24, 16, dtype=torch.float64)
    fused = model.reconstruct(x)
    skips: dict = {}
    y = x
    for stage in (1, 2, 3, 4):
        y = model.encoder.encode(y, skips, stage)

    def unpool(name: str, feats: torch.Tensor) -> torch.Tensor:
        k = name[-1]
        block = getattr(model.decoder, f"recon_block{k}")
        return block(feats, *skips[f"pool{k}"], skips[f"original{k}"])

    for stage in (4, 3, 2, 1):
        y = model.decoder.stage(y, stage, unpool)
    assert torch.allclose(fused, y, atol=1e-10, rtol=0)
