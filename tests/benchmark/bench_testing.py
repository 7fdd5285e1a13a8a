"""Helpers of the benchmark tests (imported by name: not a conftest): generated input
folders and tiny feed-forward networks with seeded random weights, saved as brushwork
model files and loaded through the real loader."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
from brushwork.transfer.modelfile import save_model
from feedforward_testing import TINY_WIDTHS, generated_image, he_scaled


def write_images(folder: Path, names: list[str], seed: int, **size: int) -> Path:
    """``folder/<name>.png`` for each name, generated from ``seed + i``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(generated_image(seed + i, **size)).save(folder / f"{name}.png")
    return folder


def tiny_adain_file(path: Path, seed: int = 1) -> Path:
    """An AdaIN model (relu4_1 of width 8) with seeded random weights, as a model file."""
    from brushwork.transfer.adain import _set_caffe_input

    model = he_scaled(AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS))), seed)
    _set_caffe_input(model.encoder[0])
    model.encoder[0].weight.data /= 255.0  # keep activations small for the tiny net
    model.encoder[0].bias.data /= 255.0
    return save_model(path, model)


def tiny_johnson_file(path: Path, seed: int = 3) -> Path:
    """A Johnson network of 4 channels and one residual block, as a model file."""
    net = TransformerNet(JohnsonConfig(channels=4, residual_blocks=1))
    return save_model(path, he_scaled(net, seed))
