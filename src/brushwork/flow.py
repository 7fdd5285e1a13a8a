"""Optical flow, backward warping, flow certainty and the warping error of a video.

Conventions (the same as OpenCV's): a flow field is a float32 tensor ``(2, H, W)``
whose channel 0 is the horizontal displacement ``dx`` and channel 1 the vertical
displacement ``dy``, in pixels. ``optical_flow(first, second)`` returns the flow
defined on the pixels of ``first``::

    first(y, x) ≈ second(y + dy, x + dx)

so ``warp(second, optical_flow(first, second))`` brings ``second`` onto the pixel
grid of ``first``. To carry a stylised frame ``t - 1`` forward to frame ``t`` (as the
video methods do), use the flow from frame ``t`` to frame ``t - 1``::

    flow = optical_flow(frame_t, frame_prev)
    warped = warp(stylised_prev, flow)                       # on frame t's grid
    certain = consistency_mask(flow, optical_flow(frame_prev, frame_t))

The certainty follows Sundaram et al. (ECCV 2010) as used by Ruder et al.
("Artistic style transfer for videos", GCPR 2016): a pixel is uncertain when the
forward and backward flows do not cancel (an occlusion), when it lies on a motion
boundary, or when its flow leaves the frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError, ImageError

__all__ = [
    "FLOW_METHODS",
    "WarpingErrorMeter",
    "consistency_mask",
    "optical_flow",
    "pair_warping_error",
    "warp",
    "warping_error",
]

#: Optical flow methods of :func:`optical_flow`, the first one the default.
FLOW_METHODS = ("dis", "farneback")


# --------------------------------------------------------------------------- flow


def optical_flow(first: torch.Tensor, second: torch.Tensor, *, method: str = "dis") -> torch.Tensor:
    """Dense optical flow from ``first`` to ``second`` (OpenCV, on 8-bit grey).

    Args:
        first: ``(3, H, W)`` (or ``(1, H, W)``) image in ``[0, 1]``.
        second: Image of the same shape.
        method: ``"dis"`` (DIS, medium preset: fast, the default) or ``"farneback"``.

    Returns:
        ``(2, H, W)`` float32 flow on ``first``'s grid, ``flow[:, y, x] = (dx, dy)``
        with ``first(y, x) ≈ second(y + dy, x + dx)``; on the CPU.

    Raises:
        ConfigError: Unknown ``method``.
        ImageError: Shapes differ or are not ``(C, H, W)`` images.

    Example:
        >>> flow = optical_flow(frame0, frame1)          # doctest: +SKIP
        >>> aligned = warp(frame1, flow)                 # ≈ frame0 where visible
    """
    if method not in FLOW_METHODS:
        raise ConfigError(
            f"unknown optical flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}"
        )
    _check_pair(first, second)
    a, b = _grey_uint8(first), _grey_uint8(second)
    import cv2

    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(
            a,
            b,
            None,
            pyr_scale=0.5,
            levels=5,
            winsize=15,
            iterations=3,
            poly_n=5,
            poly_sigma=1.2,
            flags=0,
        )
    return torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1).clone()


def _check_pair(first: torch.Tensor, second: torch.Tensor) -> None:
    for name, image in (("first", first), ("second", second)):
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ImageError(f"optical flow needs (3, H, W) images; {name} has shape {shape}")
    if first.shape != second.shape:
        raise ImageError(
            f"optical flow needs two frames of the same size; got {tuple(first.shape)} "
            f"and {tuple(second.shape)} (resize them to one size first)"
        )


def _grey_uint8(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W)`` uint8 luma (BT.601 weights)."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        image = (image * weights).sum(0)
    else:
        image = image[0]
    return (image * 255).round().to(torch.uint8).numpy()


# --------------------------------------------------------------------------- warping


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out(p) = image(p + flow(p))``, bilinear, border replicate.

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)`` tensor.
        flow: ``(2, H, W)`` flow (``dx``, ``dy`` in pixels) on the output grid; moved to
            ``image``'s device and dtype.

    Returns:
        Tensor of ``image``'s shape, dtype and device. Differentiable in ``image``.
    """
    if image.dim() not in (3, 4):
        raise ImageError(f"warp needs a (C, H, W) or (B, C, H, W) image; got {tuple(image.shape)}")
    _check_flow(flow, tuple(image.shape[-2:]), "flow")
    batched = image.dim() == 4
    batch = image if batched else image[None]
    h, w = batch.shape[-2:]
    grid = _sampling_grid(flow.to(device=batch.device, dtype=batch.dtype))
    grid = grid.expand(batch.shape[0], h, w, 2)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out if batched else out[0]


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """``(2, H, W)`` flow -> ``(1, H, W, 2)`` grid in grid_sample's [-1, 1] (align_corners)."""
    _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, w)
    x = xs + flow[0]
    y = ys + flow[1]
    gx = 2 * x / max(w - 1, 1) - 1
    gy = 2 * y / max(h - 1, 1) - 1
    return torch.stack((gx, gy), dim=-1)[None]


