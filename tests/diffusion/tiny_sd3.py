"""Tiny Stable Diffusion 3 / 3.5 pipelines built from real diffusers/transformers classes.

Shapes follow diffusers' own SD3 fast tests (a 2-block ``SD3Transformer2DModel``, two
``CLIPTextModelWithProjection`` and a ``T5EncoderModel`` at tiny sizes, a one-level VAE
so latents are the image size). ``sd35=True`` gives the SD3.5 variations: RMS QK-norm
(with non-unit weights, so a forgotten norm weight shows) and a dual-attention first
block (an extra image-only ``attn2``). The CLIP tokenizers are tiny_sd's real BPE; the
T5 tokenizer is tiny_t5's SentencePiece Unigram (no start token).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_sd import tiny_tokenizer
from tiny_t5 import tiny_t5_tokenizer

#: T5 positions the tests ask for (the pipeline's default is 256).
T5_TOKENS = 24


def _clip_encoder():
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        pad_token_id=1,
        vocab_size=1000,
        hidden_act="gelu",
        projection_dim=32,
    )
    return CLIPTextModelWithProjection(config)


def _t5_encoder(vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=64,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def build_sd3_pipeline(tmp: Path, *, sd35: bool = False):
    """SD3-shaped: 2 joint blocks (the last context_pre_only), 4 heads of 8, patch 2.

    The VAE does not downsample, so an H×W image has H×W latents and an (H/2)×(W/2)
    token grid. Text keys: 77 CLIP positions, then the T5 positions
    (``max_sequence_length``).
    """
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        out_channels=4,
        qk_norm="rms_norm" if sd35 else None,
        dual_attention_layers=(0,) if sd35 else (),
    )
    if sd35:
        generator = torch.Generator().manual_seed(1)
        for name, parameter in transformer.named_parameters():
            if ".norm_" in name and name.endswith("weight"):
                with torch.no_grad():
                    parameter.copy_(1 + 0.5 * torch.randn(parameter.shape, generator=generator))
    torch.manual_seed(0)
    vae = _vae()
    torch.manual_seed(0)
    text_encoder = _clip_encoder()
    torch.manual_seed(0)
    text_encoder_2 = _clip_encoder()
    tokenizer_3 = tiny_t5_tokenizer(tmp / "tokenizer_3")
    torch.manual_seed(0)
    text_encoder_3 = _t5_encoder(len(tokenizer_3))
    tokenizer = tiny_tokenizer(tmp / "tokenizer")
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
        transformer=transformer,
    )
    for model in (transformer, vae, text_encoder, text_encoder_2, text_encoder_3):
        model.eval()  # built, not loaded: T5's dropout would otherwise be on
    pipe.set_progress_bar_config(disable=True)
    return pipe
