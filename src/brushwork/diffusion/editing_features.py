"""Recording the decoder self-attention outputs of one UNet call (features for CDS).

Contrastive Denoising Score compares the outputs of the self-attention layers
(``attn1``) of the UNet *decoder* (up blocks) between the source and the edited
latent. :class:`SelfAttentionFeatures` wraps exactly those layers' processors: each
wrapper calls the processor that was there before (so the fused attention kernel and
any IP-Adapter or LoRA processor stay in place) and keeps its output for the rows of
the batch that were asked for. Nothing is kept across calls: :meth:`capture` starts an
empty dict for one UNet call, and the caller takes it. Model weights are untouched
(no ``requires_grad``); when the latent requires gradient, the kept features carry it.

Example::

    with SelfAttentionFeatures(unet) as features:
        with features.capture(rows=[2]) as reference:   # cond. source row of a batch
            unet(batch, t, text)
        # reference: {layer name: (1, h·w, C)}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brushwork.diffusion.attention import signature_mirroring_class
from brushwork.errors import ConfigError

__all__ = ["SelfAttentionFeatures", "SelfAttentionLayer", "decoder_self_attention_layers"]


@dataclass(frozen=True)
class SelfAttentionLayer:
    """One self-attention layer of a UNet decoder.

    Attributes:
        name: module name, e.g. ``"up_blocks.1.attentions.0.transformer_blocks.0.attn1"``.
        level: downsampling level of its feature map (0 = the latent's size).
    """

    name: str
    level: int


def decoder_self_attention_layers(unet: torch.nn.Module) -> list[SelfAttentionLayer]:
    """Every ``attn1`` layer of the up blocks, in model order (9 for SD 1.x, 36 for SDXL)."""
    n_down = len(unet.down_blocks)
    layers = []
    for key in unet.attn_processors:
        name = key.removesuffix(".processor")
        parts = name.split(".")
        if parts[0] == "up_blocks" and name.endswith("attn1"):
            layers.append(SelfAttentionLayer(name, n_down - 1 - int(parts[1])))
    return layers


class SelfAttentionFeatures:
    """Context manager that keeps decoder self-attention outputs of selected UNet calls.

    Args:
        unet: a diffusers ``UNet2DConditionModel``.
        layers: module names to record (default: every decoder ``attn1`` layer).

    The original processors are restored on exit, also when the body raises.
    """

    def __init__(self, unet: torch.nn.Module, layers: Sequence[str] | None = None) -> None:
        self.unet = unet
        available = {layer.name: layer for layer in decoder_self_attention_layers(unet)}
        if not available:
            raise ConfigError("the UNet has no self-attention layers in its decoder (up blocks)")
        if layers is None:
            self.layers = list(available.values())
        else:
            unknown = [name for name in layers if name not in available]
            if unknown:
                raise ConfigError(
                    f"unknown decoder self-attention layer(s) {unknown}; available: "
                    f"{', '.join(available)}"
                )
            self.layers = [available[name] for name in layers]
        self._original: dict[str, Any] | None = None
        self._rows: list[int] | None = None
        self._store: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> SelfAttentionFeatures:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        """Wrap the selected layers' processors."""
        if self._original is not None:
            raise RuntimeError("SelfAttentionFeatures is already installed")
        original = dict(self.unet.attn_processors)
        wanted = {layer.name for layer in self.layers}
        processors = {}
        for key, processor in original.items():
            name = key.removesuffix(".processor")
            if name in wanted:
                wrapper_class = signature_mirroring_class(
                    _FeatureProcessor, type(processor), "Features"
                )
                processors[key] = wrapper_class(processor, self, name)
            else:
                processors[key] = processor
        self._original = original
        try:
            self.unet.set_attn_processor(processors)
        except BaseException:
            self.restore()
            raise

    def restore(self) -> None:
        """Put the original processors back (idempotent)."""
        self._store = None
        self._rows = None
        if self._original is not None:
            self.unet.set_attn_processor(self._original)
            self._original = None

    @contextlib.contextmanager
    def capture(self, rows: Sequence[int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Keep, for the UNet call(s) in the body, each layer's output rows ``rows``.

        Yields a dict filled during the body: ``{layer name: (len(rows), h·w, C)}``
        (``rows=None`` keeps the whole batch). Outside a ``capture`` block nothing is
        kept.
        """
        if self._original is None:
            raise RuntimeError("install SelfAttentionFeatures before capturing")
        store: dict[str, torch.Tensor] = {}
        self._store, self._rows = store, (list(rows) if rows is not None else None)
        try:
            yield store
        finally:
            self._store, self._rows = None, None

    def _keep(self, name: str, output: torch.Tensor) -> None:
        if self._store is None:
            return
        if self._rows is not None:
            output = output[self._rows]
        self._store[name] = output


class _FeatureProcessor:
    """Calls the wrapped processor and hands its output to the recorder."""

    def __init__(self, inner: Any, recorder: SelfAttentionFeatures, name: str) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = name

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, attn: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any):
        out = self.inner(attn, hidden_states, *args, **kwargs)
        self.recorder._keep(self.name, out)
        return out