def _check_flow(flow: torch.Tensor, size: tuple[int, ...], name: str) -> None:
    if not isinstance(flow, torch.Tensor) or flow.dim() != 3 or flow.shape[0] != 2:
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ImageError(f"{name} must be a (2, H, W) flow field; got {shape}")
    if tuple(flow.shape[-2:]) != tuple(size):
        raise ImageError(
            f"{name} is {tuple(flow.shape[-2:])} but the image is {tuple(size)}; "
            "compute the flow at the image's size"
        )


# --------------------------------------------------------------------------- certainty


def consistency_mask(
    forward: torch.Tensor,
    backward: torch.Tensor,
    *,
    check_boundaries: bool = True,
) -> torch.Tensor:
    """Where a flow can be trusted: forward–backward check plus motion-boundary test.

    ``forward`` is the flow ``w`` from frame A to frame B (on A's grid), ``backward``
    the flow ``ŵ`` from B to A (on B's grid). With ``w̃(p) = ŵ(p + w(p))`` (the backward
    flow sampled where ``p`` lands), a pixel of A is uncertain when

    * ``|w + w̃|² > 0.01 (|w|² + |w̃|²) + 0.5`` — the flows do not cancel (occlusion);
    * ``|∇u|² + |∇v|² > 0.01 |w|² + 0.002`` — a motion boundary (``check_boundaries``);
    * ``p + w(p)`` falls outside frame B (it leaves the picture).

    Args:
        forward: ``(2, H, W)`` flow from A to B.
        backward: ``(2, H, W)`` flow from B to A.
        check_boundaries: Also mark motion boundaries as uncertain.

    Returns:
        ``(H, W)`` float32 mask on A's grid: 1 where certain, 0 where not.
    """
    _check_flow(forward, tuple(forward.shape[-2:]), "forward")
    _check_flow(backward, tuple(forward.shape[-2:]), "backward")
    w = forward.float()
    w_tilde = warp(backward.float().to(w.device), w)
    cancel = (w + w_tilde).pow(2).sum(0)
    magnitude = w.pow(2).sum(0) + w_tilde.pow(2).sum(0)
    ok = cancel <= 0.01 * magnitude + 0.5
    if check_boundaries:
        ok &= _flow_gradient_sq(w) <= 0.01 * w.pow(2).sum(0) + 0.002
    _, h, width = w.shape
    x = torch.arange(width, device=w.device).view(1, width) + w[0]
    y = torch.arange(h, device=w.device).view(h, 1) + w[1]
    ok &= (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= h - 1)
    return ok.float()


def _flow_gradient_sq(flow: torch.Tensor) -> torch.Tensor:
    """``|∇u|² + |∇v|²`` by forward differences (zero on the last row/column)."""
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[:, :, :-1] = flow[:, :, 1:] - flow[:, :, :-1]
    dy[:, :-1, :] = flow[:, 1:, :] - flow[:, :-1, :]
    return dx.pow(2).sum(0) + dy.pow(2).sum(0)


