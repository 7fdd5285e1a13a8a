"""Fixtures of the benchmark tests: 2 contents × 2 styles on disk and tiny networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bench_testing import tiny_adain_file, tiny_johnson_file, write_images

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two contents (cat, dog) and two styles (dots, wave), 40×48 px, and tiny networks
    (AdaIN, Johnson) saved as brushwork model files."""
    root = tmp_path_factory.mktemp("bench")
    return {
        "contents": write_images(root / "contents", ["cat", "dog"], seed=0),
        "styles": write_images(root / "styles", ["dots", "wave"], seed=100),
        "adain": tiny_adain_file(root / "tiny_adain.safetensors"),
        "johnson": tiny_johnson_file(root / "tiny_johnson.safetensors"),
    }
