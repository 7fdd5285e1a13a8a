"""Synthetic videos for the video tests (textures, a moving square, a static scene, audio)
and a tiny real per-frame stylizer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def texture(height: int, width: int, *, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """``(H, W, 3)`` uint8 smooth random texture (blurred noise, full contrast)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3))
    smooth = np.stack([gaussian_filter(noise[..., c], sigma) for c in range(3)], axis=-1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).round().astype(np.uint8)


def shifted_pair(size: int = 64, dx: int = 3, dy: int = -2, seed: int = 0):
    """Two views of one texture with ``first(y, x) = second(y + dy, x + dx)`` (tensors)."""
    big = texture(size + 20, size + 20, seed=seed)
    y0 = x0 = 10
    a = big[y0 : y0 + size, x0 : x0 + size]
    b = big[y0 - dy : y0 - dy + size, x0 - dx : x0 - dx + size]
    return to_tensor(a), to_tensor(b)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float().div(255)


def moving_square_frames(
    count: int = 8, height: int = 48, width: int = 64, step: tuple[int, int] = (3, 1)
) -> list[np.ndarray]:
    """A textured 20 px square moving by ``step`` = (dx, dy) pixels a frame over a texture."""
    background = texture(height, width, seed=1, sigma=3.0)
    square = texture(20, 20, seed=2, sigma=1.5)
    frames = []
    for t in range(count):
        frame = background.copy()
        x, y = 6 + step[0] * t, 8 + step[1] * t
        frame[y : y + 20, x : x + 20] = square
        frames.append(frame)
    return frames


def static_frames(count: int = 5, height: int = 32, width: int = 48) -> list[np.ndarray]:
    image = texture(height, width, seed=3)
    return [image.copy() for _ in range(count)]


def write_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int | Fraction = 10,
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    """Encode RGB uint8 frames (and optionally a 440 Hz tone) with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p" if codec != "gif" else "rgb8"
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=44100)
            audio_stream.layout = "mono"
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            seconds = len(frames) / float(fps)
            samples = int(44100 * seconds)
            t = np.arange(samples) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[None, start : start + 1024]
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = 44100
                aframe.pts = start
                for packet in audio_stream.encode(aframe):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


class TinyStylizer(torch.nn.Module):
    """A small real conv net used as the per-frame stylizer (seeded random weights).

    It is deliberately sensitive to its input's texture at the pixel level, so a
    moving scene gives outputs that shimmer from frame to frame unless stabilised.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 3, 3, padding=1, padding_mode="reflect"),
        )
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(images))


def panning_texture_frames(
    count: int = 20, height: int = 24, width: int = 40, step: tuple[float, float] = (0.7, 0.3)
) -> list[torch.Tensor]:
    """A sharp texture panning by ``step`` = (dx, dy) pixels a frame (sub-pixel motion).

    Drawn at 4× and area-downsampled, so every frame is equally sharp. Returns
    ``(3, H, W)`` tensors in [0, 1].
    """
    import torch.nn.functional as F

    scale = 4
    extra_x, extra_y = int(step[0] * count) + 2, int(step[1] * count) + 2
    big = texture((height + extra_y) * scale, (width + extra_x) * scale, seed=5, sigma=3.0)
    big_tensor = to_tensor(big)
    frames = []
    for t in range(count):
        y0, x0 = round(step[1] * t * scale), round(step[0] * t * scale)
        crop = big_tensor[:, y0 : y0 + height * scale, x0 : x0 + width * scale]
        frames.append(F.avg_pool2d(crop[None], scale)[0])
    return frames
