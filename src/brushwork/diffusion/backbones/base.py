"""What the attention recorder needs to know about one denoiser family.

The recorder (:class:`brushwork.diffusion.attention.AttentionRecorder`) is the same for
every model: it wraps attention processors, keeps the model's own attention for the
output, and accumulates text-attention maps in float32. A :class:`Backbone` is the
small per-family part: which attention layers carry text, which projections to hook,
how to turn the hooked projections into the image queries and text keys *as the
attention sees them* (after QK-norm and rotary embeddings), and where the image tokens
sit on the latent grid. Adding a family (Qwen-Image, …) is one file in this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from brushwork.diffusion.backbones.rotary import rotate
from brushwork.diffusion.tokens import TextStream
from brushwork.errors import ConfigError

__all__ = ["AttentionInputs", "AttentionLayer", "Backbone", "ProcessorCall"]


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer whose image queries attend to text keys.

    Attributes:
        name: module path of the attention module (processor key without
            ``.processor``), e.g. ``"up_blocks.1.attentions.2.transformer_blocks.0.attn2"``
            or ``"single_transformer_blocks.3.attn"``.
        block: the part of the model: ``"down"``, ``"mid"``, ``"up"`` (UNets),
            ``"joint"`` (SD3 joint and Flux double-stream blocks) or ``"single"``
            (Flux single-stream blocks).
        level: downsampling level of the layer's map (0 = the map grid; UNet only).
        index: the block's index within its part (transformers; UNets: order seen).
    """

    name: str
    block: str
    level: int = 0
    index: int = 0


@dataclass
class ProcessorCall:
    """The arguments of one attention-processor call, as the wrapper received them."""

    hidden_states: torch.Tensor
    encoder_hidden_states: Any
    kwargs: dict[str, Any]


@dataclass
class AttentionInputs:
    """The tensors one layer's recording needs, as the attention saw them.

    Attributes:
        queries: ``(batch, heads, image tokens, head_dim)`` image queries.
        text_keys: ``(batch, heads, text tokens, head_dim)``.
        image_keys: ``(batch, heads, image tokens, head_dim)`` for joint attention
            (the "joint" normalisation needs them); ``None`` for cross-attention.
        scale: the softmax scale (usually ``head_dim ** -0.5``).
        map_shape: ``(h, w)`` of the layer's image tokens.
        query_rotation: ``(image tokens, head_dim / 2)`` complex rotary embedding still
            to apply to ``queries`` (see :mod:`.rotary`), or ``None`` when ``queries``
            are final. The recorder applies it a few heads at a time, in float32, so
            the rotated queries of the whole batch never exist at once.
    """

    queries: torch.Tensor
    text_keys: torch.Tensor
    image_keys: torch.Tensor | None
    scale: float
    map_shape: tuple[int, int]
    query_rotation: torch.Tensor | None = None

    def final_queries(self, queries: torch.Tensor) -> torch.Tensor:
        """``queries`` (a slice of :attr:`queries`, ``(..., S, d)``) rotated if needed."""
        if self.query_rotation is None:
            return queries
        return rotate(queries, self.query_rotation)


class Backbone:
    """Base of the per-family adapters. Subclasses fill in the five methods below.

    Args:
        denoiser: the family's denoising model (a UNet or a transformer).
    """

    #: The ``block`` values this family's layers can have, in model order.
    blocks: tuple[str, ...] = ()
    #: The blocks recorded by default (the literature's choice for this family).
    default_blocks: tuple[str, ...] = ()

    def __init__(self, denoiser: torch.nn.Module) -> None:
        self.denoiser = denoiser
        self.grid: tuple[int, int] | None = None
        #: Whether :meth:`inputs` must give the image keys (the "joint" normalisation);
        #: set by the recorder, so an adapter can skip work the maps do not need.
        self.need_image_keys = True

    # ------------------------------------------------------------------ per family
    def layers(self) -> list[AttentionLayer]:
        """Every text-attention layer of the model, in model order."""
        raise NotImplementedError

    def projections(self, attn: Any) -> dict[str, torch.nn.Module]:
        """The projection modules whose outputs the recorder hooks, by role name."""
        raise NotImplementedError

    def inputs(
        self,
        layer: AttentionLayer,
        attn: Any,
        captured: dict[str, torch.Tensor],
        call: ProcessorCall,
    ) -> AttentionInputs | None:
        """The layer's queries and keys for this call; ``None``: no text in this call."""
        raise NotImplementedError

    def text_streams(self, pipe: Any) -> list[TextStream]:
        """The text streams in the layer's keys, in order; the first is the default."""
        raise NotImplementedError

    def on_denoiser_call(self, args: tuple, kwargs: dict) -> bool:
        """Read the map grid (and anything else per call) from the denoiser's inputs.

        Returns:
            True for a denoising step; False for an extra call within the same step
            (a true-CFG negative pass, skip-layer guidance), which is neither counted
            as a step nor recorded.
        """
        raise NotImplementedError

    def map_grid(self, layers: list[AttentionLayer]) -> tuple[int, int]:
        """``(h, w)`` of the maps: the largest recorded layer's, for this call."""
        if self.grid is None:
            raise RuntimeError("the denoiser's input size is unknown (no call seen)")
        return self.grid

    # ------------------------------------------------------------------ shared
    def guidance_in_batch(self, pipe: Any) -> bool | None:
        """Whether each denoiser call's batch is [unconditional, conditional] halves.

        ``None`` when it cannot be told (the recorder then asks the caller).
        """
        flag = getattr(pipe, "do_classifier_free_guidance", None)
        return None if flag is None else bool(flag)

    def check_processor(self, layer: AttentionLayer, processor: Any) -> None:
        """Refuse, naming the layer, a processor this family's recording cannot follow."""

    @staticmethod
    def heads_view(tensor: torch.Tensor, heads: int) -> torch.Tensor:
        """(batch, tokens, heads·d) or (batch, tokens, heads, d) -> (batch, heads, tokens, d)."""
        if tensor.ndim == 3:
            tensor = tensor.unflatten(-1, (heads, -1))
        return tensor.transpose(1, 2)

    @staticmethod
    def unsupported(layer: AttentionLayer, processor: Any, why: str) -> ConfigError:
        return ConfigError(
            f"cannot record attention at layer '{layer.name}': its processor "
            f"{type(processor).__name__} {why}; set the model's default processors "
            "(e.g. pipe.transformer.set_default_attn_processor()) or record other blocks"
        )
