"""Word maps of an existing image: encode, noise, one denoiser call per timestep, record.

DAAM's maps come from generating an image; for a photo or painting that already exists
(castorini/daam #57, #36) :func:`maps_of_image` does what the recorder needs without a
generation:

1. the image is resized to the model's size rule (keeping its aspect), encoded with the
   pipeline's VAE (the mean of the latent distribution) and scaled as the pipelines do:
   ``(latents − shift_factor) · scaling_factor`` (``shift_factor`` where the VAE config
   has one: SD3, Flux); Flux.2 as ``Flux2Pipeline`` encodes its reference images (the
   latent mode, 2×2-patchified, normalised by the VAE's batch-norm statistics);
2. for each chosen timestep, independently, the clean latents are noised with one
   seeded noise ``ε`` (the same ``ε`` for every timestep, so a timestep's map does not
   depend on which other timesteps were chosen):

   - UNets (SD 1.x/2.x/XL): ``x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε`` — ``DDPMScheduler.add_noise``
     built from the pipeline's own scheduler config (its betas), which is also the
     input an Euler-type scheduler's ``scale_model_input`` gives the UNet;
   - flow matching (SD3/3.5, Flux.1, Flux.2): ``x_t = (1 − σ)·x0 + σ·ε`` with ``σ = t / 1000``;

3. the denoiser runs **once** per timestep on ``x_t`` with the caption's embeddings
   (``pipe.encode_prompt``, no classifier-free guidance) inside an
   :class:`~.attention.AttentionRecorder`: each call is one recorded step, and the word
   maps are the steps' sum, as for a generated image.

Timesteps are **values of the denoiser's timestep input**, not indices into an
inference schedule: UNets take integer training timesteps ``0 ≤ t < 1000`` (999 is pure
noise); SD3/Flux take ``0 < t ≤ 1000`` with noise level ``σ = t / 1000`` (already
shifted: it is what the scheduler's ``timesteps`` hold).

Default timesteps (:func:`default_timesteps`): five, evenly spread over the middle half
of the schedule (noise fractions ``s`` = 0.25, 0.375, 0.5, 0.625, 0.75). UNets: ``t =
s · 1000``. Flow models: ``s`` goes through the pipeline scheduler's own shift (SD3's
``shift``, Flux's resolution-dependent ``mu``, Flux.2's empirical ``mu`` for its default
50 steps), exactly as ``pipe.scheduler.set_timesteps
(sigmas=...)`` shifts a generation's schedule. Why the middle: DAAM sums maps over every
step of a generation, but for an existing image the end points carry little: at high
noise the latents hold almost none of the image's layout, at very low noise the text
barely matters to the prediction. ConceptAttention (Helbling et al., ICML 2025) maps real
images with one Flux call on the noised image (one step of a 50-step schedule); the
several mid-schedule calls here average out the noise draw, as the DAAM step sum does.
This default is a choice, documented, not a reproduction of a published number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
from brushwork.diffusion.maps import word_maps
from brushwork.diffusion.pipelines import AttendResult, pipeline_family, text_stream
from brushwork.diffusion.tokens import prompt_tokens, word_positions
from brushwork.errors import ConfigError, ImageError

__all__ = [
    "DEFAULT_FRACTIONS",
    "FLOW_FAMILIES",
    "check_family",
    "default_timesteps",
    "denoise_noised",
    "input_size",
    "maps_of_image",
    "plan",
    "size_multiple",
]

#: Noise fractions of the default timesteps: the middle half of the schedule.
DEFAULT_FRACTIONS = (0.25, 0.375, 0.5, 0.625, 0.75)
#: Families trained with flow matching (x_t = (1 − σ)·x0 + σ·ε).
FLOW_FAMILIES = ("sd3", "flux", "flux2")
#: Timestep scale of the diffusers schedulers of every supported family.
TRAIN_TIMESTEPS = 1000
#: FluxPipeline's default guidance scale (the embedded guidance of guidance-distilled models).
FLUX_GUIDANCE = 3.5
#: Flux2Pipeline's default guidance scale (embedded in Flux.2-dev; klein has no embedding).
FLUX2_GUIDANCE = 4.0
#: Flux.2's default step count, which its empirical timestep shift depends on.
FLUX2_STEPS = 50


@dataclass
class _Conditioning:
    """What one family's denoiser call needs besides the latents and the timestep."""

    family: str
    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    text_ids: torch.Tensor | None = None
    latent_hw: tuple[int, int] = (0, 0)


# --------------------------------------------------------------------------- sizes


