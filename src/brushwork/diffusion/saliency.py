"""Saliency detectors: where a viewer looks in an image.

Every detector is a callable ``(B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 1]``
(:class:`SaliencyDetector`); the maps are min-max normalised per image and computed
without gradient (SGOOL holds the map fixed within an iteration).

* :class:`SpectralResidualSaliency` — the weight-free default (Hou & Zhang 2007):
  grey image resized to 64 px wide, log-amplitude spectrum minus its 3×3 local mean
  (the "spectral residual"), back to the image domain with the original phase, squared
  magnitude, smoothed with a disk of radius 3 — as in the paper's reference code.
* :class:`ModuleSaliency` — any torch module (e.g. TranSalNet built from its authors'
  code) given with its input size and normalisation.
* :class:`OnnxSaliency` — a learned detector exported to ONNX (e.g. TranSalNet,
  input 288×384), run with onnxruntime. ONNX files hold no executable code, so a
  user-supplied file is safe to load.

:func:`load_saliency_detector` picks one by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError, WeightsError

__all__ = [
    "DETECTORS",
    "ModuleSaliency",
    "OnnxSaliency",
    "SaliencyDetector",
    "SpectralResidualSaliency",
    "load_saliency_detector",
    "normalise_maps",
]

DETECTORS = ("spectral", "onnx")


@runtime_checkable
class SaliencyDetector(Protocol):
    """``(B, 3, H, W)`` images in [0, 1] -> ``(B, 1, H, W)`` saliency in [0, 1]."""

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each (1, H, W) map of a (B, 1, H, W) batch to [0, 1]."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return ((maps - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)


def _disk(radius: int) -> torch.Tensor:
    """(1, 1, 2r+1, 2r+1) normalised disk filter (like MATLAB's fspecial('disk'))."""
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    inside = (r.view(-1, 1) ** 2 + r.view(1, -1) ** 2 <= radius**2 + 0.5).float()
    return (inside / inside.sum()).view(1, 1, 2 * radius + 1, 2 * radius + 1)


class SpectralResidualSaliency:
    """Spectral residual saliency (Hou & Zhang 2007); no weights.

    Args:
        width: the image is analysed at this width (64 in the paper).
        radius: radius of the disk that smooths the map (3 in the reference code).
    """

    name = "spectral"

    def __init__(self, *, width: int = 64, radius: int = 3) -> None:
        if width < 8 or radius < 0:
            raise ConfigError("spectral saliency needs width ≥ 8 and radius ≥ 0")
        self.width = width
        self.radius = radius

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        h, w = images.shape[-2:]
        grey = images.float().mean(dim=1, keepdim=True)
        small_h = max(8, round(h * self.width / w))
        small = F.interpolate(grey, size=(small_h, self.width), mode="area")
        spectrum = torch.fft.fft2(small.double())
        log_amplitude = torch.log(spectrum.abs().clamp_min(1e-12))
        phase = torch.angle(spectrum)
        local_mean = F.avg_pool2d(F.pad(log_amplitude, (1, 1, 1, 1), mode="replicate"), 3, 1)
        residual = log_amplitude - local_mean
        saliency = torch.fft.ifft2(torch.exp(torch.complex(residual, phase))).abs() ** 2
        saliency = saliency.float()
        if self.radius:
            r = self.radius
            padded = F.pad(saliency, (r, r, r, r), mode="replicate")
            saliency = F.conv2d(padded, _disk(r).to(saliency.device))
        saliency = F.interpolate(saliency, size=(h, w), mode="bilinear", align_corners=False)
        return normalise_maps(saliency)


class ModuleSaliency:
    """A learned detector given as a torch module.

    Args:
        module: maps (B, 3, h, w) normalised images to (B, 1, h', w') or (B, h', w')
            saliency (any range; min-max normalised here).
        input_size: (h, w) the module expects, e.g. (288, 384) for TranSalNet.
        mean, std: per-channel normalisation applied to [0, 1] pixels (``None``: none).
        name: shown in messages and sheets.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        input_size: tuple[int, int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "learned",
    ) -> None:
        self.module = module.eval().requires_grad_(False)
        self.input_size = tuple(input_size)
        self.mean = mean
        self.std = std
        self.name = name

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, h, w) model input."""
        x = F.interpolate(images.float(), size=self.input_size, mode="bilinear", antialias=True)
        if self.mean is not None:
            x = x - torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        if self.std is not None:
            x = x / torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        device = next(self.module.parameters(), torch.empty(0)).device
        out = self.module(self.prepare(images).to(device))
        return _finish(torch.as_tensor(out).float(), images)


class OnnxSaliency(ModuleSaliency):
    """A learned detector exported to ONNX, run with onnxruntime on the CPU.

    Args:
        path: the ``.onnx`` file (one image input, one saliency output).
        input_size: (h, w) of the model input; (288, 384) for TranSalNet.
        mean, std: normalisation of [0, 1] pixels (``None``: none).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        input_size: tuple[int, int] = (288, 384),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "onnx",
    ) -> None:
        import onnxruntime

        if not os.path.isfile(path):
            raise WeightsError(f"saliency model {path} does not exist")
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise WeightsError(f"could not load the ONNX saliency model {path}: {error}") from error
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = tuple(input_size)
        self.mean, self.std, self.name = mean, std, name

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        x = self.prepare(images.cpu()).numpy()
        out = self.session.run(None, {self.input_name: x})[0]
        return _finish(torch.from_numpy(out).float(), images)


def _finish(out: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Model output -> (B, 1, H, W) in [0, 1] at the images' size."""
    if out.ndim == 3:
        out = out.unsqueeze(1)
    if out.ndim != 4 or out.shape[1] != 1 or out.shape[0] != images.shape[0]:
        raise ConfigError(
            f"a saliency model must return (B, 1, h, w) maps, got {tuple(out.shape)} "
            f"for {images.shape[0]} images"
        )
    out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return normalise_maps(torch.nan_to_num(out)).to(images.device)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"saliency needs (B, 3, H, W) images, got {tuple(images.shape)}")


def load_saliency_detector(
    name: str = "spectral",
    *,
    weights: str | os.PathLike | None = None,
    input_size: tuple[int, int] = (288, 384),
) -> SaliencyDetector:
    """A detector by name: ``"spectral"`` (default, no weights) or ``"onnx"`` (needs
    ``weights``, a user-supplied ONNX export of a learned detector such as TranSalNet)."""
    if name == "spectral":
        if weights is not None:
            raise ConfigError("the spectral-residual detector takes no weights")
        return SpectralResidualSaliency()
    if name == "onnx":
        if weights is None:
            raise ConfigError(
                "the ONNX saliency detector needs its model file: pass --saliency-weights "
                "FILE.onnx (e.g. TranSalNet exported with torch.onnx.export)"
            )
        return OnnxSaliency(weights, input_size=input_size)
    raise ConfigError(f"unknown saliency detector '{name}': choose from {', '.join(DETECTORS)}")
