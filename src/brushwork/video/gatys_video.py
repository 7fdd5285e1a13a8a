"""Gatys style transfer for videos with a temporal loss (Ruder, Dosovitskiy & Brox 2016).

"Artistic style transfer for videos" (GCPR 2016): each frame is optimised like a
still image (:func:`brushwork.transfer.gatys.gatys`) with two changes:

* it starts from the previous stylised frame warped into the current one by the
  optical flow of the input frames (frame 0 starts as a still image would);
* a temporal loss pulls it towards that warped frame wherever the flow is certain
  (forward–backward consistency, no motion boundary; :func:`brushwork.flow.consistency_mask`)::

      L_temporal = Σ_j  mean( c_j · (x − ω_j)² )

  ``ω_j`` is stylised frame ``t − j`` warped to frame ``t``. With the long-term
  mode (``long_term=(1, 2, 4)``, say) each older frame only counts where no nearer
  one was certain: ``c_j = max(c_j − Σ_{k<j} c_k, 0)`` — this keeps regions that
  were hidden for a few frames from changing their look when they reappear.

Later frames start close to their result, so they get fewer steps
(``later_steps``).

Keeping the frames sharp (``keep_detail``, on by default): every warp resamples
the previous result at the flow's sub-pixel positions, a small blur that the
temporal loss then holds on to, so over a clip the texture faded (mean absolute
gradient 11.9 → 4.7 in a user's short clip). With ``keep_detail`` each warped
previous frame gets its lost detail re-injected
(:func:`brushwork.video.detail.restore_detail`: its own high-pass band, scaled
back to the unwarped frame's sharpness), and frames after the first are optimised
at full resolution only (a coarse-to-fine pyramid would downsample the warped
start and upsample it again, blurring it every frame). Pixels that no previous
frame holds (uncovered at the edges or behind a moving object) start from the frame
itself, blurred to the previous result's sharpness, instead of the warp's smeared
border. ``keep_detail=False`` gives the earlier behaviour. See docs/video.md for the
measurements.

Multi-pass mode (the paper's §3.3, ``passes > 1``): after the first, forward pass
the video is swept again in alternating directions (backward, forward, ...). In a
pass, frame ``t`` starts from a blend of its current result and the neighbour
just refined in the sweep's direction, warped into it,
``x' = δ·c·ω + (1 − δ·c)·x`` (``δ = pass_blend``, ``c`` the certainty), and is
optimised for ``pass_steps`` steps with a temporal loss towards both neighbours
(the one behind from this pass, the one ahead from the previous pass). Early
frames then also learn from later ones, which removes the drift and the jumps a
single forward pass leaves where the flow is uncertain.

Ruder et al. use content 5, style 100 and temporal 1e3 on 0–255 pixels and Caffe
VGG features; converting to this package's scale (pixels in [0, 1], content weight
1, features of the ImageNet-normalised input) gives a temporal weight of about 4e3
(see docs/video.md).

The method is stateless: :meth:`GatysVideo.stylise` gets the current frame and the
previous ``(input, output)`` pairs, newest first, so the render loop can resume
from frames saved on disk and get the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from brushwork import image as imageops
from brushwork.encoders import VGGEncoder, load_vgg_encoder
from brushwork.errors import ConfigError
from brushwork.flow import FLOW_METHODS, consistency_mask, optical_flow, warp
from brushwork.transfer.gatys import GatysSettings, gatys
from brushwork.video.detail import blur_to_sharpness, mean_abs_gradient, restore_detail

__all__ = ["GatysVideo", "GatysVideoSettings"]


@dataclass
class GatysVideoSettings:
    """Settings of :class:`GatysVideo`.

    Attributes:
        image: settings of each frame's optimisation (``steps`` is used for the first
            frame; ``size`` is ignored: the render loop sizes the frames).
        later_steps: steps for every frame after the first (``None``: half of
            ``image.steps``, as the warped initialisation is already close).
        temporal_weight: weight of the temporal loss (≈ Ruder et al.'s 1e3 in this
            package's normalisation).
        long_term: which previous frames the temporal loss uses, e.g. ``(1,)``
            (short-term, the paper's default) or ``(1, 2, 4)`` (long-term).
        flow: optical flow method, ``"dis"`` or ``"farneback"``.
        init: start later frames from the ``"warped"`` previous result (the paper)
            or from the ``"content"`` frame.
        passes: sweeps over the video; 1 is the single forward pass, more adds the
            multi-pass refinement in alternating directions.
        pass_steps: steps per frame in each refining pass (``None``: as
            :attr:`steps_after_first`).
        pass_blend: δ, how much of the warped neighbour a refining pass starts from
            where the flow is certain (the paper uses 0.5).
        keep_detail: re-inject the detail each warp loses, start uncovered pixels from
            the frame and skip the pyramid for frames after the first (``False``: the
            earlier, blurring behaviour).
    """

    image: GatysSettings = field(default_factory=lambda: GatysSettings(size=None))
    later_steps: int | None = None
    temporal_weight: float = 4e3
    long_term: tuple[int, ...] = (1,)
    flow: str = "dis"
    init: str = "warped"
    passes: int = 1
    pass_steps: int | None = None
    pass_blend: float = 0.5
    keep_detail: bool = True

    def validate(self) -> None:
        """Raise ConfigError for values that cannot work."""
        if self.later_steps is not None and self.later_steps < 0:
            raise ConfigError(f"--later-steps must be 0 or more, got {self.later_steps}")
        if not math.isfinite(self.temporal_weight) or self.temporal_weight < 0:
            raise ConfigError(
                f"--temporal-weight must be a non-negative number, got {self.temporal_weight}"
            )
        if not self.long_term or any(j < 1 for j in self.long_term):
            raise ConfigError(
                f"--long-term needs frame offsets of 1 or more, e.g. 1,2,4; got {self.long_term}"
            )
        if len(set(self.long_term)) != len(self.long_term):
            raise ConfigError(f"--long-term offsets must differ; got {self.long_term}")
        if self.flow not in FLOW_METHODS:
            raise ConfigError(f"--flow must be one of {', '.join(FLOW_METHODS)}; got {self.flow}")
        if self.init not in ("warped", "content"):
            raise ConfigError(f"init must be 'warped' or 'content'; got {self.init!r}")
        if self.passes < 1:
            raise ConfigError(f"--passes must be 1 or more, got {self.passes}")
        if self.pass_steps is not None and self.pass_steps < 0:
            raise ConfigError(f"--pass-steps must be 0 or more, got {self.pass_steps}")
        if not 0.0 <= self.pass_blend <= 1.0:
            raise ConfigError(f"--pass-blend must be between 0 and 1, got {self.pass_blend}")

    @property
    def steps_after_first(self) -> int:
        """Steps of frames after the first."""
        return self.image.steps // 2 if self.later_steps is None else self.later_steps

    @property
    def steps_per_pass(self) -> int:
        """Steps of each frame in a refining pass (passes after the first)."""
        return self.steps_after_first if self.pass_steps is None else self.pass_steps


class GatysVideo:
    """Stylise video frames one by one with Gatys + Ruder et al.'s temporal loss.

    Args:
        styles: one ``(3, H, W)`` style image or a sequence of them.
        settings: :class:`GatysVideoSettings`.
        encoder: VGG encoder (default: the pretrained one of ``settings.image.encoder``).
        weights: path of the encoder's weight file (overrides the lookup).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... .

    Example::

        method = GatysVideo(load_image("starry.jpg"))
        out0 = method.stylise(frame0, [])
        out1 = method.stylise(frame1, [(frame0, out0)])
    """

    def __init__(
        self,
        styles: torch.Tensor | Sequence[torch.Tensor],
        *,
        settings: GatysVideoSettings | None = None,
        encoder: VGGEncoder | None = None,
        weights: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.settings = settings or GatysVideoSettings()
        self.settings.validate()
        self.settings.image.validate()
        self.styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        if encoder is None:
            image = self.settings.image
            encoder = load_vgg_encoder(image.encoder, weights=weights, pooling=image.pooling)
        self.encoder = encoder
        self.device = device

    @property
    def history(self) -> int:
        """How many previous (input, output) pairs :meth:`stylise` uses."""
        return max(self.settings.long_term)

    @property
    def passes(self) -> int:
        """Sweeps over the video (1: one forward pass; see :meth:`refine`)."""
        return self.settings.passes

    def describe(self) -> dict[str, object]:
        """Settings that change the result (the render loop checks them on resume)."""
        s = self.settings
        return {
            "method": "gatys",
            "steps": s.image.steps,
            "later_steps": s.steps_after_first,
            "temporal_weight": s.temporal_weight,
            "long_term": list(s.long_term),
            "flow": s.flow,
            "content_weight": s.image.content_weight,
            "style_weight": s.image.style_weight,
            "seed": s.image.seed,
            "keep_detail": s.keep_detail,
            **(
                {"passes": s.passes, "pass_steps": s.steps_per_pass, "pass_blend": s.pass_blend}
                if s.passes > 1
                else {}
            ),
        }

    def stylise(
        self, frame: torch.Tensor, previous: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Stylise one frame.

        Args:
            frame: ``(3, H, W)`` input frame in [0, 1].
            previous: ``(input frame, stylised frame)`` pairs of the frames before,
                newest first (``previous[0]`` is frame ``t − 1``); may be shorter
                than :attr:`history` at the start, empty for the first frame.

        Returns:
            ``(3, H, W)`` stylised frame in [0, 1], on the CPU.
        """
        s = self.settings
        image_settings = replace(s.image, size=None)
        if not previous:
            return self._run(frame, image_settings, None, None)
        targets, masks = self._temporal_targets(frame, previous)
        if image_settings.preserve_color == "luminance":
            targets = [imageops.luminance(t).expand(3, -1, -1) for t in targets]
        init = targets[0] if s.init == "warped" else None
        certain = torch.stack(masks).sum(0).clamp(max=1)[None]
        if init is not None and s.keep_detail and bool((certain < 1).any()):
            # Where no previous frame is certain (uncovered at the edges, occluded), the
            # warp only smears border pixels into streaks: start from the frame itself
            # there, blurred to the previous result's sharpness (the later steps then
            # stylise it; unblurred, the new pixels stayed sharper than the rest).
            fresh = blur_to_sharpness(frame, mean_abs_gradient(previous[0][1]))
            if image_settings.preserve_color == "luminance":  # as the targets above
                fresh = imageops.luminance(fresh).expand(3, -1, -1)
            init = certain * init + (1 - certain) * fresh
        image_settings = replace(image_settings, steps=s.steps_after_first, **self._later())
        loss = _TemporalLoss(targets, masks, s.temporal_weight)
        return self._run(frame, image_settings, init, loss)

    def refine(
        self,
        frame: torch.Tensor,
        current: torch.Tensor,
        neighbours: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
    ) -> torch.Tensor:
        """One frame of a refining pass of the multi-pass mode.

        Args:
            frame: ``(3, H, W)`` input frame in [0, 1].
            current: ``(3, H, W)`` its stylised result from the previous pass.
            neighbours: ``[behind, ahead]``: the ``(input, stylised)`` pair of the
                neighbour refined just before in this sweep's direction, then the one
                ahead (its previous-pass result); either is ``None`` at the ends.

        Returns:
            ``(3, H, W)`` refined frame in [0, 1], on the CPU.
        """
        s = self.settings
        image_settings = replace(s.image, size=None, steps=s.steps_per_pass, **self._later())
        targets, masks = [], []
        for pair in neighbours:
            if pair is None:
                targets.append(None)
                masks.append(None)
                continue
            target, certain = self._warped_neighbour(frame, *pair)
            targets.append(target)
            masks.append(certain)
        init = current.float()
        if targets[0] is not None:
            weight = s.pass_blend * masks[0][None]
            init = weight * targets[0] + (1 - weight) * init
        kept = [(t, m) for t, m in zip(targets, masks, strict=True) if t is not None]
        if not kept:
            return self._run(frame, image_settings, init, None)
        if image_settings.preserve_color == "luminance":
            kept = [(imageops.luminance(t).expand(3, -1, -1), m) for t, m in kept]
        loss = _TemporalLoss([t for t, _ in kept], [m for _, m in kept], s.temporal_weight)
        return self._run(frame, image_settings, init, loss)

    def _warped_neighbour(
        self, frame: torch.Tensor, other_frame: torch.Tensor, other_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``other_out`` warped into ``frame`` and the ``(H, W)`` certainty of that warp."""
        flow = optical_flow(frame, other_frame, method=self.settings.flow)
        back = optical_flow(other_frame, frame, method=self.settings.flow)
        warped = warp(other_out.float(), flow).clamp(0, 1)
        if self.settings.keep_detail:
            warped = restore_detail(warped, other_out)
        return warped, consistency_mask(flow, back)

    def _later(self) -> dict[str, str]:
        """Setting changes for frames that start from a warped result."""
        return {"pyramid": "off"} if self.settings.keep_detail else {}

    def _run(self, frame, image_settings, init, loss) -> torch.Tensor:
        result = gatys(
            frame,
            self.styles,
            settings=image_settings,
            encoder=self.encoder,
            device=self.device,
            init_image=init,
            extra_loss=loss,
        )
        return result.image

    def _temporal_targets(
        self, frame: torch.Tensor, previous: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Warped previous outputs ω_j and their long-term certainty weights c_j."""
        targets, masks = [], []
        covered = torch.zeros(frame.shape[-2:])
        for offset in sorted(self.settings.long_term):
            if offset > len(previous):
                break
            target, certain = self._warped_neighbour(frame, *previous[offset - 1])
            targets.append(target)
            masks.append((certain - covered).clamp_min(0))
            covered = (covered + certain).clamp(max=1)
        return targets, masks


class _TemporalLoss:
    """``weight · Σ_j mean(c_j · (x − ω_j)²)`` for pixels ``x`` of shape (1, 3, h, w)."""

    def __init__(self, targets: list[torch.Tensor], masks: list[torch.Tensor], weight: float):
        self.targets = [t[None] for t in targets]
        self.masks = [m[None, None] for m in masks]
        self.weight = weight
        self._cache: dict[tuple[int, int, str], tuple[list, list]] = {}

    def _at(self, size: tuple[int, int], device: torch.device):
        key = (*size, str(device))
        if key not in self._cache:
            targets, masks = self.targets, self.masks
            if tuple(targets[0].shape[-2:]) != size:
                targets = [F.interpolate(t, size=size, mode="bilinear") for t in targets]
                masks = [F.interpolate(m, size=size, mode="bilinear") for m in masks]
            self._cache[key] = ([t.to(device) for t in targets], [m.to(device) for m in masks])
        return self._cache[key]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        targets, masks = self._at(tuple(pixels.shape[-2:]), pixels.device)
        total = pixels.new_zeros(())
        for target, mask in zip(targets, masks, strict=True):
            total = total + (mask * (pixels.float() - target).pow(2)).mean()
        return self.weight * total


def estimate_memory(
    frame_size: tuple[int, int],
    settings: GatysVideoSettings,
    *,
    style_sizes: Sequence[tuple[int, int]] = (),
) -> int:
    """A rough estimate of the bytes one frame's optimisation needs.

    :func:`brushwork.transfer.gatys.estimate_memory` at the frame size, plus the
    temporal loss's inputs: for each previous frame used (``max(long_term)``), the
    frame, its stylised result, the warped result, the flow (2 channels) and the
    occlusion weights, float32: ``max(long_term) · 12 · H · W · 4`` bytes.
    """
    from brushwork.transfer.gatys import estimate_memory as image_memory

    height, width = frame_size
    single = image_memory(frame_size, replace(settings.image, size=None), style_sizes=style_sizes)
    return int(single + max(settings.long_term) * 12 * height * width * 4)