def vae_factor(pipe: Any) -> int:
    """Pixels per latent cell: ``2 ** (VAE levels − 1)``, as the pipelines compute it."""
    return 2 ** (len(pipe.vae.config.block_out_channels) - 1)


def size_multiple(pipe: Any) -> int:
    """Multiple every side of the model input must be.

    UNets: VAE factor × ``2 ** (UNet levels − 1)``; SD3: VAE factor × patch size; Flux:
    VAE factor × 2 (2×2 latent packing) × patch size.
    """
    family = pipeline_family(pipe)
    factor = vae_factor(pipe)
    if family in ("sd", "sdxl"):
        return factor * 2 ** (len(pipe.unet.config.down_block_types) - 1)
    patch = int(getattr(pipe.transformer.config, "patch_size", 1) or 1)
    return factor * patch * (2 if family in ("flux", "flux2") else 1)


def _default_side(pipe: Any) -> int:
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        from brushwork.diffusion.backbones import denoiser_of

        sample = denoiser_of(pipe).config.sample_size
    return int(sample) * vae_factor(pipe)


def input_size(pipe: Any, image_hw: tuple[int, int], side: int | None = None) -> tuple[int, int]:
    """(h, w) the image is resized to: long side ``side`` (default: the model's own size),
    the short side by the aspect, both rounded to the nearest :func:`size_multiple`."""
    multiple = size_multiple(pipe)
    long_side = side or _default_side(pipe)
    height, width = image_hw
    scale = long_side / max(height, width)

    def rounded(value: float) -> int:
        return max(multiple, round(value / multiple) * multiple)

    return rounded(height * scale), rounded(width * scale)


# --------------------------------------------------------------------------- timesteps


