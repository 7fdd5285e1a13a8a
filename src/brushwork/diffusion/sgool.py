"""Saliency-guided optimisation of diffusion latents (SGOOL, Wang et al. 2024) — our reading.

No code was released; this is our design from the paper's description
(see docs/sgool.md):

1. Sample with deterministic DDIM (η = 0) from an initial latent ``x_T``; the decoded
   image ``x̂₀`` is a differentiable function of ``x_T``. Each sampler step runs under
   gradient checkpointing (:func:`torch.utils.checkpoint.checkpoint`), so backward keeps
   one latent per step and recomputes one step at a time: peak memory does not grow
   with the number of steps (the paper uses an invertible sampler for the same end).
2. Loss = −cos(CLIP_img(x̂₀), CLIP_txt(prompt))
          − λ · cos(CLIP_img(salient_view(x̂₀)), CLIP_txt(prompt)).
   The saliency map of ``x̂₀`` is computed without gradient (held fixed within the
   iteration); the salient view is a square crop around the salient region (or the
   image masked by the map), differentiable with respect to the pixels.
3. Adam (or momentum SGD) on ``x_T`` (optionally also the prompt embedding) for K
   iterations; after each step ``x_T`` is put back on the Gaussian shell
   ``‖x_T‖ = √dim``.
4. The un-optimised image (sampled from the initial ``x_T``) is kept for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from brushwork.diffusion.editing import (
    TextCondition,
    _time_ids,
    decode_latents,
    encode_text,
    predict_noise,
)
from brushwork.diffusion.saliency import SaliencyDetector, SpectralResidualSaliency
from brushwork.errors import ConfigError, OptimisationError

__all__ = [
    "OPTIMISERS",
    "VIEWS",
    "SGOOLResult",
    "SGOOLSettings",
    "ddim_sample",
    "renormalise",
    "salient_box",
    "salient_view",
    "sgool",
]

OPTIMISERS = ("adam", "sgd")
VIEWS = ("crop", "mask")


@dataclass(frozen=True)
class SGOOLSettings:
    """SGOOL settings (our choices; the paper gives no numbers for most of them).

    Attributes:
        iterations: optimisation steps K (20).
        steps: DDIM sampling steps (50, the SD default).
        guidance_scale: classifier-free guidance of the sampler (7.5).
        saliency_weight: λ, weight of the salient-view term (1.0).
        learning_rate: of the optimiser (0.05).
        optimiser: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        optimise_text: also optimise the prompt embedding.
        view: ``"crop"`` (square crop around the salient region) or ``"mask"``
            (image × saliency map on grey).
        threshold: a pixel is salient when its map value is ≥ this (0.5).
        min_view: the crop side is at least this fraction of the short side (0.25).
        checkpoint: gradient checkpointing per sampler step (memory flat in ``steps``).
        seed: seeds the initial latent.
    """

    iterations: int = 20
    steps: int = 50
    guidance_scale: float = 7.5
    saliency_weight: float = 1.0
    learning_rate: float = 0.05
    optimiser: str = "adam"
    optimise_text: bool = False
    view: str = "crop"
    threshold: float = 0.5
    min_view: float = 0.25
    checkpoint: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.iterations < 0 or self.steps < 1:
            raise ConfigError("iterations must be ≥ 0 and steps ≥ 1")
        if self.optimiser not in OPTIMISERS:
            raise ConfigError(f"unknown optimiser '{self.optimiser}': choose adam or sgd")
        if self.view not in VIEWS:
            raise ConfigError(f"unknown salient view '{self.view}': choose crop or mask")
        if self.learning_rate <= 0 or self.saliency_weight < 0 or self.guidance_scale < 1:
            raise ConfigError("need learning_rate > 0, saliency_weight ≥ 0, guidance_scale ≥ 1")
        if not 0 < self.threshold <= 1 or not 0 < self.min_view <= 1:
            raise ConfigError("threshold and min_view must be in (0, 1]")


# --------------------------------------------------------------------------- sampling
def ddim_sample(
    pipe: Any,
    x_T: torch.Tensor,
    cond: TextCondition,
    uncond: TextCondition,
    *,
    steps: int,
    guidance_scale: float = 7.5,
    use_checkpoint: bool = True,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from ``x_T`` (1, 4, h, w) to ``x₀`` (1, 4, h, w), float32.

    Differentiable with respect to ``x_T`` and the embeddings; with ``use_checkpoint``
    each step's activations are recomputed in backward instead of stored.
    """
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    alphas = scheduler.alphas_cumprod.float()
    final = float(scheduler.final_alpha_cumprod)
    stride = scheduler.config.num_train_timesteps // steps
    h, w = x_T.shape[-2:]
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    time_ids = _time_ids(pipe, h * factor, w * factor)
    guided = guidance_scale != 1

    x = x_T.float() * float(scheduler.init_noise_sigma)
    for t in scheduler.timesteps:
        t = t.view(1)
        a_t = float(alphas[t])
        prev = int(t) - stride
        a_prev = float(alphas[prev]) if prev >= 0 else final

        def step(
            x: torch.Tensor,
            cond_embeds: torch.Tensor,
            t: torch.Tensor = t,
            a_t: float = a_t,
            a_prev: float = a_prev,
        ) -> torch.Tensor:
            c = TextCondition(cond_embeds, cond.pooled)
            if guided:
                out = predict_noise(pipe, torch.cat([x, x]), t, [uncond, c], time_ids=time_ids)
                eps = out[:1] + guidance_scale * (out[1:] - out[:1])
            else:
                eps = predict_noise(pipe, x, t, [c], time_ids=time_ids)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps

        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(step, x, cond.embeds, use_reentrant=False)
        else:
            x = step(x, cond.embeds)
    return x


