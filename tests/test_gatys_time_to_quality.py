"""Gatys time to quality: the L-BFGS acceptance rule, the multiscale preconditioner, and
the default run and the pyramid against the textbook loop."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from brushwork.image import resize_long_side
from brushwork.transfer import GatysSettings, gatys
from brushwork.transfer.gatys import (
    MultiscalePreconditioner,
    _History,
    _initial_pixels,
    _Objective,
    _optimise,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def test_fp32_line_search_never_accepts_a_step_that_raises_the_loss(
    content_image, style_image, vgg19
):
    settings = GatysSettings(size=32, precision="fp32")
    content = resize_long_side(content_image, 32)[None]
    style = resize_long_side(style_image, 32)[None]
    objective = _Objective(
        vgg19, LAYERS, content=content, styles=[style], masks=None, settings=settings,
        dtype=torch.float32,
    )  # fmt: skip
    pixels = _initial_pixels(None, content, [style[0]], settings, torch.device("cpu"))
    history = _History(total_steps=12, callback=None, finish=lambda p: p[0])
    accepted: list[float] = []
    _pixels, best = _optimise(pixels, objective, 12, settings, history, accepted)
    assert len(history.losses) == 12 and accepted
    start = history.losses[0]
    for before, after in zip([start, *accepted], accepted, strict=False):
        assert after < before
    # Every accepted loss was evaluated, and the returned point is the best one.
    assert set(accepted) <= set(history.losses)
    assert best == min(history.losses)
    with torch.no_grad():
        assert float(objective(_pixels)[0]) == best


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (1, 3, 13, 20), (1, 1, 37, 9)])
def test_the_preconditioner_is_symmetric_positive_definite_and_averages_exact_blocks(shape):
    torch.manual_seed(0)
    precondition = MultiscalePreconditioner(shape, 2.0)
    size = torch.Size(shape).numel()
    assert precondition.blocks == [2**k for k in range(1, 6) if 2**k <= min(shape[-2:]) // 2]
    matrix = torch.stack([precondition(e) for e in torch.eye(size, dtype=torch.float64)])
    assert torch.allclose(matrix, matrix.T, atol=1e-12)
    # P = I + c Σ Π_k with Π_k projections: every eigenvalue lies in [1, 1 + c·levels].
    eigenvalues = torch.linalg.eigvalsh(matrix)
    assert eigenvalues.min() > 1 - 1e-9
    assert eigenvalues.max() < 1 + 2.0 * len(precondition.blocks) + 1e-9
    # One level alone: each pixel gets its (possibly partial) edge block's mean.
    image = torch.randn(shape, dtype=torch.float64)
    one = MultiscalePreconditioner(shape, 1.0)
    one.blocks = [4]
    spread = one(image.flatten()).view(shape) - image
    height, width = shape[-2:]
    for top in range(0, height, 4):
        for left in range(0, width, 4):
            block = image[..., top : top + 4, left : left + 4]
            mean = block.mean(dim=(-2, -1), keepdim=True).expand_as(block)
            assert torch.allclose(spread[..., top : top + 4, left : left + 4], mean)


def test_default_and_pyramid_reach_the_textbook_loss_at_equal_evaluations(
    content_image, style_image, vgg19
):
    """128 px, 100 fp32 evaluations each (random weights): the preconditioned default
    (full resolution at this size) and a 64 → 128 px pyramid both end at or below the
    textbook loop's loss; without the preconditioner the pyramid ends above it."""
    from plain_gatys import plain_gatys, textbook_vgg19

    size, steps = 128, 100
    content = resize_long_side(content_image, size)
    style = resize_long_side(style_image, size)
    settings = GatysSettings(size=size, steps=steps, precision="fp32")
    model, names = textbook_vgg19(vgg19.state_dict())
    layers = dict(content_layers=("relu4_2",), style_layers=tuple(settings.style_layers))
    _image, plain_losses = plain_gatys(
        model, names, content[None], style[None], steps=steps, content_weight=1.0,
        style_weight=settings.style_weight, **layers,
    )  # fmt: skip
    assert len(plain_losses) == steps
    # The same objective at full resolution in float32 (brushwork's own equals the textbook's).
    objective = _Objective(
        vgg19, LAYERS, content=content[None], styles=[style[None]], masks=None,
        settings=settings, dtype=torch.float32,
    )  # fmt: skip
    with torch.no_grad():
        plain_loss = float(objective(_image)[0])
    assert abs(plain_loss - min(plain_losses)) <= 1e-3 * plain_loss

    def final_loss(**changes) -> float:
        run = gatys(
            content, [style], settings=replace(settings, **changes), encoder=vgg19, device="cpu"
        )
        assert len(run.losses) == steps
        with torch.no_grad():
            return float(objective(run.image[None])[0])

    default = final_loss()
    pyramid = final_loss(pyramid="on", pyramid_min_size=64)
    pyramid_unpreconditioned = final_loss(pyramid="on", pyramid_min_size=64, precondition=0.0)
    assert default <= 0.95 * plain_loss
    assert pyramid <= plain_loss
    assert pyramid_unpreconditioned > pyramid


def test_a_saved_textbook_curve_of_another_size_is_refused(tmp_path):
    import argparse
    import json

    import gatys as bench  # benchmarks/gatys.py

    saved = tmp_path / "curve.json"
    saved.write_text(json.dumps({"size": 512, "plain_steps": 300, "plain_curve": [[1.0, 2.0]]}))
    args = argparse.Namespace(plain_curve=saved, size=256, plain_steps=300, device="cpu")
    with pytest.raises(SystemExit, match="512 px, 300 evaluations; this run is 256 px"):
        bench.run_time_to_quality(args)