# --------------------------------------------------------------------------- warping error


def pair_warping_error(
    previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
) -> float:
    """Masked mean squared error between ``previous`` and ``current`` warped by ``flow``.

    The one definition of the warping error of a frame pair, used by the video
    renderer (:class:`WarpingErrorMeter`) and the evaluation metric
    (:mod:`brushwork.metrics.warping`).

    Args:
        previous: (C, H, W) stylised frame t−1.
        current: (C, H, W) stylised frame t.
        flow: (2, H, W) flow from input frame t−1 to input frame t (on t−1's grid).
        mask: (H, W) in [0, 1], 1 where the flow is trusted.
    """
    squared = (warp(current.float(), flow) - previous.float()).pow(2).mean(0)
    return float((squared * mask).sum() / mask.sum().clamp_min(1.0))


class WarpingErrorMeter:
    """Streaming warping error: feed ``(input frame, stylised frame)`` pairs in order.

    For each consecutive pair ``t - 1, t`` the stylised frame ``t`` is warped onto frame
    ``t - 1`` with the optical flow of the *input* frames, and the mean squared error
    to stylised frame ``t - 1`` is taken over pixels the forward–backward check marks
    certain (all channels). :attr:`value` is the average over frame pairs. Only the
    previous pair is held, so memory does not grow with the video.

    Args:
        method: Optical flow method (:data:`FLOW_METHODS`).
    """

    def __init__(self, *, method: str = "dis") -> None:
        if method not in FLOW_METHODS:
            raise ConfigError(
                f"unknown optical flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}"
            )
        self.method = method
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self._total = 0.0
        self.pairs = 0

    def update(self, frame: torch.Tensor, stylised: torch.Tensor) -> float | None:
        """Add the next frame; returns this pair's error (``None`` for the first frame).

        Args:
            frame: ``(3, H, W)`` input frame in [0, 1].
            stylised: ``(3, H, W)`` stylised frame of the same size.
        """
        frame = frame.detach().float().cpu()
        stylised = stylised.detach().float().cpu()
        if stylised.shape != frame.shape:
            raise ImageError(
                f"stylised frame {tuple(stylised.shape)} and input frame {tuple(frame.shape)} "
                "differ in size; the warping error needs them at one size"
            )
        error = None
        if self._previous is not None:
            prev_frame, prev_stylised = self._previous
            forward = optical_flow(prev_frame, frame, method=self.method)
            backward = optical_flow(frame, prev_frame, method=self.method)
            mask = consistency_mask(forward, backward)
            error = pair_warping_error(prev_stylised, stylised, forward, mask)
            self._total += error
            self.pairs += 1
        self._previous = (frame, stylised)
        return error

    @property
    def value(self) -> float:
        """Mean warping error over the pairs seen so far (0.0 for fewer than two frames)."""
        return self._total / self.pairs if self.pairs else 0.0


def warping_error(
    frames: Iterable[torch.Tensor],
    stylised: Iterable[torch.Tensor],
    *,
    method: str = "dis",
) -> float:
    """Warping error of a stylised video (lower is more temporally stable).

    Args:
        frames: Input frames, each ``(3, H, W)`` in [0, 1] (a ``(N, 3, H, W)`` tensor or
            any iterable; consumed lazily).
        stylised: Stylised frames in the same order and at the same size.
        method: Optical flow method used on the input frames.

    Returns:
        Mean over consecutive pairs of the masked squared error (see
        :class:`WarpingErrorMeter`); 0.0 for a video of fewer than two frames.
    """
    meter = WarpingErrorMeter(method=method)
    count = 0
    stylised_iter = iter(stylised)
    for frame in frames:
        try:
            out = next(stylised_iter)
        except StopIteration:
            raise ImageError(
                f"the stylised video has fewer frames ({count}) than the input video"
            ) from None
        meter.update(frame, out)
        count += 1
    if next(stylised_iter, None) is not None:
        raise ImageError(f"the stylised video has more frames than the input video ({count})")
    return meter.value