def default_timesteps(pipe: Any, latent_hw: tuple[int, int] | None = None) -> list[float]:
    """The default timestep values (see the module docstring), high noise first.

    ``latent_hw``: the latent size, for Flux's resolution-dependent shift.
    """
    family = pipeline_family(pipe)
    if family not in FLOW_FAMILIES:
        return [float(round(s * TRAIN_TIMESTEPS)) for s in reversed(DEFAULT_FRACTIONS)]
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)  # never the pipe's own
    kwargs: dict[str, Any] = {}
    if family == "flux2" and scheduler.config.get("use_dynamic_shifting", False):
        from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

        h, w = latent_hw or (128, 128)  # the shift reads the packed sequence length
        kwargs["mu"] = compute_empirical_mu((h // 2) * (w // 2), FLUX2_STEPS)
    elif scheduler.config.get("use_dynamic_shifting", False):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        h, w = latent_hw or (128, 128)
        config = scheduler.config
        kwargs["mu"] = calculate_shift(
            (h // 2) * (w // 2),
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
    scheduler.set_timesteps(sigmas=list(reversed(DEFAULT_FRACTIONS)), **kwargs)
    return [float(t) for t in scheduler.timesteps]


def _check_timesteps(timesteps: Sequence[float], family: str) -> list[float]:
    values = [float(t) for t in timesteps]
    if not values:
        raise ConfigError("no timesteps given")
    if family in FLOW_FAMILIES:
        bad = [t for t in values if not 0 < t <= TRAIN_TIMESTEPS]
        rule = f"0 < t ≤ {TRAIN_TIMESTEPS} (noise σ = t/{TRAIN_TIMESTEPS})"
    else:
        bad = [t for t in values if not (0 <= t < TRAIN_TIMESTEPS and t == int(t))]
        rule = f"whole numbers 0 ≤ t < {TRAIN_TIMESTEPS} (training timesteps)"
    if bad:
        shown = ", ".join(f"{t:g}" for t in bad)
        raise ConfigError(f"timestep(s) {shown} out of range: this model takes {rule}")
    return values


# --------------------------------------------------------------------------- image


def _as_image(image: Any) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] from a tensor ((3, H, W) or (1, 3, H, W)) or a PIL image."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        import numpy as np

        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if not isinstance(image, torch.Tensor):
        raise ImageError(
            f"not an image: expected a (3, H, W) tensor in [0, 1] or a PIL image, "
            f"got {type(image).__name__}"
        )
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
        raise ImageError(f"not an image: expected a (3, H, W) tensor, got {tuple(image.shape)}")
    if not image.is_floating_point() or not torch.isfinite(image).all():
        raise ImageError("not an image: expected finite float values in [0, 1]")
    return image.detach().float().cpu().clamp(0, 1)


@torch.no_grad()
def encode_image(pipe: Any, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, C, h, w) scaled latents of ``image`` (3, H, W) resized to ``size`` (H', W')."""
    from brushwork.image import resize_to

    vae = pipe.vae
    pixels = resize_to(image, *size)[None] * 2 - 1
    if pipeline_family(pipe) == "flux2":
        # Flux2Pipeline's own encoding: the latent mode, 2×2-patchified, then normalised
        # by the VAE's batch-norm statistics: (1, 4·C, h/2, w/2).
        pixels = pixels.to(device=vae.device, dtype=vae.dtype)
        return pipe._encode_vae_image(pixels, generator=None)
    # SDXL's VAE overflows in fp16 (force_upcast): encode in fp32, as the img2img pipelines do.
    upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    dtype = torch.float32 if upcast else vae.dtype
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        latents = vae.encode(pixels.to(device=vae.device, dtype=dtype)).latent_dist.mean
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    shift = getattr(vae.config, "shift_factor", None)
    if shift is not None:
        latents = latents - shift
    return latents * vae.config.scaling_factor


def noised(
    latents: torch.Tensor, noise: torch.Tensor, timestep: float, pipe: Any, family: str
) -> torch.Tensor:
    """``latents`` (1, C, h, w) noised to ``timestep`` with ``noise`` (same shape)."""
    if family in FLOW_FAMILIES:
        sigma = timestep / TRAIN_TIMESTEPS
        return (1 - sigma) * latents + sigma * noise
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    t = torch.tensor([int(timestep)], dtype=torch.long)
    return scheduler.add_noise(latents, noise, t)


# --------------------------------------------------------------------------- per family


def _encode_sd(pipe: Any, caption: str, device: Any, latent_hw: tuple[int, int]) -> _Conditioning:
    embeds, _ = pipe.encode_prompt(caption, device, 1, False)
    return _Conditioning("sd", embeds, latent_hw=latent_hw)


def _encode_sdxl(pipe: Any, caption: str, device: Any, latent_hw: tuple[int, int]) -> _Conditioning:
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=caption, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    return _Conditioning("sdxl", embeds, pooled=pooled, latent_hw=latent_hw)


def _encode_sd3(pipe: Any, caption: str, device: Any, latent_hw: tuple[int, int]) -> _Conditioning:
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=caption,
        prompt_2=None,
        prompt_3=None,
        device=device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=False,
    )
    return _Conditioning("sd3", embeds, pooled=pooled, latent_hw=latent_hw)


def _encode_flux(pipe: Any, caption: str, device: Any, latent_hw: tuple[int, int]) -> _Conditioning:
    embeds, pooled, text_ids = pipe.encode_prompt(
        prompt=caption, prompt_2=None, device=device, num_images_per_prompt=1
    )
    return _Conditioning("flux", embeds, pooled=pooled, text_ids=text_ids, latent_hw=latent_hw)


def _call_sd(pipe: Any, x: torch.Tensor, t: float, c: _Conditioning) -> None:
    """StableDiffusionPipeline: ``unet(x, t, encoder_hidden_states)``."""
    timestep = torch.tensor([int(t)], device=x.device)
    pipe.unet(x, timestep, encoder_hidden_states=c.embeds, return_dict=False)


def _call_sdxl(pipe: Any, x: torch.Tensor, t: float, c: _Conditioning) -> None:
    """StableDiffusionXLPipeline: pooled text embeds and the (size, crop, size) time ids."""
    h, w = c.latent_hw
    pixels = (h * vae_factor(pipe), w * vae_factor(pipe))
    if pipe.text_encoder_2 is None:
        projection = int(c.pooled.shape[-1])
    else:
        projection = pipe.text_encoder_2.config.projection_dim
    time_ids = pipe._get_add_time_ids(
        pixels, (0, 0), pixels, dtype=c.embeds.dtype, text_encoder_projection_dim=projection
    ).to(x.device)
    timestep = torch.tensor([int(t)], device=x.device)
    added = {"text_embeds": c.pooled, "time_ids": time_ids}
    pipe.unet(
        x, timestep, encoder_hidden_states=c.embeds, added_cond_kwargs=added, return_dict=False
    )


def _call_sd3(pipe: Any, x: torch.Tensor, t: float, c: _Conditioning) -> None:
    """StableDiffusion3Pipeline: timestep ``σ·1000``, pooled projections."""
    timestep = torch.full((1,), t, device=x.device, dtype=x.dtype)
    pipe.transformer(
        hidden_states=x,
        timestep=timestep,
        encoder_hidden_states=c.embeds,
        pooled_projections=c.pooled,
        return_dict=False,
    )


def _call_flux(pipe: Any, x: torch.Tensor, t: float, c: _Conditioning) -> None:
    """FluxPipeline: 2×2-packed latents, image/text ids, timestep ``σ``, guidance if embedded."""
    _, channels, h, w = x.shape
    packed = pipe._pack_latents(x, 1, channels, h, w)
    img_ids = pipe._prepare_latent_image_ids(1, h // 2, w // 2, x.device, x.dtype)
    guidance = None
    if pipe.transformer.config.guidance_embeds:
        guidance = torch.full((1,), FLUX_GUIDANCE, device=x.device, dtype=torch.float32)
    timestep = torch.full((1,), t, device=x.device, dtype=x.dtype)
    pipe.transformer(
        hidden_states=packed,
        timestep=timestep / TRAIN_TIMESTEPS,
        guidance=guidance,
        pooled_projections=c.pooled,
        encoder_hidden_states=c.embeds,
        txt_ids=c.text_ids,
        img_ids=img_ids,
        return_dict=False,
    )


def _encode_flux2(
    pipe: Any, caption: str, device: Any, latent_hw: tuple[int, int]
) -> _Conditioning:
    """Flux2Pipeline / Flux2KleinPipeline: chat-formatted prompt, stacked hidden layers."""
    embeds, text_ids = pipe.encode_prompt(prompt=caption, device=device, num_images_per_prompt=1)
    return _Conditioning("flux2", embeds, text_ids=text_ids, latent_hw=latent_hw)


def _call_flux2(pipe: Any, x: torch.Tensor, t: float, c: _Conditioning) -> None:
    """Flux.2: patchified latents flattened to tokens, 4-axis ids, timestep ``σ``."""
    packed = pipe._pack_latents(x)  # (1, C, h, w) -> (1, h·w, C)
    img_ids = pipe._prepare_latent_ids(x).to(x.device)
    guidance = None
    if pipe.transformer.config.guidance_embeds:
        guidance = torch.full((1,), FLUX2_GUIDANCE, device=x.device, dtype=torch.float32)
    timestep = torch.full((1,), t, device=x.device, dtype=x.dtype)
    pipe.transformer(
        hidden_states=packed,
        timestep=timestep / TRAIN_TIMESTEPS,
        guidance=guidance,
        encoder_hidden_states=c.embeds,
        txt_ids=c.text_ids,
        img_ids=img_ids,
        return_dict=False,
    )


Encode = Callable[[Any, str, Any, tuple[int, int]], _Conditioning]
Call = Callable[[Any, torch.Tensor, float, _Conditioning], None]

#: family -> (caption encoding, one denoiser call), as each diffusers pipeline does them.
FAMILY_CALLS: dict[str, tuple[Encode, Call]] = {
    "sd": (_encode_sd, _call_sd),
    "sdxl": (_encode_sdxl, _call_sdxl),
    "sd3": (_encode_sd3, _call_sd3),
    "flux": (_encode_flux, _call_flux),
    "flux2": (_encode_flux2, _call_flux2),
}


# --------------------------------------------------------------------------- the calls


def check_family(pipe: Any) -> str:
    """The pipeline's family, refused when its denoiser call is not known here."""
    family = pipeline_family(pipe)
    if family not in FAMILY_CALLS:
        raise ConfigError(
            f"maps of an existing image are not supported for the {family} family yet "
            f"(supported: {', '.join(FAMILY_CALLS)})"
        )
    return family


def _check_caption(caption: Any) -> None:
    if not isinstance(caption, str) or not caption.strip():
        raise ConfigError("the caption is empty: give the text the words are looked up in")


def plan(
    pipe: Any, picture: torch.Tensor, timesteps: Sequence[float] | None, side: int | None
) -> tuple[tuple[int, int], list[float]]:
    """The model input size ``(h, w)`` of ``picture`` (3, H, W) and the checked timesteps."""
    if side is not None and side < 1:
        raise ConfigError(f"the input side must be ≥ 1 pixel, got {side}")
    size = input_size(pipe, tuple(picture.shape[-2:]), side)
    factor = vae_factor(pipe)
    latent_hw = (size[0] // factor, size[1] // factor)
    if timesteps is None:
        return size, default_timesteps(pipe, latent_hw)
    return size, _check_timesteps(timesteps, pipeline_family(pipe))


@torch.no_grad()
def denoise_noised(
    pipe: Any,
    picture: torch.Tensor,
    caption: str,
    size: tuple[int, int],
    timesteps: Sequence[float],
    seed: int,
) -> None:
    """One denoiser call per timestep on ``picture`` encoded at ``size`` and noised.

    What the calls compute is read by whatever hooks the caller installed (the attention
    recorder, ConceptAttention); the predictions themselves are not needed.
    """
    from brushwork.diffusion.backbones import denoiser_of

    family = check_family(pipe)
    encode, call = FAMILY_CALLS[family]
    denoiser = denoiser_of(pipe)
    device, dtype = denoiser.device, denoiser.dtype
    factor = vae_factor(pipe)
    latent_hw = (size[0] // factor, size[1] // factor)
    clean = encode_image(pipe, picture, size).to(device=device, dtype=torch.float32)
    noise = torch.randn(clean.shape, generator=torch.Generator("cpu").manual_seed(seed))
    noise = noise.to(device)
    conditioning = encode(pipe, caption, device, latent_hw)
    for t in timesteps:
        call(pipe, noised(clean, noise, t, pipe, family).to(dtype), t, conditioning)


# --------------------------------------------------------------------------- maps


def maps_of_image(
    pipe: Any,
    image: Any,
    caption: str,
    words: Sequence[str],
    *,
    timesteps: Sequence[float] | None = None,
    seed: int = 0,
    settings: RecordingSettings | None = None,
    rule: str = "mean",
    occurrence: int | None = None,
    stream: str | None = None,
    side: int | None = None,
) -> AttendResult:
    """Word maps of an existing image (see the module docstring for the method).

    Args:
        pipe: a diffusers SD 1.x/2.x/XL, SD3/3.5, Flux.1 or Flux.2 (dev, klein) pipeline.
        image: (3, H, W) or (1, 3, H, W) float tensor in [0, 1], or a PIL image.
        caption: the text the maps' words are looked up in (what the image shows).
        words: words or phrases of the caption.
        timesteps: denoiser timestep values (not schedule indices): UNets whole numbers
            in [0, 1000), SD3/Flux in (0, 1000] with σ = t/1000; default
            :func:`default_timesteps`. One denoiser call (one recorded step) each.
        seed: seed of the noise ``ε`` (CPU generator). Same seed, same maps.
        settings: what to record (``steps`` index the timesteps); ``guidance`` is off.
        rule, occurrence: see :func:`~.tokens.word_positions`.
        stream: the text stream the words are looked up in; default: the model's first.
        side: long side of the model input in pixels (default: the model's own size).

    Returns:
        An :class:`~.pipelines.AttendResult` with ``images`` = the input (1, 3, H, W),
        maps at the input's size (``WordMaps.image_size`` = (H, W)); ``extra``:
        ``"timesteps"`` (values used), ``"input_size"`` (h, w the model saw),
        ``"steps_recorded"``, and the per-layer/per-step maps when kept.

    Raises:
        ImageError: ``image`` is not an image.
        WordNotFoundError: a word is not in the caption (before any model runs).
        ConfigError: bad timesteps, stream, settings, or an unsupported pipeline.
    """
    check_family(pipe)
    picture = _as_image(image)
    _check_caption(caption)
    if isinstance(words, str) or not words:
        raise ConfigError("give the words as a non-empty list of words")
    text = text_stream(pipe, stream)
    tokens = prompt_tokens(text.tokenizer, caption, stream=text)
    for word in words:  # before any model runs
        word_positions(text.tokenizer, tokens, word, occurrence=occurrence, rule=rule)
    size, chosen = plan(pipe, picture, timesteps, side)
    settings = settings or RecordingSettings()
    if settings.max_tokens is None:
        settings = RecordingSettings(**{**settings.__dict__, "max_tokens": tokens.end})
    recorder = AttentionRecorder(pipe, settings, guidance=False)  # validates before work

    with recorder:
        denoise_noised(pipe, picture, caption, size, chosen, seed)
        token_maps = recorder.token_maps().cpu()
        extra: dict[str, Any] = {
            "steps_recorded": recorder.steps_recorded,
            "timesteps": chosen,
            "input_size": size,
        }
        if settings.keep_per_layer:
            extra["layer_maps"] = {k: v.cpu() for k, v in recorder.layer_maps().items()}
        if settings.keep_per_step:
            extra["step_maps"] = recorder.step_maps().cpu()
    image_size = (int(picture.shape[-2]), int(picture.shape[-1]))
    maps = word_maps(
        token_maps[0],
        text.tokenizer,
        caption,
        list(words),
        image_size=image_size,
        rule=rule,
        occurrence=occurrence,
        stream=text,
    )
    return AttendResult(
        images=picture[None], prompts=[caption], maps=[maps], token_maps=token_maps, extra=extra
    )
