"""Fixtures for the photorealistic methods: weight files in the published key layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from photoreal_testing import random_state, reference_photowct_shapes, reference_wct2_shapes

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def wct2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wave_encoder_cat5_l4.pth and wave_decoder_cat5_l4.pth: random, in the published keys."""
    folder = tmp_path_factory.mktemp("wct2")
    enc, dec = reference_wct2_shapes("cat5")
    torch.save(random_state(enc, 1), folder / "wave_encoder_cat5_l4.pth")
    torch.save(random_state(dec, 2), folder / "wave_decoder_cat5_l4.pth")
    return folder


@pytest.fixture(scope="session")
def photowct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photo_wct.pth with random tensors in the published key layout."""
    path = tmp_path_factory.mktemp("photowct") / "photo_wct.pth"
    torch.save(random_state(reference_photowct_shapes(), 3), path)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """These networks run at 24–32 px: one thread is several times faster than two on a
    shared CPU (measured 0.2 s vs 0.7–2 s per WCT² image). Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
