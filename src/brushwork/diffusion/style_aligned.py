"""StyleAligned (Hertz et al., CVPR 2024): one style across a batch by shared attention.

Every image of a batch attends, in each UNet self-attention layer (``attn1``), to its
own keys and values *and* to those of the batch's first image, the reference; before
that, its queries and keys are AdaIN-normalised to the reference's statistics (mean
and standard deviation over the tokens, per head and channel)::

    q̂ᵢ = AdaIN(qᵢ; q_ref)    k̂ᵢ = AdaIN(kᵢ; k_ref)    (vᵢ kept: adain_values off)
    outᵢ = softmax([q̂ᵢ k̂ᵢᵀ,  s · q̂ᵢ k_refᵀ + b] · scale) [vᵢ; v_ref]

with ``s = shared_score_scale`` and ``b = shared_score_shift`` (both only on the
reference's columns). ``AdaIN(x; y) = (x − μ(x)) / σ(x) · σ(y) + μ(y)`` with
``σ = sqrt(var + 1e-5)``, as the authors' ``sa_handler.py``. With classifier-free
guidance the batch is [unconditional | conditional]: each half has its own reference
(its first row), as in the reference code.

The reference image itself is generated exactly as without the method: in the
reference code it attends to its own keys twice (which changes nothing) and AdaIN to
itself is the identity, so here its rows are simply given to the processor that was
there before. A batch of one is therefore plain generation, and the first image of a
batch is the image its prompt gives alone with the same seed.

Defaults follow the authors' SDXL notebook (``style_aligned_sdxl.ipynb``): every
self-attention layer shared (``only_self_level = 0``), AdaIN of queries and keys, not
of values, ``shared_score_scale = 1``, ``shared_score_shift = 0``, no shared
normalisation. :meth:`StyleAlignedSettings.for_reference_image` gives the settings of
their transfer notebook (reference photo through DDIM inversion): shift ``log 2`` and
shared GroupNorm. (The reference code's ``share_layer_norm`` concatenates tokens
before a LayerNorm, which normalises each token alone: it changes nothing and is not
offered.)

Everything is hooked through :class:`~brushwork.diffusion.attention.ProcessorPatch`:
the chosen ``attn1`` processors are wrapped (restored on exit, also after an
exception), and the shared GroupNorm is a forward hook that recomputes the non-reference
rows with statistics over their own and the reference's features.

Example::

    result = generate_style_aligned(pipe, ["a toy train. macro photo. 3d game asset",
                                           "a toy car. macro photo. 3d game asset"])
    result.images  # (2, 3, H, W) in [0, 1]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from brushwork.diffusion.attention import (
    AttentionLayer,
    ObservingProcessor,
    ProcessorPatch,
    batch_has_guidance,
    signature_mirroring_class,
)
from brushwork.errors import ConfigError

__all__ = [
    "ADAIN_EPS",
    "StyleAligned",
    "StyleAlignedResult",
    "StyleAlignedSettings",
    "adain",
    "generate_style_aligned",
    "self_attention_layers",
    "shared_attention",
    "style_aligned_from_image",
]

#: Added to the variance in AdaIN (the reference code's ``calc_mean_std``).
ADAIN_EPS = 1e-5


@dataclass(frozen=True)
class StyleAlignedSettings:
    """What is shared. The defaults are the authors' SDXL settings.

    Attributes:
        adain_queries: AdaIN of each image's queries to the reference's.
        adain_keys: AdaIN of each image's keys to the reference's.
        adain_values: AdaIN of the values too (off in the paper).
        shared_score_scale: factor on the reference keys seen by the other images
            (< 1 weakens the reference: the authors' advice for very famous images).
        shared_score_shift: added to the logits of the reference's keys (> 0 pulls
            harder towards the reference; the transfer notebook uses ``log 2``).
        only_self_level: fraction of the self-attention layers that keep plain
            attention (0: all shared, the paper's choice), spread evenly over the UNet
            as the reference code's ``_get_switch_vec``.
        share_group_norm: GroupNorm statistics of each image over its own and the
            reference's features (the SD 1.x and transfer notebooks; off for SDXL).
    """

    adain_queries: bool = True
    adain_keys: bool = True
    adain_values: bool = False
    shared_score_scale: float = 1.0
    shared_score_shift: float = 0.0
    only_self_level: float = 0.0
    share_group_norm: bool = False

    @classmethod
    def for_reference_image(cls, **changes: Any) -> StyleAlignedSettings:
        """The transfer notebook's settings: shift ``log 2`` and shared GroupNorm."""
        values: dict[str, Any] = {"shared_score_shift": math.log(2), "share_group_norm": True}
        return cls(**{**values, **changes})

    def validate(self) -> None:
        if not math.isfinite(self.shared_score_scale) or self.shared_score_scale < 0:
            raise ConfigError(
                f"shared_score_scale must be a finite number ≥ 0, got {self.shared_score_scale}"
            )
        if not math.isfinite(self.shared_score_shift):
            raise ConfigError(f"shared_score_shift must be finite, got {self.shared_score_shift}")
        if not 0.0 <= self.only_self_level <= 1.0:
            raise ConfigError(f"only_self_level must be in [0, 1], got {self.only_self_level}")


# --------------------------------------------------------------------------- the formula


def adain(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """AdaIN over the token axis: ``features`` with ``reference``'s mean and std.

    Args:
        features: (n, heads, tokens, d).
        reference: (1, heads, tokens_ref, d) (or broadcastable to ``features``).

    Statistics in float32 (unbiased variance + :data:`ADAIN_EPS`, as the reference
    code); the result has ``features``' dtype.
    """
    x, y = features.float(), reference.float()
    mean_x, std_x = x.mean(dim=-2, keepdim=True), (x.var(dim=-2, keepdim=True) + ADAIN_EPS).sqrt()
    mean_y, std_y = y.mean(dim=-2, keepdim=True), (y.var(dim=-2, keepdim=True) + ADAIN_EPS).sqrt()
    return ((x - mean_x) / std_x * std_y + mean_y).to(features.dtype)


def shared_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    reference: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    scale: float,
    settings: StyleAlignedSettings | None = None,
) -> torch.Tensor:
    """Attention of non-reference images over their own and the reference's tokens.

    Args:
        queries, keys, values: (n, heads, tokens, d) of the n non-reference images.
        reference: (q_ref, k_ref, v_ref), each (1, heads, tokens, d).
        scale: softmax scale (``head_dim ** -0.5``).

    Returns:
        (n, heads, tokens, d): ``softmax([q̂ k̂ᵀ, s·q̂ k_refᵀ + b]·scale) [v̂; v_ref]``.
    """
    settings = settings or StyleAlignedSettings()
    q_ref, k_ref, v_ref = reference
    n = queries.shape[0]
    if settings.adain_queries:
        queries = adain(queries, q_ref)
    if settings.adain_keys:
        keys = adain(keys, k_ref)
    if settings.adain_values:
        values = adain(values, v_ref)
    shared_keys = k_ref if settings.shared_score_scale == 1 else k_ref * settings.shared_score_scale
    all_keys = torch.cat([keys, shared_keys.expand(n, -1, -1, -1)], dim=2)
    all_values = torch.cat([values, v_ref.expand(n, -1, -1, -1)], dim=2)
    mask = None
    if settings.shared_score_shift != 0:
        own, shared = keys.shape[2], k_ref.shape[2]
        mask = torch.zeros(1, 1, 1, own + shared, dtype=queries.dtype, device=queries.device)
        mask[..., own:] = settings.shared_score_shift
    return F.scaled_dot_product_attention(
        queries, all_keys, all_values, attn_mask=mask, scale=scale
    )


# --------------------------------------------------------------------------- layers


def self_attention_layers(unet: torch.nn.Module) -> list[AttentionLayer]:
    """Every self-attention layer (``attn1``) of a diffusers UNet, in model order."""
    n_down = len(getattr(unet, "down_blocks", ()))
    layers = []
    for key in unet.attn_processors:
        name = key.removesuffix(".processor")
        if not name.endswith("attn1"):
            continue
        parts = name.split(".")
        if parts[0] == "down_blocks":
            block, level = "down", int(parts[1])
        elif parts[0] == "up_blocks":
            block, level = "up", n_down - 1 - int(parts[1])
        else:
            block, level = "mid", max(n_down - 1, 0)
        layers.append(AttentionLayer(name, block, level, len(layers)))
    return layers


def _plain_layers(total: int, level: float) -> list[bool]:
    """Which of ``total`` layers keep plain attention (the reference's ``_get_switch_vec``)."""
    if level <= 0:
        return [False] * total
    if level >= 1:
        return [True] * total
    flip = level > 0.5
    fraction = 1 - level if flip else level
    switches = int(fraction * total)
    if switches == 0:
        plain = [False] * total
    else:
        plain = [i % (total // switches) == 0 for i in range(total)]
    return [not p for p in plain] if flip else plain


# --------------------------------------------------------------------------- the patch


class StyleAligned(ProcessorPatch):
    """Context manager: shared attention (and optionally GroupNorm) during a pipeline call.

    Example::

        with StyleAligned(pipe):
            images = pipe(["a cat, flat design", "a dog, flat design"]).images

    ``pipe`` is a Stable Diffusion 1.x/2.x/XL pipeline (or ControlNet/img2img variant)
    or its UNet. Whether each UNet batch holds [unconditional | conditional] halves is
    read from ``pipe.do_classifier_free_guidance`` at each call, or given with
    ``guidance``. The first image of each half is the reference.
    """

    def __init__(
        self,
        pipe: Any,
        settings: StyleAlignedSettings | None = None,
        *,
        guidance: bool | Callable[[], bool] | None = None,
    ) -> None:
        from brushwork.diffusion.backbones import backbone_for
        from brushwork.diffusion.backbones.unet import UNetBackbone

        super().__init__()
        self.settings = settings or StyleAlignedSettings()
        self.settings.validate()
        self.backbone = backbone_for(pipe)
        if not isinstance(self.backbone, UNetBackbone):
            raise ConfigError(
                f"StyleAligned needs a UNet (Stable Diffusion 1.x, 2.x or XL), not a "
                f"{type(self.backbone.denoiser).__name__}"
            )
        self.denoiser = self.backbone.denoiser
        self._pipe = pipe
        self._guidance = guidance
        every = self_attention_layers(self.denoiser)
        if not every:
            raise ConfigError("this UNet has no self-attention layers to share")
        plain = _plain_layers(len(every), self.settings.only_self_level)
        self.layers = [layer for layer, keep in zip(every, plain, strict=True) if not keep]
        #: UNet calls in which attention was shared (for tests and progress).
        self.shared_calls = 0

    def install(self) -> None:
        def make(processor: Any, layer: AttentionLayer) -> ObservingProcessor:
            kind = signature_mirroring_class(_SharedProcessor, type(processor), "StyleAligned")
            return kind(processor, self, layer)

        def denoiser_hooks() -> list[Any]:
            if not self.settings.share_group_norm:
                return []
            return [
                module.register_forward_hook(self._shared_group_norm)
                for module in self.denoiser.modules()
                if isinstance(module, torch.nn.GroupNorm)
            ]

        self._install_wrappers(make, lambda wrapper, attn: [], denoiser_hooks)

    def reset(self) -> None:
        self.shared_calls = 0

    # ------------------------------------------------------------------ batch layout
    def _uses_guidance(self) -> bool:
        return batch_has_guidance(self._guidance, self.backbone, self._pipe, "StyleAligned")

    def groups(self, batch: int) -> list[tuple[int, list[int]]]:
        """(reference row, other rows) per guidance half of a UNet batch of ``batch`` rows."""
        halves = 2 if self._uses_guidance() else 1
        if batch % halves:
            raise RuntimeError(f"a guided UNet batch of {batch} rows has no two equal halves")
        n = batch // halves
        return [(h * n, list(range(h * n + 1, (h + 1) * n))) for h in range(halves)]

    def _shared_group_norm(self, module: Any, args: tuple, output: torch.Tensor) -> Any:
        x = args[0]
        groups = [g for g in self.groups(x.shape[0]) if g[1]]
        if not groups:
            return None
        output = output.clone()
        for ref, others in groups:
            own = x[others]
            joined = torch.cat([own, x[ref : ref + 1].expand_as(own)], dim=-1)
            normed = F.group_norm(joined, module.num_groups, module.weight, module.bias, module.eps)
            output[others] = normed[..., : own.shape[-1]]
        return output


class _SharedProcessor(ObservingProcessor):
    """Reference rows: the wrapped processor; other rows: :func:`shared_attention`."""

    def __init__(self, inner: Any, patch: StyleAligned, layer: AttentionLayer) -> None:
        super().__init__(inner, layer)
        self.patch = patch

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        def plain(rows: Any = slice(None)) -> torch.Tensor:
            return self.inner(
                attn, hidden_states[rows], encoder_hidden_states, attention_mask, *args, **kwargs
            )

        groups = self.patch.groups(hidden_states.shape[0])
        if encoder_hidden_states is not None or not any(others for _, others in groups):
            return plain()
        if attention_mask is not None or getattr(attn, "spatial_norm", None) is not None:
            raise ConfigError(
                f"StyleAligned cannot share layer '{self.layer.name}': its self-attention "
                "takes a mask or a spatial norm"
            )
        if self.layer.name == self.patch.layers[0].name:
            self.patch.shared_calls += 1
        references = [ref for ref, _ in groups]
        out = torch.empty_like(hidden_states)
        out[references] = plain(references).to(out.dtype)
        q, k, v = _project(attn, hidden_states)
        settings = self.patch.settings
        for ref, others in groups:
            if not others:
                continue
            shared = shared_attention(
                q[others],
                k[others],
                v[others],
                (q[ref : ref + 1], k[ref : ref + 1], v[ref : ref + 1]),
                scale=float(attn.scale),
                settings=settings,
            )
            out[others] = _output(attn, shared, hidden_states[others]).to(out.dtype)
        return out


def _project(attn: Any, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(q, k, v), each (B, heads, tokens, d), as diffusers' AttnProcessor2_0 computes them."""
    x = hidden_states
    if x.ndim == 4:
        b, c, h, w = x.shape
        x = x.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    heads = attn.heads
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    return q, k, v


def _output(attn: Any, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """(n, heads, tokens, d) attention output -> the layer's output, as AttnProcessor2_0."""
    n, heads, tokens, d = attended.shape
    x = attended.transpose(1, 2).reshape(n, tokens, heads * d)
    x = attn.to_out[1](attn.to_out[0](x))
    if residual.ndim == 4:
        x = x.transpose(-1, -2).reshape(residual.shape)
    if attn.residual_connection:
        x = x + residual
    return x / attn.rescale_output_factor


# --------------------------------------------------------------------------- generation


@dataclass
class StyleAlignedResult:
    """Images of one StyleAligned batch.

    Attributes:
        images: (N, 3, H, W) float32 in [0, 1] on the CPU, one per prompt; with a
            reference photo, the targets only (the reference's reconstruction is in
            ``reference_image``).
        prompts: the prompt of each image.
        seeds: the seed of each image's initial noise.
        reference_image: (3, H, W) the reconstruction of the reference photo, or the
            first generated image (which is the reference) in prompt mode.
        seconds: wall time of the pipeline call.
        layers: the shared self-attention layers.
    """

    images: torch.Tensor
    prompts: list[str]
    seeds: list[int]
    reference_image: torch.Tensor
    seconds: float
    layers: list[str] = field(default_factory=list)


def _check_prompts(pipe: Any, prompts: Sequence[str], *, at_least: int = 1) -> list[str]:
    from brushwork.diffusion.editing import check_prompt

    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompt_list) < at_least:
        raise ConfigError(f"StyleAligned needs at least {at_least} prompt(s)")
    for prompt in prompt_list:
        check_prompt(pipe.tokenizer, prompt)
    return prompt_list


def _step_callback(callback: Callable[[int, int], None] | None, steps: int, then: Any = None):
    def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        if then is not None:
            kwargs = then(pipe_, step, timestep, kwargs)
        if callback is not None:
            callback(step + 1, steps)
        return kwargs

    return on_step


def generate_style_aligned(
    pipe: Any,
    prompts: Sequence[str],
    *,
    settings: StyleAlignedSettings | None = None,
    steps: int = 50,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
    callback: Callable[[int, int], None] | None = None,
    **pipe_kwargs: Any,
) -> StyleAlignedResult:
    """Generate one image per prompt in one batch, all in the style of the first.

    Args:
        pipe: a Stable Diffusion 1.x/2.x/XL pipeline (ControlNet pipelines too, with
            their ``image`` in ``pipe_kwargs``).
        prompts: the reference prompt first, then the others.
        seed: image ``i`` starts from the noise of ``seed + i`` (so the first image is
            the one ``prompts[0]`` gives alone with ``seed``).
        callback: ``callback(step, steps)`` after each denoising step.

    Raises:
        ConfigError: no prompt, a prompt past the token limit, bad settings.
    """
    from brushwork.diffusion.pipelines import seeded_call, user_errors

    prompt_list = _check_prompts(pipe, prompts)
    settings = settings or StyleAlignedSettings()
    settings.validate()
    call = seeded_call(
        pipe,
        prompt_list,
        seeds=seed,
        num_inference_steps=steps,
        height=height,
        width=width,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        callback_on_step_end=_step_callback(callback, steps),
        **pipe_kwargs,
    )
    patch = StyleAligned(pipe, settings)
    began = time.perf_counter()
    with patch, user_errors():
        images = pipe(**call).images
    images = images.float().cpu().clamp(0, 1)
    return StyleAlignedResult(
        images=images,
        prompts=prompt_list,
        seeds=[seed + i for i in range(len(prompt_list))],
        reference_image=images[0],
        seconds=time.perf_counter() - began,
        layers=[layer.name for layer in patch.layers],
    )


def style_aligned_from_image(
    pipe: Any,
    image: torch.Tensor,
    reference_prompt: str,
    prompts: Sequence[str],
    *,
    settings: StyleAlignedSettings | None = None,
    steps: int = 50,
    guidance_scale: float = 10.0,
    inversion_guidance: float = 2.0,
    offset: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> StyleAlignedResult:
    """Images for ``prompts`` in the style of a reference photo (DDIM inversion).

    The photo is inverted with DDIM under ``reference_prompt`` (classifier-free
    guidance ``inversion_guidance``, 2 in the authors' notebook); the batch is
    ``[reference_prompt, *prompts]`` and, at every step, the reference row's latent is
    set to the inverted trajectory, so the others share attention with the photo's.
    As the authors' notebook, the reference starts ``offset`` steps down its
    trajectory (default: a tenth of the steps, their 5 of 50) and stays there until step
    ``offset``: its features are then less noisy than the step's timestep, which the
    authors chose for fidelity (0 gives the consistent trajectory).

    Args:
        image: (3, H, W) in [0, 1]; resized to the pipeline's size rule by the caller
            (sides multiples of the VAE factor).
        settings: default :meth:`StyleAlignedSettings.for_reference_image`.

    Returns:
        the targets' images, and the reference's reconstruction in ``reference_image``.
    """
    from diffusers import DDIMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    from brushwork.diffusion.inversion import ddim_inversion_trajectory
    from brushwork.diffusion.pipelines import seeded_call, user_errors

    targets = _check_prompts(pipe, prompts)
    _check_prompts(pipe, [reference_prompt])
    settings = settings or StyleAlignedSettings.for_reference_image()
    settings.validate()
    if offset is None:
        offset = min(round(steps / 10), steps - 1)
    if not 0 <= offset < steps:
        raise ConfigError(f"offset must be in [0, {steps - 1}] for {steps} steps, got {offset}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ConfigError(f"the reference image must be (3, H, W), got {tuple(image.shape)}")
    height, width = int(image.shape[-2]), int(image.shape[-1])
    original_scheduler = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(
        original_scheduler.config, clip_sample=False, set_alpha_to_one=False
    )
    try:
        trajectory = ddim_inversion_trajectory(
            pipe,
            image,
            reference_prompt,
            steps=steps,
            guidance_scale=inversion_guidance,
        )  # (steps + 1, 4, h, w): trajectory[j] = the latent entering step j; [-1] = z0
        prompt_list = [reference_prompt, *targets]
        call = seeded_call(
            pipe,
            prompt_list,
            seeds=seed,
            num_inference_steps=steps,
            height=height,
            width=width,
            negative_prompt=negative_prompt,
            guidance_scale=guidance_scale,
        )
        unet = pipe.unet
        scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        shape = (len(prompt_list), unet.config.in_channels, height // scale, width // scale)
        latents = randn_tensor(
            shape, generator=call.pop("generator"), device=unet.device, dtype=unet.dtype
        )
        latents[0] = trajectory[offset].to(latents)

        def hold_reference(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            current = kwargs["latents"]
            current[0] = trajectory[max(offset + 1, step + 1)].to(current)
            return {"latents": current}

        call["latents"] = latents
        call["callback_on_step_end"] = _step_callback(callback, steps, hold_reference)
        call["callback_on_step_end_tensor_inputs"] = ["latents"]
        patch = StyleAligned(pipe, settings)
        began = time.perf_counter()
        with patch, user_errors():
            images = pipe(**call).images
    finally:
        pipe.scheduler = original_scheduler
    images = images.float().cpu().clamp(0, 1)
    return StyleAlignedResult(
        images=images[1:],
        prompts=targets,
        seeds=[seed + i for i in range(1, len(prompt_list))],
        reference_image=images[0],
        seconds=time.perf_counter() - began,
        layers=[layer.name for layer in patch.layers],
    )
