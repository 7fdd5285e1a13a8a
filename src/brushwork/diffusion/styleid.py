"""StyleID (Chung et al., CVPR 2024): training-free style injection into a photo's denoising.

Both images are DDIM-inverted (:mod:`brushwork.diffusion.inversion`, unconditional, no
guidance). The content's denoising starts from the content's inverted latent with the
style latent's per-channel statistics (AdaIN of the initial latent), and in the
self-attention (``attn1``) of chosen decoder layers, at each step ``j``::

    q̃ = γ · q_c + (1 − γ) · q_cs         (query preservation, γ = 0.75)
    out = softmax(T · q̃ k_sᵀ · scale) v_s   (attention temperature, T = 1.5)

with ``q_cs`` the stylised image's own query, ``q_c`` the content's query and ``k_s``,
``v_s`` the style's key and value, all at the same layer and timestep of the inversions.
Defaults are the paper's code (``run_styleid.py``): γ 0.75, T 1.5, injection at every
denoising step, the self-attention of LDM output blocks 6–11 — in diffusers' names
``up_blocks.{2,3}.attentions.{0,1,2}.transformer_blocks.0.attn1``, the decoder's two
finest attention levels (32² and 64² at 512 px). On other UNets the same rule applies:
the first transformer block of every attention of the decoder's two finest attention
levels (SDXL: ``up_blocks.{0,1}``, at 32² and 64² tokens of a 1024 px image — our
carry-over, 6 of SDXL's 36 decoder self-attentions; ``layers=`` chooses others).

**Memory.** The reference keeps q, k and v of both images at every step (over 3 GB per
image at 512 px). Here only what the injection reads is kept, in the UNet's dtype: the
*input* of each injected ``attn1`` for the content and the style (``q_c = to_q(x_c)``,
``k_s = to_k(x_s)``, ``v_s = to_v(x_s)`` are recomputed from it — the same linear maps
on the same tensors, so the same values), at the injected steps only::

    bytes = steps_injected · Σ_layers (N_content + N_style) · C · bytes_per_value

(:func:`feature_bytes`): SD 1.5 at 512 px, 50 steps, 6 layers: 5.9 M values per image per
step, 2.36 GB in fp32, 1.18 GB in fp16 — a third of q, k, v of both images.

**Timesteps.** Inversion step ``j`` calls the UNet with denoising step ``j``'s timestep
(see :mod:`~brushwork.diffusion.inversion`), so the features injected at step ``j``
come from the same timestep, as in the authors' diffusers code. The paper's LDM code
starts its denoising from the latent inverted to t = 999 but skips the first step
(t = 981) and denoises from t = 961: here denoising starts at the inverted latent's own
timestep. It also samples the VAE posterior (with its global seed 22); here the
posterior mean is used, so there is no randomness at all: ``seed`` is recorded only.

Hooking goes through :class:`~brushwork.diffusion.attention.ProcessorPatch`: the chosen
layers' processors are wrapped (restored on exit, also after an exception); the
wrappers call the original processor except when injecting.

Example::

    result = stylize_styleid(pipe, content, style)   # (3, H, W) in [0, 1], sides ×64
    result.image                                     # (3, H, W) float32 in [0, 1]
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from brushwork.diffusion.attention import (
    AttentionLayer,
    ObservingProcessor,
    ProcessorPatch,
    signature_mirroring_class,
)
from brushwork.errors import ConfigError

__all__ = [
    "ROLES",
    "FeatureCache",
    "LatentStyleID",
    "StyleIDResult",
    "StyleIDSettings",
    "StyleInjection",
    "adain_latent",
    "decoder_attention_layers",
    "default_styleid_layers",
    "feature_bytes",
    "injected_attention",
    "styleid_latents",
    "stylize_styleid",
]

#: The two images whose features are kept.
ROLES = ("content", "style")

#: ``callback(phase, done, total)``; phase is "inversion" or "stylisation".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class StyleIDSettings:
    """StyleID's settings; the defaults are the paper's code.

    Attributes:
        gamma: query preservation γ in [0, 1] (1: the content's queries only).
        temperature: attention temperature T > 0 (> 1 sharpens the attention).
        steps: DDIM steps of the inversions and of the denoising (50 in the paper).
        injection_steps: inject during the first this many denoising steps; ``None``:
            every step (the paper).
        layers: ``attn1`` module names to inject into; ``None``: the paper's rule
            (:func:`default_styleid_layers`).
        init_adain: AdaIN of the initial latent to the style's inverted latent.
        inject: attention injection at all (off: AdaIN of the latent only).
        seed: recorded with the result (StyleID has no randomness: see the module).
    """

    gamma: float = 0.75
    temperature: float = 1.5
    steps: int = 50
    injection_steps: int | None = None
    layers: tuple[str, ...] | None = None
    init_adain: bool = True
    inject: bool = True
    seed: int = 0

    def validate(self) -> None:
        if not (math.isfinite(self.gamma) and 0.0 <= self.gamma <= 1.0):
            raise ConfigError(f"gamma (query preservation) must be in [0, 1], got {self.gamma}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature}")
        if self.steps < 1:
            raise ConfigError(f"steps must be ≥ 1, got {self.steps}")
        if self.injection_steps is not None and not 0 <= self.injection_steps <= self.steps:
            raise ConfigError(
                f"injection_steps must be in [0, {self.steps}], got {self.injection_steps}"
            )

    @property
    def injected(self) -> range:
        """The denoising step indices that inject."""
        if not self.inject:
            return range(0)
        return range(self.steps if self.injection_steps is None else self.injection_steps)


# --------------------------------------------------------------------------- layers


def decoder_attention_layers(unet: torch.nn.Module) -> dict[int, list[AttentionLayer]]:
    """Decoder self-attention layers by up block: ``{up block index: [attn1 layers]}``.

    Only up blocks with attention appear; ``level`` is the downsampling level of the
    layer's tokens (0 = latent size).
    """
    n_down = len(getattr(unet, "down_blocks", ()))
    blocks: dict[int, list[AttentionLayer]] = {}
    for key in getattr(unet, "attn_processors", {}):
        name = key.removesuffix(".processor")
        parts = name.split(".")
        if parts[0] != "up_blocks" or not name.endswith("attn1"):
            continue
        block = int(parts[1])
        layers = blocks.setdefault(block, [])
        layers.append(AttentionLayer(name, "up", n_down - 1 - block, len(layers)))
    return dict(sorted(blocks.items()))


def default_styleid_layers(unet: torch.nn.Module) -> list[AttentionLayer]:
    """The paper's layers: ``transformer_blocks.0.attn1`` of every attention of the two
    last (finest) up blocks that have attention (SD 1.x/2.x: up blocks 2 and 3, the LDM
    output blocks 6–11; SDXL: up blocks 0 and 1)."""
    blocks = decoder_attention_layers(unet)
    return [
        layer
        for index in list(blocks)[-2:]
        for layer in blocks[index]
        if layer.name.endswith(".transformer_blocks.0.attn1")
    ]


def _resolve_layers(unet: torch.nn.Module, names: Sequence[str] | None) -> list[AttentionLayer]:
    blocks = decoder_attention_layers(unet)
    available = {layer.name: layer for layers in blocks.values() for layer in layers}
    if not available:
        raise ConfigError(
            f"this {type(unet).__name__} has no self-attention layers in its decoder (up "
            "blocks): StyleID needs a Stable Diffusion UNet (1.x, 2.x or XL)"
        )
    if names is None:
        return default_styleid_layers(unet)
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ConfigError(
            f"the UNet has no decoder self-attention layer(s) {unknown or '(none given)'}; "
            f"available: {', '.join(available)}"
        )
    return [available[name] for name in names]


def feature_bytes(
    unet: torch.nn.Module,
    content_hw: tuple[int, int],
    style_hw: tuple[int, int] | None = None,
    *,
    steps: int,
    layers: Sequence[str] | None = None,
    bytes_per_value: int | None = None,
) -> int:
    """Bytes the feature cache holds at its fullest (see the module docstring).

    Args:
        content_hw, style_hw: latent sizes (h, w) of the two images (style: as content).
        steps: injected denoising steps.
        bytes_per_value: default the UNet's dtype's.
    """
    chosen = _resolve_layers(unet, layers)
    size = bytes_per_value or torch.finfo(next(unet.parameters()).dtype).bits // 8

    def tokens(hw: tuple[int, int], level: int) -> int:
        h, w = hw
        for _ in range(level):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h * w

    total = 0
    for layer in chosen:
        channels = unet.get_submodule(layer.name).to_q.in_features
        for hw in (content_hw, style_hw or content_hw):
            total += tokens(hw, layer.level) * channels
    return total * steps * size


# --------------------------------------------------------------------------- the formula


def adain_latent(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN of a latent: ``content`` (B, C, h, w) with ``style``'s per-channel mean and std.

    As the paper's code: statistics over the batch and spatial axes (dims 0, 2, 3),
    unbiased std, no epsilon; float32.
    """
    x, y = content.float(), style.float()
    dims = (0, 2, 3)
    mean_x, std_x = x.mean(dim=dims, keepdim=True), x.std(dim=dims, keepdim=True)
    mean_y, std_y = y.mean(dim=dims, keepdim=True), y.std(dim=dims, keepdim=True)
    return (x - mean_x) / std_x * std_y + mean_y


def _heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    return tensor.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, heads, N, d)


