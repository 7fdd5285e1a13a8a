"""Warping error of a stylised video (Lai et al. 2018; Ruder et al. 2016 occlusions).

For each pair of consecutive frames t−1, t the optical flow of the *input* frames
(OpenCV DIS or Farnebäck, :mod:`brushwork.flow`) carries the stylised frame t onto
frame t−1's grid; the error is the squared difference to stylised frame t−1,
averaged over the colour channels and over the pixels that pass the
forward–backward consistency check (occlusions, motion boundaries and pixels
whose flow leaves the frame are left out). The video's warping error is the mean
over the pairs — the same definition as :func:`brushwork.flow.warping_error`,
with the per-pair values, given flows, and video files added here.

Example::

    frames = read_video_frames("in.mp4")          # (N, 3, H, W) in [0, 1]
    stylised = read_video_frames("out.mp4")
    result = warping_error(frames, stylised)       # WarpingResult(mean=..., per_pair=[...])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import ImageError
from brushwork.flow import pair_warping_error

__all__ = [
    "WarpingResult",
    "consistent_floor",
    "pair_warping_error",
    "read_video_frames",
    "warping_error",
]


@dataclass(frozen=True)
class WarpingResult:
    """Mean warping error and the error of each consecutive frame pair."""

    mean: float
    per_pair: list[float]


def warping_error(
    frames: Sequence[torch.Tensor] | torch.Tensor,
    stylised: Sequence[torch.Tensor] | torch.Tensor,
    *,
    method: str = "dis",
    flows: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> WarpingResult:
    """Warping error of ``stylised`` measured with the motion of ``frames``.

    Args:
        frames: N input frames, each (3, H, W) in [0, 1].
        stylised: N stylised frames of the same size.
        method: optical flow method, ``"dis"`` or ``"farneback"``.
        flows: optional known flows, one ``(forward, backward)`` pair per frame pair
            (forward: t−1 → t, backward: t → t−1); computed with ``method`` if omitted.

    Raises:
        ImageError: frame counts or sizes differ, or fewer than two frames.
    """
    from brushwork.flow import consistency_mask, optical_flow

    if len(frames) != len(stylised):
        raise ImageError(
            f"the input video has {len(frames)} frames but the result has {len(stylised)}; "
            "the warping error needs one result frame per input frame"
        )
    if len(frames) < 2:
        raise ImageError(f"the warping error needs at least 2 frames, got {len(frames)}")
    if tuple(frames[0].shape) != tuple(stylised[0].shape):
        raise ImageError(
            f"input frames are {tuple(frames[0].shape[-2:])} but result frames are "
            f"{tuple(stylised[0].shape[-2:])}; render the result at the input's size"
        )
    if flows is not None and len(flows) != len(frames) - 1:
        raise ImageError(f"expected {len(frames) - 1} flow pairs, got {len(flows)}")
    per_pair = []
    for t in range(1, len(frames)):
        if flows is None:
            forward = optical_flow(frames[t - 1], frames[t], method=method)
            backward = optical_flow(frames[t], frames[t - 1], method=method)
        else:
            forward, backward = flows[t - 1]
        mask = consistency_mask(forward, backward)
        per_pair.append(pair_warping_error(stylised[t - 1], stylised[t], forward, mask))
    return WarpingResult(float(np.mean(per_pair)), per_pair)


def consistent_floor(
    frames: Sequence[torch.Tensor] | torch.Tensor,
    sharpness: float,
    *,
    method: str = "dis",
    flows: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> float:
    """Warping error of the input clip itself, blurred to a given sharpness.

    The warping error is not blind to sharpness: the bilinear warp that carries frame t
    onto t−1 is itself a low-pass filter, so even a video that follows the motion
    exactly scores higher the more fine texture it holds (on a sharp panning texture:
    5.2e-4 at mean absolute gradient 16.5, 7.0e-5 at 7.6, 1.7e-5 at 3.5). Two
    stylised videos of different sharpness are compared fairly through their ratio to
    this floor: the error of the input frames (consistent with their own motion)
    Gaussian-blurred, σ found by bisection so that their mean
    :func:`~brushwork.video.detail.mean_abs_gradient` equals ``sharpness``, and
    rounded to 8 bits as saved frames are.

    Args:
        frames: N input frames, each (3, H, W) in [0, 1].
        sharpness: target mean absolute gradient (0–255 scale), e.g. the stylised
            video's mean over its frames; at or above the input's own, the input as is.
        method, flows: as in :func:`warping_error` (pass the flows to compute them once).
    """
    from brushwork.video.detail import blur_to_sharpness

    clip = torch.stack(list(frames)).float()
    blurred = blur_to_sharpness(clip, sharpness, quantise=True)
    return warping_error(frames, blurred, method=method, flows=flows).mean


def read_video_frames(
    path: str | os.PathLike[str], *, max_frames: int | None = None
) -> torch.Tensor:
    """Decode a video file (PyAV) into an (N, 3, H, W) float tensor in [0, 1].

    Raises:
        ImageError: the file is missing, not a video, or holds no frames.
    """
    import av

    file = Path(path).expanduser()
    if not file.is_file():
        raise ImageError(f"video {file} does not exist")
    frames = []
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                raise ImageError(f"{file} holds no video stream")
            for frame in container.decode(video=0):
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as error:
        raise ImageError(f"cannot read video {file}: {error}") from error
    if not frames:
        raise ImageError(f"video {file} holds no frames")
    return torch.stack(frames).permute(0, 3, 1, 2).float().div(255)
