"""Label maps and region-restricted whitening–colouring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from photoreal_testing import save_png

from brushwork.errors import ConfigError, ImageError
from brushwork.transfer.regions import load_label_maps, region_statistics, region_whiten_colour
from brushwork.transfer.wct import covariance


def _features(mean: float, scale: float, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(3, 3, generator=gen)
    return mean + scale * mix @ torch.randn(3, n, generator=gen)


def test_each_region_takes_the_statistics_of_its_own_label_only() -> None:
    # Style 8×8: left half label 0 (mean +3), right half label 1 (mean −3, wider).
    style = torch.empty(3, 8, 8)
    style[:, :, :4] = _features(3.0, 1.0, 32, 0).reshape(3, 8, 4)
    style[:, :, 4:] = _features(-3.0, 2.0, 32, 1).reshape(3, 8, 4)
    style_labels = torch.zeros(8, 8, dtype=torch.long)
    style_labels[:, 4:] = 1
    # Content 8×8: top half label 0, bottom half label 1; a label-2 corner the style lacks.
    content = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(2))
    content_labels = torch.zeros(8, 8, dtype=torch.long)
    content_labels[4:] = 1
    stats = region_statistics(style, style_labels)
    out = region_whiten_colour(content, stats, content_labels)
    for label, rows, cols in ((0, slice(0, 4), slice(0, 4)), (1, slice(4, 8), slice(4, 8))):
        got = out[:, rows].reshape(3, -1)
        want = style[:, :, cols].reshape(3, -1)
        assert torch.allclose(got.mean(1), want.mean(1), atol=1e-4), label
        assert torch.allclose(covariance(got), covariance(want), rtol=1e-3, atol=1e-3), label
    # A content label missing in the style takes the whole style's statistics.
    content_labels[:2, :2] = 2
    out = region_whiten_colour(content, stats, content_labels)
    corner = out[:, :2, :2].reshape(3, -1)
    assert torch.allclose(corner.mean(1), style.reshape(3, -1).mean(1), atol=1e-4)


def test_colour_maps_are_matched_by_colour_and_edges_snapped(tmp_path: Path) -> None:
    content = np.zeros((20, 30, 3), np.uint8)
    content[:10] = (135, 206, 235)  # sky
    content[10:] = (90, 90, 90)  # road
    content[9, 5] = (120, 160, 180)  # one anti-aliased edge pixel (nearest: sky)
    style = np.zeros((40, 60, 3), np.uint8)
    style[:30] = (135, 206, 235)
    style[30:] = (90, 90, 90)
    maps = load_label_maps(
        save_png(content, tmp_path / "c.png"),
        save_png(style, tmp_path / "s.png"),
        content_size=(40, 60),
        style_size=(40, 60),
    )
    assert maps.content.shape == (40, 60) and maps.style.shape == (40, 60)
    assert len(torch.unique(maps.content)) == 2
    sky = maps.style[0, 0]
    assert (maps.content[:20] == sky).all() and (maps.content[20:] != sky).all()
    assert sorted(maps.names.values()) == ["#5a5a5a", "#87ceeb"]


def _grey(value_top: int, value_bottom: int, size=(16, 16)) -> np.ndarray:
    array = np.full(size, value_bottom, np.uint8)
    array[: size[0] // 2] = value_top
    return array


def test_bad_masks_are_clear_errors(tmp_path: Path) -> None:
    index = save_png(_grey(1, 2), tmp_path / "index.png")
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[:8] = (255, 0, 0)
    colour_png = save_png(colour, tmp_path / "colour.png")
    with pytest.raises(ConfigError, match=r"index map but the style .* colour map"):
        load_label_maps(index, colour_png)
    with pytest.raises(ConfigError, match="aspect ratio"):
        load_label_maps(index, index, content_size=(16, 32))
    other = save_png(_grey(5, 6), tmp_path / "other.png")
    with pytest.raises(ConfigError, match="have none in common"):
        load_label_maps(index, other)
    photo = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    photo_png = save_png(photo, tmp_path / "photo.png")
    with pytest.raises(ConfigError, match=r"is not a label map: .* flat colour regions"):
        load_label_maps(photo_png, photo_png)
    with pytest.raises(ImageError, match="does not exist"):
        load_label_maps(tmp_path / "missing.png", index)
