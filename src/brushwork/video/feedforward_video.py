"""Feed-forward video style transfer: a per-frame network plus flow-guided blending.

Each frame goes through a stylizer (any callable mapping ``(B, 3, H, W)`` images in
[0, 1] to stylised ``(B, 3, H, W)`` images: a Johnson network, AdaIN, ... from
:func:`brushwork.transfer.stylize.load_stylizer`). Run alone, small changes between
frames change the texture everywhere and the video shimmers. Here the previous
*output* is warped into the current frame with the optical flow of the inputs and
blended in where the flow is certain::

    out_t = s · c · warp(out_{t−1}) + (1 − s · c) · net(frame_t)

``c`` is the forward–backward certainty (0 at occlusions and motion boundaries,
where the network's output is used as it is) and ``s`` the ``stable`` strength:
0 is plain per-frame stylisation, towards 1 the texture sticks to the moving
surfaces (and is refreshed more slowly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from brushwork import image as imageops
from brushwork.devices import resolve_device
from brushwork.errors import ConfigError
from brushwork.flow import FLOW_METHODS, consistency_mask, optical_flow, warp

__all__ = ["FeedForwardVideo", "blend_with_previous"]


def blend_with_previous(
    stylised: torch.Tensor,
    frame: torch.Tensor,
    previous_frame: torch.Tensor,
    previous_output: torch.Tensor,
    *,
    stable: float = 0.8,
    flow: str = "dis",
) -> torch.Tensor:
    """Blend the warped previous output into ``stylised`` where the flow is certain.

    Args:
        stylised: ``(3, H, W)`` network output for ``frame``.
        frame: ``(3, H, W)`` input frame ``t``.
        previous_frame: ``(3, H, W)`` input frame ``t − 1``.
        previous_output: ``(3, H, W)`` final output of frame ``t − 1``.
        stable: blending strength ``s`` in [0, 1].
        flow: optical flow method.

    Returns:
        ``(3, H, W)`` blended frame in [0, 1].
    """
    forward = optical_flow(frame, previous_frame, method=flow)
    backward = optical_flow(previous_frame, frame, method=flow)
    certain = consistency_mask(forward, backward)
    warped = warp(previous_output.float(), forward)
    weight = stable * certain[None]
    return (weight * warped + (1 - weight) * stylised).clamp(0, 1)


class FeedForwardVideo:
    """Per-frame stylizer with flow-guided temporal blending.

    Args:
        stylizer: callable ``(B, 3, H, W) -> (B, 3, H', W')`` in [0, 1] (outputs of
            another size are resized back to the frame's).
        stable: blending strength in [0, 1] (0: per-frame, no blending).
        flow: optical flow method, ``"dis"`` or ``"farneback"``.
        device: where the stylizer runs (``"auto"``: CUDA/MPS if present). A module is
            not moved; pass one already on that device.
        description: extra settings identifying the stylizer (checked on resume).
    """

    history = 1

    def __init__(
        self,
        stylizer: Callable[[torch.Tensor], torch.Tensor],
        *,
        stable: float = 0.8,
        flow: str = "dis",
        device: str | torch.device = "cpu",
        description: dict[str, object] | None = None,
    ) -> None:
        if not math.isfinite(stable) or not 0 <= stable <= 1:
            raise ConfigError(f"--stable must be between 0 and 1, got {stable}")
        if flow not in FLOW_METHODS:
            raise ConfigError(f"--flow must be one of {', '.join(FLOW_METHODS)}; got {flow}")
        self.stylizer = stylizer
        self.stable = float(stable)
        self.flow = flow
        self.device = resolve_device(device)
        self.description = dict(description or {})

    def describe(self) -> dict[str, object]:
        """Settings that change the result (the render loop checks them on resume)."""
        return {
            "method": "feed-forward",
            "stable": self.stable,
            "flow": self.flow,
            **self.description,
        }

    @torch.no_grad()
    def stylise(
        self, frame: torch.Tensor, previous: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Stylise one frame; ``previous`` holds ``(input, output)`` of frame ``t − 1`` or is empty.

        Returns:
            ``(3, H, W)`` frame in [0, 1] on the CPU.
        """
        out = self.stylizer(frame[None].to(self.device))[0].float().cpu()
        if tuple(out.shape[-2:]) != tuple(frame.shape[-2:]):
            out = imageops.resize_to(out, *frame.shape[-2:])
        out = out.clamp(0, 1)
        if previous and self.stable > 0:
            prev_frame, prev_out = previous[0]
            out = blend_with_previous(
                out, frame, prev_frame, prev_out, stable=self.stable, flow=self.flow
            )
        return out
