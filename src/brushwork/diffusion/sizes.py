"""Image sizes for the diffusion commands: the rules a size must follow, and a memory estimate.

Every Stable Diffusion VAE (1.x, 2.x, XL, 3, Flux) maps 8×8 pixels to one latent cell, so
the sides of an image the pipelines generate must be multiples of :data:`VAE_FACTOR`.
:func:`check_sides` applies that rule *before* a model loads; :func:`check_model_sides`
applies the loaded model's own rule. The rules:

* UNets (SD 1.x/2.x/XL): multiples of the VAE factor, and at least the size at which
  every UNet level still has one latent cell (VAE factor × 2^(levels − 1));
* transformers: multiples of VAE factor × patch (SD3: the transformer's ``patch_size``,
  Flux.1/Flux.2: the pipeline's 2×2 latent packing × ``patch_size``) — 8 × 2 = 16 for the
  published SD3/3.5 and Flux models; SD3's learned position embedding also caps the side
  at ``pos_embed_max_size`` × patch × VAE factor.

:func:`model_facts` reads the rule from a local model folder's config files
(``model_index.json``, ``unet/`` or ``transformer/config.json``, ``vae/config.json``)
without loading any weight, so it can be applied early; :func:`known_facts` adds the
published rule of hub ids whose name says SD3 or Flux.

:func:`estimate_memory` / :func:`estimate_model_memory` are the rough, documented
estimates that :func:`brushwork.resources.check_memory` compares with the device's memory.
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
    "estimate_model_memory",
    "estimate_transformer_memory",
    "guess_family",
    "known_facts",
    "model_facts",
    "nearest_multiples",
    "weight_parameters",
]

#: Pixels per latent cell along each side in every SD 1.x / 2.x / XL VAE.
VAE_FACTOR = 8

#: Parameters of the whole pipeline (denoiser + VAE + text encoders), for the estimate of
#: models whose weights cannot be read before loading (hub ids): SD3.5-medium (2.5e9
#: transformer + CLIP-L/G + T5-XXL), Flux.1 (12e9 + CLIP-L + T5-XXL), Flux.2-dev (32e9 +
#: Mistral-3 24e9).
PIPELINE_PARAMETERS = {"sd": 1.07e9, "sdxl": 3.5e9, "sd3": 8.1e9, "flux": 16.9e9, "flux2": 56e9}

#: Default generated side per family (SD 2.x at 768 px is covered by model_facts).
DEFAULT_SIDES = {"sd": 512, "sdxl": 1024, "sd3": 1024, "flux": 1024, "flux2": 1024}

#: Transformer denoiser class -> family (as :func:`~.pipelines.pipeline_family` names them).
TRANSFORMER_FAMILIES = {
    "SD3Transformer2DModel": "sd3",
    "FluxTransformer2DModel": "flux",
    "Flux2Transformer2DModel": "flux2",
}

#: Families whose pipelines pack 2×2 latent cells into one token.
PACKED_FAMILIES = ("flux", "flux2")

#: Text tokens of a transformer call (the attention's key count besides the image):
#: SD3: 77 CLIP + 256 T5 (the pipeline's max_sequence_length); Flux.1/Flux.2: 512.
TEXT_TOKENS = {"sd3": 77 + 256, "flux": 512, "flux2": 512}

#: Transformer width (heads, head dim) of the published models, for hub ids:
#: SD3.5-medium 24 × 64, Flux.1 24 × 128, Flux.2-dev 48 × 128.
TRANSFORMER_HEADS = {"sd3": (24, 64), "flux": (24, 128), "flux2": (48, 128)}

#: Families generated with classifier-free guidance in the batch (two copies per image);
#: Flux.1 uses a guidance embedding (or none), Flux.2 klein's CFG is a second call.
CFG_IN_BATCH = ("sd", "sdxl", "sd3")


@dataclass(frozen=True)
class ModelFacts:
    """What a model folder's config says about sizes (without loading weights).

    Attributes:
        vae_factor: pixels per latent cell (8 for SD; smaller in test models).
        minimum: smallest side with one latent cell at every UNet level
            (vae_factor × 2^(down blocks − 1); 64 for SD).
        default_side: the side the denoiser was trained at (sample_size × vae_factor;
            Flux: the pipeline's 128 × vae_factor).
        family: ``"sd"``, ``"sdxl"``, ``"sd3"``, ``"flux"`` or ``"flux2"``.
        multiple: what every side must be a multiple of (UNets: the VAE factor;
            transformers: VAE factor × patch, see the module docstring).
        maximum: the largest side (SD3's position embedding), ``None`` for no limit.
        why, why_maximum: the rules in words, for the refusal messages.
        heads, head_dim: transformer attention width (0 for UNets).
    """

    vae_factor: int
    minimum: int
    default_side: int
    family: str
    multiple: int = 0
    maximum: int | None = None
    why: str = "what this model's VAE and UNet need"
    why_maximum: str = ""
    heads: int = 0
    head_dim: int = 0

    @property
    def side_multiple(self) -> int:
        return self.multiple or self.vae_factor

    @property
    def is_transformer(self) -> bool:
        return self.family in TRANSFORMER_HEADS


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
    maximum: int | None = None,
    why_maximum: str = "",
) -> None:
    """Refuse sides that are not multiples of ``multiple``, below ``minimum`` or above
    ``maximum``.

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
        if maximum is not None and side > maximum:
            raise ConfigError(
                f"{shown} is too large: sides must be at most {maximum} px "
                f"({why_maximum or why}); "
                f"use {_replace(height, width, name, maximum, square)}"
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
    """:func:`check_sides` with the loaded pipeline's own rule (UNet or transformer)."""
    check_sides_for(pipeline_facts(pipe), height, width, flag)


def check_sides_for(facts: ModelFacts, height: int | None, width: int | None, flag: str) -> None:
    """:func:`check_sides` with a model's rule (multiple, minimum, maximum, in words)."""
    check_sides(
        height,
        width,
        flag=flag,
        multiple=facts.side_multiple,
        minimum=facts.minimum,
        maximum=facts.maximum,
        why=facts.why,
        why_maximum=facts.why_maximum,
    )


def pipeline_facts(pipe: Any) -> ModelFacts:
    """:class:`ModelFacts` of a loaded pipeline."""
    vae_blocks = len(pipe.vae.config.block_out_channels)
    transformer = getattr(pipe, "transformer", None)
    if transformer is not None and type(transformer).__name__ in TRANSFORMER_FAMILIES:
        config = dict(transformer.config)
        config["_class_name"] = type(transformer).__name__
        return _transformer_facts(config, vae_blocks)
    unet_blocks = len(pipe.unet.config.down_block_types)
    family = "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd"
    return _facts(vae_blocks, unet_blocks, int(pipe.unet.config.sample_size), family)


def _facts(vae_blocks: int, unet_blocks: int, sample_size: int, family: str) -> ModelFacts:
    vae_factor = 2 ** (vae_blocks - 1)
    return ModelFacts(
        vae_factor=vae_factor,
        minimum=vae_factor * 2 ** (unet_blocks - 1),
        default_side=sample_size * vae_factor,
        family=family,
    )


def _transformer_facts(config: dict[str, Any], vae_blocks: int) -> ModelFacts:
    """Facts of a transformer pipeline from its transformer config and VAE level count."""
    family = TRANSFORMER_FAMILIES[config["_class_name"]]
    vae_factor = 2 ** (vae_blocks - 1)
    patch = int(config.get("patch_size") or 1)
    packing = 2 if family in PACKED_FAMILIES else 1
    multiple = vae_factor * patch * packing
    if family in PACKED_FAMILIES:
        why = f"VAE factor {vae_factor} × 2×2 latent packing"
        why += f" × patch size {patch}" if patch > 1 else ""
        default = 128 * vae_factor  # the pipelines' default_sample_size
        maximum, why_maximum = None, ""
    else:
        why = f"VAE factor {vae_factor} × patch size {patch}"
        default = int(config.get("sample_size") or 128) * vae_factor
        cap = config.get("pos_embed_max_size")
        maximum = int(cap) * patch * vae_factor if cap else None
        why_maximum = (
            f"this model's position embedding: {cap} patches × patch size {patch} × "
            f"VAE factor {vae_factor}"
        )
    return ModelFacts(
        vae_factor=vae_factor,
        minimum=multiple,
        default_side=default,
        family=family,
        multiple=multiple,
        maximum=maximum,
        why=f"this model's {why}",
        why_maximum=why_maximum if maximum else "",
        heads=int(config.get("num_attention_heads") or 0),
        head_dim=int(config.get("attention_head_dim") or 0),
    )


def model_facts(model: str) -> ModelFacts | None:
    """:class:`ModelFacts` from a local folder's configs; ``None`` otherwise.

    Reads ``model_index.json``, ``vae/config.json`` and ``unet/config.json`` or
    ``transformer/config.json`` (no weight). Hub ids return ``None`` (their configs are
    not read before loading; see :func:`known_facts`).
    """
    folder = Path(model).expanduser()
    try:
        vae = json.loads((folder / "vae" / "config.json").read_text())
        index = json.loads((folder / "model_index.json").read_text())
        vae_blocks = len(vae["block_out_channels"])
        if (folder / "transformer" / "config.json").is_file():
            config = json.loads((folder / "transformer" / "config.json").read_text())
            if config.get("_class_name") not in TRANSFORMER_FAMILIES:
                return None
            return _transformer_facts(config, vae_blocks)
        unet = json.loads((folder / "unet" / "config.json").read_text())
        family = "sdxl" if "text_encoder_2" in index else "sd"
        return _facts(vae_blocks, len(unet["down_block_types"]), int(unet["sample_size"]), family)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _family_from_name(model: str) -> str:
    """The family a hub id's name suggests (``stable-diffusion-3``, ``FLUX.1``, ``-xl-``)."""
    name = model.lower()
    if "flux.2" in name or "flux2" in name:
        return "flux2"
    if "flux" in name:
        return "flux"
    if "stable-diffusion-3" in name or "sd3" in name:
        return "sd3"
    return "sdxl" if "xl" in name else "sd"


def known_facts(model: str) -> ModelFacts | None:
    """:func:`model_facts` of a folder, else the published rule of a hub id named SD3 or
    Flux (VAE factor 8, patch 2: multiples of 16); ``None`` for anything else."""
    facts = model_facts(model)
    if facts is not None:
        return facts
    family = _family_from_name(model)
    if family not in TRANSFORMER_HEADS:
        return None
    heads, head_dim = TRANSFORMER_HEADS[family]
    config = {"_class_name": _class_of(family), "patch_size": 1 if family != "sd3" else 2}
    config.update(num_attention_heads=heads, attention_head_dim=head_dim, sample_size=128)
    return _transformer_facts(config, vae_blocks=4)


def _class_of(family: str) -> str:
    return next(name for name, value in TRANSFORMER_FAMILIES.items() if value == family)


def guess_family(model: str) -> str:
    """``"sd"``, ``"sdxl"``, ``"sd3"``, ``"flux"`` or ``"flux2"`` from a folder's configs,
    else from the hub id's name."""
    facts = model_facts(model)
    if facts is not None:
        return facts.family
    return _family_from_name(model)


def default_side(model: str) -> int:
    """The side a model generates by default (folder config, else the family's: 1024 for
    XL, SD3 and Flux, 512 for SD 1.x)."""
    facts = model_facts(model)
    return facts.default_side if facts is not None else DEFAULT_SIDES[guess_family(model)]


# --------------------------------------------------------------------------- memory


def weight_parameters(model: str) -> int | None:
    """Parameters of a local pipeline folder, counted from its safetensors headers (the
    shapes, no weight read); ``None`` for hub ids or folders without safetensors.

    Per component folder, a sharded index names the files; otherwise the files without a
    variant tag (``.fp16.``) are counted, or the variant files when there are only those.
    """
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    total = 0
    found = False
    for component in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in _weight_files(component):
            try:
                total += _safetensors_parameters(file)
            except (OSError, ValueError, KeyError, TypeError):
                return None
            found = True
    return total if found else None


def _weight_files(component: Path) -> list[Path]:
    indexes = sorted(component.glob("*.safetensors.index.json"))
    if indexes:
        try:
            names = set(json.loads(indexes[0].read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            names = set()
        return [component / name for name in sorted(names)]
    files = sorted(component.glob("*.safetensors"))
    plain = [f for f in files if len(f.name.split(".")) == 2]
    return plain or files[:1]


def _safetensors_parameters(file: Path) -> int:
    """Sum of the tensor sizes in a safetensors file's JSON header."""
    with open(file, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if not 0 < length < 1 << 30:
            raise ValueError(f"{file} is not a safetensors file")
        header = json.loads(handle.read(length))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        total += count
    return total


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
    """Rough peak memory in bytes of generating ``batch`` images of ``height`` × ``width``
    with a UNet model (transformer families go to :func:`estimate_transformer_memory`).

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
    if family in TRANSFORMER_HEADS:
        facts = known_facts(family)  # the published model's rule and width
        assert facts is not None
        return estimate_transformer_memory(
            height, width, facts, bytes_per_value=bytes_per_value, batch=batch, backward=backward
        )
    pixels = height * width
    latent_cells = pixels / VAE_FACTOR**2
    copies = 2 if guidance else 1
    weights = PIPELINE_PARAMETERS.get(family, PIPELINE_PARAMETERS["sd"]) * bytes_per_value
    unet = batch * copies * latent_cells * 320 * 24 * bytes_per_value
    vae_decode = batch * pixels * 128 * 6 * bytes_per_value
    activations = (unet + vae_decode) * (3 if backward else 1)
    return int(weights + activations)


#: Live (tokens × width) tensors of one transformer block at its peak: hidden states and
#: residual, q, k, v, attention output, and the 4×-wide MLP hidden layer with its GELU.
BLOCK_LIVE_TENSORS = 16


def estimate_transformer_memory(
    height: int,
    width: int,
    facts: ModelFacts,
    *,
    parameters: float | None = None,
    bytes_per_value: int = 2,
    batch: int = 1,
    backward: bool = False,
) -> int:
    """Rough peak memory in bytes of generating ``batch`` images with a transformer model
    (SD3/3.5, Flux.1, Flux.2) while recording word maps.

    The formula (``b`` = bytes per value, ``P`` = H·W pixels, ``m`` = the size multiple
    (VAE factor × patch, 16 for the published models), ``S`` = P / m² image tokens,
    ``T`` = text tokens (SD3: 77 + 256, Flux: 512), ``D`` = heads × head dim,
    ``c`` = 2 with CFG in the batch (SD3), 1 for Flux's guidance embedding)::

        weights     = parameters × b   (local folder: the safetensors headers' shapes;
                                        hub ids: SD3.5-medium 8.1e9, Flux.1 16.9e9,
                                        Flux.2-dev 56e9)
        blocks      = batch × c × (S + T) × D × 16 live tensors × b
        maps        = batch × c × heads × S × T × 4 bytes × 2   (float32 scores and
                                        softmax of a recorded layer)
        vae_decode  = batch × P × 128 channels × 6 live tensors × b
        total       = weights + (blocks + maps + vae_decode) × (3 if backward else 1)

    Blocks run one at a time, so one block's activations are live; the joint attention is
    assumed to run through PyTorch's memory-efficient kernels (no (S + T)² term); the
    recorder's maps are the image-to-text part only (S × T).
    """
    pixels = height * width
    image_tokens = pixels / facts.side_multiple**2
    text_tokens = TEXT_TOKENS.get(facts.family, 512)
    copies = 2 if facts.family in CFG_IN_BATCH else 1
    heads, head_dim = facts.heads, facts.head_dim
    if not heads or not head_dim:
        heads, head_dim = TRANSFORMER_HEADS.get(facts.family, (24, 128))
    if parameters is None:
        parameters = PIPELINE_PARAMETERS.get(facts.family, PIPELINE_PARAMETERS["flux"])
    weights = parameters * bytes_per_value
    tokens = batch * copies * (image_tokens + text_tokens)
    blocks = tokens * heads * head_dim * BLOCK_LIVE_TENSORS * bytes_per_value
    maps = batch * copies * heads * image_tokens * text_tokens * 4 * 2
    vae_decode = batch * pixels * 128 * 6 * bytes_per_value
    activations = (blocks + maps + vae_decode) * (3 if backward else 1)
    return int(weights + activations)


def estimate_model_memory(
    model: str,
    height: int,
    width: int,
    *,
    bytes_per_value: int = 2,
    batch: int = 1,
    backward: bool = False,
) -> int:
    """:func:`estimate_memory` or :func:`estimate_transformer_memory` for ``model`` (a hub
    id or folder), with a folder's own configs and safetensors parameter count."""
    facts = known_facts(model)
    if facts is not None and facts.is_transformer:
        return estimate_transformer_memory(
            height,
            width,
            facts,
            parameters=weight_parameters(model),
            bytes_per_value=bytes_per_value,
            batch=batch,
            backward=backward,
        )
    return estimate_memory(
        height,
        width,
        family=guess_family(model),
        bytes_per_value=bytes_per_value,
        batch=batch,
        backward=backward,
    )
