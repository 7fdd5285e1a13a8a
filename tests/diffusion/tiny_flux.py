"""A tiny Flux.1 pipeline built from the real diffusers/transformers classes, seeded.

Shapes follow diffusers' own Flux fast tests: 2 double- and 2 single-stream blocks,
2 heads of 16 channels (RoPE axes 4+4+8), a one-level VAE with one latent channel
(so 2×2 packing gives 4 transformer channels and the token grid is half the image).
Tokenizers are built here: CLIP byte-level BPE (tiny_sd) and a T5-style Unigram
(tiny_t5), no download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_sd import _text_config, tiny_tokenizer
from tiny_t5 import tiny_t5_tokenizer

#: T5 sequence length the tests use (the pipeline's max_sequence_length; 512 in Flux.1).
MAX_SEQUENCE_LENGTH = 16


def tiny_flux_transformer(*, guidance_embeds: bool = False):
    """A FluxTransformer2DModel: 2 double + 2 single blocks, 2 heads × 16 channels."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=[4, 4, 8],
    )


def _t5_encoder():
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=320,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        dropout_rate=0.0,
    )
    return T5EncoderModel(config).eval()


def build_flux_pipeline(tmp: Path, *, guidance_embeds: bool = False):
    """FluxPipeline: ``guidance_embeds=True`` is dev-shaped, ``False`` schnell-shaped.

    Images must have even sides (the VAE keeps the size; packing halves it).
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTextModel

    transformer = tiny_flux_transformer(guidance_embeds=guidance_embeds)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_text_config(hidden_act="gelu", projection_dim=32))
    text_encoder_2 = _t5_encoder()
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(tmp / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tiny_t5_tokenizer(tmp / "tokenizer_2"),
        transformer=transformer,
    )
    for model in (transformer, text_encoder, text_encoder_2, vae):
        model.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_flux2_transformer(*, guidance_embeds: bool = True):
    """A Flux2Transformer2DModel: 2 double + 2 single blocks, 2 heads × 16, RoPE 4×4 axes.

    Flux2Pipeline's text encoder (Mistral-3 / Qwen-3 with a chat processor) is not built
    here: the tests call the transformer directly with random inputs.
    """
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(0)
    return Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=guidance_embeds,
    ).eval()


def flux2_inputs(transformer, *, batch: int = 2, grid=(4, 6), text_length: int = 8, seed=0):
    """Random keyword inputs of one Flux.2 transformer call (ids as Flux2Pipeline makes them)."""
    from diffusers import Flux2Pipeline

    generator = torch.Generator().manual_seed(seed)
    h, w = grid
    latents = torch.randn(batch, 4, h, w, generator=generator)
    text = torch.randn(batch, text_length, 16, generator=generator)
    inputs = {
        "hidden_states": latents.flatten(2).transpose(1, 2),
        "encoder_hidden_states": text,
        "timestep": torch.full((batch,), 0.5),
        "img_ids": Flux2Pipeline._prepare_latent_ids(latents),
        "txt_ids": Flux2Pipeline._prepare_text_ids(text),
        "return_dict": False,
    }
    if transformer.config.guidance_embeds:
        inputs["guidance"] = torch.full((batch,), 4.0)
    return inputs
