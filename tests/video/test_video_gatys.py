"""Gatys video (Ruder et al.) and the init_image / extra_loss additions to gatys()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from video_synth import moving_square_frames, to_tensor

from brushwork.errors import ConfigError
from brushwork.flow import optical_flow, warp
from brushwork.transfer.gatys import GatysSettings, gatys
from brushwork.video import GatysVideo, GatysVideoSettings, probe_video, render_video


def _settings(**kwargs) -> GatysSettings:
    base = dict(size=None, steps=4, pyramid="off", precision="fp32", style_weight=1e4)
    return GatysSettings(**{**base, **kwargs})


def test_gatys_starts_from_init_image(content_image, style_image, vgg19) -> None:
    init = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    zero = gatys(
        content_image, style_image, settings=_settings(steps=0), encoder=vgg19, init_image=init
    )
    assert torch.allclose(zero.image, init)  # no steps: the start is returned
    moved = gatys(content_image, style_image, settings=_settings(), encoder=vgg19, init_image=init)
    assert not torch.allclose(moved.image, init)


def test_gatys_adds_extra_loss(content_image, style_image, vgg19) -> None:
    target = torch.zeros(1, 3, 64, 64)
    calls = []

    def pull_to_black(pixels: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(pixels.shape))
        return 1e6 * (pixels - target).pow(2).mean()

    adam = _settings(optimizer="adam", learning_rate=0.05, steps=10)
    plain = gatys(content_image, style_image, settings=adam, encoder=vgg19)
    pulled = gatys(
        content_image, style_image, settings=adam, encoder=vgg19, extra_loss=pull_to_black
    )
    assert calls and calls[0] == (1, 3, 64, 64)
    assert pulled.image.mean() < plain.image.mean() - 0.1


def _video_settings(**kwargs) -> GatysVideoSettings:
    return GatysVideoSettings(image=_settings(steps=6), later_steps=3, **kwargs)


def test_temporal_loss_keeps_frames_consistent(style_image, vgg19) -> None:
    frames = [to_tensor(f) for f in moving_square_frames(count=2, step=(3, 1))]
    previous_out = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(2))
    strong = GatysVideo(
        style_image, settings=_video_settings(temporal_weight=1e5), encoder=vgg19, device="cpu"
    )
    none = GatysVideo(
        style_image,
        settings=_video_settings(temporal_weight=0.0, init="content"),
        encoder=vgg19,
        device="cpu",
    )
    warped = warp(previous_out, optical_flow(frames[1], frames[0]))
    inner = (slice(None), slice(10, 38), slice(36, 58))  # background, away from the square
    history = [(frames[0], previous_out)]
    with_loss = strong.stylise(frames[1], history)
    without = none.stylise(frames[1], history)
    assert (with_loss - warped)[inner].abs().mean() < 0.5 * (without - warped)[inner].abs().mean()


def test_long_term_weights_do_not_double_count(style_image, vgg19) -> None:
    frames = [to_tensor(f) for f in moving_square_frames(count=3, step=(2, 0))]
    method = GatysVideo(
        style_image, settings=_video_settings(long_term=(1, 2)), encoder=vgg19, device="cpu"
    )
    outs = [torch.rand(3, 48, 64) for _ in range(2)]
    targets, masks = method._temporal_targets(
        frames[2], [(frames[1], outs[1]), (frames[0], outs[0])]
    )
    assert len(targets) == 2 and method.history == 2
    assert float((masks[0] + masks[1]).max()) <= 1.0
    assert masks[1].sum() < masks[0].sum()


def test_settings_are_checked(style_image, vgg19) -> None:
    with pytest.raises(ConfigError, match="--long-term"):
        GatysVideo(style_image, settings=_video_settings(long_term=(0,)), encoder=vgg19)
    with pytest.raises(ConfigError, match="--later-steps"):
        GatysVideoSettings(later_steps=-1).validate()


def test_gatys_video_render(tmp_path: Path, moving_square_video: Path, style_image, vgg19) -> None:
    method = GatysVideo(style_image, settings=_video_settings(), encoder=vgg19, device="cpu")
    result = render_video(moving_square_video, tmp_path / "out.mp4", method, size=32)
    info = probe_video(result.output)
    assert info.frame_count == 8 and (info.width, info.height) == (32, 24)
    assert result.warping_error is not None
