"""Flux.2 (dev, klein): the Flux.1 layout with a fused single-stream projection.

A diffusers ``Flux2Transformer2DModel`` keeps Flux.1's two kinds of blocks:

- ``transformer_blocks.{i}.attn`` (block ``"joint"``, 8 in Flux.2 dev): double-stream,
  ``to_q``/``to_k`` on the image tokens and ``add_k_proj`` on the text tokens, joined
  text first, as Flux.1.
- ``single_transformer_blocks.{i}.attn`` (block ``"single"``, 48 in Flux.2 dev): a
  parallel block whose one projection ``to_qkv_mlp_proj`` gives Q, K, V *and* the MLP
  input of the ``[text; image]`` sequence; its queries and keys then go through
  ``norm_q``/``norm_k`` as in Flux.1, and the recorder hooks those norms (as for Flux.1),
  so the fused projection needs no splitting here.

The rotary embedding has 4 axes (t, h, w, l) and is computed separately for the text
and image ids, then concatenated (text first); the map grid comes from ``img_ids``
(axes 1 and 2), reference images (axis 0 ≠ 0, appended after the generated tokens)
being left out of the queries. Flux2Pipeline is guidance-distilled: no unconditional
batch half. KV-cache processors (klein's reference-image cache) are refused.
"""

from __future__ import annotations

from typing import Any

import torch

from brushwork.diffusion.backbones.base import AttentionLayer, ProcessorCall
from brushwork.diffusion.backbones.flux import FluxBackbone
from brushwork.diffusion.tokens import TextStream

__all__ = ["Flux2Backbone"]

#: Flux2Pipeline's default text length (Mistral-3 tokens, chat template included).
MAX_SEQUENCE_LENGTH = 512


class Flux2Backbone(FluxBackbone):
    """The Flux.2 family: double-stream and parallel single-stream attention layers."""

    def check_processor(self, layer: AttentionLayer, processor: Any) -> None:
        from diffusers.models.transformers.transformer_flux2 import (
            Flux2AttnProcessor,
            Flux2ParallelSelfAttnProcessor,
        )

        # Fused QKV projections are fine: the hooked QK-norms run either way.
        known = Flux2ParallelSelfAttnProcessor if layer.block == "single" else Flux2AttnProcessor
        if type(processor) is not known:
            raise self.unsupported(
                layer, processor, f"is not diffusers' {known.__name__}, whose layout is known"
            )

    def text_streams(self, pipe: Any) -> list[TextStream]:
        """One stream at key 0: the tokens of the *chat-formatted* prompt.

        Flux2Pipeline wraps the prompt in Mistral-3's chat template (system message
        first), Flux2KleinPipeline in Qwen-3's (``<|im_start|>user``…), so a word's key is
        its position in ``apply_chat_template(...)``'s text, not in the bare prompt.
        """
        processor = getattr(pipe, "tokenizer", None)
        tokenizer = getattr(processor, "tokenizer", processor)  # a processor wraps it
        if "Klein" in type(pipe).__name__ or "Qwen" in type(tokenizer).__name__:

            def qwen(prompt: str) -> str:  # as Flux2KleinPipeline._get_qwen3_prompt_embeds
                messages = [{"role": "user", "content": prompt}]
                return tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
                )

            return [TextStream("qwen", tokenizer, 0, MAX_SEQUENCE_LENGTH, template=qwen)]

        def mistral(prompt: str) -> str:  # as Flux2Pipeline: system message, then the prompt
            from diffusers.pipelines.flux2.pipeline_flux2 import format_input

            system = getattr(pipe, "system_message", None)
            messages = format_input([prompt], system)[0] if system else format_input([prompt])[0]
            return processor.apply_chat_template(
                messages, add_generation_prompt=False, tokenize=False
            )

        return [TextStream("mistral", tokenizer, 0, MAX_SEQUENCE_LENGTH, template=mistral)]

    def rotary(self, call: ProcessorCall) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each ``(T + S_img, head_dim)``: text and image embeddings joined.

        As ``Flux2Transformer2DModel.forward``: ``pos_embed`` of the text ids and of the
        image ids separately, concatenated text first.
        """
        given = call.kwargs.get("image_rotary_emb")
        if given is not None:
            return given
        if self._rotary is None:
            if self._ids is None:
                raise RuntimeError("the Flux.2 position ids are unknown (no call seen)")
            txt_ids, img_ids = self._ids
            text_cos, text_sin = self.denoiser.pos_embed(txt_ids)
            image_cos, image_sin = self.denoiser.pos_embed(img_ids)
            self._rotary = (
                torch.cat([text_cos, image_cos], dim=0),
                torch.cat([text_sin, image_sin], dim=0),
            )
        return self._rotary
