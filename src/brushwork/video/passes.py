"""The refining sweeps of the multi-pass mode (Ruder et al. 2016, §3.3), on disk.

The first pass is the ordinary forward frame loop of :mod:`brushwork.video.render`;
it leaves the stylised frames in the work folder and, for the sweeps that follow,
the sized input frames (``input_*.png``), because a backward sweep cannot stream
the decoder. Pass ``k ≥ 2`` runs backward when ``k`` is even and forward when it is
odd, and writes its frames to ``pass_<k>/``: frame ``t`` is refined from its
pass ``k − 1`` result, the neighbour behind it in this sweep (already refined in
pass ``k``) and the one ahead (from pass ``k − 1``). Every frame is written
atomically in sweep order, so the files present in a pass folder are the frames
done, and a resumed render continues exactly where it stopped. Memory holds five
frames whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch

__all__ = ["RefiningMethod", "frames_done_in_passes", "input_file", "run_refining_passes"]


class RefiningMethod(Protocol):
    """What the refining sweeps need of a method (see ``GatysVideo.refine``)."""

    @property
    def passes(self) -> int:
        """Sweeps over the video, the first (forward) one included."""
        ...

    def refine(
        self,
        frame: torch.Tensor,
        current: torch.Tensor,
        neighbours: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
    ) -> torch.Tensor:
        """Refine one ``(3, H, W)`` frame from its current result and [behind, ahead]."""
        ...


def frame_file(folder: Path, index: int) -> Path:
    """Where stylised frame ``index`` (0-based) of a pass is saved."""
    return folder / f"frame_{index + 1:06d}.png"


def input_file(folder: Path, index: int) -> Path:
    """Where the sized input frame ``index`` is kept for the refining sweeps."""
    return folder / f"input_{index + 1:06d}.png"


def pass_folder(folder: Path, number: int) -> Path:
    """The folder of pass ``number`` (pass 1 is the work folder itself)."""
    return folder if number == 1 else folder / f"pass_{number}"


def frames_done_in_passes(folder: Path, count: int, passes: int) -> int:
    """Frames already written by the refining sweeps (passes 2 .. ``passes``)."""
    done = 0
    for number in range(2, passes + 1):
        done += sum(frame_file(pass_folder(folder, number), i).is_file() for i in range(count))
    return done


def run_refining_passes(
    folder: Path,
    count: int,
    method: RefiningMethod,
    *,
    load: Callable[[Path], torch.Tensor],
    save: Callable[[torch.Tensor, Path], torch.Tensor],
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Run passes 2 .. ``method.passes`` over ``count`` frames; return the last pass's folder.

    Args:
        folder: The work folder, holding pass 1's frames and the input frames.
        count: Number of frames.
        method: A :class:`RefiningMethod`.
        load: Reads a saved frame as a ``(3, H, W)`` tensor.
        save: Writes a ``(3, H, W)`` frame atomically and returns it as saved (8-bit),
            so later frames see exactly what a resumed run would read back.
        progress: Called with the number of frames refined so far (all passes).
    """
    refined = 0
    for number in range(2, method.passes + 1):
        previous_pass, this_pass = pass_folder(folder, number - 1), pass_folder(folder, number)
        this_pass.mkdir(exist_ok=True)
        step = -1 if number % 2 == 0 else 1
        order = range(count - 1, -1, -1) if step == -1 else range(count)
        behind: tuple[torch.Tensor, torch.Tensor] | None = None
        for index in order:
            target = frame_file(this_pass, index)
            frame = load(input_file(folder, index))
            if target.is_file():
                behind = (frame, load(target))
                refined += 1
                continue
            ahead_index = index + step
            ahead = None
            if 0 <= ahead_index < count:
                ahead_frame = load(input_file(folder, ahead_index))
                ahead = (ahead_frame, load(frame_file(previous_pass, ahead_index)))
            current = load(frame_file(previous_pass, index))
            out = save(method.refine(frame, current, [behind, ahead]), target)
            behind = (frame, out)
            refined += 1
            if progress is not None:
                progress(refined)
    return pass_folder(folder, method.passes)
