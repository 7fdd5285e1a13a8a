"""Masks from constructed word maps: a partition of the image, the strongest word owns."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import ConfigError
from brushwork.regional.masks import (
    MaskSettings,
    compete,
    drop_small,
    feather,
    region_masks,
    with_given,
    word_masks,
)
from brushwork.regional.spec import parse_region_spec


def _block_maps(noise: float = 0.05) -> torch.Tensor:
    """(3, 16, 16) raw maps: word 0 strong in the left half, word 1 in the top right
    quarter, word 2 in the bottom right quarter except its last 4 columns (nobody there)."""
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 16, 16, generator=gen) * noise
    maps[0, :, :8] += 1.0
    maps[1, :8, 8:] += 1.0
    maps[2, 8:, 8:12] += 1.0
    return maps * 7.0  # raw maps are not normalised


@pytest.mark.parametrize("feather_share", [0.0, 0.02])
def test_weights_partition_the_image(feather_share):
    gen = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 8, 12, generator=gen)
    weights = word_masks(maps, (40, 60), MaskSettings(feather=feather_share, min_area=0.01))
    assert weights.shape == (5, 40, 60)
    assert (weights >= 0).all() and (weights <= 1 + 1e-6).all()
    torch.testing.assert_close(weights.sum(0), torch.ones(40, 60), atol=1e-5, rtol=0)


def test_the_dominant_word_owns_its_block_and_rest_takes_the_unclaimed():
    weights = word_masks(_block_maps(), (64, 64), MaskSettings(feather=0.0, min_area=0.0))
    hard = weights.argmax(0)
    # 4 px inside each block's edges (the bicubic resize blurs the boundaries)
    assert (hard[4:60, 4:28] == 0).all()
    assert (hard[4:28, 36:60] == 1).all()
    assert (hard[36:60, 36:44] == 2).all()
    assert (hard[36:60, 52:60] == 3).all()  # rest: no word's map reaches the threshold
    assert weights[0, 10:50, 8:24].min() > 0.95  # fairly hard at the default temperature


def test_temperature_sets_the_softness():
    heat = torch.tensor([[[0.9]], [[0.7]]])
    hard = compete(heat, temperature=0.02, threshold=0.4)[:, 0, 0]
    soft = compete(heat, temperature=1.0, threshold=0.4)[:, 0, 0]
    assert hard[0] > 0.99 and soft[0] < 0.5 and soft.argmax() == 0
    torch.testing.assert_close(soft.sum(), torch.tensor(1.0))


def test_small_pieces_go_to_the_neighbour():
    weights = torch.zeros(3, 20, 20)
    weights[1] = 0.9
    weights[2] = 0.1
    weights[:, 5:7, 5:7] = torch.tensor([0.8, 0.15, 0.05]).view(3, 1, 1)  # a 4-pixel blob
    cleaned = drop_small(weights, min_pixels=10)
    assert cleaned.argmax(0)[5:7, 5:7].eq(1).all()
    torch.testing.assert_close(cleaned.sum(0), torch.ones(20, 20))
    assert torch.equal(drop_small(weights, min_pixels=4), weights / weights.sum(0))


def test_feather_blurs_edges_and_keeps_the_sum():
    weights = torch.zeros(2, 16, 16)
    weights[0, :, :8] = 1
    weights[1, :, 8:] = 1
    soft = feather(weights, 2.0)
    torch.testing.assert_close(soft.sum(0), torch.ones(16, 16))
    assert 0.2 < soft[0, 8, 7] < 0.8 and soft[0, 8, 0] > 0.99


def test_edited_masks_are_kept_and_the_others_share_the_rest():
    computed = torch.tensor([0.5, 0.3, 0.2]).view(3, 1, 1).expand(3, 4, 4).clone()
    drawn = torch.zeros(4, 4)
    drawn[:, :2] = 1
    out = with_given(computed, {0: drawn})
    torch.testing.assert_close(out[0], drawn)
    torch.testing.assert_close(out.sum(0), torch.ones(4, 4))
    torch.testing.assert_close(out[1, :, 2:], torch.full((4, 2), 0.6))  # 0.3 / (0.3 + 0.2)


def test_words_sum_into_regions_and_rest_defaults_to_photo():
    weights = torch.softmax(torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(1)), 0)
    specs = [parse_region_spec("cow=a.png"), parse_region_spec("hill,sky=b.png")]
    regions = region_masks(weights, ["cow", "hill", "sky"], specs)
    assert regions.names == ["cow", "hill,sky", "rest"]
    assert regions.targets == ["a.png", "b.png", "photo"]
    torch.testing.assert_close(regions.weights[1], weights[1] + weights[2])
    torch.testing.assert_close(regions.keep(), weights[3])
    styles = regions.style_masks(["a.png", "b.png"])
    torch.testing.assert_close(styles.sum(0) + regions.keep(), torch.ones(6, 6))
    resized = regions.resized((12, 9))
    torch.testing.assert_close(resized.weights.sum(0), torch.ones(12, 9))


def test_bad_settings():
    maps = torch.rand(1, 4, 4)
    for bad in (dict(temperature=0), dict(threshold=1.5), dict(min_area=1), dict(feather=-1)):
        with pytest.raises(ConfigError, match="region"):
            word_masks(maps, (8, 8), MaskSettings(**bad))
