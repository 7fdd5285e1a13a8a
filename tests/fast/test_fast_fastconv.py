"""The space-to-depth form of Johnson's last convolution and the phase form of its
upsampling layers give the same outputs as the layers they stand for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from brushwork.transfer.fastconv import SpaceToDepthConv2d, UpsampledConv2d
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
    assert [type(stylizer.net.decoder[i][0]) for i in (0, 1)] == [UpsampledConv2d] * 2
    assert isinstance(net.decoder[-1][1], torch.nn.Conv2d)  # the caller's network is kept
    image = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(image).clamp(0, 1)
    assert torch.allclose(stylizer(image), expected, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_phase_convolutions_equal_upsampling_then_convolving(channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, 3)
    x = torch.randn(2, 6, 7, 10)  # odd sizes: nothing needs to divide
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
    with torch.no_grad():
        expected = conv(F.pad(upsampled, (1, 1, 1, 1), mode="reflect"))
        out = UpsampledConv2d(conv)(x)
    assert out.shape == (2, 5, 14, 20)
    assert torch.allclose(out, expected, atol=1e-5)
    with torch.no_grad():  # and not by chance: another kernel gives another result
        conv.weight[0, 0, 0, 0] += 1
        assert not torch.allclose(UpsampledConv2d(conv)(x), expected, atol=1e-3)


def test_phase_convolution_refuses_what_it_cannot_stand_for() -> None:
    with pytest.raises(ValueError, match="3×3"):
        UpsampledConv2d(torch.nn.Conv2d(4, 3, 5))
    with pytest.raises(ValueError, match="pad the input"):
        UpsampledConv2d(torch.nn.Conv2d(4, 3, 3, padding=1))


def test_decoder_upsamplings_are_fused_and_the_result_kept() -> None:
    from brushwork.transfer.adain import AdaINConfig, AdaINModel
    from brushwork.transfer.fastconv import fuse_upsampling
    from brushwork.transfer.stylize import _fast

    torch.manual_seed(0)
    model = AdaINModel(AdaINConfig()).eval()
    fast = _fast(model, torch.device("cpu"), torch.float32)
    fused = [m for m in fast.decoder.modules() if isinstance(m, UpsampledConv2d)]
    assert len(fused) == 3  # one per nearest ×2 upsampling of the level-4 decoder
    assert not any(isinstance(m, UpsampledConv2d) for m in model.modules())  # a copy
    features = torch.rand(1, 512, 7, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.decoder(features)
        found = fast.decoder(features.contiguous(memory_format=torch.channels_last))
    assert found.shape == expected.shape == (1, 3, 56, 72)
    assert torch.allclose(found, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    assert fuse_upsampling(fast) == 0  # nothing left to fuse
    zero_padded = torch.nn.Sequential(
        torch.nn.Upsample(scale_factor=2.0, mode="nearest"), torch.nn.ZeroPad2d(1),
        torch.nn.Conv2d(4, 4, 3),
    )  # fmt: skip
    assert fuse_upsampling(zero_padded) == 0  # not equivalent there: left alone
