"""Fixtures: tiny SD-1.x- and SDXL-shaped pipelines (see tiny_sd.py)."""

from __future__ import annotations

import pytest
from tiny_sd import build_sd_pipeline, build_sdxl_pipeline


@pytest.fixture(scope="session")
def sd_pipe(tmp_path_factory):
    return build_sd_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="session")
def sdxl_pipe(tmp_path_factory):
    return build_sdxl_pipeline(tmp_path_factory.mktemp("sdxl"))
