"""Tiny real models and pictures for the UI tests (seeded, saved in the real layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

TINY_WIDTHS = (4, 6, 8, 8, 8)


def picture(path: Path, seed: int, height: int = 40, width: int = 48) -> Path:
    """A smooth random colour pattern with some texture, saved as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        wave = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.1 * rng.standard_normal((height, width)))
    array = (np.clip(np.stack(channels, -1), 0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def tiny_adain_file(folder: Path) -> Path:
    """An AdaIN model file (brushwork's .safetensors layout) with a few channels, seeded."""
    from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
    from brushwork.transfer.johnson import reinitialise
    from brushwork.transfer.modelfile import save_model

    model = AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS)))
    reinitialise(model, torch.Generator().manual_seed(1))
    with torch.no_grad():  # He scaling: no dead tiny network
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
                module.weight.mul_(6**0.5)
    folder.mkdir(parents=True, exist_ok=True)
    return save_model(folder / "tiny_adain.safetensors", model.eval())


def tiny_sd_folder(folder: Path) -> Path:
    """The tiny SD-1.x-shaped pipeline of tests/diffusion/tiny_sd.py, saved with
    ``save_pretrained`` (loaded back through the CLI's lookup: a local folder)."""
    from tiny_sd import build_sd_pipeline

    build_sd_pipeline(folder.parent / f"{folder.name}-build").save_pretrained(folder)
    return folder
