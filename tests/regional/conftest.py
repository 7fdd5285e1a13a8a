"""Fixtures: the tiny SD pipeline saved as a model folder, images for regional runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))
sys.path.insert(0, str(Path(__file__).parents[1] / "editing"))

from tiny_sd import build_sd_pipeline

from brushwork.image import save_image


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("regional_sd")
    build_sd_pipeline(folder / "build").save_pretrained(folder / "model")
    return folder / "model"


@pytest.fixture()
def pictures(tmp_path) -> dict[str, Path]:
    gen = torch.Generator().manual_seed(0)
    texture = torch.rand(32, 32, generator=gen)
    files = {
        "photo": save_image(0.3 + 0.4 * torch.rand(3, 32, 48, generator=gen), tmp_path / "p.png"),
        "red": save_image(torch.stack([0.6 + 0.4 * texture, 0.2 * texture, 0.1 * texture]),
                          tmp_path / "red.png"),
        "blue": save_image(torch.stack([0.1 * texture, 0.2 * texture, 0.6 + 0.4 * texture]),
                           tmp_path / "blue.png"),
        "notes": tmp_path / "notes.png",
    }  # fmt: skip
    files["notes"].write_text("not an image")
    left = torch.zeros(1, 32, 48)
    left[..., :24] = 1
    files["left"] = save_image(left, tmp_path / "left.png")
    return files