def renormalise(latent: torch.Tensor) -> torch.Tensor:
    """Scale ``latent`` onto the Gaussian shell: ‖x‖ = √(number of elements)."""
    return latent * (math.sqrt(latent.numel()) / latent.norm().clamp_min(1e-12))


# --------------------------------------------------------------------------- salient view
def salient_box(
    saliency: torch.Tensor, *, threshold: float = 0.5, min_view: float = 0.25
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a square around the pixels with saliency ≥ threshold.

    Args:
        saliency: (1, H, W) or (H, W) map in [0, 1].
    """
    sal = saliency.reshape(saliency.shape[-2:])
    H, W = sal.shape
    ys, xs = torch.nonzero(sal >= threshold * float(sal.max()), as_tuple=True)
    if len(ys) == 0:
        return 0, 0, H, W
    top, bottom = int(ys.min()), int(ys.max()) + 1
    left, right = int(xs.min()), int(xs.max()) + 1
    side = max(bottom - top, right - left, math.ceil(min_view * min(H, W)))
    side = min(side, H, W)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    top = int(min(max(round(cy - side / 2), 0), H - side))
    left = int(min(max(round(cx - side / 2), 0), W - side))
    return top, left, top + side, left + side


def salient_view(
    image: torch.Tensor,
    saliency: torch.Tensor,
    *,
    view: str = "crop",
    threshold: float = 0.5,
    min_view: float = 0.25,
) -> torch.Tensor:
    """The salient part of ``image`` (1, 3, H, W); differentiable in ``image``.

    ``"crop"``: the square of :func:`salient_box`; ``"mask"``: ``image · s + 0.5 (1 − s)``.
    """
    if view == "mask":
        s = saliency.reshape(1, 1, *image.shape[-2:]).to(image)
        return image * s + 0.5 * (1 - s)
    top, left, bottom, right = salient_box(saliency, threshold=threshold, min_view=min_view)
    return image[..., top:bottom, left:right]


# --------------------------------------------------------------------------- the loop
@dataclass
class SGOOLResult:
    """Result of :func:`sgool`.

    Attributes:
        image: (3, H, W) optimised image in [0, 1].
        initial_image: (3, H, W) image of the initial latent (un-optimised), for comparison.
        saliency: (1, H, W) saliency map of ``image``.
        initial_saliency: (1, H, W) saliency map of ``initial_image``.
        latent: (1, 4, h, w) optimised x_T.
        losses: loss before each step, then the loss of the final image.
        scores: per evaluated image ``(whole cos, salient cos)``, aligned with ``losses``.
    """

    image: torch.Tensor
    initial_image: torch.Tensor
    saliency: torch.Tensor
    initial_saliency: torch.Tensor
    latent: torch.Tensor
    losses: list[float] = field(default_factory=list)
    scores: list[tuple[float, float]] = field(default_factory=list)


def _clip_image_embedding(clip: Any, images: torch.Tensor) -> torch.Tensor:
    """Unit CLIP embeddings of (B, 3, H, W) in [0, 1], with gradient."""
    out = clip.model.get_image_features(pixel_values=clip.preprocess(images))
    if not isinstance(out, torch.Tensor):
        out = out.pooler_output
    return F.normalize(out.float(), dim=-1)


def sgool(
    pipe: Any,
    prompt: str,
    clip: Any,
    *,
    settings: SGOOLSettings | None = None,
    detector: SaliencyDetector | None = None,
    height: int | None = None,
    width: int | None = None,
    latent: torch.Tensor | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> SGOOLResult:
    """Generate an image for ``prompt`` and optimise its initial latent with SGOOL.

    Args:
        pipe: a diffusers SD 1.x/2.x or SDXL pipeline.
        clip: a :class:`brushwork.metrics.clip.CLIPScorer` (model + tokenizer).
        detector: saliency detector (default: spectral residual).
        height, width: image size (default: the UNet's native size).
        latent: initial x_T (1, 4, h, w); default: seeded Gaussian.
        callback: ``callback(iteration, iterations, loss)`` after each step.
    """
    s = settings or SGOOLSettings()
    s.validate()
    detector = detector or SpectralResidualSaliency()
    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    clip.model.requires_grad_(False)
    device = pipe.unet.device
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    height = height or pipe.unet.config.sample_size * factor
    width = width or pipe.unet.config.sample_size * factor
    cond, uncond = encode_text(pipe, prompt)
    text = clip.text_embeddings([prompt])[0].to(device)
    if latent is None:
        shape = (1, pipe.unet.config.in_channels, height // factor, width // factor)
        latent = torch.randn(shape, generator=torch.Generator().manual_seed(s.seed))
    x_T = renormalise(latent.float().to(device)).requires_grad_(True)
    params: list[torch.Tensor] = [x_T]
    if s.optimise_text:
        cond = TextCondition(cond.embeds.detach().float().clone().requires_grad_(True), cond.pooled)
        params.append(cond.embeds)
    if s.optimiser == "adam":
        optimiser: torch.optim.Optimizer = torch.optim.Adam(params, lr=s.learning_rate)
    else:
        optimiser = torch.optim.SGD(params, lr=s.learning_rate, momentum=0.9)

    def evaluate(grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
        with torch.set_grad_enabled(grad):
            x0 = ddim_sample(
                pipe,
                x_T,
                cond,
                uncond,
                steps=s.steps,
                guidance_scale=s.guidance_scale,
                use_checkpoint=s.checkpoint,
            )
            image = decode_latents(pipe, x0)
            saliency = detector(image.detach())
            view = salient_view(
                image, saliency, view=s.view, threshold=s.threshold, min_view=s.min_view
            )
            whole = _clip_image_embedding(clip, image)[0] @ text
            salient = _clip_image_embedding(clip, view)[0] @ text
            loss = -whole - s.saliency_weight * salient
        return loss, image, saliency, (float(whole.detach()), float(salient.detach()))

    history: list[float] = []
    scores: list[tuple[float, float]] = []
    initial_image = initial_saliency = None
    for i in range(s.iterations):
        optimiser.zero_grad(set_to_none=True)
        loss, image, saliency, score = evaluate(True)
        if not torch.isfinite(loss):
            raise OptimisationError(
                f"the SGOOL loss became {float(loss.detach())} at iteration {i + 1}; try float32 "
                "weights (--dtype float32) or a lower learning rate"
            )
        if initial_image is None:
            initial_image, initial_saliency = image.detach()[0].cpu(), saliency[0].cpu()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            x_T.copy_(renormalise(x_T))
        if not torch.isfinite(x_T).all():
            raise OptimisationError(f"the latent became NaN/inf at iteration {i + 1}")
        history.append(float(loss.detach()))
        scores.append(score)
        if callback is not None:
            callback(i + 1, s.iterations, history[-1])
    loss, image, saliency, score = evaluate(False)
    if not torch.isfinite(image).all():
        raise OptimisationError("the generated image has NaNs; try float32 weights")
    history.append(float(loss))
    scores.append(score)
    if initial_image is None:
        initial_image, initial_saliency = image[0].cpu(), saliency[0].cpu()
    return SGOOLResult(
        image=image[0].cpu(),
        initial_image=initial_image,
        saliency=saliency[0].cpu(),
        initial_saliency=initial_saliency,  # type: ignore[arg-type]
        latent=x_T.detach(),
        losses=history,
        scores=scores,
    )
