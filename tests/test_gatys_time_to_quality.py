"""Gatys time to quality: the L-BFGS acceptance rule and the pyramid against the textbook loop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from brushwork.image import resize_long_side
from brushwork.transfer import GatysSettings, gatys
from brushwork.transfer.gatys import _History, _initial_pixels, _Objective, _optimise

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


@pytest.mark.xfail(
    strict=True,
    reason="issue 21 target not met yet: at equal evaluations the default 60 % coarse share "
    "ends above the textbook loop (1.35e-3 vs 6.37e-4 at 128 px, 16 steps, random weights)",
)
def test_pyramid_reaches_the_textbook_loss_at_equal_evaluations(content_image, style_image, vgg19):
    from plain_gatys import plain_gatys, textbook_vgg19

    size, steps = 128, 16
    content = resize_long_side(content_image, size)
    style = resize_long_side(style_image, size)
    settings = GatysSettings(
        size=size, steps=steps, pyramid="on", pyramid_min_size=64, precision="fp32"
    )
    ours = gatys(content, [style], settings=settings, encoder=vgg19, device="cpu")
    assert len(ours.losses) == steps and len(ours.levels) == 2
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
        ours_loss = float(objective(ours.image[None])[0])
        plain_loss = float(objective(_image)[0])
    assert abs(plain_loss - min(plain_losses)) <= 1e-3 * plain_loss
    assert ours_loss <= plain_loss
