"""Tiny real models and pictures for the UI tests (seeded, saved in the real layouts)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from feedforward_testing import TINY_WIDTHS, generated_image, he_scaled


def picture(path: Path, seed: int, height: int = 40, width: int = 48) -> Path:
    """A smooth random colour pattern with some texture, saved as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(generated_image(seed, height, width)).save(path)
    return path


def tiny_adain_file(folder: Path) -> Path:
    """An AdaIN model file (brushwork's .safetensors layout) with a few channels, seeded."""
    from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
    from brushwork.transfer.modelfile import save_model

    model = he_scaled(AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS))), 1)
    folder.mkdir(parents=True, exist_ok=True)
    return save_model(folder / "tiny_adain.safetensors", model)


def tiny_sd_folder(folder: Path) -> Path:
    """The tiny SD-1.x-shaped pipeline of tests/diffusion/tiny_sd.py, saved with
    ``save_pretrained`` (loaded back through the CLI's lookup: a local folder)."""
    from tiny_sd import build_sd_pipeline

    build_sd_pipeline(folder.parent / f"{folder.name}-build").save_pretrained(folder)
    return folder


def tiny_clip_folder(folder: Path) -> Path:
    """A tiny random CLIP (width 32, the tiny SD tokenizer), saved with ``save_pretrained``
    so that the Generate tab's SGOOL mode loads it by folder as a user's would be."""
    import torch
    from tiny_sd import tiny_tokenizer
    from transformers import CLIPConfig, CLIPModel

    tokenizer = tiny_tokenizer(folder.parent / f"{folder.name}-tokenizer")
    layer = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    text = dict(layer, vocab_size=1000, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    vision = dict(layer, image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_ip_adapter_file(folder: Path) -> Path:
    """An IP-Adapter for the tiny SD pipeline: one ``.safetensors`` file in the published
    key layout (tests/diffusion/tiny_sd.py) with a tiny CLIP image encoder beside it in
    ``image_encoder/``, the layout the Generate tab's adapter field takes as a file."""
    import torch
    from tiny_sd import build_sd_pipeline, write_ip_adapter
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    pipe = build_sd_pipeline(folder.parent / f"{folder.name}-build")
    write_ip_adapter(pipe, folder, embed_dim=16)
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                              num_hidden_layers=2, image_size=224, patch_size=32,
                              projection_dim=16)  # fmt: skip
    CLIPVisionModelWithProjection(config).save_pretrained(folder / "image_encoder")
    return folder / "ip-adapter.safetensors"
