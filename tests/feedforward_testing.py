"""Shared helpers of the feed-forward tests (imported by name: not a conftest): generated
pictures and seeded He-scaled random weights for tiny networks."""

from __future__ import annotations

import numpy as np
import torch

#: VGG block widths of the tiny AdaIN/WCT networks.
TINY_WIDTHS = (4, 6, 8, 8, 8)


def generated_image(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    """A smooth random colour pattern with some texture, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        wave = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.1 * rng.standard_normal((height, width)))
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).astype(np.uint8)


def he_scaled(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``model`` with seeded random weights, ×√6 on PyTorch's default bound (He scaling:
    no dead tiny networks), in eval mode."""
    from brushwork.transfer.johnson import reinitialise

    reinitialise(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
                module.weight.mul_(6**0.5)
    return model.eval()
