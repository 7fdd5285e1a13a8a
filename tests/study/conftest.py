"""Fixtures of the study tests: tiny SD, SD3 and Flux.1 pipelines (tests/diffusion/tiny_*.py),
saved to folders so that subprocesses and Ray workers load them through ``load_pipeline``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "diffusion"))

from tiny_sd import build_sd_pipeline, tiny_tokenizer


@pytest.fixture(scope="session")
def study_tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("study_tok"))


@pytest.fixture(scope="session")
def study_model(tmp_path_factory) -> Path:
    """A tiny SD-1.x-shaped pipeline saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("study_model") / "tiny-sd"
    pipe = build_sd_pipeline(tmp_path_factory.mktemp("study_build"))
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def study_pipe(study_model):
    from brushwork.diffusion.pipelines import load_pipeline

    return load_pipeline(str(study_model), dtype="float32", device="cpu")


def _saved(tmp_path_factory, name: str, build) -> Path:
    folder = tmp_path_factory.mktemp(f"study_{name}") / name
    build(tmp_path_factory.mktemp(f"study_{name}_build")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sd3_model(tmp_path_factory) -> Path:
    """A tiny SD3 pipeline (tests/diffusion/tiny_sd3.py) saved with save_pretrained."""
    from tiny_sd3 import build_sd3_pipeline

    return _saved(tmp_path_factory, "tiny-sd3", build_sd3_pipeline)


@pytest.fixture(scope="session")
def flux_model(tmp_path_factory) -> Path:
    """A tiny schnell-shaped Flux.1 pipeline (no guidance embedding), saved."""
    from tiny_flux import build_flux_pipeline

    return _saved(tmp_path_factory, "tiny-flux", build_flux_pipeline)


@pytest.fixture(scope="session")
def klein_model(tmp_path_factory) -> Path:
    """A tiny Flux.2 klein pipeline (Qwen-3 of the real depth, so its defaults apply), saved."""
    from tiny_flux import build_flux2_klein_pipeline

    def build(folder: Path):
        return build_flux2_klein_pipeline(folder, default_text_layers=True)

    return _saved(tmp_path_factory, "tiny-klein", build)
