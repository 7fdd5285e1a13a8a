"""Recording text cross-attention during generation (DAAM, Tang et al. 2023).

:class:`AttentionRecorder` wraps the attention processors of a diffusers UNet's text
cross-attention layers (``attn2`` of every transformer block). Each wrapper calls the
processor that was there before — so the output, and the fast fused attention kernel
that computes it, are untouched — and then, for recording only, computes the softmax
probabilities of the *conditional* queries over the text keys in float32:

    probs = softmax(q kᵀ · scale)            (heads, h·w, tokens) per image

Each (layer, head) map is upsampled bicubically to the map grid, clamped at 0, and
added on the fly into one float32 buffer per image of shape (tokens, grid_h, grid_w):
no per-step or per-head storage. After generation, ``buffer / (number of recorded
(layer, head) maps per step)`` is the DAAM global map: summed over timesteps, mean
over layers and heads. The grid is the resolution of the largest cross-attention
layer (64×64 for SD 1.x at 512 px and SDXL at 1024 px, 96×96 for SD 2.x at 768 px),
as in the original method.

The queries and text keys are taken from the layer's own ``to_q``/``to_k`` outputs
through forward hooks while recording, so nothing is projected twice (a processor that
does not call them, e.g. fused QKV projections, is handled by projecting again).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from brushwork.diffusion.maps import bicubic_matrix
from brushwork.errors import ConfigError

__all__ = [
    "BLOCK_KINDS",
    "AttentionRecorder",
    "CrossAttentionLayer",
    "RecordingSettings",
    "bicubic_matrix",
    "cross_attention_layers",
    "signature_mirroring_class",
]

#: The UNet parts a layer can belong to.
BLOCK_KINDS = ("down", "mid", "up")


@dataclass(frozen=True)
class CrossAttentionLayer:
    """One text cross-attention layer of a UNet.

    Attributes:
        name: processor key without ``.processor``, e.g.
            ``"up_blocks.1.attentions.2.transformer_blocks.0.attn2"``.
        block: ``"down"``, ``"mid"`` or ``"up"``.
        level: downsampling level of the layer's feature map (0 = full latent size).
    """

    name: str
    block: str
    level: int


def cross_attention_layers(unet: torch.nn.Module) -> list[CrossAttentionLayer]:
    """Every text cross-attention layer (``attn2``) of a diffusers UNet, in model order."""
    names = [key.removesuffix(".processor") for key in unet.attn_processors]
    n_down = len(unet.down_blocks)
    layers = []
    for name in names:
        if not name.endswith("attn2"):
            continue
        parts = name.split(".")
        if parts[0] == "down_blocks":
            block, level = "down", int(parts[1])
        elif parts[0] == "up_blocks":
            block, level = "up", n_down - 1 - int(parts[1])
        elif parts[0] == "mid_block":
            block, level = "mid", n_down - 1
        else:
            continue
        layers.append(CrossAttentionLayer(name, block, level))
    return layers


@dataclass(frozen=True)
class RecordingSettings:
    """What to record. The defaults reproduce the original DAAM method.

    Attributes:
        blocks: UNet parts whose cross-attention layers are recorded (DAAM: down and up;
            the mid block is skipped).
        skip_factor: layers whose maps are this many times smaller than the grid are
            skipped (DAAM skips 1/8-size maps); 0 keeps all.
        factors: record only layers whose maps are these many times smaller than the
            grid (1 = the grid's own size, 2 = half, ...); ``None`` keeps all. Like the
            DAAM package's ``factors`` argument.
        steps: denoising step indices (0-based) to record; ``None`` records all.
        keep_per_layer: also keep one (images, tokens, grid) sum per layer.
        keep_per_step: also keep one (images, tokens, grid) map per recorded step.
        max_tokens: record only the first ``max_tokens`` text positions (start token
            included); ``None`` records all. Word maps only need the prompt's tokens.
    """

    blocks: tuple[str, ...] = ("down", "up")
    skip_factor: int = 8
    factors: tuple[int, ...] | None = None
    steps: tuple[int, ...] | None = None
    keep_per_layer: bool = False
    keep_per_step: bool = False
    max_tokens: int | None = None

    def validate(self) -> None:
        bad = [b for b in self.blocks if b not in BLOCK_KINDS]
        if bad or not self.blocks:
            raise ConfigError(
                f"unknown UNet block(s) {bad or '(none given)'}: "
                f"choose from {', '.join(BLOCK_KINDS)}"
            )
        if self.skip_factor < 0:
            raise ConfigError(f"skip_factor must be ≥ 0, got {self.skip_factor}")
        if self.factors is not None and (not self.factors or any(f < 1 for f in self.factors)):
            raise ConfigError(f"factors must be ≥ 1 (1 = grid size), got {self.factors}")
        if self.steps is not None and any(s < 0 for s in self.steps):
            raise ConfigError(f"step indices must be ≥ 0, got {self.steps}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be ≥ 1, got {self.max_tokens}")


@dataclass
class _Buffers:
    """What one generation has recorded so far."""

    grid: tuple[int, int]
    total: torch.Tensor  # (N, T, gh, gw) float32
    maps_per_step: int = 0  # (layer, head) maps added in one step
    per_layer: dict[str, torch.Tensor] = field(default_factory=dict)
    per_step: list[torch.Tensor] = field(default_factory=list)
    steps_recorded: list[int] = field(default_factory=list)
    layers_recorded: list[str] = field(default_factory=list)


class AttentionRecorder:
    """Context manager that records DAAM word-attribution maps during generation.

    Example::

        with AttentionRecorder(pipe) as recorder:
            image = pipe(prompt, num_inference_steps=30).images[0]
        maps = recorder.token_maps()   # (images, tokens, grid_h, grid_w) float32

    ``pipe`` is a diffusers pipeline (anything with ``.unet``); whether the batch has
    an unconditional half is read from ``pipe.do_classifier_free_guidance`` at each
    step, or given with ``guidance``. The original processors are restored on exit,
    also when generation raises. Each UNet call is one denoising step; buffers start
    empty on entry and can be cleared with :meth:`reset` between generations.
    """

    def __init__(
        self,
        pipe: Any,
        settings: RecordingSettings | None = None,
        *,
        guidance: bool | Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings or RecordingSettings()
        self.settings.validate()
        self.unet = pipe.unet if hasattr(pipe, "unet") else pipe
        self._pipe = pipe
        self._guidance = guidance
        self._original: dict[str, Any] | None = None
        self._handles: list[Any] = []
        self._buffers: _Buffers | None = None
        #: Seconds spent computing and adding maps (for benchmarks; excludes the UNet).
        self.seconds = 0.0
        self._step = -1
        self._latent_hw: tuple[int, int] | None = None
        self._matrices: dict[tuple[int, int, str], torch.Tensor] = {}
        self.layers = [
            layer
            for layer in cross_attention_layers(self.unet)
            if layer.block in self.settings.blocks
        ]
        if not self.layers:
            raise ConfigError(
                f"the UNet has no text cross-attention layers in blocks {self.settings.blocks}"
            )

    # ------------------------------------------------------------------ install / restore
    def __enter__(self) -> AttentionRecorder:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        """Wrap the selected layers' processors and start counting UNet calls."""
        if self._original is not None:
            raise RuntimeError("AttentionRecorder is already installed")
        original = dict(self.unet.attn_processors)
        wanted = {layer.name: layer for layer in self.layers}
        modules = dict(self.unet.named_modules())
        processors = {}
        for key, processor in original.items():
            layer = wanted.get(key.removesuffix(".processor"))
            if layer is None:
                processors[key] = processor
                continue
            attn = modules[layer.name]
            kind = signature_mirroring_class(_RecordingProcessor, type(processor), "Recording")
            wrapper = kind(processor, self, layer, attn)
            processors[key] = wrapper
            self._handles.append(attn.to_q.register_forward_hook(wrapper.capture_query))
            self._handles.append(attn.to_k.register_forward_hook(wrapper.capture_key))
        self._original = original
        try:
            self.unet.set_attn_processor(processors)
            self._handles.append(
                self.unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True)
            )
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
            self.unet.set_attn_processor(self._original)
            self._original = None

    @property
    def installed(self) -> bool:
        return self._original is not None

    def reset(self) -> None:
        """Forget everything recorded (call between generations in one context)."""
        self._buffers = None
        self._step = -1

    # ------------------------------------------------------------------ results
    @property
    def steps_recorded(self) -> list[int]:
        return list(self._buffers.steps_recorded) if self._buffers else []

    def token_maps(self) -> torch.Tensor:
        """(images, tokens, grid_h, grid_w) float32: DAAM maps per text position.

        Sum over recorded steps of the mean over recorded (layer, head) maps; on the
        UNet's device.
        """
        buffers = self._require()
        return buffers.total / buffers.maps_per_step

    def layer_maps(self) -> dict[str, torch.Tensor]:
        """Per layer: (images, tokens, grid_h, grid_w), summed over steps, mean over heads.

        Needs ``keep_per_layer=True``.
        """
        buffers = self._require()
        if not self.settings.keep_per_layer:
            raise ConfigError("per-layer maps were not kept: record with keep_per_layer=True")
        heads = {layer.name: self._heads(layer) for layer in self.layers}
        return {name: m / heads[name] for name, m in buffers.per_layer.items()}

    def step_maps(self) -> torch.Tensor:
        """(steps, images, tokens, grid_h, grid_w): mean over (layer, head) per step.

        Needs ``keep_per_step=True``.
        """
        buffers = self._require()
        if not self.settings.keep_per_step:
            raise ConfigError("per-step maps were not kept: record with keep_per_step=True")
        return torch.stack(buffers.per_step) / buffers.maps_per_step

    def _require(self) -> _Buffers:
        if self._buffers is None or not self._buffers.steps_recorded:
            raise ConfigError(
                "no cross-attention was recorded: generate inside `with AttentionRecorder(pipe)`"
                " (and check that the chosen steps exist)"
            )
        return self._buffers

    def _heads(self, layer: CrossAttentionLayer) -> int:
        return dict(self.unet.named_modules())[layer.name].heads

    # ------------------------------------------------------------------ recording
    def _on_unet_call(self, module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        self._latent_hw = (int(sample.shape[-2]), int(sample.shape[-1]))
        self._step += 1

    def _uses_guidance(self) -> bool:
        if callable(self._guidance):
            return bool(self._guidance())
        if self._guidance is not None:
            return self._guidance
        flag = getattr(self._pipe, "do_classifier_free_guidance", None)
        if flag is None:
            raise ConfigError(
                "cannot tell whether the batch holds an unconditional half: pass "
                "guidance=True/False to AttentionRecorder"
            )
        return bool(flag)

    def _recording_now(self) -> bool:
        steps = self.settings.steps
        return self._step >= 0 and (steps is None or self._step in steps)

    def _map_shape(self, queries: int) -> tuple[int, int]:
        """(h, w) of a layer's feature map with ``queries`` pixels, from the latent size."""
        if self._latent_hw is None:
            raise RuntimeError("the UNet input size is unknown (no UNet call seen)")
        h, w = self._latent_hw
        while h * w > queries:
            h, w = (h + 1) // 2, (w + 1) // 2
        if h * w != queries:
            raise RuntimeError(f"cannot place {queries} queries on latent {self._latent_hw}")
        return h, w

    def _grid(self) -> tuple[int, int]:
        """The map grid: the feature size of the largest recorded layer."""
        top = min(layer.level for layer in self.layers)
        h, w = self._latent_hw  # type: ignore[misc]
        for _ in range(top):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def _resize_matrix(self, size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
        key = (size_in, size_out, str(device))
        if key not in self._matrices:
            self._matrices[key] = bicubic_matrix(size_in, size_out).to(device)
        return self._matrices[key]

    @torch.no_grad()
    def record(
        self,
        layer: CrossAttentionLayer,
        attn: Any,
        query: torch.Tensor,
        key: torch.Tensor,
    ) -> None:
        """Add one layer's conditional attention probabilities to the buffers.

        Args:
            query: (batch, h·w, heads·head_dim) output of ``to_q`` for the whole batch.
            key: (batch, tokens, heads·head_dim) output of ``to_k`` on the text states.
        """
        batch, queries, _ = query.shape
        rows = slice(batch // 2, batch) if self._uses_guidance() else slice(0, batch)
        query, key = query[rows], key[rows]
        images = query.shape[0]
        tokens = key.shape[1]
        if self.settings.max_tokens is not None:
            tokens = min(tokens, self.settings.max_tokens)
        h, w = self._map_shape(queries)
        grid = self._grid()
        factor = round(grid[0] / h)  # 1, 2, 4, ... (non-square sizes round up when halved)
        if self.settings.skip_factor and factor == self.settings.skip_factor:
            return
        if self.settings.factors is not None and factor not in self.settings.factors:
            return
        heads = attn.heads
        buffers = self._buffers_for(images, tokens, grid, query.device)
        if self._step not in buffers.steps_recorded:
            buffers.steps_recorded.append(self._step)
            if self.settings.keep_per_step:
                buffers.per_step.append(torch.zeros_like(buffers.total))
        if layer.name not in buffers.layers_recorded:
            buffers.layers_recorded.append(layer.name)
            buffers.maps_per_step += heads
        device = query.device
        up_h = self._resize_matrix(h, grid[0], device) if h != grid[0] else None
        up_w = self._resize_matrix(w, grid[1], device) if w != grid[1] else None
        # One image and a few heads at a time: the transient memory stays a few MiB
        # whatever the batch, so recording adds next to nothing to the pipeline's peak.
        group = max(1, heads // 4)
        for image in range(images):
            q_all = query[image].view(queries, heads, -1).transpose(0, 1)  # (H, S, d)
            k_all = key[image].view(key.shape[1], heads, -1).transpose(0, 1)  # (H, T, d)
            summed = torch.zeros(tokens, *grid, dtype=torch.float32, device=device)
            for first in range(0, heads, group):
                q = q_all[first : first + group].float()
                k = k_all[first : first + group].float()
                if attn.norm_q is not None:
                    q = attn.norm_q(q)
                if attn.norm_k is not None:
                    k = attn.norm_k(k)
                probs = torch.softmax(q @ (k.transpose(1, 2) * attn.scale), dim=-1)[..., :tokens]
                if up_h is None and up_w is None:
                    # Already at the grid: nothing to clamp, so sum the heads first.
                    summed += probs.sum(dim=0).T.reshape(tokens, h, w)
                    continue
                # (h', S, T) -> (T, h', h, w); resize and clamp each (layer, head) map.
                maps = probs.permute(2, 0, 1).reshape(tokens, -1, h, w)
                if up_h is not None:
                    maps = torch.matmul(up_h, maps)
                if up_w is not None:
                    maps = torch.matmul(maps, up_w.T)
                summed += maps.clamp_(min=0).sum(dim=1)  # (T, gh, gw)
            buffers.total[image] += summed
            if self.settings.keep_per_layer:
                buffers.per_layer.setdefault(layer.name, torch.zeros_like(buffers.total))
                buffers.per_layer[layer.name][image] += summed
            if self.settings.keep_per_step:
                buffers.per_step[-1][image] += summed

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


class _RecordingProcessor:
    """Calls the wrapped processor for the output, then records the text attention."""

    def __init__(
        self, inner: Any, recorder: AttentionRecorder, layer: CrossAttentionLayer, attn: Any
    ) -> None:
        self.inner = inner
        self.recorder = recorder
        self.layer = layer
        self._query: torch.Tensor | None = None
        self._key: torch.Tensor | None = None

    def capture_query(self, module: Any, args: tuple, output: torch.Tensor) -> None:
        self._query = output

    def capture_key(self, module: Any, args: tuple, output: torch.Tensor) -> None:
        if self._key is None:  # the text keys come first; later calls (if any) are not text
            self._key = output

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
    ) -> torch.Tensor:
        self._query = self._key = None
        out = self.inner(
            attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs
        )
        try:
            if self.recorder._recording_now() and encoder_hidden_states is not None:
                start = time.perf_counter()
                query, key = self._projections(attn, hidden_states, encoder_hidden_states)
                self.recorder.record(self.layer, attn, query, key)
                self.recorder.seconds += time.perf_counter() - start
        finally:
            self._query = self._key = None
        return out

    def _projections(
        self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's query (batch, h·w, C) and text key (batch, T, C) of this call."""
        text = encoder_hidden_states
        if isinstance(text, (tuple, list)):  # IP-Adapter: (text states, image states)
            text = text[0]
        query, key = self._query, self._key
        if query is None:
            states = hidden_states
            if states.ndim == 4:
                b, c, h, w = states.shape
                states = states.view(b, c, h * w).transpose(1, 2)
            if attn.group_norm is not None:
                states = attn.group_norm(states.transpose(1, 2)).transpose(1, 2)
            query = attn.to_q(states)
        if key is None or key.shape[1] != text.shape[1]:
            if attn.norm_cross:
                text = attn.norm_encoder_hidden_states(text)
            key = attn.to_k(text)
        return query, key


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
