"""Fixtures of the study tests: a tiny SD pipeline (tests/diffusion/tiny_sd.py), saved to a
folder so that subprocesses and Ray workers load it through ``load_pipeline``."""

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
