"""HistoGAN's RGB-uv histogram loss (Afifi et al., CVPR 2021), as StyleID evaluates colour.

From ``evaluation/eval_histogan.py`` of github.com/jiwoogit/StyleID (``RGBuvHistBlock``
with h = 64, insz = 256, ``inverse-quadratic``, σ = 0.02, intensity scale on): an image
larger than 256 px on a side is resized to 256 × 256 (bilinear); for each channel c the
log-chroma pair (u, v) = (log I_c − log I_c', log I_c − log I_c'') (ε = 1e-6) is binned
into 64 × 64 bins over [−3, 3] with the kernel 1 / (1 + (d/σ)²), each pixel weighted by
its intensity √(R² + G² + B² + ε); the (3, 64, 64) histogram is normalised to sum 1.
The loss is the Hellinger-type distance 1/√2 · ‖√H_style − √H_result‖₂ (0 … 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["histogan_loss", "rgb_uv_histogram"]

BINS = 64
MAX_SIZE = 256
SIGMA = 0.02
_EPS = 1e-6
_OTHERS = ((1, 2), (0, 2), (0, 1))


def rgb_uv_histogram(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> (3, 64, 64) normalised RGB-uv histogram."""
    x = image[None, :3].float().clamp(0, 1)
    if x.shape[-2] > MAX_SIZE or x.shape[-1] > MAX_SIZE:
        x = F.interpolate(x, size=(MAX_SIZE, MAX_SIZE), mode="bilinear", align_corners=False)
    pixels = x[0].reshape(3, -1).T.double()  # (N, 3)
    weight = torch.sqrt((pixels**2).sum(1, keepdim=True) + _EPS)
    logs = torch.log(pixels + _EPS)
    centres = torch.linspace(-3, 3, BINS, dtype=torch.float64)
    hist = []
    for c, (o1, o2) in enumerate(_OTHERS):
        u = (logs[:, c : c + 1] - logs[:, o1 : o1 + 1] - centres).abs()
        v = (logs[:, c : c + 1] - logs[:, o2 : o2 + 1] - centres).abs()
        ku = (1 / (1 + (u / SIGMA) ** 2)).float()
        kv = (1 / (1 + (v / SIGMA) ** 2)).float()
        hist.append((weight.float() * ku).T @ kv)
    out = torch.stack(hist)
    return out / (out.sum() + _EPS)


def histogan_loss(result: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """0-dim HistoGAN histogram loss between (3, H, W) images in [0, 1] (any sizes)."""
    a, b = rgb_uv_histogram(result), rgb_uv_histogram(style)
    return (b.sqrt() - a.sqrt()).pow(2).sum().sqrt() / math.sqrt(2.0)
