"""CFSD: 0 for identical images, growing with a constructed structure change; gray LPIPS."""

from __future__ import annotations

import itertools

import pytest
import torch

from brushwork.encoders import VGGEncoder
from brushwork.errors import ImageError
from brushwork.metrics.cfsd import cfsd
from brushwork.metrics.lpips import LPIPS, gray_lpips, luminance


@pytest.fixture(scope="module")
def vgg() -> VGGEncoder:
    """Random VGG-19, convolutions scaled ×2 so that relu3_1 has activations of tens, as
    the ImageNet VGG has (unit-scale random features make every softmax nearly flat)."""
    encoder = VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in encoder.features:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.mul_(2)
    return encoder


def _photo() -> torch.Tensor:
    """(1, 3, 64, 64): smooth blobs, so that blocks differ in structure."""
    g = torch.Generator().manual_seed(1)
    low = torch.rand(1, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(64, 64), mode="bicubic").clamp(0, 1)


def _scramble(image: torch.Tensor, blocks: int) -> torch.Tensor:
    """``image`` with the first ``blocks`` of its 16 × 16 blocks rotated by 90°."""
    out = image.clone()
    for k in range(blocks):
        y, x = 16 * (k // 4), 16 * (k % 4)
        out[..., y : y + 16, x : x + 16] = image[..., y : y + 16, x : x + 16].rot90(1, (-2, -1))
    return out


def test_zero_for_identical_images(vgg: VGGEncoder) -> None:
    photo = _photo()
    assert cfsd(vgg, photo, photo).abs().item() < 1e-5


def test_grows_with_the_structure_change(vgg: VGGEncoder) -> None:
    photo = _photo()
    values = [cfsd(vgg, _scramble(photo, k), photo).item() for k in (0, 2, 5, 9, 16)]
    assert values[0] < 1e-5 and values[1] > 1e-4
    assert all(b > a for a, b in itertools.pairwise(values)), values


def test_not_symmetric_kl_but_nonnegative_and_batched(vgg: VGGEncoder) -> None:
    photo = _photo()
    other = _scramble(photo, 8)
    both = cfsd(vgg, torch.cat([other, photo]), torch.cat([photo, photo]))
    assert both[0] > 0 and both[1].abs() < 1e-5
    torch.testing.assert_close(both[:1], cfsd(vgg, other, photo))


def test_sizes_must_agree(vgg: VGGEncoder) -> None:
    with pytest.raises(ImageError, match="one size"):
        cfsd(vgg, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 48))


def test_gray_lpips_ignores_colour_that_keeps_luminance() -> None:
    metric = LPIPS("alex", generator=torch.Generator().manual_seed(2))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    gray = luminance(image)
    assert gray_lpips(metric, image, gray).abs().item() < 1e-6
    assert metric(image, gray).item() > 1e-4
    shifted = torch.roll(image, 9, dims=-1)
    assert gray_lpips(metric, image, shifted).item() > 1e-4
