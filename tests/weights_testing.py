"""Test helpers shared by several test files (imported by name: not a conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

#: torchvision's VGG-19 configuration ("E"): channel counts, "M" = max-pool.
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
VGG19_CFG += [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def vgg19_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's VGG-19 features, at their Sequential indices."""
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for item in VGG19_CFG:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(item), channels, 3, 3)
        shapes[f"features.{index}.bias"] = (int(item),)
        channels = int(item)
        index += 2  # conv, relu
    return shapes


def isolate_weights_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private TORCH_HOME and no BRUSHWORK_* / HF_HUB_OFFLINE variables; returns TORCH_HOME.

    Keeps tests away from the user's real cache and settings.
    """
    import os

    for var in list(os.environ):
        if var.startswith("BRUSHWORK_") or var in (
            "TORCH_HOME",
            "HF_HUB_OFFLINE",
            "XDG_CACHE_HOME",
        ):
            monkeypatch.delenv(var)
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home
