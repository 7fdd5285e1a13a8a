"""Fixtures of the LoRA tests: tiny SD 1.5 / SDXL / Flux pipelines and training images."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_TESTS = Path(__file__).parents[1]
sys.path[:0] = [str(_TESTS / "diffusion"), str(_TESTS / "editing"), str(Path(__file__).parent)]

from lora_tiny import write_training_images  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest on one thread (no spin-waiting on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def training_images(tmp_path_factory) -> Path:
    """A folder of three images (one square, two not; one with a caption file)."""
    return write_training_images(tmp_path_factory.mktemp("lora_images"))
