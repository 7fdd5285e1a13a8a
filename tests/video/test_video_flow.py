"""Optical flow, warping and the forward–backward consistency mask."""

from __future__ import annotations

import pytest
import torch
from video_synth import moving_square_frames, shifted_pair, to_tensor

from brushwork.errors import ConfigError, ImageError
from brushwork.flow import (
    FLOW_METHODS,
    WarpingErrorMeter,
    consistency_mask,
    optical_flow,
    warp,
    warping_error,
)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_flow_recovers_a_known_translation(method: str) -> None:
    first, second = shifted_pair(dx=3, dy=-2)
    flow = optical_flow(first, second, method=method)
    assert flow.shape == (2, 64, 64) and flow.dtype == torch.float32
    inner = flow[:, 12:-12, 12:-12]
    # first(y, x) = second(y - 2, x + 3) by construction, so the flow is (dx, dy) = (3, -2).
    assert inner[0].median().item() == pytest.approx(3.0, abs=0.25)
    assert inner[1].median().item() == pytest.approx(-2.0, abs=0.25)


def test_warp_with_known_flow_reproduces_the_frame_away_from_borders() -> None:
    first, second = shifted_pair(dx=3, dy=-2)
    flow = torch.zeros(2, 64, 64)
    flow[0], flow[1] = 3.0, -2.0
    aligned = warp(second, flow)
    assert torch.allclose(aligned[:, 4:-4, 4:-4], first[:, 4:-4, 4:-4], atol=1e-5)
    # Batched input gives the same result per item.
    batch = warp(torch.stack([second, second]), flow)
    assert torch.allclose(batch[1], aligned)
    # Wrong flow is measurably wrong.
    assert not torch.allclose(
        warp(second, torch.zeros(2, 64, 64))[:, 4:-4, 4:-4], first[:, 4:-4, 4:-4], atol=1e-2
    )


def test_warp_with_estimated_flow_aligns_frames() -> None:
    first, second = shifted_pair(dx=2, dy=1)
    aligned = warp(second, optical_flow(first, second))
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert (aligned[inner] - first[inner]).abs().mean() < 0.02
    assert (second[inner] - first[inner]).abs().mean() > 0.05


def test_warp_is_differentiable_and_checks_shapes() -> None:
    image = torch.rand(3, 16, 16, requires_grad=True)
    warp(image, torch.full((2, 16, 16), 0.5)).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    with pytest.raises(ImageError, match="flow"):
        warp(image, torch.zeros(2, 8, 8))
    with pytest.raises(ImageError, match="flow"):
        warp(image, torch.zeros(3, 16, 16))


def test_consistency_mask_marks_occluded_pixels() -> None:
    frames = moving_square_frames(count=2, step=(4, 0))
    a, b = to_tensor(frames[0]), to_tensor(frames[1])
    forward = optical_flow(a, b)
    backward = optical_flow(b, a)
    mask = consistency_mask(forward, backward)
    assert mask.shape == (48, 64) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # The square covers x in [6, 26) at t=0 and [10, 30) at t=1, rows [8, 28): the
    # background strip x in [26, 30) of frame A is hidden by the square in frame B.
    occluded = mask[10:26, 26:30]
    background = mask[34:46, 36:60]
    inside_square = mask[12:24, 10:22]
    assert occluded.mean() < 0.5
    assert background.mean() > 0.9
    assert inside_square.mean() > 0.9


def test_consistency_mask_flags_flow_leaving_the_frame() -> None:
    forward = torch.zeros(2, 10, 10)
    forward[0] = 3.0
    backward = -forward
    mask = consistency_mask(forward, backward)
    assert mask[:, :7].min() == 1 and mask[:, 7:].max() == 0


def test_consistency_mask_rejects_inconsistent_flows() -> None:
    forward = torch.zeros(2, 10, 10)
    forward[0] = 2.0
    assert consistency_mask(forward, forward)[:, :5].max() == 0  # should cancel, does not


def test_flow_errors_are_clear() -> None:
    a = torch.rand(3, 16, 16)
    with pytest.raises(ConfigError, match="farneback"):
        optical_flow(a, a, method="raft")
    with pytest.raises(ImageError, match="same size"):
        optical_flow(a, torch.rand(3, 16, 20))
    with pytest.raises(ImageError, match=r"\(3, H, W\)"):
        optical_flow(a[None], a[None])


def test_warping_error_is_zero_for_a_perfectly_consistent_video() -> None:
    frames = [to_tensor(f) for f in moving_square_frames(count=4, step=(2, 1))]
    # The input itself is consistent with its own flow: low error.
    consistent = warping_error(frames, frames)
    noise = torch.Generator().manual_seed(0)
    shimmer = [
        f.clone().add_(torch.rand(f.shape, generator=noise) * 0.3).clamp(0, 1) for f in frames
    ]
    assert consistent < 0.002
    assert warping_error(frames, shimmer) > 10 * consistent
    meter = WarpingErrorMeter()
    assert meter.update(frames[0], frames[0]) is None
    assert meter.update(frames[1], frames[1]) is not None and meter.pairs == 1
    with pytest.raises(ImageError, match="fewer frames"):
        warping_error(frames, frames[:2])
