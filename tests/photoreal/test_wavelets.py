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
