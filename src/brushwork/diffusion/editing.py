"""Text-guided image editing by score distillation: DDS and Contrastive Denoising Score.

**DDS** (Hertz et al. 2023). The image is encoded with the VAE (posterior mean × the
VAE scaling factor) into ``z_src``; ``z_trg`` starts as a copy and is the only
optimised tensor. Each iteration samples one timestep ``t ~ U[t_min, t_max)`` and one
noise ε shared by both branches, noises both latents, predicts the noise of each with
classifier-free guidance (one UNet call without gradient) and takes one SGD step on the
surrogate loss ``loss_scale · Σ(z_trg · g) / (h·w)`` with ``g = ε̂_trg − ε̂_src``
(so ``∂loss/∂z_trg = loss_scale · g / (h·w)``).

**CDS** (Nam et al. 2024) adds ``cut_weight ×`` the PatchNCE/CUT loss
(:mod:`brushwork.diffusion.patchnce`) between the decoder self-attention outputs of
the conditional source branch (reference, no gradient) and of a UNet call on the noised
target latent with the target prompt (with gradient back to ``z_trg``). Unlike the
published code, this implementation

* keeps the model's own attention processors (fused kernels) and only wraps the
  decoder ``attn1`` layers (:mod:`.editing_features`), with no ``requires_grad`` on any
  weight;
* keeps the features of the current iteration only;
* runs the gradient pass on the conditional target row only (no unconditional branch),
  and reuses its noise prediction, detached, as the conditional target prediction of
  the DDS term — so the no-gradient call holds 3 rows instead of 4, and an iteration
  costs 4 UNet rows forward + 1 backward instead of 6 forward + 2 backward;
* works with SD 1.x/2.x (ε- or v-prediction) and SDXL.

**SDXL.** DDS carries over unchanged (the loss only needs noise predictions; the
pooled text embedding and size conditioning are passed as the SDXL pipeline does).
CDS runs on SDXL's decoder self-attention layers (36: up blocks 0 and 1 — SDXL has no
attention at full latent size), but the published defaults (weights, 256 patches,
patch sizes 1 and 2) were tuned on SD 1.x's 9 layers at 16², 32², 64²; on SDXL they
are our carry-over, not the paper's. Use ``layers=`` to choose a subset.

Same seed, same result: the timesteps, noises and patch locations come from one CPU
generator seeded with ``settings.seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from brushwork.diffusion.editing_features import SelfAttentionFeatures
from brushwork.diffusion.patchnce import cut_loss
from brushwork.errors import ConfigError, ImageError, OptimisationError

__all__ = [
    "METHODS",
    "EditResult",
    "EditSettings",
    "Editor",
    "TextCondition",
    "check_prompt",
    "decode_latents",
    "edit_image",
    "edit_keeping_size",
    "encode_image",
    "encode_text",
    "fit_image",
    "latent_multiple",
]

METHODS = ("cds", "dds")


@dataclass(frozen=True)
class EditSettings:
    """DDS / CDS settings; the defaults are those of the published code.

    Attributes:
        method: ``"cds"`` (DDS + CUT loss) or ``"dds"``.
        iterations: SGD steps (200).
        t_min, t_max: timesteps are drawn uniformly from ``[t_min, t_max)`` (50, 950).
        guidance_scale: classifier-free guidance of both branches (7.5).
        learning_rate: SGD, no momentum (0.1).
        loss_scale: factor of the DDS surrogate loss (2000).
        dds_weight: weight of the DDS term (1.0).
        cut_weight: weight of the CUT term (3.0; CDS only).
        patch_sizes: average-pooling sizes of the CUT loss ((1, 2)).
        num_patches: sampled locations per layer and patch size (256).
        temperature: PatchNCE τ (0.07).
        layers: decoder self-attention layer names used by the CUT loss; ``None`` =
            every ``attn1`` of the up blocks (9 on SD 1.x).
        seed: seeds timesteps, noises and patch locations.
    """

    method: str = "cds"
    iterations: int = 200
    t_min: int = 50
    t_max: int = 950
    guidance_scale: float = 7.5
    learning_rate: float = 0.1
    loss_scale: float = 2000.0
    dds_weight: float = 1.0
    cut_weight: float = 3.0
    patch_sizes: tuple[int, ...] = (1, 2)
    num_patches: int = 256
    temperature: float = 0.07
    layers: tuple[str, ...] | None = None
    seed: int = 0

    @property
    def uses_cut(self) -> bool:
        return self.method == "cds" and self.cut_weight != 0

    def validate(self, num_train_timesteps: int = 1000) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown edit method '{self.method}': choose cds or dds")
        if self.iterations < 0:
            raise ConfigError(f"iterations must be ≥ 0, got {self.iterations}")
        if not 0 <= self.t_min < self.t_max <= num_train_timesteps:
            raise ConfigError(
                f"need 0 ≤ t_min < t_max ≤ {num_train_timesteps}, got {self.t_min}, {self.t_max}"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.guidance_scale < 1:
            raise ConfigError(f"guidance_scale must be ≥ 1, got {self.guidance_scale}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.num_patches < 1 or not self.patch_sizes or min(self.patch_sizes) < 1:
            raise ConfigError("num_patches and every patch size must be ≥ 1")


# --------------------------------------------------------------------------- pipeline helpers
def latent_multiple(pipe: Any) -> int:
    """Image sides must be multiples of this (VAE factor × UNet downsampling): 64 for SD."""
    vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return vae_factor * 2 ** (len(pipe.unet.down_blocks) - 1)


def fit_image(
    image: torch.Tensor, *, multiple: int, long_side: int | None = None, resize: bool = True
) -> torch.Tensor:
    """Make an image's sides multiples of ``multiple`` (what the VAE and UNet can take).

    With ``resize`` (the default) the image is resized so that its long side is
    ``long_side`` (or stays as is when ``None``) and both sides are then rounded to the
    nearest multiple (at least one multiple) — a small aspect change, never a crop.
    Without ``resize``, a size that is not a multiple raises :class:`ImageError`.

    Args:
        image: (3, H, W) in [0, 1].
    """
    from brushwork.image import resize_long_side, resize_to

    h, w = image.shape[-2:]
    if not resize:
        if h % multiple or w % multiple or (long_side and max(h, w) != long_side):
            raise ImageError(
                f"the image is {w}×{h} but this model needs sides that are multiples of "
                f"{multiple} pixels{f' with a long side of {long_side}' if long_side else ''};"
                " resize it or drop --keep-size to let brushwork resize it"
            )
        return image
    if long_side is not None and max(h, w) != long_side:
        image = resize_long_side(image, long_side)
        h, w = image.shape[-2:]
    th = max(multiple, round(h / multiple) * multiple)
    tw = max(multiple, round(w / multiple) * multiple)
    return image if (th, tw) == (h, w) else resize_to(image, th, tw)


def check_prompt(tokenizer: Any, prompt: str, *, what: str = "prompt") -> None:
    """ConfigError when ``prompt`` has more tokens than the text encoder sees."""
    limit = int(getattr(tokenizer, "model_max_length", 77)) - 2
    count = len(tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids)
    if count > limit:
        raise ConfigError(
            f"the {what} is {count} tokens long but the text encoder reads at most {limit}; "
            "shorten it (the model would silently ignore the rest)"
        )


@dataclass
class TextCondition:
    """Text conditioning of one prompt.

    Attributes:
        embeds: (1, T, D) token embeddings.
        pooled: (1, D') pooled embedding (SDXL) or ``None``.
    """

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None


def encode_text(pipe: Any, prompt: str) -> tuple[TextCondition, TextCondition]:
    """(conditional, unconditional) conditioning of ``prompt`` as the pipeline makes it."""
    check_prompt(pipe.tokenizer, prompt)
    device = pipe.unet.device
    with torch.no_grad():
        if getattr(pipe, "text_encoder_2", None) is not None:
            cond, uncond, pooled, uncond_pooled = pipe.encode_prompt(
                prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True
            )
            return TextCondition(cond, pooled), TextCondition(uncond, uncond_pooled)
        cond, uncond = pipe.encode_prompt(prompt, device, 1, True)
    return TextCondition(cond), TextCondition(uncond)


def encode_image(pipe: Any, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (1, 4, H/f, W/f) float32 (f = 8 for SD): posterior mean × scale."""
    vae = pipe.vae
    x = image.unsqueeze(0).to(vae.device, vae.dtype) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(x).latent_dist.mean
    return latent.float() * vae.config.scaling_factor


def decode_latents(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """(B, 4, h, w) -> (B, 3, f·h, f·w) float32 in [0, 1] (differentiable; f = 8 for SD)."""
    vae = pipe.vae
    x = vae.decode((latents / vae.config.scaling_factor).to(vae.dtype)).sample
    return ((x.float() + 1) / 2).clamp(0, 1)


def _time_ids(pipe: Any, height: int, width: int) -> torch.Tensor | None:
    if getattr(pipe, "text_encoder_2", None) is None:
        return None
    projection = pipe.text_encoder_2.config.projection_dim
    size = (height, width)
    ids = pipe._get_add_time_ids(
        size, (0, 0), size, torch.float32, text_encoder_projection_dim=projection
    )
    return ids.to(pipe.unet.device)


def predict_noise(
    pipe: Any,
    latents: torch.Tensor,
    t: torch.Tensor,
    texts: Sequence[TextCondition],
    *,
    time_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """ε̂ for a batch: row i of ``latents`` (B, 4, h, w) with ``texts[i]``; float32.

    v-prediction models are converted to ε.
    """
    unet = pipe.unet
    embeds = torch.cat([c.embeds for c in texts]).to(unet.dtype)
    kwargs: dict[str, Any] = {}
    if time_ids is not None:
        pooled = torch.cat([c.pooled for c in texts])  # type: ignore[misc]
        kwargs["added_cond_kwargs"] = {
            "text_embeds": pooled.to(unet.dtype),
            "time_ids": time_ids.repeat(len(texts), 1).to(unet.dtype),
        }
    timesteps = t.expand(latents.shape[0]).to(latents.device)
    out = unet(latents.to(unet.dtype), timesteps, encoder_hidden_states=embeds, **kwargs).sample
    out = out.float()
    if pipe.scheduler.config.get("prediction_type", "epsilon") == "v_prediction":
        a = pipe.scheduler.alphas_cumprod.to(latents.device)[t].float()
        out = a.sqrt() * out + (1 - a).sqrt() * latents.float()
    return out


# --------------------------------------------------------------------------- the editor
@dataclass
class StepOutput:
    """One iteration: loss values (floats) and the DDS direction (1, 4, h, w)."""

    dds_loss: float
    cut_loss: float
    direction: torch.Tensor


@dataclass
class EditResult:
    """Result of an edit.

    Attributes:
        image: (3, H, W) float32 in [0, 1], the decoded edited latent.
        latent: (1, 4, h, w) the edited latent ``z_trg``.
        source_latent: (1, 4, h, w) ``z_src``.
        losses: per iteration ``(dds, cut)`` surrogate loss values.
        model_size: (h, w) the image size the model edited at (``image`` may have been
            resized back to the input's size since, see :func:`edit_keeping_size`).
    """

    image: torch.Tensor
    latent: torch.Tensor
    source_latent: torch.Tensor
    losses: list[tuple[float, float]] = field(default_factory=list)
    model_size: tuple[int, int] | None = None


class Editor:
    """DDS / CDS on one pipeline for one (source, target) prompt pair.

    Args:
        pipe: a diffusers SD 1.x/2.x or SDXL pipeline.
        source: prompt describing the input image (or its ready
            ``(conditional, unconditional)`` :class:`TextCondition` pair).
        target: prompt describing the wanted edit (or its conditioning pair).
        settings: see :class:`EditSettings`.
    """

    def __init__(
        self,
        pipe: Any,
        source: str | tuple[TextCondition, TextCondition],
        target: str | tuple[TextCondition, TextCondition],
        settings: EditSettings | None = None,
    ) -> None:
        self.pipe = pipe
        self.settings = settings or EditSettings()
        scheduler = pipe.scheduler
        self.settings.validate(int(scheduler.config.num_train_timesteps))
        pipe.unet.requires_grad_(False)
        self.alphas = scheduler.alphas_cumprod.float()
        # a prompt, or its ready (conditional, unconditional) conditioning
        self.source, self.source_uncond = (
            encode_text(pipe, source) if isinstance(source, str) else source
        )
        self.target, self.target_uncond = (
            encode_text(pipe, target) if isinstance(target, str) else target
        )
        self.generator = torch.Generator("cpu").manual_seed(self.settings.seed)
        # patch locations come from their own stream, so that the timesteps and noises
        # do not depend on whether (or how often) the CUT loss samples locations
        self.patch_generator = torch.Generator("cpu").manual_seed(self.settings.seed + 7919)

    # ------------------------------------------------------------------ one step
    def sample_noise(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(t of shape (1,), ε like ``latent``) from the editor's generator."""
        s = self.settings
        t = torch.randint(s.t_min, s.t_max, (1,), generator=self.generator)
        eps = torch.randn(latent.shape, generator=self.generator).to(latent.device)
        return t, eps

    def losses(
        self,
        z_src: torch.Tensor,
        z_trg: torch.Tensor,
        t: torch.Tensor,
        eps: torch.Tensor,
        *,
        features: SelfAttentionFeatures | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(DDS surrogate loss, CUT loss, direction g) at one ``t`` and ε.

        Args:
            z_src: (1, 4, h, w) source latent.
            z_trg: (1, 4, h, w) target latent (requires grad).
            t: (1,) long timestep; eps: (1, 4, h, w).
            features: an installed recorder (needed when the settings use the CUT loss).
        """
        s = self.settings
        pipe = self.pipe
        a = self.alphas[t.cpu()].to(z_src.device)
        sa, sb = a.sqrt().view(1, 1, 1, 1), (1 - a).sqrt().view(1, 1, 1, 1)
        zt_src = sa * z_src + sb * eps
        zt_trg = sa * z_trg + sb * eps
        h, w = z_src.shape[-2:]
        factor = int(getattr(pipe, "vae_scale_factor", 8))
        time_ids = _time_ids(pipe, h * factor, w * factor)
        guided = s.guidance_scale != 1
        use_cut = s.uses_cut
        rows: list[tuple[torch.Tensor, TextCondition]] = []
        if guided:
            rows += [(zt_src, self.source_uncond), (zt_trg.detach(), self.target_uncond)]
        ref_row = len(rows)
        rows.append((zt_src, self.source))
        if not use_cut:
            rows.append((zt_trg.detach(), self.target))
        latents = torch.cat([r[0] for r in rows])
        texts = [r[1] for r in rows]
        cut = z_trg.new_zeros(())
        with torch.no_grad():
            if use_cut:
                if features is None:
                    raise RuntimeError("the CUT loss needs an installed SelfAttentionFeatures")
                with features.capture(rows=[ref_row]) as reference:
                    eps_rows = predict_noise(pipe, latents, t, texts, time_ids=time_ids)
            else:
                eps_rows = predict_noise(pipe, latents, t, texts, time_ids=time_ids)
        if use_cut:
            with features.capture() as current:  # type: ignore[union-attr]
                eps_trg_cond = predict_noise(pipe, zt_trg, t, [self.target], time_ids=time_ids)
            for layer in features.layers:  # type: ignore[union-attr]
                ref = _feature_map(reference[layer.name], (h, w))
                cur = _feature_map(current[layer.name], (h, w))
                cut = cut + cut_loss(
                    ref,
                    cur,
                    patch_sizes=s.patch_sizes,
                    num_patches=s.num_patches,
                    temperature=s.temperature,
                    generator=self.patch_generator,
                )
            del reference, current
            eps_trg_cond = eps_trg_cond.detach()
        else:
            eps_trg_cond = eps_rows[-1:]
        eps_src_cond = eps_rows[ref_row : ref_row + 1]
        if guided:
            g = s.guidance_scale
            eps_src = eps_rows[0:1] + g * (eps_src_cond - eps_rows[0:1])
            eps_trg = eps_rows[1:2] + g * (eps_trg_cond - eps_rows[1:2])
        else:
            eps_src, eps_trg = eps_src_cond, eps_trg_cond
        direction = torch.nan_to_num(eps_trg - eps_src)
        dds = s.loss_scale * (z_trg * direction).sum() / (h * w)
        return dds, cut, direction

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        z_src: torch.Tensor,
        *,
        callback: Callable[[int, int, float], None] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """Optimise ``z_trg`` from ``z_src`` (1, 4, h, w); returns (z_trg, losses)."""
        s = self.settings
        z_src = z_src.detach().float()
        z_trg = z_src.clone().requires_grad_(True)
        optimizer = torch.optim.SGD([z_trg], lr=s.learning_rate)
        history: list[tuple[float, float]] = []
        recorder = SelfAttentionFeatures(self.pipe.unet, s.layers) if s.uses_cut else None
        if recorder is not None:
            recorder.install()
        try:
            for i in range(s.iterations):
                t, eps = self.sample_noise(z_src)
                optimizer.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    dds, cut, _ = self.losses(z_src, z_trg, t, eps, features=recorder)
                    total = s.dds_weight * dds + s.cut_weight * cut
                    if not torch.isfinite(total):
                        raise OptimisationError(
                            f"the {s.method.upper()} loss became {float(total.detach())} at "
                            f"iteration {i + 1} (t={int(t)}); try float32 weights "
                            "(--dtype float32) or a lower learning rate"
                        )
                    total.backward()
                optimizer.step()
                if not torch.isfinite(z_trg).all():
                    raise OptimisationError(
                        f"the edited latent became NaN/inf at iteration {i + 1}; try float32 "
                        "weights or a lower learning rate"
                    )
                history.append((float(dds.detach()), float(cut.detach())))
                if callback is not None:
                    callback(i + 1, s.iterations, float(total.detach()))
        finally:
            if recorder is not None:
                recorder.restore()
        return z_trg.detach(), history


def _feature_map(tokens: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(1, h·w, C) attention output -> (1, C, h, w), h and w found from the latent size."""
    n = tokens.shape[1]
    h, w = latent_hw
    while h * w > n:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    if h * w != n:
        raise RuntimeError(f"cannot place {n} tokens on a map of latent size {latent_hw}")
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


def edit_image(
    pipe: Any,
    image: torch.Tensor,
    source: str,
    target: str,
    *,
    settings: EditSettings | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> EditResult:
    """Edit ``image`` (3, H, W) in [0, 1] from ``source`` to ``target`` with DDS or CDS.

    The sides must be multiples of :func:`latent_multiple` (use :func:`fit_image`).
    """
    multiple = latent_multiple(pipe)
    if image.shape[-1] % multiple or image.shape[-2] % multiple:
        raise ImageError(
            f"image sides {tuple(image.shape[-2:])} are not multiples of {multiple}: "
            "use fit_image() first"
        )
    editor = Editor(pipe, source, target, settings)
    z_src = encode_image(pipe, image)
    z_trg, history = editor.run(z_src, callback=callback)
    with torch.no_grad():
        result = decode_latents(pipe, z_trg)[0].cpu()
    if not torch.isfinite(result).all():
        raise OptimisationError("the decoded image has NaNs; try float32 weights")
    return EditResult(result, z_trg, z_src, history, tuple(result.shape[-2:]))


def edit_keeping_size(
    pipe: Any,
    image: torch.Tensor,
    source: str,
    target: str,
    *,
    long_side: int | None = None,
    resize: bool = True,
    settings: EditSettings | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> EditResult:
    """:func:`edit_image` at a size the model takes, returning the input's exact size.

    The input (3, H, W) is resized with :func:`fit_image` (long side ``long_side``, sides
    rounded to :func:`latent_multiple`), edited there, and the decoded result is resized
    back to H × W, so that the edit and its input stay a pair of the same size and aspect
    ratio. ``result.model_size`` is the size the model saw. Without ``resize`` an input the
    model cannot take raises :class:`ImageError` instead.
    """
    from brushwork.image import resize_to

    height, width = (int(side) for side in image.shape[-2:])
    fitted = fit_image(image, multiple=latent_multiple(pipe), long_side=long_side, resize=resize)
    result = edit_image(pipe, fitted, source, target, settings=settings, callback=callback)
    if tuple(result.image.shape[-2:]) != (height, width):
        result.image = resize_to(result.image, height, width).clamp(0, 1)
    return result
