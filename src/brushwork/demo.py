"""A first run that needs no files: a drawn content and style image, and their transfer.

:func:`demo_images` draws a small landscape (the content) and a swirling brush-stroke
painting in the manner of a night sky (the style), deterministically from a seed, so a
fresh install can show a real style transfer before the user has any pictures of their
own. :func:`run_demo` stylises one with the other by Gatys' method and returns the three
images and a side-by-side sheet.

Example::

    from brushwork.demo import run_demo
    result = run_demo(size=256, steps=100)
    save_image(result.sheet, "sheet.png")   # content | style | result, (3, H, 3W + gaps)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["DemoResult", "demo_images", "draw_content", "draw_style", "run_demo"]

#: The night-sky palette of the style image (RGB).
_STYLE_PALETTE = (
    (18, 38, 92),
    (30, 62, 140),
    (56, 98, 178),
    (112, 152, 204),
    (236, 206, 84),
    (248, 232, 150),
    (20, 24, 40),
    (214, 128, 42),
)


@dataclass
class DemoResult:
    """The demo's images, each ``(3, H, W)`` float in [0, 1].

    Attributes:
        content: the drawn landscape.
        style: the drawn brush-stroke painting.
        image: the content stylised with the style.
        sheet: content | style | result side by side, with labels.
        seconds: time of the transfer.
        steps: optimisation steps run (all pyramid levels).
    """

    content: torch.Tensor
    style: torch.Tensor
    image: torch.Tensor
    sheet: torch.Tensor
    seconds: float
    steps: int


def _to_tensor(picture: Image.Image) -> torch.Tensor:
    array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def draw_content(width: int = 512, height: int = 384) -> torch.Tensor:
    """A landscape: sky, sun, two mountain ranges, a lake, a house and a tree.

    Returns:
        ``(3, height, width)`` in [0, 1].
    """
    picture = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(picture)
    horizon = int(height * 0.62)
    for y in range(horizon):  # sky: pale at the horizon, deeper blue above
        t = y / max(horizon - 1, 1)
        colour = (int(90 + 140 * t), int(150 + 80 * t), int(225 + 20 * t))
        draw.line([(0, y), (width, y)], fill=colour)
    sun = (0.78 * width, 0.22 * height, 0.07 * min(width, height))
    draw.ellipse(
        [sun[0] - sun[2], sun[1] - sun[2], sun[0] + sun[2], sun[1] + sun[2]], fill=(255, 226, 140)
    )
    for depth, (colour, peaks) in enumerate(
        [((120, 130, 160), (0.15, 0.42, 0.7, 0.95)), ((70, 105, 80), (0.05, 0.3, 0.58, 0.85))]
    ):
        points = [(0, horizon)]
        for i, peak in enumerate(peaks):
            top = height * (0.28 + 0.1 * depth + 0.06 * (i % 2))
            points += [(peak * width - 0.12 * width, horizon), (peak * width, top)]
            points += [(peak * width + 0.12 * width, horizon)]
        points.append((width, horizon))
        draw.polygon(points, fill=colour)
    for y in range(horizon, height):  # lake, darker towards the viewer
        t = (y - horizon) / max(height - horizon - 1, 1)
        draw.line(
            [(0, y), (width, y)], fill=(int(70 - 30 * t), int(120 - 40 * t), 170 - int(50 * t))
        )
    house = (0.18 * width, horizon - 0.16 * height, 0.16 * width, 0.16 * height)
    draw.rectangle([house[0], house[1], house[0] + house[2], horizon], fill=(196, 80, 60))
    draw.polygon(
        [
            (house[0] - 0.02 * width, house[1]),
            (house[0] + house[2] / 2, house[1] - 0.09 * height),
            (house[0] + house[2] + 0.02 * width, house[1]),
        ],
        fill=(90, 50, 40),
    )
    door = (house[0] + house[2] * 0.4, horizon - 0.08 * height)
    draw.rectangle([door[0], door[1], door[0] + house[2] * 0.2, horizon], fill=(60, 40, 30))
    trunk = 0.55 * width
    draw.rectangle(
        [trunk, horizon - 0.1 * height, trunk + 0.02 * width, horizon], fill=(90, 60, 30)
    )
    radius = 0.07 * min(width, height)
    draw.ellipse(
        [trunk - radius, horizon - 0.1 * height - 1.6 * radius, trunk + radius + 0.02 * width,
         horizon - 0.1 * height + 0.3 * radius],
        fill=(40, 120, 50),
    )  # fmt: skip
    return _to_tensor(picture.filter(ImageFilter.GaussianBlur(radius=0.6)))


def draw_style(size: int = 512, *, seed: int = 0) -> torch.Tensor:
    """A painting of short, thick brush strokes swirling around a few centres.

    Strokes follow a flow field of vortices (as in a painted night sky); colours come
    from a fixed palette with seeded jitter. The same seed gives the same image.

    Returns:
        ``(3, size, size)`` in [0, 1].
    """
    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", (size, size), _STYLE_PALETTE[0])
    draw = ImageDraw.Draw(picture)
    centres = rng.uniform(0.15, 0.85, size=(4, 2)) * size
    spins = rng.choice([-1.0, 1.0], size=4)
    stroke = max(2, size // 90)
    for _ in range(int(3.2 * size)):
        x, y = rng.uniform(0, size, size=2)
        near = int(np.argmin(((centres - (x, y)) ** 2).sum(axis=1)))
        distance = math.dist((x, y), centres[near])
        colour_index = 4 if distance < 0.12 * size else int(rng.integers(0, len(_STYLE_PALETTE)))
        colour = tuple(
            int(np.clip(c + rng.normal(0, 14), 0, 255)) for c in _STYLE_PALETTE[colour_index]
        )
        points = [(x, y)]
        for _ in range(6):  # walk along the swirl around the nearest centre
            dx, dy = points[-1][0] - centres[near][0], points[-1][1] - centres[near][1]
            norm = math.hypot(dx, dy) + 1e-6
            step = 0.012 * size
            points.append(
                (points[-1][0] - spins[near] * dy / norm * step,
                 points[-1][1] + spins[near] * dx / norm * step)
            )  # fmt: skip
        draw.line(points, fill=colour, width=stroke, joint="curve")
    return _to_tensor(picture.filter(ImageFilter.SMOOTH))


def demo_images(size: int = 512, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The demo's content ``(3, 3·size/4, size)`` and style ``(3, size, size)`` images."""
    if size < 32:
        raise ValueError(f"the demo images need a size of 32 pixels or more, got {size}")
    return draw_content(size, max(24, size * 3 // 4)), draw_style(size, seed=seed)


def run_demo(
    *,
    size: int = 256,
    steps: int = 100,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    weights: str | os.PathLike[str] | None = None,
    callback=None,
) -> DemoResult:
    """Draw the demo images and stylise the content with the style (Gatys).

    Args:
        size: long side of the result in pixels.
        steps: optimisation steps in all.
        seed: for the drawn style and the optimisation.
        device, precision: as for :func:`brushwork.transfer.gatys.gatys`.
        weights: a local VGG-19 file (default: the cache, downloaded on first use).
        callback: called with each step's info, as by ``gatys``.
    """
    from brushwork.diffusion.maps import sheet
    from brushwork.image import resize_to
    from brushwork.transfer.gatys import GatysSettings, gatys

    content, style = demo_images(size, seed=seed)
    settings = GatysSettings(size=size, steps=steps, seed=seed, precision=precision)
    result = gatys(
        content,
        [style],
        settings=settings,
        weights=weights,
        device=device,
        callback=callback,
    )
    height = result.image.shape[-2]
    style_shown = resize_to(style, height, height)  # the style is square
    picture = sheet([content, style_shown, result.image], ["content", "style", "result"])
    steps_run = sum(level[2] for level in result.levels)
    return DemoResult(content, style, result.image, picture, result.seconds, steps_run)
