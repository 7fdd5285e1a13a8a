"""Flux.1 (dev, schnell, Kontext): joint attention in double- and single-stream blocks.

A diffusers ``FluxTransformer2DModel`` has two kinds of blocks, both recorded:

- ``transformer_blocks.{i}.attn`` (block ``"joint"``, 19 in Flux.1): double-stream
  MM-DiT blocks. Image tokens are projected by ``to_q``/``to_k``, text tokens by
  ``add_q_proj``/``add_k_proj``; the processor concatenates them **text first**.
- ``single_transformer_blocks.{i}.attn`` (block ``"single"``, 38 in Flux.1): one
  sequence ``[text; image]`` goes through ``to_q``/``to_k``; the text length comes from
  the transformer call.

Every query and key is RMS-normalised per head (``norm_q``, ``norm_k``,
``norm_added_k``) and then rotated by the 3-axis rotary embedding of
``cat(txt_ids, img_ids)``; the recorder hooks the QK-norms' outputs (so it normalises
nothing twice, and fused QKV projections work too) and applies the same rotation. The
maps live on the packed latent grid (2×2 latent patches: 64×64 tokens at 1024 px), read
from ``img_ids``.

What the literature records: ConceptAttention (Helbling et al., 2025) reads the
double-stream blocks only (its diffusers port defaults to blocks 10–17 of 19);
attention-map-diffusers hooks every Flux attention, double and single. The default
here records both kinds (``default_blocks``); ``RecordingSettings(blocks=("joint",),
indices=tuple(range(10, 18)))`` gives ConceptAttention's choice.

Guidance: Flux.1 has no unconditional batch half (dev embeds the guidance scale,
schnell has none). With ``true_cfg_scale > 1`` and a negative prompt, ``FluxPipeline``
calls the transformer a second time per step with the *same latents tensor* and the
negative text: such a repeat call is recognised by that identity and not recorded.
"""

from __future__ import annotations

import inspect
import weakref
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

__all__ = ["MAX_SEQUENCE_LENGTH", "FluxBackbone", "image_token_grid"]

#: FluxPipeline's default (and largest) T5 length: the text keys of every call.
MAX_SEQUENCE_LENGTH = 512


def image_token_grid(img_ids: torch.Tensor) -> tuple[int, int, int]:
    """``(tokens, h, w)`` of the generated image's tokens, from Flux's ``img_ids``.

    Args:
        img_ids: ``(S_img, axes)`` position ids (``(batch, S_img, axes)`` is accepted,
            as diffusers does; Flux.1 has 3 axes, Flux.2 4): axis 0 tells images apart
            (0 for the generated one; Kontext's reference image has 1, Flux.2's 10,
            20, …), axes 1 and 2 are row and column.

    The generated tokens come first, in row-major order on an ``h × w`` grid; anything
    else (an unknown layout) is refused rather than mapped wrongly.

    Raises:
        ConfigError: the ids do not describe a row-major grid.
    """
    ids = img_ids[0] if img_ids.ndim == 3 else img_ids
    ids = ids.detach().to("cpu", torch.float64)
    first = ids[:, 0] == ids[0, 0]
    tokens = int(first.long().cumprod(0).sum())  # the leading run of the first image
    rows, cols = ids[:tokens, 1], ids[:tokens, 2]
    h = int(rows.max() - rows.min()) + 1
    w = int(cols.max() - cols.min()) + 1
    expected_rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w) + rows.min()
    expected_cols = torch.arange(w, dtype=torch.float64).repeat(h) + cols.min()
    if h * w != tokens or not (
        torch.equal(rows, expected_rows) and torch.equal(cols, expected_cols)
    ):
        raise ConfigError(
            f"cannot place the Flux image tokens on a grid: {tokens} tokens with img_ids "
            f"rows {int(rows.min())}..{int(rows.max())} and columns "
            f"{int(cols.min())}..{int(cols.max())} are not a row-major {h}×{w} grid"
        )
    return tokens, h, w


