"""ConceptAttention (Helbling et al., ICML 2025): concept maps from Flux's attention outputs.

Each concept (a word or short phrase, open-set: it need not be in the prompt) becomes one
extra token that runs through Flux's double-stream blocks next to the text, **without
changing the image stream**: the image tokens never see the concept tokens, so the image
is bit-identical with and without it. Per chosen block ``l`` and recorded step ``t``::

    o_x = image attention output   (B, S_img, H·d)   softmax([q_txt; q_img] ...) v, image rows
    o_c = concept attention output (B, C, H·d)       concept queries over [concept; image] keys
    map[l, t] = softmax over the C concepts of  o_x · o_cᵀ            (B, C, h, w)

both before the output projection (``to_out`` / ``to_add_out``), heads concatenated (the
dot product sums over heads); the map is the **mean** over chosen blocks and recorded steps.
This follows the reference code's original Flux implementation
(``concept_attention/flux/dit_block.py`` and ``pipeline.py`` of helblazer811/ConceptAttention):

- a concept is embedded by the T5 encoder alone (as the pipeline encodes a prompt, padded
  to ``max_sequence_length``) and its **first** token's embedding is kept: one token per
  concept; its position ids are 0 (no rotation), like Flux's text ids;
- the concept stream's modulation uses the step's time (and guidance) embedding with a
  **zero** pooled text vector;
- concept queries attend to the concept keys and the image keys (not the prompt's);
  prompt and image queries never attend to concept keys (one-directional);
- the concept residual stream is updated like the text stream, with the text stream's
  weights: ``norm1_context`` modulation, ``to_add_out``, ``norm2_context`` and
  ``ff_context`` (gated), from block 0 up to the last chosen block;
- default blocks: the last four double-stream blocks (15–18 of Flux.1's 19, the reference
  pipeline's default), every step.

Hooking is done only through attention processors (wrapped with
:func:`~.attention.signature_mirroring_class`, restored on exit, also after an exception)
and forward hooks that read, never change, what the model computes. Flux.1 only (Flux.2
and SD3 are refused with a clear error; see docs/concept-attention.md). Maps of a
generation: :func:`generate_with_concept_maps`; of an existing image:
:func:`concept_maps_of_image` (the image noised and denoised as
:func:`~.image_maps.maps_of_image` does).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from brushwork.diffusion.attention import (
    ObservingProcessor,
    ProcessorPatch,
    signature_mirroring_class,
)
from brushwork.diffusion.backbones import AttentionLayer, ProcessorCall, backbone_for
from brushwork.diffusion.backbones.flux import MAX_SEQUENCE_LENGTH, FluxBackbone
from brushwork.diffusion.maps import WordMaps
from brushwork.diffusion.pipelines import AttendResult, pipeline_family, seeded_call
from brushwork.errors import ConfigError

__all__ = [
    "DEFAULT_LAST_BLOCKS",
    "ConceptAttention",
    "ConceptSettings",
    "check_concepts",
    "concept_maps_of_image",
    "concept_memory_bytes",
    "encode_concepts",
    "generate_with_concept_maps",
]

#: Blocks averaged by default: this many last double-stream blocks (Flux.1: 15–18).
DEFAULT_LAST_BLOCKS = 4


@dataclass(frozen=True)
class ConceptSettings:
    """What ConceptAttention averages.

    Attributes:
        indices: double-stream block indices whose maps are averaged; ``None``: the last
            :data:`DEFAULT_LAST_BLOCKS` (the reference pipeline's 15–18 on Flux.1). The
            concept stream runs through every block up to the last chosen one.
        steps: denoising step indices (0-based) to record; ``None``: all.
        keep_per_layer: also keep each block's map (mean over steps).
        max_sequence_length: the T5 length concepts are encoded at (padding changes T5's
            output; FluxPipeline's default is 512).
    """

    indices: tuple[int, ...] | None = None
    steps: tuple[int, ...] | None = None
    keep_per_layer: bool = False
    max_sequence_length: int = MAX_SEQUENCE_LENGTH

    def block_indices(self, blocks: int) -> tuple[int, ...]:
        """The chosen indices for a model with ``blocks`` double-stream blocks."""
        if self.indices is None:
            return tuple(range(max(0, blocks - DEFAULT_LAST_BLOCKS), blocks))
        bad = [i for i in self.indices if not 0 <= i < blocks]
        if bad or not self.indices:
            raise ConfigError(
                f"block indices {bad or '(none given)'} do not exist: this model's "
                f"double-stream blocks are 0..{blocks - 1}"
            )
        return tuple(sorted(set(self.indices)))

    def validate(self) -> None:
        if self.steps is not None and any(s < 0 for s in self.steps):
            raise ConfigError(f"step indices must be ≥ 0, got {self.steps}")
        if self.max_sequence_length < 1:
            raise ConfigError(f"max_sequence_length must be ≥ 1, got {self.max_sequence_length}")


def check_concepts(concepts: Sequence[str]) -> list[str]:
    """The concepts as a list; refuses fewer than 2 (the map is a softmax over them)."""
    if isinstance(concepts, str):
        raise ConfigError("concepts must be a list of words, not one string")
    concept_list = [str(c).strip() for c in concepts]
    if any(not c for c in concept_list):
        raise ConfigError("a concept is empty: give each concept as a word or short phrase")
    if len(concept_list) < 2:
        raise ConfigError(
            f"ConceptAttention needs at least 2 concepts, got {len(concept_list)}: its map is "
            "a softmax over the concepts, so one concept is 1 everywhere (add e.g. 'background')"
        )
    return concept_list


@torch.no_grad()
def encode_concepts(
    pipe: Any, concepts: Sequence[str], max_sequence_length: int = MAX_SEQUENCE_LENGTH
) -> torch.Tensor:
    """(C, D_t5): each concept's T5 embedding at its first token, encoded on its own.

    As the reference code: each concept is a T5 "prompt" padded to
    ``max_sequence_length`` (no attention mask, as FluxPipeline encodes prompts), and
    only position 0 is kept.
    """
    embeddings, _pooled, _ids = pipe.encode_prompt(
        prompt=list(concepts),
        prompt_2=list(concepts),
        device=pipe._execution_device,
        num_images_per_prompt=1,
        max_sequence_length=max_sequence_length,
    )
    return embeddings[:, 0]


def concept_memory_bytes(images: int, concepts: int, grid: tuple[int, int], dim: int) -> int:
    """Rough extra memory of ConceptAttention over plain generation, in bytes.

    ``images × concepts × (grid_h·grid_w·4·3 + dim·4·8)``: float32 map sums and one
    layer's logits/probabilities per image, plus the concept stream and its attention
    temporaries (about 8 vectors of ``dim`` per concept). Small next to the model.
    """
    h, w = grid
    return images * concepts * (h * w * 4 * 3 + dim * 4 * 8)


@dataclass
class _Sums:
    """Map sums of one generation."""

    total: torch.Tensor  # (N, C, h, w) float32: sum over (step, block) of softmax maps
    maps: int = 0  # (step, block) maps added
    per_layer: dict[str, torch.Tensor] = field(default_factory=dict)
    steps_recorded: list[int] = field(default_factory=list)


class ConceptAttention(ProcessorPatch):
    """Context manager that computes ConceptAttention maps during Flux generation.

    Example::

        with ConceptAttention(pipe, ["giraffe", "sky", "grass"]) as concept:
            image = pipe(prompt, num_inference_steps=4).images[0]
        maps = concept.concept_maps()   # (images, concepts, grid_h, grid_w) float32

    Args:
        pipe: a diffusers FluxPipeline (T5 encoder needed unless ``concept_embeddings``).
        concepts: ≥ 2 words or phrases (they need not appear in the prompt).
        settings: blocks, steps and T5 length (defaults: the reference pipeline's).
        concept_embeddings: (C, D_t5) ready-made concept embeddings, instead of encoding.
    """

    def __init__(
        self,
        pipe: Any,
        concepts: Sequence[str],
        settings: ConceptSettings | None = None,
        *,
        concept_embeddings: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.concepts = check_concepts(concepts)
        self.settings = settings or ConceptSettings()
        self.settings.validate()
        self.backbone = backbone_for(pipe)
        if type(self.backbone) is not FluxBackbone:  # Flux.2's adapter derives from it
            raise ConfigError(
                f"ConceptAttention supports Flux.1 (FluxTransformer2DModel) only, not "
                f"{type(self.backbone.denoiser).__name__}: use the default map method"
            )
        self.denoiser = self.backbone.denoiser
        self._pipe = pipe
        self.indices = self.settings.block_indices(len(self.denoiser.transformer_blocks))
        #: Every double-stream block the concept stream passes through (0..last chosen).
        self.layers = [
            AttentionLayer(f"transformer_blocks.{i}.attn", "joint", 0, i)
            for i in range(max(self.indices) + 1)
        ]
        if concept_embeddings is not None and concept_embeddings.shape[0] != len(self.concepts):
            raise ConfigError(
                f"{concept_embeddings.shape[0]} concept embeddings given for "
                f"{len(self.concepts)} concepts"
            )
        self._embeddings = concept_embeddings
        self._sums: _Sums | None = None
        self._step = -1
        self._active = False
        self._stream: torch.Tensor | None = None  # (B, C, D): the concept residual stream
        self._concept_temb: torch.Tensor | None = None  # (B, D)
        self._concept_rotary: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ install / restore
    def install(self) -> None:
        """Encode the concepts, wrap the blocks' processors, hook what the stream reads."""
        if self._original is not None:
            raise RuntimeError("ConceptAttention is already installed")
        if self._embeddings is None:
            if not hasattr(self._pipe, "encode_prompt"):
                raise ConfigError(
                    "ConceptAttention needs the pipeline (its T5 encoder) to embed the concepts,"
                    " or concept_embeddings=encode_concepts(pipe, concepts)"
                )
            self._embeddings = encode_concepts(
                self._pipe, self.concepts, self.settings.max_sequence_length
            )

        for layer in self.layers:  # the concept stream reads the to_k / to_v outputs
            if getattr(self.denoiser.get_submodule(layer.name), "fused_projections", False):
                raise self.backbone.unsupported(
                    layer,
                    self.denoiser.get_submodule(layer.name).processor,
                    "runs fused QKV projections (to_qkv), whose keys and values ConceptAttention "
                    "cannot hook (call pipe.transformer.unfuse_qkv_projections())",
                )

        def make(processor: Any, layer: AttentionLayer) -> ObservingProcessor:
            kind = signature_mirroring_class(_ConceptProcessor, type(processor), "Concept")
            return kind(processor, self, layer)

        def denoiser_hooks() -> list[Any]:
            return [
                self.denoiser.register_forward_pre_hook(self._on_denoiser_call, with_kwargs=True),
                self.denoiser.time_text_embed.register_forward_hook(
                    self._on_time_embedding, with_kwargs=True
                ),
            ]

        self._install_wrappers(make, lambda wrapper, attn: wrapper.hook(attn), denoiser_hooks)

    def restore(self) -> None:
        """Put the original processors back and remove the hooks (idempotent)."""
        super().restore()
        self._stream = self._concept_temb = None

    def reset(self) -> None:
        """Forget the maps (call between generations in one context)."""
        self._sums = None
        self._step = -1

    # ------------------------------------------------------------------ results
    @property
    def steps_recorded(self) -> list[int]:
        return list(self._sums.steps_recorded) if self._sums else []

    def concept_maps(self) -> torch.Tensor:
        """(images, concepts, grid_h, grid_w) float32: mean over (step, block) of the softmaxes.

        Each pixel's values sum to 1 over the concepts.
        """
        sums = self._require()
        return sums.total / sums.maps

    def layer_maps(self) -> dict[str, torch.Tensor]:
        """Per chosen block: (images, concepts, grid_h, grid_w), mean over recorded steps.

        Needs ``keep_per_layer=True``.
        """
        sums = self._require()
        if not self.settings.keep_per_layer:
            raise ConfigError("per-layer maps were not kept: use keep_per_layer=True")
        steps = len(sums.steps_recorded)
        return {name: total / steps for name, total in sums.per_layer.items()}

    def _require(self) -> _Sums:
        if self._sums is None or not self._sums.maps:
            raise ConfigError(
                "no concept attention was recorded: generate inside `with ConceptAttention(...)`"
                " (and check that the chosen steps exist)"
            )
        return self._sums

    # ------------------------------------------------------------------ per call
    def _on_denoiser_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        is_step = self.backbone.on_denoiser_call(args, kwargs)
        if is_step:
            self._step += 1
        steps = self.settings.steps
        self._active = is_step and (steps is None or self._step in steps)
        self._stream = self._concept_temb = None
        if not self._active:
            return
        given = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        batch = int(given["hidden_states"].shape[0])
        embedder = module.context_embedder
        embeddings = self._embeddings.to(embedder.weight.device, embedder.weight.dtype)
        with torch.no_grad():
            self._stream = embedder(embeddings)[None].expand(batch, -1, -1)

    def _on_time_embedding(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        """The concept stream's modulation input: this step's embedding, zero pooled text."""
        if not self._active:
            return
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        pooled = bound.arguments["pooled_projection"]
        bound.arguments["pooled_projection"] = torch.zeros_like(pooled)
        with torch.no_grad():
            self._concept_temb = module.forward(*bound.args, **bound.kwargs)

    def _rotary_of_concepts(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (C, head_dim): the model's rotary embedding of position ids 0."""
        if self._concept_rotary is None or self._concept_rotary[0].device != device:
            pos_embed = self.denoiser.pos_embed
            ids = torch.zeros(len(self.concepts), len(pos_embed.axes_dim), device=device)
            self._concept_rotary = pos_embed(ids)
        return self._concept_rotary

    @torch.no_grad()
    def concept_block(
        self,
        layer: AttentionLayer,
        attn: Any,
        captured: dict[str, torch.Tensor],
        call: ProcessorCall,
    ) -> None:
        """Run the concept stream through one double-stream block; add the block's map.

        ``captured``: the image stream's ``k``/``v`` projections (B, S_img, H·d) and
        ``out`` = the image attention output before ``to_out`` (B, S_img, H·d).
        """
        from diffusers.models.embeddings import apply_rotary_emb

        if self._stream is None or self._concept_temb is None:
            raise RuntimeError("the concept stream was not started (no transformer call seen)")
        if not {"k", "v", "out"} <= set(captured):
            raise self.backbone.unsupported(layer, attn.processor, "did not call the projections")
        block = self.denoiser.transformer_blocks[layer.index]
        stream = self._stream
        normed, gate_msa, shift_mlp, scale_mlp, gate_mlp = block.norm1_context(
            stream, emb=self._concept_temb
        )

        def heads(projected: torch.Tensor) -> torch.Tensor:  # (B, S, H·d) -> (B, S, H, d)
            return projected.unflatten(-1, (-1, attn.head_dim))

        concept_rotary = self._rotary_of_concepts(stream.device)
        query = apply_rotary_emb(
            attn.norm_added_q(heads(attn.add_q_proj(normed))), concept_rotary, sequence_dim=1
        )
        concept_key = apply_rotary_emb(
            attn.norm_added_k(heads(attn.add_k_proj(normed))), concept_rotary, sequence_dim=1
        )
        cos, sin = self.backbone.rotary(call)
        text_length = int(call.encoder_hidden_states.shape[1])
        image_key = apply_rotary_emb(
            attn.norm_k(heads(captured["k"])),
            (cos[text_length:], sin[text_length:]),
            sequence_dim=1,
        )
        keys = torch.cat([concept_key, image_key], dim=1).transpose(1, 2)  # (B, H, C+S, d)
        values = torch.cat([heads(attn.add_v_proj(normed)), heads(captured["v"])], dim=1)
        concept_out = F.scaled_dot_product_attention(
            query.transpose(1, 2), keys, values.transpose(1, 2)
        )
        concept_out = concept_out.transpose(1, 2).flatten(2).to(query.dtype)  # (B, C, H·d)
        if layer.index in self.indices:
            self._add_map(layer, captured["out"], concept_out)
        if layer.index == max(self.indices):
            return  # the stream is not needed past the last chosen block
        stream = stream + gate_msa.unsqueeze(1) * attn.to_add_out(concept_out)
        normed = block.norm2_context(stream) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        stream = stream + gate_mlp.unsqueeze(1) * block.ff_context(normed)
        if stream.dtype == torch.float16:
            stream = stream.clip(-65504, 65504)
        self._stream = stream

    def _add_map(self, layer: AttentionLayer, image_out: torch.Tensor, concept_out: torch.Tensor):
        """Add softmax over concepts of ⟨o_x, o_c⟩ (float32) to the sums.

        Args:
            image_out: (B, S_img, H·d) image attention output (generated tokens first).
            concept_out: (B, C, H·d) concept attention output.
        """
        h, w = self.backbone.map_grid(self.layers)
        pixels = image_out[:, : h * w].float()
        logits = pixels @ concept_out.float().transpose(1, 2)  # (B, S, C)
        probs = torch.softmax(logits, dim=-1).transpose(1, 2).reshape(-1, logits.shape[-1], h, w)
        sums = self._sums
        if sums is None:
            self._sums = sums = _Sums(total=torch.zeros_like(probs))
        elif sums.total.shape != probs.shape:
            raise ConfigError(
                f"the batch changed from {tuple(sums.total.shape)} to {tuple(probs.shape)} "
                "(images, concepts, h, w): call reset() between generations"
            )
        if self._step not in sums.steps_recorded:
            sums.steps_recorded.append(self._step)
        sums.total += probs
        sums.maps += 1
        if self.settings.keep_per_layer:
            sums.per_layer.setdefault(layer.name, torch.zeros_like(probs))
            sums.per_layer[layer.name] += probs


class _ConceptProcessor(ObservingProcessor):
    """Calls the wrapped processor for the output, then advances the concept stream."""

    def __init__(self, inner: Any, owner: ConceptAttention, layer: AttentionLayer) -> None:
        super().__init__(inner, layer)
        self.owner = owner

    def hook(self, attn: Any) -> list[Any]:
        """Forward hooks keeping the image ``k``/``v`` and the pre-``to_out`` output."""

        def keep_input(module: Any, args: tuple) -> None:
            self.captured.setdefault("out", args[0])

        return [
            attn.to_k.register_forward_hook(self.capture("k")),
            attn.to_v.register_forward_hook(self.capture("v")),
            attn.to_out[0].register_forward_pre_hook(keep_input),
        ]

    def active(self) -> bool:
        return self.owner._active

    def observe(self, attn: Any, call: ProcessorCall) -> None:
        self.owner.concept_block(self.layer, attn, self.captured, call)


def generate_with_concept_maps(
    pipe: Any,
    prompts: str | Sequence[str],
    concepts: Sequence[str],
    *,
    num_inference_steps: int = 30,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seeds: int | Sequence[int] = 0,
    num_images_per_prompt: int = 1,
    negative_prompt: str | Sequence[str] | None = None,
    settings: ConceptSettings | None = None,
    **pipe_kwargs: Any,
) -> AttendResult:
    """Generate a batch of Flux images in one call and each image's ConceptAttention maps.

    The same arguments and result as :func:`~.pipelines.generate_with_maps`, with
    ``concepts`` (≥ 2, the same for every prompt, open-set) in place of ``words``: each
    image's :class:`~.maps.WordMaps` has ``words = concepts``, ``positions = [[i]]``
    (the concept's index) and maps (concepts, h, w) summing to 1 per pixel;
    ``token_maps`` is (N, concepts, h, w). ``settings.max_sequence_length`` follows
    ``pipe_kwargs["max_sequence_length"]`` when given. ``extra``: ``"steps_recorded"``,
    ``"method": "concept"``, ``"blocks"`` (indices) and, when kept, ``"layer_maps"``.
    """
    pipeline_family(pipe)
    concept_list = check_concepts(concepts)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise ConfigError("no prompt given")
    settings = settings or ConceptSettings()
    if "max_sequence_length" in pipe_kwargs:
        settings = ConceptSettings(
            **{**settings.__dict__, "max_sequence_length": int(pipe_kwargs["max_sequence_length"])}
        )
    count = len(prompt_list) * num_images_per_prompt
    call = seeded_call(
        pipe,
        prompt_list,
        seeds=seeds,
        num_inference_steps=num_inference_steps,
        height=height,
        width=width,
        num_images_per_prompt=num_images_per_prompt,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        **pipe_kwargs,
    )
    with ConceptAttention(pipe, concept_list, settings) as concept:
        output = pipe(**call)
        concept_maps = concept.concept_maps().cpu()
        extra: dict[str, Any] = {
            "steps_recorded": concept.steps_recorded,
            "method": "concept",
            "blocks": list(concept.indices),
        }
        if settings.keep_per_layer:
            extra["layer_maps"] = {k: v.cpu() for k, v in concept.layer_maps().items()}
    images = output.images.float().cpu().clamp(0, 1)
    image_size = (int(images.shape[-2]), int(images.shape[-1]))
    per_image_prompts = [p for p in prompt_list for _ in range(num_images_per_prompt)]
    maps = [
        WordMaps(
            prompt=per_image_prompts[i],
            words=list(concept_list),
            positions=[[c] for c in range(len(concept_list))],
            maps=concept_maps[i],
            image_size=image_size,
        )
        for i in range(count)
    ]
    return AttendResult(
        images=images, prompts=per_image_prompts, maps=maps, token_maps=concept_maps, extra=extra
    )


def concept_maps_of_image(
    pipe: Any,
    image: Any,
    concepts: Sequence[str],
    *,
    caption: str,
    timesteps: Sequence[float] | None = None,
    seed: int = 0,
    settings: ConceptSettings | None = None,
    side: int | None = None,
) -> AttendResult:
    """ConceptAttention maps of an existing image (the paper's setting for real images).

    The image is encoded, noised and denoised once per timestep exactly as
    :func:`~.image_maps.maps_of_image` does (its defaults: five mid-schedule timesteps,
    one seeded noise); the concept stream runs beside each call and the map is the mean
    over the chosen blocks and the timesteps. The paper maps real images with one call
    at one noise level: pass one timestep for that.

    Args:
        pipe: a Flux.1 pipeline.
        image: (3, H, W) or (1, 3, H, W) float tensor in [0, 1], or a PIL image.
        concepts: ≥ 2 words or short phrases (open-set: they need not be in the caption).
        caption: the prompt of the denoiser calls (what the image shows).
        timesteps, seed, side: as for :func:`~.image_maps.maps_of_image`.
        settings: blocks and kept layers (``steps`` index the timesteps).

    Returns:
        An :class:`~.pipelines.AttendResult` with ``images`` = the input (1, 3, H, W) and
        one :class:`~.maps.WordMaps` of the concepts (maps (C, h, w), each pixel summing
        to 1); ``extra``: ``"timesteps"``, ``"input_size"``, ``"steps_recorded"``,
        ``"method": "concept"``, ``"blocks"`` and, when kept, ``"layer_maps"``.

    Raises:
        ImageError: ``image`` is not an image.
        ConfigError: fewer than 2 concepts, an empty caption, bad timesteps, or a
            pipeline that is not Flux.1 (all before any model runs).
    """
    from brushwork.diffusion.image_maps import (
        _as_image,
        _check_caption,
        check_family,
        denoise_noised,
        plan,
    )

    check_family(pipe)
    concept_list = check_concepts(concepts)
    picture = _as_image(image)
    _check_caption(caption)
    size, chosen = plan(pipe, picture, timesteps, side)
    with ConceptAttention(pipe, concept_list, settings) as concept:  # validates first
        denoise_noised(pipe, picture, caption, size, chosen, seed)
        concept_maps = concept.concept_maps().cpu()
        extra: dict[str, Any] = {
            "steps_recorded": concept.steps_recorded,
            "timesteps": chosen,
            "input_size": size,
            "method": "concept",
            "blocks": list(concept.indices),
        }
        if concept.settings.keep_per_layer:
            extra["layer_maps"] = {k: v.cpu() for k, v in concept.layer_maps().items()}
    image_size = (int(picture.shape[-2]), int(picture.shape[-1]))
    maps = WordMaps(
        prompt=caption,
        words=list(concept_list),
        positions=[[c] for c in range(len(concept_list))],
        maps=concept_maps[0],
        image_size=image_size,
    )
    return AttendResult(
        images=picture[None], prompts=[caption], maps=[maps], token_maps=concept_maps, extra=extra
    )
