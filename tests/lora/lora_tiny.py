"""Helpers of the LoRA tests: training images, pipelines by family, kohya-named files."""

from __future__ import annotations

from pathlib import Path

import torch

from brushwork.image import save_image

TRIGGER = "in sks style"


def write_training_images(folder: Path) -> Path:
    """Three seeded images: 40×40, 30×50 (wide), 50×30 (tall, with a caption file)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for name, (h, w) in {"a": (40, 40), "b": (30, 50), "c": (50, 30)}.items():
        base = torch.rand(3, 1, 1, generator=generator)
        stripes = (torch.arange(w).float().div(4).sin() * 0.3).expand(3, h, w)
        noise = torch.rand(3, h, w, generator=generator) * 0.2
        save_image((base + stripes + noise).clamp(0, 1), folder / f"{name}.png")
    (folder / "c.txt").write_text("a tall painting of a dog\n")
    return folder


def build(family: str, tmp: Path):
    """A tiny pipeline of ``family``: sd, sdxl, sdxl-layout (SDXL's block layout) or flux."""
    if family == "sd":
        from tiny_sd import build_sd_pipeline

        return build_sd_pipeline(tmp)
    if family == "sdxl":
        from tiny_sd import build_sdxl_pipeline

        return build_sdxl_pipeline(tmp)
    if family == "sdxl-layout":
        from editing_tiny import build_sdxl_layout_pipeline

        return build_sdxl_layout_pipeline(tmp)
    from tiny_flux import build_flux_pipeline

    return build_flux_pipeline(tmp)


def settings(family: str, **changes):
    """Small, fast LoRA settings (Flux at the tests' T5 length)."""
    from tiny_flux import MAX_SEQUENCE_LENGTH

    from brushwork.diffusion.lora import LoraSettings

    values = dict(rank=4, steps=3, learning_rate=1e-3, sample_inference_steps=2)
    if family == "flux":
        values["max_sequence_length"] = MAX_SEQUENCE_LENGTH
    values.update(changes)
    return LoraSettings(**values)


def to_kohya(tensors: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """A diffusers-layout SD 1.x UNet LoRA in kohya's sd-scripts layout (``lora_unet_`` +
    the module path with underscores, ``lora_down``/``lora_up``, an ``alpha`` per layer).

    The LoRA's effect is kept: ``lora_up`` is divided by ``alpha / rank``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        component, rest = key.split(".", 1)
        assert component == "unet", key
        module, side = rest.rsplit(".lora_", 1)
        name = "lora_unet_" + module.replace(".", "_")
        if side.startswith("A"):
            out[f"{name}.lora_down.weight"] = value.clone()
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
        else:
            rank = value.shape[1]
            out[f"{name}.lora_up.weight"] = value / (alpha / rank)
    return out
