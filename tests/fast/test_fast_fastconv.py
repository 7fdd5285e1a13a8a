"""The space-to-depth form of Johnson's last convolution gives the same outputs."""

from __future__ import annotations

import pytest
import torch

from brushwork.transfer.fastconv import SpaceToDepthConv2d
from brushwork.transfer.johnson import TransformerNet
from brushwork.transfer.stylize import JohnsonStylizer


@pytest.mark.parametrize("block", [2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_blocked_convolution_equals_the_plain_one(block: int, channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 3, 9)
    x = torch.randn(2, 5, 24, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fast = SpaceToDepthConv2d(conv, block=block)
    with torch.no_grad():
        assert torch.allclose(fast(x), conv(x), atol=1e-5)
        odd = torch.randn(1, 5, 23, 30)  # not divisible: falls back to the plain layer
        assert torch.equal(fast(odd), conv(odd))


def test_blocked_convolution_refuses_what_it_cannot_stand_for() -> None:
    with pytest.raises(ValueError, match="stride-1"):
        SpaceToDepthConv2d(torch.nn.Conv2d(4, 3, 9, stride=2))
    with pytest.raises(ValueError, match="divisible"):
        SpaceToDepthConv2d(torch.nn.Conv2d(4, 3, 8))


def test_johnson_stylizer_uses_it_and_keeps_the_result() -> None:
    net = TransformerNet(generator=torch.Generator().manual_seed(0)).eval()
    stylizer = JohnsonStylizer(net, device=torch.device("cpu"))
    assert isinstance(stylizer.net.decoder[-1][1], SpaceToDepthConv2d)
    assert isinstance(net.decoder[-1][1], torch.nn.Conv2d)  # the caller's network is kept
    image = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(image).clamp(0, 1)
    assert torch.allclose(stylizer(image), expected, atol=1e-4)
