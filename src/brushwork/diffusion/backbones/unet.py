"""UNet models (SD 1.x, 2.x, XL): text cross-attention in the ``attn2`` layers.

Each transformer block of a diffusers ``UNet2DConditionModel`` has a self-attention
(``attn1``) and a text cross-attention (``attn2``): the image queries attend to the text
keys only, so the two normalisations of the recorder coincide. Layers sit at several
resolutions; the map grid is the largest recorded one (64×64 for SD 1.x at 512 px).
"""

from __future__ import annotations

from typing import Any

import torch

from brushwork.diffusion.backbones.base import (
    AttentionInputs,
    AttentionLayer,
    Backbone,
    ProcessorCall,
)
from brushwork.diffusion.tokens import TextStream

__all__ = ["BLOCK_KINDS", "UNetBackbone", "cross_attention_layers"]

#: The UNet parts a layer can belong to.
BLOCK_KINDS = ("down", "mid", "up")


def cross_attention_layers(unet: torch.nn.Module) -> list[AttentionLayer]:
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
        layers.append(AttentionLayer(name, block, level, len(layers)))
    return layers


class UNetBackbone(Backbone):
    """The UNet family: ``attn2`` layers, queries from ``to_q``, text keys from ``to_k``."""

    blocks = BLOCK_KINDS
    default_blocks = ("down", "up")  # DAAM skips the mid block

    def __init__(self, denoiser: torch.nn.Module) -> None:
        super().__init__(denoiser)
        self._latent_hw: tuple[int, int] | None = None

    def layers(self) -> list[AttentionLayer]:
        return cross_attention_layers(self.denoiser)

    def projections(self, attn: Any) -> dict[str, torch.nn.Module]:
        return {"q": attn.to_q, "k": attn.to_k}

    def text_streams(self, pipe: Any) -> list[TextStream]:
        """One CLIP stream at key 0 (SDXL's two CLIP encoders share its positions)."""
        tokenizer = pipe.tokenizer
        length = int(getattr(tokenizer, "model_max_length", 77))
        return [TextStream("clip", tokenizer, 0, length if length < 100_000 else 77)]

    def on_denoiser_call(self, args: tuple, kwargs: dict) -> bool:
        sample = args[0] if args else kwargs["sample"]
        self._latent_hw = (int(sample.shape[-2]), int(sample.shape[-1]))
        return True

    def map_grid(self, layers: list[AttentionLayer]) -> tuple[int, int]:
        if self._latent_hw is None:
            raise RuntimeError("the UNet input size is unknown (no UNet call seen)")
        h, w = self._latent_hw
        for _ in range(min(layer.level for layer in layers)):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def inputs(
        self,
        layer: AttentionLayer,
        attn: Any,
        captured: dict[str, torch.Tensor],
        call: ProcessorCall,
    ) -> AttentionInputs | None:
        text = call.encoder_hidden_states
        if text is None:
            return None
        if isinstance(text, (tuple, list)):  # IP-Adapter: (text states, image states)
            text = text[0]
        query = captured.get("q")
        if query is None:  # a processor that projects otherwise (e.g. fused QKV)
            states = call.hidden_states
            if states.ndim == 4:
                b, c, h, w = states.shape
                states = states.view(b, c, h * w).transpose(1, 2)
            if attn.group_norm is not None:
                states = attn.group_norm(states.transpose(1, 2)).transpose(1, 2)
            query = attn.to_q(states)
        key = captured.get("k")
        if key is None or key.shape[1] != text.shape[1]:
            if attn.norm_cross:
                text = attn.norm_encoder_hidden_states(text)
            key = attn.to_k(text)
        queries = self.heads_view(query, attn.heads)
        keys = self.heads_view(key, attn.heads)
        if attn.norm_q is not None:
            queries = attn.norm_q(queries)
        if attn.norm_k is not None:
            keys = attn.norm_k(keys)
        return AttentionInputs(
            queries=queries,
            text_keys=keys,
            image_keys=None,
            scale=float(attn.scale),
            map_shape=self._map_shape(query.shape[1]),
        )

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
