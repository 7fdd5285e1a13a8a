"""Image folders as training data: resize, random crop, seeded by (seed, step).

Every batch is a pure function of ``(seed, step)``: the image indices and crop
positions come from a generator seeded with both, so training resumed from a
checkpoint at step ``s`` sees exactly the batches an uninterrupted run sees.

Example::

    data = ImageFolder("coco/train2014", resize=256, crop=256)
    batch = data.batch(step=0, batch_size=4, seed=0)     # (4, 3, 256, 256) in [0, 1]
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from brushwork import image as imageops
from brushwork.errors import ConfigError

#: File endings read as training images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_MIX_A = 0x9E3779B97F4A7C15
_MIX_B = 0xBF58476D1CE4E5B9


def list_images(root: str | os.PathLike, *, what: str = "image folder") -> list[Path]:
    """Image files under ``root`` (recursively), sorted; ConfigError if there are none."""
    folder = Path(root)
    if not folder.exists():
        raise ConfigError(f"{what} {folder} does not exist")
    if folder.is_file():
        if folder.suffix.lower() in IMAGE_SUFFIXES:
            return [folder]
        raise ConfigError(f"{what} {folder} is not a folder or an image file")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ConfigError(
            f"{what} {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)} "
            "files, also in sub-folders); point it at a folder of training images"
        )
    return files


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, step, stream)`` only."""
    mixed = (seed * _MIX_A + (step + 1) * _MIX_B + stream * 0x94D049BB133111EB) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


class ImageFolder:
    """Images of a folder, served as square random crops.

    Each image is resized so its shorter side is ``resize`` pixels (at least
    ``crop``), then a ``crop`` × ``crop`` square is cut at a random position.

    Args:
        root: folder (searched recursively) or a single image file.
        resize: shorter side after resizing; ``None`` means ``crop``.
        crop: side of the square crops.
        cache_size: decoded, resized images kept in memory.
        workers: threads decoding the images of a batch.
        max_pixels: largest image accepted (see :func:`brushwork.image.load_image`).
        what: how error messages call the folder ("content folder", ...).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        resize: int | None = 256,
        crop: int = 256,
        cache_size: int = 32,
        workers: int = 4,
        max_pixels: int = imageops.DEFAULT_MAX_PIXELS,
        what: str = "image folder",
    ) -> None:
        if crop < 1:
            raise ConfigError(f"crop size must be at least 1 pixel, got {crop}")
        if resize is not None and resize < 1:
            raise ConfigError(f"resize must be at least 1 pixel, got {resize}")
        self.files = list_images(root, what=what)
        self.resize = max(resize or crop, crop)
        self.crop = crop
        self.max_pixels = max_pixels
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.workers = workers

    def __len__(self) -> int:
        return len(self.files)

    def _resized(self, index: int) -> torch.Tensor:
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        image = imageops.load_image(self.files[index], max_pixels=self.max_pixels)
        h, w = image.shape[-2:]
        scale = self.resize / min(h, w)
        image = imageops.resize_to(
            image, max(self.crop, round(h * scale)), max(self.crop, round(w * scale))
        )
        if self._cache_size > 0:
            with self._lock:
                self._cache[index] = image
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return image

    def batch(self, *, step: int, batch_size: int, seed: int, stream: int = 0) -> torch.Tensor:
        """Batch number ``step``: (batch_size, 3, crop, crop) float32 in [0, 1].

        ``stream`` separates independent draws for the same step (content vs style).
        """
        generator = step_generator(seed, step, stream)
        indices = torch.randint(len(self.files), (batch_size,), generator=generator).tolist()
        positions = torch.rand(batch_size, 2, generator=generator, dtype=torch.float64).tolist()
        if batch_size > 1:  # decoding releases the GIL: load the images in parallel
            with ThreadPoolExecutor(max_workers=min(batch_size, self.workers)) as pool:
                images = list(pool.map(self._resized, indices))
        else:
            images = [self._resized(i) for i in indices]
        crops = []
        for image, (u, v) in zip(images, positions, strict=True):
            h, w = image.shape[-2:]
            top = min(int(u * (h - self.crop + 1)), h - self.crop)
            left = min(int(v * (w - self.crop + 1)), w - self.crop)
            crops.append(image[:, top : top + self.crop, left : left + self.crop])
        return torch.stack(crops)
