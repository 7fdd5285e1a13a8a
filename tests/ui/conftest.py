"""Fixtures for the UI tests: tiny models on disk, pictures, a session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).parents[1] / "diffusion"), str(Path(__file__).parent)]
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

pytest.importorskip("gradio", reason="the UI tests need Gradio: pip install 'brushwork[ui]'")

from ui_tiny import picture, tiny_adain_file, tiny_sd_folder  # noqa: E402


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pictures")
    bad = root / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image")
    return {
        "content": picture(root / "content.png", 0, 40, 48),
        "style": picture(root / "style.png", 100, 36, 36),
        "style2": picture(root / "style2.png", 101, 32, 40),
        "bad": bad,
    }


@pytest.fixture(scope="session")
def adain_file(tmp_path_factory) -> Path:
    return tiny_adain_file(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory) -> Path:
    return tiny_sd_folder(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture
def session(sd_folder):
    from brushwork.ui.common import Session, UISettings

    return Session(UISettings(model=str(sd_folder), device="cpu", precision="fp32"))
