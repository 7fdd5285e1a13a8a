"""Fixtures for the feed-forward methods: generated image folders and tiny networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.encoders import VGGEncoder
from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
from brushwork.transfer.wct import WCTConfig, WCTModel

torch.set_num_threads(min(2, torch.get_num_threads()))

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


def write_folder(folder: Path, count: int, seed: int, **size) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(generated_image(seed + i, **size)).save(folder / f"img{i:02d}.png")
    return folder


@pytest.fixture(scope="session")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated 40×48 content images on disk."""
    return write_folder(tmp_path_factory.mktemp("data") / "content", 6, seed=0)


@pytest.fixture(scope="session")
def style_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three generated 40×48 style images on disk."""
    return write_folder(tmp_path_factory.mktemp("data") / "style", 3, seed=100)


@pytest.fixture(scope="session")
def style_tensor() -> torch.Tensor:
    """(3, 40, 48) generated style image in [0, 1]."""
    return torch.from_numpy(generated_image(7)).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="session")
def content_batch() -> torch.Tensor:
    """(2, 3, 36, 44) generated content images in [0, 1]."""
    images = [generated_image(s, 36, 44) for s in (11, 12)]
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in images])


@pytest.fixture(scope="session")
def vgg16() -> VGGEncoder:
    """Real-size VGG-16 loss network with seeded random weights."""
    return VGGEncoder("vgg16", generator=torch.Generator().manual_seed(0))


def _seeded(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    from brushwork.transfer.johnson import reinitialise

    reinitialise(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # He scaling (×√6 on PyTorch's default bound): no dead tiny nets
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
                module.weight.mul_(6**0.5)
    return model.eval()


@pytest.fixture
def seeded():
    """``seeded(model, seed)``: seeded He-scaled random weights, eval mode."""
    return _seeded


@pytest.fixture
def tiny_adain() -> AdaINModel:
    """AdaIN with a few channels (relu4_1 of width 8), seeded random weights."""
    model = AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS)))
    _seeded(model, 1)
    from brushwork.transfer.adain import _set_caffe_input

    _set_caffe_input(model.encoder[0])
    model.encoder[0].weight.data /= 255.0  # keep activations small for the tiny net
    model.encoder[0].bias.data /= 255.0
    return model


@pytest.fixture
def tiny_wct() -> WCTModel:
    """WCT with levels 3, 2, 1 and a few channels, seeded random weights."""
    model = WCTModel(WCTConfig(EncoderConfig(level=3, widths=TINY_WIDTHS), levels=(3, 2, 1)))
    return _seeded(model, 2)