def injected_attention(
    attn: Any,
    hidden_states: torch.Tensor,
    content_states: torch.Tensor,
    style_states: torch.Tensor,
    *,
    gamma: float,
    temperature: float,
) -> torch.Tensor:
    """One self-attention layer's output with StyleID's injection.

    Args:
        attn: the diffusers ``Attention`` module (a UNet ``attn1``).
        hidden_states: (B, N, C) the stylised image's input to the layer.
        content_states: (1 or B, N, C) the content's input at this step (its inversion).
        style_states: (1 or B, M, C) the style's input (M may differ from N).

    Returns:
        (B, N, C): ``to_out(softmax(T·scale·q̃ k_sᵀ) v_s)``, ``q̃ = γ q_c + (1−γ) q``,
        in ``hidden_states``' dtype.
    """
    heads = attn.heads
    query = attn.to_q(hidden_states)
    if gamma != 0:
        query = gamma * attn.to_q(content_states) + (1 - gamma) * query
    q = _heads(query, heads)
    k = _heads(attn.to_k(style_states), heads)
    v = _heads(attn.to_v(style_states), heads)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    batch = q.shape[0]
    k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
    out = F.scaled_dot_product_attention(q, k, v, scale=temperature * float(attn.scale))
    out = out.transpose(1, 2).reshape(batch, -1, heads * out.shape[-1]).to(hidden_states.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return out / attn.rescale_output_factor


# --------------------------------------------------------------------------- the patch


@dataclass
class FeatureCache:
    """The ``attn1`` inputs kept for the injection: ``{(step, layer): {role: (1, N, C)}}``."""

    entries: dict[tuple[int, str], dict[str, torch.Tensor]] = field(default_factory=dict)

    def put(self, step: int, layer: str, role: str, states: torch.Tensor) -> None:
        self.entries.setdefault((step, layer), {})[role] = states

    def get(self, step: int, layer: str) -> dict[str, torch.Tensor]:
        return self.entries.get((step, layer), {})

    @property
    def nbytes(self) -> int:
        """Bytes held (tensors sharing a storage counted once)."""
        seen: dict[int, int] = {}
        for roles in self.entries.values():
            for tensor in roles.values():
                storage = tensor.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
        return sum(seen.values())

    def clear(self) -> None:
        self.entries.clear()


class StyleInjection(ProcessorPatch):
    """Context manager: StyleID's processors on chosen decoder self-attention layers.

    Three modes, switched with context managers inside the ``with`` block:

    * :meth:`capture` ``({role: batch row})``: the wrapped processors run as before and
      each injected layer's input is kept in :attr:`cache` for the current step;
    * :meth:`inject`: the injected layers compute :func:`injected_attention` from the
      cached content and style inputs of the current step;
    * otherwise the original processors run untouched.

    The current denoising step is set with :meth:`at_step` (pass it as the
    ``step_hook`` of :func:`~brushwork.diffusion.inversion.ddim_invert` /
    ``ddim_reconstruct``). Steps outside ``steps`` are neither kept nor injected.

    Args:
        pipe: a Stable Diffusion 1.x/2.x/XL pipeline or its UNet.
        layers: ``attn1`` names (default :func:`default_styleid_layers`).
        gamma, temperature: see :class:`StyleIDSettings`.
        steps: the denoising step indices that inject (default: all).
    """

    def __init__(
        self,
        pipe: Any,
        layers: Sequence[str] | None = None,
        *,
        gamma: float = 0.75,
        temperature: float = 1.5,
        steps: Sequence[int] | range | None = None,
    ) -> None:
        from brushwork.diffusion.backbones import backbone_for
        from brushwork.diffusion.backbones.unet import UNetBackbone

        super().__init__()
        try:
            backbone = backbone_for(pipe)
        except ConfigError:
            backbone = None
        if not isinstance(backbone, UNetBackbone):
            denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", pipe)
            raise ConfigError(
                f"StyleID needs a Stable Diffusion UNet (1.x, 2.x or XL), not a "
                f"{type(denoiser).__name__}"
            )
        self.backbone = backbone
        self.denoiser = backbone.denoiser
        self.layers = _resolve_layers(self.denoiser, layers)
        self.gamma = gamma
        self.temperature = temperature
        self.steps = None if steps is None else set(steps)
        self.cache = FeatureCache()
        self.step = -1
        self._mode = "off"
        self._rows: dict[str, int] = {}
        #: (step, layer) pairs injected so far (for tests and reports).
        self.injected_calls = 0

    def install(self) -> None:
        def make(processor: Any, layer: AttentionLayer) -> ObservingProcessor:
            kind = signature_mirroring_class(_StyleIDProcessor, type(processor), "StyleID")
            return kind(processor, self, layer)

        self._install_wrappers(make, lambda wrapper, attn: [], lambda: [])

    def reset(self) -> None:
        self.cache.clear()
        self.step = -1
        self._mode = "off"
        self.injected_calls = 0

    def at_step(self, step: int) -> None:
        """Tell the processors which denoising step the next UNet call belongs to."""
        self.step = step

    def active_step(self) -> bool:
        return self.step >= 0 and (self.steps is None or self.step in self.steps)

    @contextlib.contextmanager
    def capture(self, rows: dict[str, int]) -> Iterator[None]:
        """Keep the injected layers' inputs of these batch rows, by role."""
        unknown = [role for role in rows if role not in ROLES]
        if unknown:
            raise ConfigError(f"unknown feature role(s) {unknown}: use {', '.join(ROLES)}")
        self._mode, self._rows = "capture", dict(rows)
        try:
            yield
        finally:
            self._mode, self._rows = "off", {}

    @contextlib.contextmanager
    def inject(self) -> Iterator[None]:
        """Inject the cached content and style features into every call."""
        self._mode = "inject"
        try:
            yield
        finally:
            self._mode = "off"


class _StyleIDProcessor(ObservingProcessor):
    """Keeps or replaces one ``attn1`` layer's attention, as the patch's mode says."""

    def __init__(self, inner: Any, patch: StyleInjection, layer: AttentionLayer) -> None:
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
        patch = self.patch
        mode = patch._mode if patch.active_step() else "off"
        if mode != "off" and (
            encoder_hidden_states is not None
            or attention_mask is not None
            or hidden_states.ndim != 3
            or getattr(attn, "group_norm", None) is not None
            or getattr(attn, "spatial_norm", None) is not None
        ):
            raise ConfigError(
                f"StyleID cannot inject into layer '{self.layer.name}': it is not a plain "
                "self-attention (text, a mask, a 4-D input or a norm inside the layer)"
            )
        if mode == "inject":
            kept = patch.cache.get(patch.step, self.layer.name)
            if set(kept) != set(ROLES):
                raise ConfigError(
                    f"no content and style features for step {patch.step} at layer "
                    f"'{self.layer.name}': capture them during both inversions first"
                )
            patch.injected_calls += 1
            return injected_attention(
                attn,
                hidden_states,
                kept["content"],
                kept["style"],
                gamma=patch.gamma,
                temperature=patch.temperature,
            )
        if mode == "capture":
            states = hidden_states.detach()
            for role, row in patch._rows.items():
                patch.cache.put(patch.step, self.layer.name, role, states[row : row + 1])
        return self.inner(
            attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs
        )


# --------------------------------------------------------------------------- the method


@dataclass
class StyleIDResult:
    """One StyleID stylisation.

    Attributes:
        image: (3, H, W) float32 in [0, 1] on the CPU, the content's size.
        latent: (1, C, h, w) float32: the final latent.
        settings: what was run.
        layers: the injected ``attn1`` layers.
        feature_bytes: bytes the feature cache held at its fullest.
        inversion_seconds, sampling_seconds: wall time of the two phases.
    """

    image: torch.Tensor
    latent: torch.Tensor
    settings: StyleIDSettings
    layers: list[str]
    feature_bytes: int
    inversion_seconds: float
    sampling_seconds: float

    @property
    def seconds(self) -> float:
        return self.inversion_seconds + self.sampling_seconds


def _check_image(image: torch.Tensor, what: str, multiple: int) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ConfigError(f"the {what} image must be (3, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        raise ConfigError(
            f"the {what} image is {w}×{h} but this model needs sides that are multiples "
            f"of {multiple} px (fit it first, e.g. with editing.fit_image)"
        )


@dataclass
class LatentStyleID:
    """What :func:`styleid_latents` gives: the final latent and the run's figures."""

    latent: torch.Tensor
    layers: list[str]
    feature_bytes: int
    inversion_seconds: float
    sampling_seconds: float


def styleid_latents(
    pipe: Any,
    content: torch.Tensor,
    style: torch.Tensor,
    settings: StyleIDSettings | None = None,
    *,
    batch_inversions: bool | None = None,
    callback: Progress | None = None,
) -> LatentStyleID:
    """StyleID on VAE latents: the part of :func:`stylize_styleid` between encode and decode.

    Args:
        pipe: a Stable Diffusion 1.x/2.x/XL pipeline (only its UNet, scheduler and text
            encoders are used).
        content, style: (1, C, h, w) latents (× the VAE scaling factor).
        settings: default :class:`StyleIDSettings`.
        batch_inversions: invert both in one batch of two (same shapes only); ``None``:
            on accelerators only (on a CPU a batch of two measured slower per row than
            two calls, ``benchmarks/diffusion_style.py``). Same result either way up to
            float rounding.
        callback: as :func:`stylize_styleid`.
    """
    from brushwork.diffusion.inversion import ddim_invert, ddim_reconstruct

    settings = settings or StyleIDSettings()
    settings.validate()
    for what, latent in (("content", content), ("style", style)):
        if latent.ndim != 4 or latent.shape[0] != 1:
            raise ConfigError(f"the {what} latent must be (1, C, h, w), got {tuple(latent.shape)}")
    patch = StyleInjection(
        pipe,
        settings.layers,
        gamma=settings.gamma,
        temperature=settings.temperature,
        steps=settings.injected,
    )
    steps = settings.steps
    if batch_inversions is None:
        batch_inversions = patch.denoiser.device.type != "cpu"
    same = batch_inversions and content.shape == style.shape
    calls = steps if same else 2 * steps
    done = [0]

    def inversion_progress(_done: int, _total: int) -> None:
        done[0] += 1
        if callback is not None:
            callback("inversion", done[0], calls)

    def stylisation_progress(step: int, total: int) -> None:
        if callback is not None:
            callback("stylisation", step, total)

    began = time.perf_counter()
    with patch:
        batches = (
            [(torch.cat([content, style]), {"content": 0, "style": 1})]
            if same
            else [
                (content, {"content": 0}),
                (style, {"style": 0}),
            ]
        )
        noises = []
        for latents, rows in batches:
            with patch.capture(rows):
                inverted = ddim_invert(
                    pipe,
                    latents=latents,
                    steps=steps,
                    keep_trajectory=False,
                    callback=inversion_progress,
                    step_hook=patch.at_step,
                )
            noises += list(inverted.noise.split(1))
        content_noise, style_noise = noises
        cache_bytes = patch.cache.nbytes
        inverted_at = time.perf_counter()
        start = adain_latent(content_noise, style_noise) if settings.init_adain else content_noise
        with patch.inject():
            latent = ddim_reconstruct(
                pipe,
                start,
                steps=steps,
                callback=stylisation_progress,
                step_hook=patch.at_step,
            )
        patch.cache.clear()
    return LatentStyleID(
        latent=latent,
        layers=[layer.name for layer in patch.layers],
        feature_bytes=cache_bytes,
        inversion_seconds=inverted_at - began,
        sampling_seconds=time.perf_counter() - inverted_at,
    )


def stylize_styleid(
    pipe: Any,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    gamma: float = 0.75,
    temperature: float = 1.5,
    steps: int = 50,
    seed: int = 0,
    injection_steps: int | None = None,
    layers: Sequence[str] | None = None,
    init_adain: bool = True,
    inject: bool = True,
    batch_inversions: bool | None = None,
    callback: Progress | None = None,
) -> StyleIDResult:
    """Restyle ``content`` with ``style`` by StyleID (see the module docstring).

    Args:
        pipe: a Stable Diffusion 1.x/2.x/XL pipeline (``vae``, ``unet``, text encoders).
        content, style: (3, H, W) in [0, 1], sides multiples of
            :func:`~brushwork.diffusion.editing.latent_multiple` (64 for SD); the style
            may have another size.
        gamma, temperature, steps, seed, injection_steps, layers, init_adain, inject:
            :class:`StyleIDSettings`.
        batch_inversions: see :func:`styleid_latents`.
        callback: ``callback(phase, done, total)`` after each UNet call; phase
            ``"inversion"`` (total: 2 × steps, or steps when both go in one batch)
            then ``"stylisation"`` (total: steps).

    Raises:
        ConfigError: bad settings or sizes, a model without the layers.
    """
    from brushwork.diffusion.editing import decode_latents, encode_image, latent_multiple

    settings = StyleIDSettings(
        gamma=gamma,
        temperature=temperature,
        steps=steps,
        injection_steps=injection_steps,
        layers=None if layers is None else tuple(layers),
        init_adain=init_adain,
        inject=inject,
        seed=seed,
    )
    settings.validate()
    StyleInjection(pipe, settings.layers)  # the model's layers, before any work
    multiple = latent_multiple(pipe)
    _check_image(content, "content", multiple)
    _check_image(style, "style", multiple)
    run = styleid_latents(
        pipe,
        encode_image(pipe, content),
        encode_image(pipe, style),
        settings,
        batch_inversions=batch_inversions,
        callback=callback,
    )
    with torch.no_grad():
        image = decode_latents(pipe, run.latent)[0].cpu()
    return StyleIDResult(
        image=image,
        latent=run.latent.cpu(),
        settings=settings,
        layers=run.layers,
        feature_bytes=run.feature_bytes,
        inversion_seconds=run.inversion_seconds,
        sampling_seconds=run.sampling_seconds,
    )
