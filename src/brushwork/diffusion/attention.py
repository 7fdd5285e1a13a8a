"""Recording text attention during generation: DAAM word maps for UNets and MMDiTs.

:class:`AttentionRecorder` wraps the attention processors of the layers where image
queries attend to text keys: the ``attn2`` cross-attention of a UNet (SD 1.x/2.x/XL;
DAAM, Tang et al. 2023), or the joint attention of a multimodal diffusion transformer
(SD3/3.5, Flux). Each wrapper calls the processor that was there before — so the
output, and the fast fused kernel that computes it, are untouched — and then, for
recording only, computes in float32 the probabilities of the *conditional* image
queries over the text keys, per head::

    probs = softmax(q kᵀ · scale) over the text keys          ("text", the default)
    probs = softmax over all keys, text columns kept          ("joint")

The queries and keys are those the attention itself used (after QK-norm and rotary
embeddings): they come from forward hooks on the layer's projections, so nothing is
projected twice; what is family-specific (which layers, which projections, how the
text and image tokens are laid out) lives in :mod:`brushwork.diffusion.backbones`.

Maps are accumulated on the fly into one float32 buffer per image of shape
``(tokens, grid_h, grid_w)``: no per-step storage. After generation,
``buffer / (recorded (layer, head) maps per step)`` is the global map: summed over
timesteps, mean over layers and heads. Layers at a coarser resolution than the grid
(UNets) are summed over steps at their own size, upsampled bicubically, and clamped at
0 once, as the published DAAM package does (``clamp="after-steps"``); ``"per-step"``
clamps each step's upsampled map instead.

Why "text" is the default normalisation: it is the quantity a UNet's cross-attention
computes (softmax over the text tokens only), so maps from both kinds of backbones are
comparable in the study; "joint" also weighs each pixel by how much of its attention
goes to text at all, and costs one extra fused attention per recorded layer.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from brushwork.diffusion.backbones import (
    AttentionInputs,
    AttentionLayer,
    Backbone,
    ProcessorCall,
    backbone_for,
)
from brushwork.diffusion.backbones.unet import BLOCK_KINDS, cross_attention_layers
from brushwork.diffusion.maps import bicubic_matrix
from brushwork.errors import ConfigError

__all__ = [
    "BLOCK_KINDS",
    "CLAMP_ORDERS",
    "NORMALISATIONS",
    "AttentionLayer",
    "AttentionRecorder",
    "CrossAttentionLayer",
    "ObservingProcessor",
    "ProcessorPatch",
    "RecordingSettings",
    "batch_has_guidance",
    "bicubic_matrix",
    "cross_attention_layers",
    "signature_mirroring_class",
]

#: Old name of :class:`AttentionLayer` (UNet cross-attention layers).
CrossAttentionLayer = AttentionLayer

#: How the probabilities over the text keys are normalised.
NORMALISATIONS = ("text", "joint")
#: When coarse layers' upsampled maps are clamped at 0.
CLAMP_ORDERS = ("after-steps", "per-step")


@dataclass(frozen=True)
class RecordingSettings:
    """What to record. The defaults reproduce the published DAAM method on UNets.

    Attributes:
        blocks: model parts whose layers are recorded; ``None``: the family's default
            (UNets: down and up, as DAAM; transformers: every joint and single block).
        indices: record only the blocks with these indices within their part
            (transformers: block numbers); ``None`` keeps all.
        skip_factor: layers whose maps are this many times smaller than the grid are
            skipped (DAAM skips 1/8-size maps); 0 keeps all.
        factors: record only layers whose maps are these many times smaller than the
            grid (1 = the grid's own size, 2 = half, ...); ``None`` keeps all. Like the
            DAAM package's ``factors`` argument.
        steps: denoising step indices (0-based) to record; ``None`` records all.
        keep_per_layer: also keep one (images, tokens, grid) sum per layer.
        keep_per_step: also keep one (images, tokens, grid) map per recorded step
            (each step's coarse maps clamped on their own).
        max_tokens: record only the first ``max_tokens`` text positions (start token
            included); ``None`` records all. Word maps only need the prompt's tokens.
        normalisation: ``"text"`` (softmax over the text keys, the default) or
            ``"joint"`` (joint softmax over text and image keys, text part kept).
        clamp: ``"after-steps"`` (DAAM 0.2.0's order, the default) or ``"per-step"``.
    """

    blocks: tuple[str, ...] | None = None
    indices: tuple[int, ...] | None = None
    skip_factor: int = 8
    factors: tuple[int, ...] | None = None
    steps: tuple[int, ...] | None = None
    keep_per_layer: bool = False
    keep_per_step: bool = False
    max_tokens: int | None = None
    normalisation: str = "text"
    clamp: str = "after-steps"

    def validate(self, backbone: Backbone | None = None) -> None:
        if self.blocks is not None:
            valid = backbone.blocks if backbone is not None else BLOCK_KINDS
            bad = [b for b in self.blocks if b not in valid]
            if bad or not self.blocks:
                raise ConfigError(
                    f"unknown block kind(s) {bad or '(none given)'}: choose from {', '.join(valid)}"
                )
        if self.indices is not None and (not self.indices or any(i < 0 for i in self.indices)):
            raise ConfigError(f"block indices must be ≥ 0, got {self.indices}")
        if self.skip_factor < 0:
            raise ConfigError(f"skip_factor must be ≥ 0, got {self.skip_factor}")
        if self.factors is not None and (not self.factors or any(f < 1 for f in self.factors)):
            raise ConfigError(f"factors must be ≥ 1 (1 = grid size), got {self.factors}")
        if self.steps is not None and any(s < 0 for s in self.steps):
            raise ConfigError(f"step indices must be ≥ 0, got {self.steps}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be ≥ 1, got {self.max_tokens}")
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(
                f"unknown normalisation '{self.normalisation}': choose from "
                f"{', '.join(NORMALISATIONS)}"
            )
        if self.clamp not in CLAMP_ORDERS:
            raise ConfigError(
                f"unknown clamp order '{self.clamp}': choose from {', '.join(CLAMP_ORDERS)}"
            )


@dataclass
class _Buffers:
    """What one generation has recorded so far."""

    grid: tuple[int, int]
    total: torch.Tensor  # (N, T, gh, gw) float32: layers at the grid, and per-step clamps
    maps_per_step: int = 0  # (layer, head) maps added in one step
    #: coarse layers under clamp="after-steps": (N, heads, T, h, w) step sums at their size
    coarse: dict[str, torch.Tensor] = field(default_factory=dict)
    per_layer: dict[str, torch.Tensor] = field(default_factory=dict)
    per_step: list[torch.Tensor] = field(default_factory=list)
    steps_recorded: list[int] = field(default_factory=list)
    layers_recorded: list[str] = field(default_factory=list)


class ProcessorPatch:
    """Base of the recorder and ConceptAttention: wraps chosen layers' processors.

    Wrappers are installed through diffusers' ``set_attn_processor`` with hooks beside
    them; :meth:`restore` (on exit, also after an exception) puts the original
    processors back and removes every hook. Subclasses set ``denoiser``, ``backbone``
    and ``layers``, and implement :meth:`install` with :meth:`_install_wrappers`.
    """

    denoiser: Any
    backbone: Backbone
    layers: list[AttentionLayer]

    def __init__(self) -> None:
        self._original: dict[str, Any] | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> Any:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def _install_wrappers(
        self,
        make: Callable[[Any, AttentionLayer], ObservingProcessor],
        hooks: Callable[[ObservingProcessor, Any], list[Any]],
        denoiser_hooks: Callable[[], list[Any]],
    ) -> None:
        """Wrap each layer's processor with ``make(processor, layer)``, then add hooks.

        ``hooks(wrapper, attn)`` and ``denoiser_hooks()`` return hook handles; anything
        that fails on the way restores what was done. Ends with :meth:`reset`.
        """
        if self._original is not None:
            raise RuntimeError(f"{type(self).__name__} is already installed")
        original = dict(self.denoiser.attn_processors)
        missing = [layer.name for layer in self.layers if f"{layer.name}.processor" not in original]
        if missing:
            raise ConfigError(f"no attention processor found for layer(s) {', '.join(missing)}")
        processors = dict(original)
        wrappers = []
        for layer in self.layers:
            key = f"{layer.name}.processor"
            self.backbone.check_processor(layer, original[key])
            processors[key] = wrapper = make(original[key], layer)
            wrappers.append((wrapper, self.denoiser.get_submodule(layer.name)))
        self._original = original
        try:
            for wrapper, attn in wrappers:
                self._handles += hooks(wrapper, attn)
            self.denoiser.set_attn_processor(processors)
            self._handles += denoiser_hooks()
        except BaseException:
            self.restore()
            raise
        self.reset()

    def restore(self) -> None:
        """Put the original processors back and remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._original is not None:
            self.denoiser.set_attn_processor(self._original)
            self._original = None

    @property
    def installed(self) -> bool:
        return self._original is not None


class AttentionRecorder(ProcessorPatch):
    """Context manager that records word-attribution maps during generation.

    Example::

        with AttentionRecorder(pipe) as recorder:
            image = pipe(prompt, num_inference_steps=30).images[0]
        maps = recorder.token_maps()   # (images, tokens, grid_h, grid_w) float32

    ``pipe`` is a diffusers pipeline (with ``.unet`` or ``.transformer``) or the bare
    denoiser. Whether the batch has an unconditional half is read from
    ``pipe.do_classifier_free_guidance`` at each step, or given with ``guidance``.
    The original processors are restored on exit, also when generation raises. Each
    denoiser call is one step; buffers start empty on entry and can be cleared with
    :meth:`reset` between generations.
    """

    def __init__(
        self,
        pipe: Any,
        settings: RecordingSettings | None = None,
        *,
        guidance: bool | Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone_for(pipe)
        self.settings = settings or RecordingSettings()
        self.settings.validate(self.backbone)
        self.backbone.need_image_keys = self.settings.normalisation == "joint"
        self.denoiser = self.backbone.denoiser
        self._pipe = pipe
        self._guidance = guidance
        self._buffers: _Buffers | None = None
        #: Seconds spent computing and adding maps (for benchmarks; excludes the model).
        self.seconds = 0.0
        self._step = -1
        self._repeat_call = False
        self._matrices: dict[tuple[int, int, str], torch.Tensor] = {}
        blocks = self.settings.blocks or self.backbone.default_blocks
        indices = self.settings.indices
        self.layers = [
            layer
            for layer in self.backbone.layers()
            if layer.block in blocks and (indices is None or layer.index in indices)
        ]
        if not self.layers:
            raise ConfigError(
                f"the {type(self.denoiser).__name__} has no text-attention layers in blocks "
                f"{tuple(blocks)}" + (f" with indices {indices}" if indices else "")
            )

    @property
    def unet(self) -> Any:
        """The denoiser (old name, from when only UNets were supported)."""
        return self.denoiser

    # ------------------------------------------------------------------ install
    def install(self) -> None:
        """Wrap the selected layers' processors and start counting denoiser calls."""

        def make(processor: Any, layer: AttentionLayer) -> ObservingProcessor:
            kind = signature_mirroring_class(_RecordingProcessor, type(processor), "Recording")
            return kind(processor, self, layer)

        def hooks(wrapper: Any, attn: Any) -> list[Any]:
            projections = self.backbone.projections(attn).items()
            return [module.register_forward_hook(wrapper.capture(r)) for r, module in projections]

        def denoiser_hooks() -> list[Any]:
            hook = self._on_denoiser_call
            return [self.denoiser.register_forward_pre_hook(hook, with_kwargs=True)]

        self._install_wrappers(make, hooks, denoiser_hooks)

    def reset(self) -> None:
        """Forget everything recorded (call between generations in one context)."""
        self._buffers = None
        self._step = -1

    # ------------------------------------------------------------------ results
    @property
    def steps_recorded(self) -> list[int]:
        return list(self._buffers.steps_recorded) if self._buffers else []

    def token_maps(self) -> torch.Tensor:
        """(images, tokens, grid_h, grid_w) float32: maps per text position.

        Sum over recorded steps of the mean over recorded (layer, head) maps; on the
        denoiser's device.
        """
        buffers = self._require()
        total = buffers.total.clone()
        for name in buffers.coarse:
            total += self._coarse_sum(buffers, name)
        return total / buffers.maps_per_step

    def layer_maps(self) -> dict[str, torch.Tensor]:
        """Per layer: (images, tokens, grid_h, grid_w), summed over steps, mean over heads.

        Needs ``keep_per_layer=True``.
        """
        buffers = self._require()
        if not self.settings.keep_per_layer:
            raise ConfigError("per-layer maps were not kept: record with keep_per_layer=True")
        sums = dict(buffers.per_layer)
        for name in buffers.coarse:
            sums[name] = self._coarse_sum(buffers, name)
        heads = {name: self.denoiser.get_submodule(name).heads for name in sums}
        order = [name for name in buffers.layers_recorded if name in sums]
        return {name: sums[name] / heads[name] for name in order}

    def step_maps(self) -> torch.Tensor:
        """(steps, images, tokens, grid_h, grid_w): mean over (layer, head) per step.

        Needs ``keep_per_step=True``. Each step's coarse maps are clamped on their own,
        so with ``clamp="after-steps"`` the steps sum to :meth:`token_maps` only up to
        the bicubic overshoot (≈1e-3 relative).
        """
        buffers = self._require()
        if not self.settings.keep_per_step:
            raise ConfigError("per-step maps were not kept: record with keep_per_step=True")
        return torch.stack(buffers.per_step) / buffers.maps_per_step

    def _require(self) -> _Buffers:
        if self._buffers is None or not self._buffers.steps_recorded:
            raise ConfigError(
                "no text attention was recorded: generate inside `with AttentionRecorder(pipe)`"
                " (and check that the chosen steps exist)"
            )
        return self._buffers

    def _coarse_sum(self, buffers: _Buffers, name: str) -> torch.Tensor:
        """(N, T, gh, gw): a coarse layer's step sums upsampled, clamped once, summed over heads."""
        sums = buffers.coarse[name]  # (N, heads, T, h, w)
        h, w = sums.shape[-2:]
        up_h = self._resize_matrix(h, buffers.grid[0], sums.device)
        up_w = self._resize_matrix(w, buffers.grid[1], sums.device)
        out = torch.zeros_like(buffers.total)
        for image in range(sums.shape[0]):
            maps = torch.matmul(torch.matmul(up_h, sums[image]), up_w.T)
            out[image] = maps.clamp_(min=0).sum(dim=0)
        return out

    # ------------------------------------------------------------------ recording
    def _on_denoiser_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._repeat_call = not self.backbone.on_denoiser_call(args, kwargs)
        if not self._repeat_call:
            self._step += 1

    def _uses_guidance(self) -> bool:
        return batch_has_guidance(self._guidance, self.backbone, self._pipe, "AttentionRecorder")

    def _recording_now(self) -> bool:
        steps = self.settings.steps
        if self._repeat_call:
            return False
        return self._step >= 0 and (steps is None or self._step in steps)

    def _resize_matrix(self, size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
        key = (size_in, size_out, str(device))
        if key not in self._matrices:
            self._matrices[key] = bicubic_matrix(size_in, size_out).to(device)
        return self._matrices[key]

    @torch.no_grad()
    def record(self, layer: AttentionLayer, attn: Any, inputs: AttentionInputs) -> None:
        """Add one layer's conditional text-attention probabilities to the buffers."""
        batch = inputs.queries.shape[0]
        rows = slice(batch // 2, batch) if self._uses_guidance() else slice(0, batch)
        queries, text_keys = inputs.queries[rows], inputs.text_keys[rows]
        joint = self.settings.normalisation == "joint" and inputs.image_keys is not None
        image_keys = inputs.image_keys[rows] if joint else None
        images, heads, n_queries, _ = queries.shape
        tokens = text_keys.shape[2]
        if self.settings.max_tokens is not None:
            tokens = min(tokens, self.settings.max_tokens)
        h, w = inputs.map_shape
        if h * w != n_queries:
            raise RuntimeError(f"layer {layer.name}: {n_queries} queries do not fill {h}×{w}")
        grid = self.backbone.map_grid(self.layers)
        factor = round(grid[0] / h)  # 1, 2, 4, ... (non-square sizes round up when halved)
        if self.settings.skip_factor and factor == self.settings.skip_factor:
            return
        if self.settings.factors is not None and factor not in self.settings.factors:
            return
        buffers = self._buffers_for(images, tokens, grid, queries.device)
        if self._step not in buffers.steps_recorded:
            buffers.steps_recorded.append(self._step)
            if self.settings.keep_per_step:
                buffers.per_step.append(torch.zeros_like(buffers.total))
        if layer.name not in buffers.layers_recorded:
            buffers.layers_recorded.append(layer.name)
            buffers.maps_per_step += heads
        at_grid = (h, w) == grid
        coarse_once = not at_grid and self.settings.clamp == "after-steps"
        if coarse_once and layer.name not in buffers.coarse:
            buffers.coarse[layer.name] = torch.zeros(
                images, heads, tokens, h, w, dtype=torch.float32, device=queries.device
            )
        up_h = None if at_grid else self._resize_matrix(h, grid[0], queries.device)
        up_w = None if at_grid else self._resize_matrix(w, grid[1], queries.device)
        # One image and a few heads at a time: the transient memory stays a few MiB
        # whatever the batch, so recording adds next to nothing to the pipeline's peak.
        group = max(1, heads // 4)
        for image in range(images):
            summed = torch.zeros(tokens, *grid, dtype=torch.float32, device=queries.device)
            for first in range(0, heads, group):
                part = slice(first, first + group)
                probs = self._probabilities(
                    inputs.final_queries(queries[image, part]),
                    text_keys[image, part],
                    None if image_keys is None else image_keys[image, part],
                    inputs.scale,
                )[..., :tokens]  # (g, S, T)
                if at_grid:  # probabilities: nothing to clamp, so sum the heads first
                    summed += probs.sum(dim=0).T.reshape(tokens, h, w)
                    continue
                maps = probs.permute(0, 2, 1).reshape(-1, tokens, h, w)  # (g, T, h, w)
                if coarse_once:
                    buffers.coarse[layer.name][image, part] += maps
                if coarse_once and not self.settings.keep_per_step:
                    continue
                upsampled = torch.matmul(torch.matmul(up_h, maps), up_w.T)  # type: ignore[arg-type]
                clamped = upsampled.clamp_(min=0).sum(dim=0)  # (T, gh, gw)
                if coarse_once:  # only the per-step maps take this step's clamp
                    buffers.per_step[-1][image] += clamped
                else:
                    summed += clamped
            buffers.total[image] += summed
            if self.settings.keep_per_layer and not coarse_once:
                buffers.per_layer.setdefault(layer.name, torch.zeros_like(buffers.total))
                buffers.per_layer[layer.name][image] += summed
            if self.settings.keep_per_step and not coarse_once:
                buffers.per_step[-1][image] += summed

    @staticmethod
    def _probabilities(
        queries: torch.Tensor,
        text_keys: torch.Tensor,
        image_keys: torch.Tensor | None,
        scale: float,
    ) -> torch.Tensor:
        """(g, S, T) float32 probabilities of ``g`` heads' queries over the text keys.

        Args:
            queries: (g, S, d); text_keys: (g, T, d); image_keys: (g, S_img, d) or None
                ("text" normalisation).
        """
        q, k = queries.float(), text_keys.float()
        probs = torch.softmax(q @ (k.transpose(1, 2) * scale), dim=-1)
        if image_keys is None:
            return probs
        # Joint softmax, text part: softmax over the text keys times the share of the
        # attention that goes to text at all — one fused attention whose values are
        # 1 on text keys and 0 on image keys (no (S, S) matrix is ever built).
        keys = torch.cat([k, image_keys.float()], dim=1)
        values = torch.zeros(keys.shape[0], keys.shape[1], q.shape[-1], device=q.device)
        values[:, : k.shape[1]] = 1.0
        share = F.scaled_dot_product_attention(q, keys, values, scale=scale)[..., :1]
        return probs * share

    def _buffers_for(
        self, images: int, tokens: int, grid: tuple[int, int], device: torch.device
    ) -> _Buffers:
        buffers = self._buffers
        if buffers is None:
            total = torch.zeros(images, tokens, *grid, dtype=torch.float32, device=device)
            self._buffers = buffers = _Buffers(grid=grid, total=total)
        elif buffers.total.shape[:2] != (images, tokens) or buffers.grid != grid:
            raise ConfigError(
                f"the recorded batch changed from {tuple(buffers.total.shape[:2])} (images, "
                f"tokens) at {buffers.grid} to {(images, tokens)} at {grid}: call "
                "recorder.reset() between generations"
            )
        return buffers


def batch_has_guidance(
    guidance: bool | Callable[[], bool] | None, backbone: Backbone, pipe: Any, owner: str
) -> bool:
    """Whether this denoiser call's batch is [unconditional, conditional] halves.

    ``guidance``: as given to ``owner`` (a flag, a function asked at each call, or
    ``None``: the pipeline's own flag, read through the backbone).
    """
    if callable(guidance):
        return bool(guidance())
    if guidance is not None:
        return guidance
    flag = backbone.guidance_in_batch(pipe)
    if flag is None:
        raise ConfigError(
            "cannot tell whether the batch holds an unconditional half: pass "
            f"guidance=True/False to {owner}"
        )
    return bool(flag)


class ObservingProcessor:
    """Base of the processor wrappers: calls the wrapped processor, then observes.

    The output is the wrapped processor's, untouched; forward hooks on the layer's
    projections (registered with :meth:`capture`) keep the first output of each per
    call in ``self.captured``; after the call, :meth:`observe` gets the call's arguments
    (positional extras bound by name through the wrapped processor's signature). The
    attention recorder and ConceptAttention are both built on it.
    """

    def __init__(self, inner: Any, layer: AttentionLayer) -> None:
        self.inner = inner
        self.layer = layer
        self.captured: dict[str, torch.Tensor] = {}
        try:
            self._signature: inspect.Signature | None = inspect.signature(inner.__call__)
        except (TypeError, ValueError):
            self._signature = None

    def capture(self, role: str) -> Callable[[Any, tuple, torch.Tensor], None]:
        """A forward hook keeping the first output of a projection in this call."""

        def hook(module: Any, args: tuple, output: torch.Tensor) -> None:
            self.captured.setdefault(role, output)

        return hook

    def observe(self, attn: Any, call: ProcessorCall) -> None:
        """What to do after each call (subclasses)."""
        raise NotImplementedError

    def active(self) -> bool:
        """Whether this call is observed (subclasses; default: always)."""
        return True

    def __getattr__(self, name: str) -> Any:
        # Attribute reads (e.g. an IP-Adapter processor's ``scale``) reach the wrapped one.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self.captured = {}
        out = self.inner(
            attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs
        )
        try:
            if self.active():
                named = self._named(args, kwargs)
                self.observe(attn, ProcessorCall(hidden_states, encoder_hidden_states, named))
        finally:
            self.captured = {}
        return out

    def _named(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's extra arguments by name (positional ones bound by the inner signature)."""
        if not args or self._signature is None:
            return kwargs
        names = [
            name
            for name, parameter in self._signature.parameters.items()
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ][4:]  # after attn, hidden_states, encoder_hidden_states, attention_mask
        return {**dict(zip(names, args, strict=False)), **kwargs}


class _RecordingProcessor(ObservingProcessor):
    """Records the text attention of the wrapped processor's call."""

    def __init__(self, inner: Any, recorder: AttentionRecorder, layer: AttentionLayer) -> None:
        super().__init__(inner, layer)
        self.recorder = recorder

    def active(self) -> bool:
        return self.recorder._recording_now()

    def observe(self, attn: Any, call: ProcessorCall) -> None:
        start = time.perf_counter()
        inputs = self.recorder.backbone.inputs(self.layer, attn, self.captured, call)
        if inputs is not None:
            self.recorder.record(self.layer, attn, inputs)
        self.recorder.seconds += time.perf_counter() - start


_CLASSES: dict[tuple[type, type], type] = {}


def signature_mirroring_class(wrapper_base: type, inner_type: type, prefix: str) -> type:
    """A ``wrapper_base`` subclass whose ``__call__`` shows ``inner_type``'s signature.

    diffusers passes an attention processor only the keyword arguments its ``__call__``
    signature names (``ip_adapter_masks``, ``scale``, ...); showing the wrapped
    processor's signature lets every argument it expects pass through untouched. One
    class per (wrapper, wrapped) pair, named ``<prefix><wrapped name>``.
    """
    key = (wrapper_base, inner_type)
    if key not in _CLASSES:

        def __call__(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
            return wrapper_base.__call__(self, *args, **kwargs)

        __call__.__signature__ = inspect.signature(inner_type.__call__)  # type: ignore[attr-defined]
        name = f"{prefix}{inner_type.__name__}"
        _CLASSES[key] = type(name, (wrapper_base,), {"__call__": __call__})
    return _CLASSES[key]
