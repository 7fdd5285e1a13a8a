"""Training images for a style LoRA: a folder or a few files, captions, resolution buckets.

Each image gets a caption: the text of a ``.txt`` file of the same name beside it
(``cat.jpg`` → ``cat.txt``), with the trigger phrase put in front when the caption does
not already hold it; without a caption file, the trigger phrase alone.

Non-square images are not cropped to squares: each goes to the *bucket* (a height ×
width of about ``resolution²`` pixels, both sides multiples of the model's size rule)
whose aspect ratio is nearest its own, is resized to cover it and centre-cropped.
A batch only holds images of one bucket.

The order in which images are seen is a pure function of ``(seed, epoch)``, so the batch
of step ``s`` can be recomputed from ``s`` alone (:meth:`TrainingSet.batch_at`): a
resumed run sees exactly the batches an uninterrupted one sees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from brushwork import image as imageops
from brushwork.errors import ConfigError
from brushwork.transfer.data import IMAGE_SUFFIXES, list_images, step_generator

__all__ = [
    "TrainingImage",
    "TrainingSet",
    "bucket_sizes",
    "caption_for",
    "choose_bucket",
    "collect_images",
    "load_training_set",
]

#: Largest aspect ratio (long / short side) a bucket may have.
MAX_ASPECT = 2.0


@dataclass
class TrainingImage:
    """One training image at its bucket size.

    Attributes:
        path: the image file.
        caption: the text it is trained with.
        pixels: (3, H, W) float32 in [0, 1], (H, W) = ``bucket``.
        bucket: (H, W) of its bucket.
    """

    path: Path
    caption: str
    pixels: torch.Tensor
    bucket: tuple[int, int]


def collect_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files from folders (searched recursively) and single files, in a stable order.

    Raises:
        ConfigError: a source is missing, not an image, or a folder holds no images.
    """
    if not sources:
        raise ConfigError("no training images given (--images FOLDER or files)")
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(
                f"training image {path} is not an image file ({', '.join(IMAGE_SUFFIXES)})"
            )
        files.extend(list_images(path, what="training images"))
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def caption_for(image: Path, trigger: str | None) -> str:
    """The caption of ``image``: its ``.txt`` beside it (with the trigger in front when it
    lacks it), else the trigger phrase.

    Raises:
        ConfigError: no caption file and no trigger phrase.
    """
    text_file = image.with_suffix(".txt")
    caption = ""
    if text_file.is_file():
        caption = " ".join(text_file.read_text(encoding="utf-8").split())
    trigger = " ".join((trigger or "").split())
    if not caption:
        if not trigger:
            raise ConfigError(
                f"{image} has no caption file ({text_file.name}) and no --trigger was given: "
                "give a trigger phrase such as --trigger 'in sks style'"
            )
        return trigger
    if trigger and trigger.lower() not in caption.lower():
        return f"{trigger}, {caption}"
    return caption


def bucket_sizes(resolution: int, multiple: int) -> list[tuple[int, int]]:
    """(H, W) buckets of about ``resolution²`` pixels, sides multiples of ``multiple``,
    aspect ratios up to :data:`MAX_ASPECT`; the square bucket is always among them."""
    if resolution < multiple or resolution % multiple:
        raise ConfigError(
            f"the training resolution must be a multiple of {multiple} px for this model, "
            f"got {resolution}"
        )
    area = resolution * resolution
    found = {(resolution, resolution)}
    width = multiple
    while width <= resolution * MAX_ASPECT:
        height = (area // width) // multiple * multiple
        if height >= multiple and max(width, height) / min(width, height) <= MAX_ASPECT:
            found.add((height, width))
            found.add((width, height))
        width += multiple
    return sorted(found)


def choose_bucket(height: int, width: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is nearest ``height / width`` (log ratio; ties go to
    the larger area, then the first)."""
    import math

    aspect = math.log(height / width)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - aspect), -b[0] * b[1]))


def _cover_crop(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize (3, h, w) to cover (height, width) and centre-crop it to that size."""
    h, w = pixels.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    resized = imageops.resize_to(pixels, new_h, new_w)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[:, top : top + height, left : left + width].contiguous()


def load_training_set(
    sources: Sequence[str | os.PathLike],
    *,
    trigger: str | None,
    resolution: int,
    multiple: int = 64,
    buckets: bool = True,
) -> TrainingSet:
    """Load, caption and bucket the training images.

    Args:
        sources: folders and/or image files.
        trigger: the trigger phrase (``None``: every image needs a caption file).
        resolution: the side of the square bucket; others have about its area.
        multiple: sides are multiples of this (the model's size rule, e.g. 64).
        buckets: ``False``: every image is centre-cropped to the square bucket.
    """
    files = collect_images(sources)
    sizes = bucket_sizes(resolution, multiple) if buckets else [(resolution, resolution)]
    images = []
    for file in files:
        caption = caption_for(file, trigger)
        pixels = imageops.load_image(file)
        bucket = choose_bucket(int(pixels.shape[-2]), int(pixels.shape[-1]), sizes)
        images.append(TrainingImage(file, caption, _cover_crop(pixels, *bucket), bucket))
    return TrainingSet(images, resolution=resolution)


class TrainingSet:
    """The training images and the order they are served in.

    An epoch is every bucket's images in seeded random order, cut into batches of one
    bucket each, the batches themselves in seeded random order.
    """

    def __init__(self, images: Sequence[TrainingImage], *, resolution: int | None = None) -> None:
        if not images:
            raise ConfigError("no training images")
        self.images = list(images)
        #: The side of the square bucket (samples are made at this size).
        self.resolution = resolution or max(max(image.bucket) for image in self.images)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def buckets(self) -> list[tuple[int, int]]:
        """The buckets in use, sorted."""
        return sorted({image.bucket for image in self.images})

    def epoch_batches(self, epoch: int, batch_size: int, seed: int) -> list[list[int]]:
        """The image indices of each batch of ``epoch`` (a function of the arguments only)."""
        generator = step_generator(seed, epoch, stream=7)
        batches: list[list[int]] = []
        for bucket in self.buckets:
            members = [i for i, image in enumerate(self.images) if image.bucket == bucket]
            order = torch.randperm(len(members), generator=generator).tolist()
            shuffled = [members[i] for i in order]
            batches += [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]
        order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in order]

    def batch_at(self, step: int, batch_size: int, seed: int) -> tuple[int, int, list[int]]:
        """``(epoch, position in the epoch, image indices)`` of the 0-based ``step``."""
        per_epoch = len(self.epoch_batches(0, batch_size, seed))
        epoch, position = divmod(step, per_epoch)
        return epoch, position, self.epoch_batches(epoch, batch_size, seed)[position]

    def fingerprint(self) -> list[list[object]]:
        """What identifies the data of a run (file, caption, bucket): stored in checkpoints."""
        return [[str(i.path), i.caption, list(i.bucket)] for i in self.images]
