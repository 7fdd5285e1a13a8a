"""Masks, IoU, baselines and Δ against hand-computed values and a per-pair loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brushwork.diffusion.maps import quantiles
from brushwork.experiments.grid import TEMPLATES, build_grid
from brushwork.experiments.metrics import (
    THRESHOLDS,
    _cuts,
    _order_statistics_cpu,
    _order_statistics_histogram,
    _pair_counts_bits,
    _pair_counts_matmul,
    loop_metrics,
    pair_counts,
    prompt_metrics,
    select_quantiles,
    word_heatmaps,
)

BELOW_07 = float(np.nextafter(np.float32(0.7), np.float32(0)))


def _maps(*rows):
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 2, 2)


def test_study_fixed_masks_ties_and_baselines_by_hand():
    maps = _maps(
        [0.9, 0.7, 0.1, 0.0],  # content
        [0.8, BELOW_07, 0.7, 0.0],  # style; the pixel just below 0.7 is outside at t = 0.7
        [0.0, 0.75, 0.0, 0.1],
    )
    out = prompt_metrics(maps, 0, 1, thresholds=[0.7, 0.1], modes=["fixed"])
    assert out["mode"] == ["fixed", "fixed"] and out["threshold"] == [0.7, 0.1]
    # t = 0.7: content {0,1}, style {0,2}, other {1}
    assert out["iou_cs"][0] == pytest.approx(1 / 3)
    assert out["area_content"][0] == out["area_style"][0] == 0.5
    assert (out["area_inter"][0], out["area_union"][0]) == (0.25, 0.75)
    # pairs (content, other): 1/2, (style, other): 0/3
    assert out["miou_b"][0] == pytest.approx(0.25) and out["miou_b_std"][0] == 0.25
    assert out["miou_b_inter"][0] == pytest.approx(1 / 8)
    assert out["miou_b_union"][0] == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert out["delta"][0] == pytest.approx(0.25 - 1 / 3)
    assert out["miou_bcs"][0] == pytest.approx(0.25)
    # t = 0.1 (ties at float32(0.1) are inside): content {0,1,2}, style {0,1,2}, other {1,3}
    assert out["iou_cs"][1] == 1.0
    assert out["miou_b"][1] == pytest.approx(0.25) and out["miou_b_std"][1] == 0.0
    assert out["delta"][1] == pytest.approx(-0.75)
    assert out["pairs_b"][0] == 2 and out["pairs_bcs"][0] == 2


def test_study_quantile_mode_and_empty_maps_by_hand():
    maps = _maps([0.0, 0.25, 0.5, 1.0], [1.0, 0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0])
    out = prompt_metrics(maps, 0, 1, thresholds=[0.5], modes=["quantile", "fixed"])
    # quantile 0.5 of (0, .25, .5, 1) = 0.375: {2,3} and {0,1}; the zero map → full mask
    q, f = 0, 1
    assert out["iou_cs"][q] == 0.0
    assert out["area_union"][q] == 1.0
    assert out["miou_b"][q] == 0.5 and out["miou_b_std"][q] == 0.0
    assert out["delta"][q] == 0.5
    # fixed 0.5: {2,3} and {0,1}; the zero map → empty mask, IoU 0 with it
    assert out["iou_cs"][f] == 0.0
    assert out["miou_b"][f] == 0.0 and out["delta"][f] == 0.0
    empty = prompt_metrics(torch.zeros(3, 2, 2), 0, 2, thresholds=[0.5], modes=["fixed"])
    assert empty["iou_cs"][0] == 0.0 and empty["area_union"][0] == 0.0  # empty union → 0
    assert not np.isnan(empty["miou_b"][0])


@pytest.mark.parametrize(
    ("template", "pairs", "pairs_cs"), [(0, 35, 14), (1, 14, 8), (2, 14, 8), (3, 9, 6)]
)
def test_study_pair_counts_per_template(template, pairs, pairs_cs):
    spec = build_grid(templates=[TEMPLATES[template]], contents=["cow"], styles=["Cubism"])[0]
    maps = torch.rand(len(spec.words), 8, 8, generator=torch.Generator().manual_seed(template))
    out = prompt_metrics(maps, spec.content_word, spec.style_word)
    assert set(out["pairs_b"]) == {pairs} and set(out["pairs_bcs"]) == {pairs_cs}
    assert len(out["iou_cs"]) == 18


def test_study_vectorised_pass_equals_per_pair_loop():
    generator = torch.Generator().manual_seed(3)
    maps = word_heatmaps(
        torch.rand(8, 12, 12, generator=generator), [[1], [2, 3], [4], [5], [6, 7]], (140, 140)
    )
    fast = prompt_metrics(maps, 1, 3)
    slow = loop_metrics(maps.numpy(), 1, 3)
    for key, values in slow.items():
        np.testing.assert_allclose(fast[key], values, rtol=0, atol=1e-12)
    counts = pair_counts(maps, THRESHOLDS)
    assert torch.equal(counts, counts.transpose(1, 2))
    # The GPU form (0/1 float masks and batched products) counts the same pixels.
    flat = maps.reshape(maps.shape[0], -1)
    cuts = _cuts(flat, THRESHOLDS, ("fixed", "quantile"))
    assert torch.equal(_pair_counts_matmul(flat, cuts), counts)
    odd = flat[:, :-3]  # a pixel count that is not a multiple of 64
    assert torch.equal(_pair_counts_bits(odd, cuts), _pair_counts_matmul(odd, cuts))
    assert torch.equal(_pair_counts_bits(odd, cuts, chunk=320), _pair_counts_matmul(odd, cuts))


def test_study_selected_quantiles_equal_a_full_sort():
    generator = torch.Generator().manual_seed(5)
    smooth = torch.rand(4, 200, 200, generator=generator).flatten(1)
    steps = (torch.rand(3, 200, 200, generator=generator) * 4).round().flatten(1) / 4  # ties
    constant = torch.full((2, 40_000), 0.3)
    for flat in (smooth, steps, constant):
        assert torch.equal(select_quantiles(flat, THRESHOLDS), quantiles(flat, THRESHOLDS))
        expected = np.quantile(flat.double().numpy(), THRESHOLDS, axis=1)
        np.testing.assert_allclose(select_quantiles(flat, THRESHOLDS).numpy(), expected, atol=1e-6)
        # The GPU path (histogram, then a sort of the few pixels in the needed bins).
        ranks = [0, 1, 777, 20_000, 20_001, flat.shape[1] - 1]
        assert torch.equal(
            _order_statistics_histogram(flat, ranks, bins=256), _order_statistics_cpu(flat, ranks)
        )
        assert torch.equal(_order_statistics_cpu(flat, ranks), flat.sort(dim=1).values[:, ranks])


def test_study_word_heatmaps_normalise_each_map():
    token_maps = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(1))
    token_maps[3] = 2.0  # a constant map becomes all zeros
    heat = word_heatmaps(token_maps, [[1, 2], [3]], (32, 48))
    assert heat.shape == (2, 32, 48) and heat.dtype == torch.float32
    assert heat[0].min() == 0 and heat[0].max() == pytest.approx(1, abs=1e-6)
    same_size = word_heatmaps(token_maps, [[1, 2], [3]], (8, 8))
    expected = (token_maps[1:3].mean(0) - token_maps[1:3].mean(0).min()) / (
        token_maps[1:3].mean(0).max() - token_maps[1:3].mean(0).min() + 1e-8
    )
    torch.testing.assert_close(same_size[0], expected)
    assert torch.count_nonzero(same_size[1]) == 0
