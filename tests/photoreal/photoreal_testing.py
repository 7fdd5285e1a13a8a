"""Helpers for the photorealistic tests: published key layouts, random states, images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: Small widths for behaviour tests that need many runs (real classes, fewer channels).
TINY_WIDTHS = (8, 12, 16, 16, 16)


def _conv(out: int, cin: int, k: int = 3) -> dict[str, tuple[int, ...]]:
    return {"weight": (out, cin, k, k), "bias": (out,)}


def reference_wct2_shapes(variant: str) -> tuple[dict, dict]:
    """Key -> shape of clovaai/WCT2's WaveEncoder / WaveDecoder (model.py), written out."""
    enc = {"conv0": _conv(3, 3, 1), "conv1_1": _conv(64, 3), "conv1_2": _conv(64, 64)}
    enc |= {"conv2_1": _conv(128, 64), "conv2_2": _conv(128, 128), "conv3_1": _conv(256, 128)}
    enc |= {f"conv3_{k}": _conv(256, 256) for k in (2, 3, 4)} | {"conv4_1": _conv(512, 256)}
    m = 5 if variant == "cat5" else 1
    tail = "_2" if variant == "cat5" else ""
    dec = {"conv4_1": _conv(256, 512), f"conv3_4{tail}": _conv(256, 256 * m)}
    dec |= {"conv3_3": _conv(256, 256), "conv3_2": _conv(256, 256), "conv3_1": _conv(128, 256)}
    dec |= {f"conv2_2{tail}": _conv(128, 128 * m), "conv2_1": _conv(64, 128)}
    dec |= {f"conv1_2{tail}": _conv(64, 64 * m), "conv1_1": _conv(3, 64)}
    enc_keys = {f"{n}.{p}": s for n, parts in enc.items() for p, s in parts.items()}
    dec_keys = {f"{n}.{p}": s for n, parts in dec.items() for p, s in parts.items()}
    for k, c in ((1, 64), (2, 128), (3, 256)):
        for band in ("LL", "LH", "HL", "HH"):
            enc_keys[f"pool{k}.{band}.weight"] = (c, 1, 2, 2)
            dec_keys[f"recon_block{k}.{band}.weight"] = (c, 1, 2, 2)
    return enc_keys, dec_keys


def reference_photowct_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of NVIDIA/FastPhotoStyle's PhotoWCT (e1…e4, d1…d4; models.py)."""
    enc_all = [("conv0", 3, 3, 1), ("conv1_1", 64, 3, 3), ("conv1_2", 64, 64, 3)]
    enc_all += [("conv2_1", 128, 64, 3), ("conv2_2", 128, 128, 3), ("conv3_1", 256, 128, 3)]
    enc_all += [("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3), ("conv3_4", 256, 256, 3)]
    enc_all += [("conv4_1", 512, 256, 3)]
    enc_upto = {1: 2, 2: 4, 3: 6, 4: 10}
    dec_all = [("conv4_1", 256, 512), ("conv3_4", 256, 256), ("conv3_3", 256, 256)]
    dec_all += [("conv3_2", 256, 256), ("conv3_1", 128, 256), ("conv2_2", 128, 128)]
    dec_all += [("conv2_1", 64, 128), ("conv1_2", 64, 64), ("conv1_1", 3, 64)]
    dec_from = {4: 0, 3: 4, 2: 6, 1: 8}
    shapes = {}
    for level in (1, 2, 3, 4):
        for name, out, cin, k in enc_all[: enc_upto[level]]:
            shapes[f"e{level}.{name}.weight"] = (out, cin, k, k)
            shapes[f"e{level}.{name}.bias"] = (out,)
        for name, out, cin in dec_all[dec_from[level] :]:
            shapes[f"d{level}.{name}.weight"] = (out, cin, 3, 3)
            shapes[f"d{level}.{name}.bias"] = (out,)
    return shapes


def reference_haar(channels: int) -> list[torch.Tensor]:
    """clovaai/WCT2 get_wav's filters, built as there (numpy, expanded): LL, LH, HL, HH."""
    low = 1 / np.sqrt(2) * np.ones((1, 2))
    high = 1 / np.sqrt(2) * np.ones((1, 2))
    high[0, 0] = -1 * high[0, 0]
    pairs = ((low, low), (low, high), (high, low), (high, high))
    out = []
    for a, b in pairs:
        f = torch.from_numpy(np.transpose(a) * b).unsqueeze(0)
        out.append(f.float().unsqueeze(0).expand(channels, -1, -1, -1))
    return out


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded random tensors of ``shapes``: He-scaled conv weights, small biases, Haar filters."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if ".LL." in key or ".LH." in key or ".HL." in key or ".HH." in key:
            band = ("LL", "LH", "HL", "HH").index(key.split(".")[-2])
            state[key] = reference_haar(shape[0])[band]
        elif key.endswith("weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    return state


def scene(seed: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """(3, H, W) smooth colour pattern with a little texture in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 6.28)
        wave = 0.5 + 0.35 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.05 * rng.standard_normal((height, width)))
    return torch.from_numpy(np.clip(np.stack(channels), 0, 1)).float()


def save_png(tensor_or_array, path: Path) -> Path:
    """Save a (3, H, W) tensor in [0, 1] or a uint8 array as PNG."""
    if isinstance(tensor_or_array, torch.Tensor):
        array = (tensor_or_array.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    else:
        array = tensor_or_array
    Image.fromarray(array).save(path)
    return path
