"""Deterministic DDIM inversion of an image, and its reconstruction (SD 1.x/2.x/XL UNets).

The timesteps and noise schedule are those of a :class:`diffusers.DDIMScheduler` made
from the pipeline's own scheduler config (``clip_sample`` off; prediction type, timestep
spacing, ``steps_offset`` and ``set_alpha_to_one`` kept), so inversion and
reconstruction use exactly the schedule ``pipe(...)`` would use with DDIM.

With the scheduler's timesteps ``τ_0 > τ_1 > … > τ_{N-1}`` and ``ᾱ`` its cumulative
alphas (``ᾱ(τ_N)`` := the scheduler's final alpha, where a denoising run ends)::

    ddim_step(x, ε, a → b) = √b · (x − √(1−a)·ε) / √a + √(1−b) · ε

    denoising step j:  x_{j+1} = ddim_step(x_j, ε(x_j, τ_j), ᾱ(τ_j) → ᾱ(τ_{j+1}))
    inversion step j:  x_j     = ddim_step(x_{j+1}, ε(x_{j+1}, τ_j), ᾱ(τ_{j+1}) → ᾱ(τ_j))

from ``x_N = z_0`` (the VAE latent of the image) up to ``x_0``. Inversion step j calls the
UNet with the timestep of denoising step j on the latent one step below (the usual
approximation ``ε(x_{j+1}, τ_j) ≈ ε(x_j, τ_j)``, as diffusers' ``DDIMInverseScheduler``,
null-text inversion and StyleID's diffusers code), so one inversion costs exactly ``N``
UNet calls, and a hook told "step j" sees the features that step j of a denoising run
will want (:mod:`brushwork.diffusion.styleid` uses this). ε is the UNet's noise
prediction with optional classifier-free guidance; v-prediction models (SD 2.x at 768)
are converted with the alpha of the timestep the UNet was given, ε = √ᾱ(τ)·v + √(1−ᾱ(τ))·x,
so the approximation is on ε in both directions and a latent-independent ε inverts
exactly (diffusers' inverse scheduler converts v with the lower step's alpha instead;
for ε-models the two are the same steps). Everything is float32 whatever the UNet's dtype.

Example::

    inversion = ddim_invert(pipe, image, steps=50)          # image (3, H, W) in [0, 1]
    z0 = ddim_reconstruct(pipe, inversion.noise, steps=50)  # ≈ inversion.clean
    trajectory = inversion.latents[:, 0]                    # (51, 4, h, w): [j] enters step j
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from brushwork.errors import ConfigError

__all__ = [
    "InversionResult",
    "Schedule",
    "ddim_inversion_trajectory",
    "ddim_invert",
    "ddim_reconstruct",
    "ddim_scheduler",
    "ddim_step",
    "make_schedule",
]

#: ``callback(done, total)`` after each UNet call.
Progress = Callable[[int, int], None]
#: ``step_hook(j)`` before the UNet call that belongs to denoising step ``j``.
StepHook = Callable[[int], None]


def ddim_scheduler(pipe: Any) -> Any:
    """A fresh :class:`~diffusers.DDIMScheduler` from the pipeline's scheduler config.

    ``clip_sample`` is turned off (clipping ``x̂_0`` breaks invertibility); the pipeline's
    own scheduler is left untouched.
    """
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)


@dataclass(frozen=True)
class Schedule:
    """The DDIM schedule of ``N`` steps.

    Attributes:
        timesteps: (N,) int64, descending (``τ_0`` first), on the CPU.
        alphas: ``N + 1`` floats: ``ᾱ(τ_0) … ᾱ(τ_{N-1})`` and the final alpha, where a
            denoising run ends (``alphas[j + 1]`` is step j's target).
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
    """

    timesteps: torch.Tensor
    alphas: tuple[float, ...]
    prediction_type: str

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def make_schedule(pipe: Any, steps: int) -> Schedule:
    """The schedule :func:`ddim_invert` and :func:`ddim_reconstruct` use for ``steps``."""
    if steps < 1:
        raise ConfigError(f"DDIM needs at least 1 step, got {steps}")
    scheduler = ddim_scheduler(pipe)
    train = int(scheduler.config.num_train_timesteps)
    if steps > train:
        raise ConfigError(f"at most {train} DDIM steps for this model, got {steps}")
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.to("cpu", torch.int64)
    ratio = train // steps
    cumulative = scheduler.alphas_cumprod
    final = float(scheduler.final_alpha_cumprod)
    alphas = [float(cumulative[int(t)]) for t in timesteps]
    last = int(timesteps[-1]) - ratio  # what DDIMScheduler.step takes as the last target
    alphas.append(float(cumulative[last]) if last >= 0 else final)
    prediction = str(scheduler.config.get("prediction_type", "epsilon"))
    return Schedule(timesteps=timesteps, alphas=tuple(alphas), prediction_type=prediction)


def ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_from: float, alpha_to: float):
    """Deterministic DDIM move of ``sample`` from ``ᾱ = alpha_from`` to ``alpha_to``.

    ``√to · (x − √(1−from)·ε)/√from + √(1−to)·ε``: a denoising step when ``to > from``,
    an inversion step when ``to < from``. Shapes: any, ``eps`` like ``sample``.
    """
    x0 = (sample - math.sqrt(1 - alpha_from) * eps) / math.sqrt(alpha_from)
    return math.sqrt(alpha_to) * x0 + math.sqrt(1 - alpha_to) * eps


@dataclass
class InversionResult:
    """A DDIM inversion.

    Attributes:
        latents: (N + 1, B, C, h, w) float32 on the UNet's device: ``latents[j]`` is the
            latent entering denoising step ``j`` (at ``timesteps[j]``); ``latents[0]`` the
            inverted noise, ``latents[N]`` the image's own latent (``z_0``). Only
            ``latents[[0, N]]`` when the trajectory was not kept.
        timesteps: (N,) the scheduler's timesteps, descending.
        prompt: the prompt the UNet was conditioned on ("" = unconditional).
        guidance_scale: classifier-free guidance of the inversion (1: none).
        seconds: wall time of the UNet calls.
    """

    latents: torch.Tensor
    timesteps: torch.Tensor
    prompt: str = ""
    guidance_scale: float = 1.0
    seconds: float = 0.0

    @property
    def noise(self) -> torch.Tensor:
        """(B, C, h, w): the inverted latent, where a denoising run of these steps starts."""
        return self.latents[0]

    @property
    def clean(self) -> torch.Tensor:
        """(B, C, h, w): the encoded image ``z_0``."""
        return self.latents[-1]

    @property
    def steps(self) -> int:
        return len(self.timesteps)


class _Conditioning:
    """Text rows and the UNet call for one batch of latents (optionally guided)."""

    def __init__(self, pipe: Any, prompt: str, guidance_scale: float, batch: int, hw: tuple):
        from brushwork.diffusion.editing import _time_ids, encode_text

        if not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ConfigError(f"guidance_scale must be a finite number ≥ 0, got {guidance_scale}")
        cond, uncond = encode_text(pipe, prompt)
        self.guided = guidance_scale != 1.0
        self.scale = guidance_scale
        self.texts = [uncond] * batch + [cond] * batch if self.guided else [cond] * batch
        factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        self.time_ids = _time_ids(pipe, hw[0] * factor, hw[1] * factor)
        self.pipe = pipe

    def eps(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from brushwork.diffusion.editing import predict_noise

        rows = torch.cat([latents, latents]) if self.guided else latents
        with torch.no_grad():
            out = predict_noise(self.pipe, rows, t, self.texts, time_ids=self.time_ids)
        if not self.guided:
            return out
        uncond, cond = out.chunk(2)
        return uncond + self.scale * (cond - uncond)


def _images_to_latents(pipe: Any, image: torch.Tensor) -> torch.Tensor:
    from brushwork.diffusion.editing import encode_image, latent_multiple

    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[1] != 3:
        raise ConfigError(f"images must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    multiple = latent_multiple(pipe)
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        raise ConfigError(
            f"the image is {w}×{h} but this model needs sides that are multiples of {multiple}"
            " px (resize it first, e.g. with editing.fit_image)"
        )
    return torch.cat([encode_image(pipe, one) for one in image])


def _check_prediction(schedule: Schedule) -> None:
    if schedule.prediction_type not in ("epsilon", "v_prediction"):
        raise ConfigError(
            f"DDIM inversion needs an ε- or v-prediction model, not '{schedule.prediction_type}'"
        )


def ddim_invert(
    pipe: Any,
    image: torch.Tensor | None = None,
    prompt: str = "",
    *,
    steps: int = 50,
    guidance_scale: float = 1.0,
    latents: torch.Tensor | None = None,
    keep_trajectory: bool = True,
    callback: Progress | None = None,
    step_hook: StepHook | None = None,
) -> InversionResult:
    """DDIM-invert images (or their latents) to the noise a denoising run starts from.

    Args:
        pipe: a Stable Diffusion 1.x/2.x/XL pipeline (``vae``, ``unet``, text encoders).
        image: (3, H, W) or (B, 3, H, W) in [0, 1], sides multiples of
            :func:`~brushwork.diffusion.editing.latent_multiple` (64 for SD).
        prompt: the text condition ("" = the unconditional embedding, as StyleID).
        steps: DDIM steps N (the UNet is called N times).
        guidance_scale: classifier-free guidance of the inversion (1 = none, one UNet
            row per image; StyleAligned's transfer notebook uses 2).
        latents: (B, C, h, w) VAE latents (× scaling factor) instead of ``image``.
        keep_trajectory: keep every step's latent (``N + 1`` of them, a few MiB at
            512 px) or only the first and last.
        callback: ``callback(done, N)`` after each UNet call.
        step_hook: ``step_hook(j)`` before the UNet call of inversion step ``j``
            (j = N−1 … 0), e.g. to tell attention processors which step they see.

    Returns:
        :class:`InversionResult`; ``result.noise`` goes to :func:`ddim_reconstruct`.

    Raises:
        ConfigError: bad sizes, steps, guidance or prompt (past the token limit).
    """
    if (image is None) == (latents is None):
        raise ConfigError("give the image or its latents, not both or neither")
    schedule = make_schedule(pipe, steps)
    _check_prediction(schedule)
    z0 = _images_to_latents(pipe, image) if latents is None else latents.float()
    z0 = z0.to(pipe.unet.device)
    condition = _Conditioning(pipe, prompt, guidance_scale, z0.shape[0], tuple(z0.shape[-2:]))
    x = z0
    kept = [z0]
    began = time.perf_counter()
    for done, j in enumerate(range(steps - 1, -1, -1), start=1):
        if step_hook is not None:
            step_hook(j)
        eps = condition.eps(x, schedule.timesteps[j])
        x = ddim_step(x, eps, schedule.alphas[j + 1], schedule.alphas[j])
        if keep_trajectory or j == 0:
            kept.append(x)
        if callback is not None:
            callback(done, steps)
    seconds = time.perf_counter() - began
    return InversionResult(
        latents=torch.stack(kept[::-1]),
        timesteps=schedule.timesteps,
        prompt=prompt,
        guidance_scale=guidance_scale,
        seconds=seconds,
    )


def ddim_reconstruct(
    pipe: Any,
    noise: torch.Tensor,
    prompt: str = "",
    *,
    steps: int = 50,
    guidance_scale: float = 1.0,
    callback: Progress | None = None,
    step_hook: StepHook | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` (B, C, h, w) with deterministic DDIM: the inverse of :func:`ddim_invert`.

    Same schedule, prompt and guidance as the inversion give back its ``clean`` latent up
    to the inversion's approximation (see the module docstring). ``step_hook(j)`` runs
    before denoising step ``j`` (0 … N−1). Returns (B, C, h, w) float32.
    """
    schedule = make_schedule(pipe, steps)
    _check_prediction(schedule)
    x = noise.float().to(pipe.unet.device)
    condition = _Conditioning(pipe, prompt, guidance_scale, x.shape[0], tuple(x.shape[-2:]))
    for j in range(steps):
        if step_hook is not None:
            step_hook(j)
        eps = condition.eps(x, schedule.timesteps[j])
        x = ddim_step(x, eps, schedule.alphas[j], schedule.alphas[j + 1])
        if callback is not None:
            callback(j + 1, steps)
    return x


def ddim_inversion_trajectory(
    pipe: Any,
    image: torch.Tensor,
    prompt: str = "",
    *,
    steps: int = 50,
    guidance_scale: float = 1.0,
    callback: Progress | None = None,
) -> torch.Tensor:
    """(N + 1, C, h, w): one (3, H, W) image inverted; ``[j]`` enters step j, ``[-1]`` = z_0.

    A shortcut for :func:`ddim_invert` (StyleAligned's reference photo).
    """
    if image.ndim != 3:
        raise ConfigError(f"one (3, H, W) image expected, got {tuple(image.shape)}")
    result = ddim_invert(
        pipe, image, prompt, steps=steps, guidance_scale=guidance_scale, callback=callback
    )
    return result.latents[:, 0]
