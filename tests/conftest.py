"""Shared fixtures: real networks at real or tiny sizes with seeded random weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork.encoders import VGGEncoder
from weights_testing import vgg19_shapes

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def vgg19() -> VGGEncoder:
    """Real-size VGG-19 with seeded random weights (torchvision's initialisation)."""
    return VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0))


def _to_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    image = torch.from_numpy(array).permute(2, 0, 1).float().div(255)[None]
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    out = F.interpolate(
        image, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True
    )
    return out[0].clamp(0, 1)


@pytest.fixture(scope="session")
def content_image() -> torch.Tensor:
    """(3, 64, 64) photograph (scikit-image's astronaut)."""
    from skimage import data

    return _to_tensor(data.astronaut(), 64)


@pytest.fixture(scope="session")
def style_image() -> torch.Tensor:
    """(3, 43, 64) photograph with other colours and texture (scikit-image's coffee)."""
    from skimage import data

    return _to_tensor(data.coffee(), 64)


@pytest.fixture(scope="session")
def vgg19_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A VGG-19 state dict in the published layout (random weights), and its SHA-256."""
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.randn(shape, generator=generator) * 0.01 for key, shape in vgg19_shapes().items()
    }
    state["classifier.0.weight"] = torch.zeros(4, 8)
    state["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-test.pth"
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()
