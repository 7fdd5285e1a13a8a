"""Stable Diffusion 3 / 3.5 (MMDiT): the joint attention of every ``JointTransformerBlock``.

Each block of a diffusers ``SD3Transformer2DModel`` runs one joint attention
(``transformer_blocks.{i}.attn``) over the concatenation [image tokens, text tokens]:
the image queries attend to the image keys *and* the text keys in one softmax. The
recorder keeps the image-query rows and the text-key columns ("text": softmax over the
text keys only; "joint": the joint softmax, text part kept). The last block's text
stream is ``context_pre_only`` (its text outputs are dropped) but its image queries still
attend to the text keys, so it is recorded too. SD3.5's extra image-only self-attention
(``attn2`` of the dual-attention blocks, 0–12 in SD3.5 Medium) has no text: skipped.

Which blocks: attention-map-diffusers (wooyeolbaek) sums every joint block for SD3, as
does the default here; ``RecordingSettings(indices=...)`` picks block numbers.

Text layout of the keys (StableDiffusion3Pipeline.encode_prompt): positions
``0 .. 76`` are the CLIP tokens (CLIP-L and CLIP-G features side by side in the channels,
77 positions, start token first), then ``max_sequence_length`` (default 256) T5 tokens
(no start token; zeros when the pipeline has no T5 encoder). Nothing is masked: padding
tokens are keys like any other.
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
from brushwork.errors import ConfigError

__all__ = ["CLIP_TOKENS", "MAX_SEQUENCE_LENGTH", "SD3Backbone", "joint_attention_layers"]

#: CLIP positions at the start of the text keys (the pipeline's tokenizer_max_length).
CLIP_TOKENS = 77
#: StableDiffusion3Pipeline's default ``max_sequence_length`` (T5 positions after CLIP's).
MAX_SEQUENCE_LENGTH = 256

#: Processors whose joint attention the recorder can follow, by class name. The first
#: and the xFormers one project with to_q / to_k / add_k_proj and apply the QK-norms;
#: the fused one projects with to_qkv / to_added_qkv and applies no QK-norm (as diffusers
#: 0.42 does: the recording follows what the attention saw).
SEPARATE = ("JointAttnProcessor2_0", "XFormersJointAttnProcessor")
FUSED = ("FusedJointAttnProcessor2_0",)


def joint_attention_layers(transformer: torch.nn.Module) -> list[AttentionLayer]:
    """The joint attention ``transformer_blocks.{i}.attn`` of every block, in model order."""
    layers = []
    for index, block in enumerate(transformer.transformer_blocks):
        if getattr(block.attn, "add_k_proj", None) is None:  # no text stream: nothing to map
            continue
        layers.append(AttentionLayer(f"transformer_blocks.{index}.attn", "joint", 0, index))
    return layers


class SD3Backbone(Backbone):
    """SD3 / SD3.5: image queries from ``to_q``, image keys ``to_k``, text keys ``add_k_proj``."""

    blocks = ("joint",)
    default_blocks = ("joint",)

    def __init__(self, denoiser: torch.nn.Module) -> None:
        super().__init__(denoiser)
        self._patch = int(denoiser.config.patch_size)
        self._skip_layers_call = False

    def layers(self) -> list[AttentionLayer]:
        return joint_attention_layers(self.denoiser)

    def projections(self, attn: Any) -> dict[str, torch.nn.Module]:
        # Every projection the supported processors may use: only the used ones fire.
        modules = {"q": attn.to_q, "k": attn.to_k, "text_k": attn.add_k_proj}
        if getattr(attn, "to_qkv", None) is not None:  # after fuse_qkv_projections()
            modules["qkv"] = attn.to_qkv
            modules["text_qkv"] = attn.to_added_qkv
        return modules

    def text_streams(self, pipe: Any) -> list[TextStream]:
        """CLIP at key 0 (the default), then T5 right after CLIP's positions.

        CLIP-L and CLIP-G share the 77 CLIP positions (their features sit side by side
        in the channels; with a different ``prompt_2`` the positions follow ``prompt``'s
        tokenizer). The T5 stream is absent when the pipeline has no T5 encoder (its
        positions are then zeros); its length is the pipeline's default
        ``max_sequence_length`` (a call with another length changes the keys after it,
        not the positions).
        """
        clip_tokens = int(getattr(pipe, "tokenizer_max_length", CLIP_TOKENS))
        streams = [TextStream("clip", pipe.tokenizer, 0, clip_tokens)]
        if getattr(pipe, "text_encoder_3", None) is not None and pipe.tokenizer_3 is not None:
            streams.append(TextStream("t5", pipe.tokenizer_3, clip_tokens, MAX_SEQUENCE_LENGTH))
        return streams

    def on_denoiser_call(self, args: tuple, kwargs: dict) -> bool:
        latents = args[0] if args else kwargs["hidden_states"]  # (B, C, H, W)
        height, width = int(latents.shape[-2]), int(latents.shape[-1])
        self.grid = (height // self._patch, width // self._patch)
        # Skip-layer guidance's extra call: conditional rows only, some blocks skipped.
        self._skip_layers_call = kwargs.get("skip_layers") is not None
        return not self._skip_layers_call

    def check_processor(self, layer: AttentionLayer, processor: Any) -> None:
        name = type(processor).__name__
        if name in SEPARATE + FUSED:
            return
        if name.startswith("PAG"):
            why = "adds a perturbed-attention batch the recording cannot separate"
        else:
            why = (
                "is not one of the joint-attention processors the recording follows "
                f"({', '.join(SEPARATE + FUSED)})"
            )
        raise self.unsupported(layer, processor, why)

    @staticmethod
    def unsupported(layer: AttentionLayer, processor: Any, why: str) -> ConfigError:
        # SD3 transformers have no set_default_attn_processor(): name what works instead.
        return ConfigError(
            f"cannot record attention at layer '{layer.name}': its processor "
            f"{type(processor).__name__} {why}; set the default one (pipe.transformer."
            "set_attn_processor(JointAttnProcessor2_0()), from diffusers.models."
            "attention_processor) or record other blocks"
        )

    def inputs(
        self,
        layer: AttentionLayer,
        attn: Any,
        captured: dict[str, torch.Tensor],
        call: ProcessorCall,
    ) -> AttentionInputs | None:
        if call.encoder_hidden_states is None or self._skip_layers_call:
            return None
        if "qkv" in captured and "text_qkv" in captured:
            queries, image_keys, text_keys = self._fused(attn, captured)
        elif {"q", "k", "text_k"} <= captured.keys():
            queries, image_keys, text_keys = self._separate(attn, captured)
        else:
            raise RuntimeError(
                f"layer {layer.name}: the processor did not call the projections "
                f"{sorted(self.projections(attn))} (got {sorted(captured)})"
            )
        if self.grid is None:
            raise RuntimeError("the transformer's input size is unknown (no call seen)")
        return AttentionInputs(
            queries=queries,
            text_keys=text_keys,
            image_keys=image_keys,
            scale=queries.shape[-1] ** -0.5,  # SDPA's default scale (= attn.scale)
            map_shape=self.grid,
        )

    def _separate(
        self, attn: Any, captured: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(queries, image keys, text keys), each (B, heads, tokens, d), QK-normed.

        As JointAttnProcessor2_0: split heads, then ``norm_q`` / ``norm_k`` on the image
        stream and ``norm_added_k`` on the text keys (SD3.5's RMSNorm; SD3.0 has none).
        """
        queries = self.heads_view(captured["q"], attn.heads)
        image_keys = self.heads_view(captured["k"], attn.heads)
        text_keys = self.heads_view(captured["text_k"], attn.heads)
        if attn.norm_q is not None:
            queries = attn.norm_q(queries)
        if attn.norm_k is not None:
            image_keys = attn.norm_k(image_keys)
        if attn.norm_added_k is not None:
            text_keys = attn.norm_added_k(text_keys)
        return queries, image_keys, text_keys

    def _fused(
        self, attn: Any, captured: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(queries, image keys, text keys) from the fused projections, as
        FusedJointAttnProcessor2_0 uses them: thirds of ``to_qkv`` / ``to_added_qkv``,
        no QK-norm."""
        query, key, _ = captured["qkv"].chunk(3, dim=-1)
        _, text_key, _ = captured["text_qkv"].chunk(3, dim=-1)
        return (
            self.heads_view(query, attn.heads),
            self.heads_view(key, attn.heads),
            self.heads_view(text_key, attn.heads),
        )
