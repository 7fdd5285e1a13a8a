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


def run_flux(pipe, prompt, *, height: int, width: int, seeds=(0,), steps: int = 2, **kwargs):
    """The images of a seeded FluxPipeline call at the tests' T5 length, (N, 3, H, W)."""

    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return pipe(
        prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        generator=generators if len(generators) > 1 else generators[0],
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        output_type="pt",
        **kwargs,
    ).images


def tiny_flux2_transformer(*, guidance_embeds: bool = True, joint_attention_dim: int = 16):
    """A Flux2Transformer2DModel: 2 double + 2 single blocks, 2 heads × 16, RoPE 4×4 axes.

    Flux2Pipeline's Mistral-3 encoder (with its Pixtral processor) is not built here:
    tests call this transformer directly, or inside the klein pipeline below.
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
        joint_attention_dim=joint_attention_dim,
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


#: Qwen-3 chat template, reduced to what Flux2KleinPipeline uses.
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_qwen_tokenizer(folder: Path):
    """A byte-level BPE Qwen2TokenizerFast (bytes plus tiny_sd's merged words), no download."""
    import json

    from tiny_sd import MERGED_WORDS, _byte_symbols

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _byte_symbols()
    merges = []
    for word in MERGED_WORDS:
        left = word[0]
        for char in word[1:]:
            merges.append((left, char))
            left += char
            if left not in vocab:
                vocab.append(left)
    vocab += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    # Built with the tokenizers library (transformers' Qwen2Tokenizer ignores vocab files
    # given this way and would tokenise everything to nothing).
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


#: The Qwen-3 layers whose hidden states the tiny klein pipeline stacks (16 channels each).
KLEIN_TEXT_LAYERS = (1,)


#: Qwen-3 depth at which the pipeline's default ``text_encoder_out_layers`` (9, 18, 27) exist.
KLEIN_DEFAULT_DEPTH = 28


def build_flux2_klein_pipeline(tmp: Path, *, default_text_layers: bool = False):
    """Flux2KleinPipeline (Qwen-3 text encoder, CFG as a second transformer call).

    Call it with ``text_encoder_out_layers=KLEIN_TEXT_LAYERS``; with
    ``default_text_layers=True`` the Qwen-3 encoder has the real model's 28 layers (of
    width 16), so the pipeline's defaults work, as code that passes no pipeline-specific
    keywords (the study, maps of an image) calls it.
    """
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    layers = KLEIN_DEFAULT_DEPTH if default_text_layers else 2
    text_width = 16 * (3 if default_text_layers else len(KLEIN_TEXT_LAYERS))
    transformer = tiny_flux2_transformer(guidance_embeds=False, joint_attention_dim=text_width)
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            intermediate_size=16,
            hidden_size=16,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=320,
            max_position_embeddings=512,
        )
    )
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_qwen_tokenizer(tmp / "tokenizer"),
        transformer=transformer,
    )
    for model in (transformer, text_encoder, vae):
        model.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
