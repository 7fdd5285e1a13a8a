"""Helpers of the benchmark tests (imported by name: not a conftest): generated input
folders and tiny feed-forward networks with seeded random weights, saved as brushwork
model files and loaded through the real loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
from brushwork.transfer.johnson import JohnsonConfig, TransformerNet, reinitialise
from brushwork.transfer.modelfile import save_model

TINY_WIDTHS = (4, 6, 8, 8, 8)


def generated_image(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    """A smooth random colour pattern with some texture, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        wave = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.1 * rng.standard_normal((height, width)))
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, names: list[str], seed: int, **size: int) -> Path:
    """``folder/<name>.png`` for each name, generated from ``seed + i``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(generated_image(seed + i, **size)).save(folder / f"{name}.png")
    return folder


def _he_scaled(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    reinitialise(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # ×√6 on PyTorch's default bound: no dead tiny networks
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
                module.weight.mul_(6**0.5)
    return model.eval()


def tiny_adain_file(path: Path, seed: int = 1) -> Path:
    """An AdaIN model (relu4_1 of width 8) with seeded random weights, as a model file."""
    from brushwork.transfer.adain import _set_caffe_input

    model = _he_scaled(AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS))), seed)
    _set_caffe_input(model.encoder[0])
    model.encoder[0].weight.data /= 255.0  # keep activations small for the tiny net
    model.encoder[0].bias.data /= 255.0
    return save_model(path, model)


def tiny_johnson_file(path: Path, seed: int = 3) -> Path:
    """A Johnson network of 4 channels and one residual block, as a model file."""
    net = TransformerNet(JohnsonConfig(channels=4, residual_blocks=1))
    return save_model(path, _he_scaled(net, seed))
