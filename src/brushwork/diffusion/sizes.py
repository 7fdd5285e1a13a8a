"""Image sizes for the diffusion commands: the rules a size must follow, and a memory estimate.

Every Stable Diffusion VAE (1.x, 2.x, XL) maps 8×8 pixels to one latent cell, so the
sides of an image the pipelines generate must be multiples of :data:`VAE_FACTOR`.
:func:`check_sides` applies that rule *before* a model loads; :func:`check_model_sides`
applies the loaded model's own rule (its VAE factor, and the smallest size at which every
UNet level still has one latent cell). :func:`model_facts` reads that rule from a local
model folder's config files without loading any weight, so it can also be applied early.

:func:`estimate_memory` is the rough, documented estimate that
:func:`brushwork.resources.check_memory` compares with the device's memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError

__all__ = [
    "VAE_FACTOR",
    "ModelFacts",
    "check_model_sides",
    "check_sides",
    "default_side",
    "estimate_memory",
    "guess_family",
    "model_facts",
    "nearest_multiples",
]

#: Pixels per latent cell along each side in every SD 1.x / 2.x / XL VAE.
VAE_FACTOR = 8

#: Parameters of the whole pipeline (UNet + VAE + text encoders), for the estimate.
PIPELINE_PARAMETERS = {"sd": 1.07e9, "sdxl": 3.5e9}

#: Default generated side per family (SD 2.x at 768 px is covered by model_facts).
DEFAULT_SIDES = {"sd": 512, "sdxl": 1024}


@dataclass(frozen=True)
class ModelFacts:
    """What a model folder's config says about sizes (without loading weights).

    Attributes:
        vae_factor: pixels per latent cell (8 for SD; smaller in test models).
        minimum: smallest side with one latent cell at every UNet level
            (vae_factor × 2^(down blocks − 1); 64 for SD).
        default_side: the side the UNet was trained at (sample_size × vae_factor).
        family: ``"sdxl"`` or ``"sd"``.
    """

    vae_factor: int
    minimum: int
    default_side: int
    family: str


def nearest_multiples(side: int, multiple: int = VAE_FACTOR) -> tuple[int, ...]:
    """The valid sides next to ``side``: ``50`` -> ``(48, 56)``; ``3`` -> ``(8,)``."""
    lower = (side // multiple) * multiple
    upper = lower + multiple
    return (upper,) if lower < multiple else (lower, upper)


def check_sides(
    height: int | None,
    width: int | None,
    *,
    flag: str = "--size",
    multiple: int = VAE_FACTOR,
    minimum: int = VAE_FACTOR,
    why: str = "the VAE's factor",
) -> None:
    """Refuse sides that are not multiples of ``multiple`` or below ``minimum``.

    ``None`` stands for "the model's default" and passes. The message names the rule and
    the nearest valid sizes, e.g. ``--size 50 is not a multiple of 8 (the VAE's factor);
    use 48 or 56``.

    Raises:
        ConfigError: a side breaks the rule.
    """
    square = height is not None and height == width
    shown = _shown(height, width, flag)
    for name, side in (("height", height), ("width", width)):
        if side is None:
            continue
        if side < minimum:
            raise ConfigError(
                f"{shown} is too small: sides must be at least {minimum} px ({why}); "
                f"use {_replace(height, width, name, minimum, square)}"
            )
        if side % multiple:
            options = " or ".join(
                _replace(height, width, name, valid, square)
                for valid in nearest_multiples(side, multiple)
                if valid >= minimum
            )
            subject = shown if square or height is None or width is None else f"{shown}: the {name}"
            number = "" if subject == shown else f" {side}"
            raise ConfigError(
                f"{subject}{number} is not a multiple of {multiple} ({why}); use {options}"
            )


def _shown(height: int | None, width: int | None, flag: str) -> str:
    if flag != "--size":
        return f"{flag} {height if height is not None else width}"
    if height is not None and height == width:
        return f"--size {height}"
    return f"--size {height}x{width}"


def _replace(height: int | None, width: int | None, name: str, value: int, square: bool) -> str:
    if square:
        return str(value)
    if height is None or width is None:
        return str(value)
    return f"{value}x{width}" if name == "height" else f"{height}x{value}"


def check_model_sides(pipe: Any, height: int | None, width: int | None, flag: str) -> None:
    """:func:`check_sides` with the loaded pipeline's own VAE factor and UNet minimum."""
    check_sides_for(pipeline_facts(pipe), height, width, flag)


def check_sides_for(facts: ModelFacts, height: int | None, width: int | None, flag: str) -> None:
    """:func:`check_sides` with a model's VAE factor and UNet minimum."""
    check_sides(
        height,
        width,
        flag=flag,
        multiple=facts.vae_factor,
        minimum=facts.minimum,
        why="what this model's VAE and UNet need",
    )


def pipeline_facts(pipe: Any) -> ModelFacts:
    """:class:`ModelFacts` of a loaded pipeline."""
    vae_blocks = len(pipe.vae.config.block_out_channels)
    unet_blocks = len(pipe.unet.config.down_block_types)
    family = "sdxl" if hasattr(pipe, "text_encoder_2") else "sd"
    return _facts(vae_blocks, unet_blocks, int(pipe.unet.config.sample_size), family)


def _facts(vae_blocks: int, unet_blocks: int, sample_size: int, family: str) -> ModelFacts:
    vae_factor = 2 ** (vae_blocks - 1)
    return ModelFacts(
        vae_factor=vae_factor,
        minimum=vae_factor * 2 ** (unet_blocks - 1),
        default_side=sample_size * vae_factor,
        family=family,
    )


def model_facts(model: str) -> ModelFacts | None:
    """:class:`ModelFacts` from a local folder's ``unet``/``vae`` configs; ``None`` otherwise.

    Hub ids return ``None`` (their configs are not read before loading).
    """
    folder = Path(model).expanduser()
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        index = json.loads((folder / "model_index.json").read_text())
        family = "sdxl" if "text_encoder_2" in index else "sd"
        return _facts(
            len(vae["block_out_channels"]),
            len(unet["down_block_types"]),
            int(unet["sample_size"]),
            family,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def guess_family(model: str) -> str:
    """``"sdxl"`` or ``"sd"`` from a folder's config, else from the hub id (``-xl-``)."""
    facts = model_facts(model)
    if facts is not None:
        return facts.family
    return "sdxl" if "xl" in model.lower() else "sd"


def default_side(model: str) -> int:
    """The side a model generates by default (folder config, else 1024 for XL, 512)."""
    facts = model_facts(model)
    return facts.default_side if facts is not None else DEFAULT_SIDES[guess_family(model)]


def estimate_memory(
    height: int,
    width: int,
    *,
    family: str = "sd",
    bytes_per_value: int = 2,
    batch: int = 1,
    guidance: bool = True,
    backward: bool = False,
) -> int:
    """Rough peak memory in bytes of generating ``batch`` images of ``height`` × ``width``.

    The formula (``b`` = bytes per value, ``P`` = H·W pixels, ``L`` = P / 64 latent cells,
    ``c`` = 2 with classifier-free guidance, else 1)::

        weights     = parameters × b            (SD 1.x/2.x: 1.07e9, SDXL: 3.5e9)
        unet        = batch × c × L × 320 channels × 24 live tensors × b
        vae_decode  = batch × P × 128 channels × 6 live tensors × b
        total       = weights + (unet + vae_decode) × (3 if backward else 1)

    The UNet's first level (320 channels at latent size) and the VAE decoder's last level
    (128 channels at full size) dominate the activations; attention is assumed to run
    through PyTorch's memory-efficient kernels, so no term grows with P². ``backward``
    (SGOOL's gradient through the sampler, with checkpointing) roughly triples them. The
    estimate is meant to refuse sizes that cannot fit, not to predict the last gigabyte.
    """
    pixels = height * width
    latent_cells = pixels / VAE_FACTOR**2
    copies = 2 if guidance else 1
    weights = PIPELINE_PARAMETERS.get(family, PIPELINE_PARAMETERS["sd"]) * bytes_per_value
    unet = batch * copies * latent_cells * 320 * 24 * bytes_per_value
    vae_decode = batch * pixels * 128 * 6 * bytes_per_value
    activations = (unet + vae_decode) * (3 if backward else 1)
    return int(weights + activations)