class FluxBackbone(Backbone):
    """The Flux.1 family: joint (double-stream) and single-stream attention layers."""

    blocks = ("joint", "single")
    default_blocks = ("joint", "single")

    def __init__(self, denoiser: torch.nn.Module) -> None:
        super().__init__(denoiser)
        self._signature = inspect.signature(denoiser.forward)
        self._text_length: int | None = None
        self._image_tokens: int | None = None
        self._ids: tuple[torch.Tensor, torch.Tensor] | None = None
        self._rotary: tuple[torch.Tensor, torch.Tensor] | None = None
        self._turn: tuple[torch.Tensor | None] | None = None  # cached per call
        self._previous_latents: weakref.ref | None = None
        #: True while the transformer runs a second time on the same latents (true CFG's
        #: negative prompt): that call is not recorded.
        self.repeat_call = False

    # ------------------------------------------------------------------ layers
    def layers(self) -> list[AttentionLayer]:
        layers = [
            AttentionLayer(f"transformer_blocks.{i}.attn", "joint", 0, i)
            for i in range(len(self.denoiser.transformer_blocks))
        ]
        layers += [
            AttentionLayer(f"single_transformer_blocks.{i}.attn", "single", 0, i)
            for i in range(len(self.denoiser.single_transformer_blocks))
        ]
        return layers

    def projections(self, attn: Any) -> dict[str, torch.nn.Module]:
        """The QK-norms, whose outputs are the queries and keys before RoPE.

        Hooking ``norm_q``/``norm_k`` (rather than ``to_q``/``to_k``) gives the tensors
        exactly as the processor normalised them, ``(B, S, H, d)``, and the recorder
        never normalises anything a second time.
        """
        roles = {"q": attn.norm_q, "k": attn.norm_k}
        if getattr(attn, "added_kv_proj_dim", None) is not None:  # double-stream: own text keys
            roles["text_k"] = attn.norm_added_k
        return roles

    def check_processor(self, layer: AttentionLayer, processor: Any) -> None:
        from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

        # Fused QKV projections (to_qkv) are fine: the hooked QK-norms run either way.
        if type(processor) is not FluxAttnProcessor:
            raise self.unsupported(
                layer, processor, "is not diffusers' FluxAttnProcessor, whose layout is known"
            )

    def text_streams(self, pipe: Any) -> list[TextStream]:
        """The T5 stream at key 0 (Flux's CLIP encoder gives only the pooled vector).

        Its length is the pipeline's ``max_sequence_length`` (512 unless the call says
        otherwise; a call with another length changes the keys, not the positions).
        """
        return [TextStream("t5", pipe.tokenizer_2, 0, MAX_SEQUENCE_LENGTH)]

    # ------------------------------------------------------------------ per call
    def on_denoiser_call(self, args: tuple, kwargs: dict) -> bool:
        given = self._signature.bind_partial(*args, **kwargs).arguments
        latents = given["hidden_states"]
        text = given["encoder_hidden_states"]
        img_ids, txt_ids = given["img_ids"], given["txt_ids"]
        previous = self._previous_latents() if self._previous_latents is not None else None
        self.repeat_call = previous is latents
        self._previous_latents = weakref.ref(latents)
        self._text_length = int(text.shape[1])
        self._image_tokens, h, w = image_token_grid(img_ids)
        self.grid = (h, w)
        self._ids = (
            txt_ids[0] if txt_ids.ndim == 3 else txt_ids,
            img_ids[0] if img_ids.ndim == 3 else img_ids,
        )
        self._rotary = None
        self._turn = None
        return not self.repeat_call

    def guidance_in_batch(self, pipe: Any) -> bool | None:
        return False  # guidance-distilled (dev) or none (schnell); true CFG runs apart

    def rotary(self, call: ProcessorCall) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each ``(T + S_img, head_dim)``: the rotary embedding of this call.

        The transformer hands it to the processor positionally, so it is taken from the
        call's keywords when there, else computed once per call by the model's own
        ``pos_embed`` from the same ids (the same function on the same input).
        """
        given = call.kwargs.get("image_rotary_emb")
        if given is not None:
            return given
        if self._rotary is None:
            if self._ids is None:
                raise RuntimeError("the Flux position ids are unknown (no transformer call seen)")
            self._rotary = self.denoiser.pos_embed(torch.cat(self._ids, dim=0))
        return self._rotary

    def inputs(
        self,
        layer: AttentionLayer,
        attn: Any,
        captured: dict[str, torch.Tensor],
        call: ProcessorCall,
    ) -> AttentionInputs | None:
        from diffusers.models.embeddings import apply_rotary_emb

        if self.repeat_call:
            return None
        text_length = self._text_length
        if text_length is None or self.grid is None:
            raise RuntimeError("the Flux text length is unknown (no transformer call seen)")
        if not set(self.projections(attn)) <= set(captured):
            raise self.unsupported(layer, attn.processor, "did not call the projections hooked")
        queries, keys = self.queries_and_keys(
            attn, captured, text_length, image_keys=self.need_image_keys
        )
        queries = queries[:, : self._image_tokens]  # the generated image only
        cos, sin = self.rotary(call)
        image_positions = slice(text_length, text_length + queries.shape[1])
        # RoPE is per position: the image queries alone with their rows of (cos, sin)
        # equal the processor's rotation of the whole sequence. The rotation is left
        # to the recorder's loop (a few heads at a time) when it is a complex multiply.
        turn = self._query_turn(cos[image_positions], sin[image_positions])
        if turn is None:
            queries = apply_rotary_emb(
                queries, (cos[image_positions], sin[image_positions]), sequence_dim=1
            )
        if not self.need_image_keys:  # "text" normalisation: the text keys only
            cos, sin = cos[:text_length], sin[:text_length]
        keys = apply_rotary_emb(keys, (cos, sin), sequence_dim=1).transpose(1, 2)
        return AttentionInputs(
            queries=queries.transpose(1, 2),  # (B, H, S_img, d)
            text_keys=keys[:, :, :text_length],
            image_keys=keys[:, :, text_length:] if self.need_image_keys else None,
            scale=float(attn.head_dim) ** -0.5,
            map_shape=self.grid,
            query_rotation=turn,
        )

    def _query_turn(self, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor | None:
        """The image queries' complex rotation, computed once per transformer call.

        Every layer of one call gets the same positions and the same rotary tables.
        """
        from brushwork.diffusion.backbones.rotary import rotation

        if self._turn is None:
            self._turn = (rotation(cos, sin),)
        return self._turn[0]

    def queries_and_keys(
        self,
        attn: Any,
        captured: dict[str, torch.Tensor],
        text_length: int,
        *,
        image_keys: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """QK-normed image queries ``(B, S_img, H, d)`` and keys, before RoPE.

        The keys are ``(B, T + S_img, H, d)``, or ``(B, T, H, d)`` (the text keys only)
        with ``image_keys=False``; all are the hooked norms' outputs, sliced.
        """
        queries, keys = captured["q"], captured["k"]
        if "text_k" in captured:  # double-stream: [text; image] joined as the processor does
            text_keys = captured["text_k"]
            return queries, torch.cat([text_keys, keys], dim=1) if image_keys else text_keys
        # single-stream: the norms saw the whole [text; image] sequence
        return queries[:, text_length:], keys if image_keys else keys[:, :text_length]
