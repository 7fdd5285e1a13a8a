"""Fixtures for the feed-forward methods: generated image folders and tiny networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from brushwork.encoders import VGGEncoder
from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
from brushwork.transfer.wct import WCTConfig, WCTModel
from feedforward_testing import TINY_WIDTHS, generated_image, he_scaled

torch.set_num_threads(min(2, torch.get_num_threads()))


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


@pytest.fixture
def seeded():
    """``seeded(model, seed)``: seeded He-scaled random weights, eval mode."""
    return he_scaled


@pytest.fixture
def tiny_adain() -> AdaINModel:
    """AdaIN with a few channels (relu4_1 of width 8), seeded random weights."""
    model = AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=TINY_WIDTHS)))
    he_scaled(model, 1)
    from brushwork.transfer.adain import _set_caffe_input

    _set_caffe_input(model.encoder[0])
    model.encoder[0].weight.data /= 255.0  # keep activations small for the tiny net
    model.encoder[0].bias.data /= 255.0
    return model


@pytest.fixture
def tiny_wct() -> WCTModel:
    """WCT with levels 3, 2, 1 and a few channels, seeded random weights."""
    model = WCTModel(WCTConfig(EncoderConfig(level=3, widths=TINY_WIDTHS), levels=(3, 2, 1)))
    return he_scaled(model, 2)
