"""Style-reference generation: IP-Adapter (Ye et al. 2023) with InstantStyle block targeting.

Thin wrappers over diffusers' own IP-Adapter support (``pipe.load_ip_adapter``,
``pipe.set_ip_adapter_scale``):

* :func:`load_style_adapter` loads the published weights (``h94/IP-Adapter`` on the
  Hugging Face Hub, or a local copy in the same layout) through
  :func:`brushwork.hub.from_pretrained`, so that a missing download or offline mode
  gives one clear :class:`~brushwork.errors.WeightsError`.
* :func:`instantstyle_scales` gives the per-block scale dicts of InstantStyle (Wang et
  al. 2024) for SDXL: the image features are injected only into the cross-attention of
  the layers that carry style (``up_blocks.0.attentions.1``) — and for
  ``style+layout`` also layout (``down_blocks.2.attentions.1``) — and nowhere else, so
  the reference image's content does not leak into the result.
* :func:`style_layer_scales` reads back which layer got which scale.

The IP-Adapter processors stay the model's own, so attention maps
(:class:`~brushwork.diffusion.attention.AttentionRecorder`) keep working with an
adapter loaded: their wrappers pass the image tokens through and record text keys only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brushwork.diffusion.pipelines import pipeline_family
from brushwork.errors import ConfigError

__all__ = [
    "PRESETS",
    "AdapterSource",
    "adapter_source",
    "default_adapter",
    "generate_with_style",
    "instantstyle_scales",
    "load_style_adapter",
    "set_style_preset",
    "style_layer_scales",
]

#: ``style``: style blocks only (InstantStyle); ``style+layout``: style and layout
#: blocks; ``full``: every cross-attention layer (the original IP-Adapter).
PRESETS = ("style", "style+layout", "full")

IP_ADAPTER_REPO = "h94/IP-Adapter"


@dataclass(frozen=True)
class AdapterSource:
    """Where IP-Adapter weights live (hub repo or local folder in the same layout).

    Attributes:
        repo: hub id or local folder.
        subfolder: folder of the weight file inside ``repo``.
        weight_name: the ``.safetensors`` file.
        image_encoder_folder: image encoder folder, relative to ``subfolder`` (or a hub
            id / absolute folder); ``None`` when image embeddings are passed directly.
    """

    repo: str = IP_ADAPTER_REPO
    subfolder: str = "sdxl_models"
    weight_name: str = "ip-adapter_sdxl.safetensors"
    image_encoder_folder: str | None = "image_encoder"


def default_adapter(family: str) -> AdapterSource:
    """The published IP-Adapter for a pipeline family (``"sdxl"`` or ``"sd"``)."""
    if family == "sdxl":
        return AdapterSource()
    return AdapterSource(subfolder="models", weight_name="ip-adapter_sd15.safetensors")


def adapter_source(
    family: str,
    adapter: str | None = None,
    subfolder: str | None = None,
    weight_name: str | None = None,
) -> AdapterSource:
    """Where to load an IP-Adapter from: the family's published one, overridden.

    Args:
        family: ``"sdxl"`` or ``"sd"`` (:func:`~brushwork.diffusion.pipelines.pipeline_family`).
        adapter: a hub repo, a folder in the published layout, or one ``.safetensors``
            file (then ``subfolder`` is the file's own folder and its image encoder is
            looked for in an ``image_encoder`` folder beside it); ``None``: h94/IP-Adapter.
        subfolder: the weight file's folder inside ``adapter`` (``""``: its top level);
            ``None``: the published layout's.
        weight_name: the weight file's name; ``None``: the published one.
    """
    published = default_adapter(family)
    if adapter and adapter.endswith(".safetensors") and Path(adapter).expanduser().is_file():
        file = Path(adapter).expanduser()
        return AdapterSource(
            repo=str(file.parent), subfolder="", weight_name=file.name,
            image_encoder_folder=published.image_encoder_folder,
        )  # fmt: skip
    return AdapterSource(
        repo=adapter or published.repo,
        subfolder=published.subfolder if subfolder is None else subfolder,
        weight_name=weight_name or published.weight_name,
        image_encoder_folder=published.image_encoder_folder,
    )


def load_style_adapter(pipe: Any, source: AdapterSource | None = None) -> Any:
    """Load IP-Adapter weights into ``pipe`` (in place; returns ``pipe``).

    Raises:
        WeightsError: the weights are not available (offline, missing folder, ...).
    """
    from brushwork.hub import from_pretrained

    source = source or default_adapter(pipeline_family(pipe))

    def load(location: str, **kwargs: Any) -> Any:
        pipe.load_ip_adapter(location, **kwargs)
        return pipe

    return from_pretrained(
        load,
        source.repo,
        what="IP-Adapter weights",
        subfolder=source.subfolder,
        weight_name=source.weight_name,
        image_encoder_folder=source.image_encoder_folder,
    )


def instantstyle_scales(preset: str, scale: float = 1.0) -> float | dict[str, Any]:
    """The ``set_ip_adapter_scale`` argument of an InstantStyle preset (SDXL layout).

    ``style``: ``{"up": {"block_0": [0, s, 0]}}`` — only ``up_blocks.0.attentions.1``;
    ``style+layout``: also ``{"down": {"block_2": [0, s]}}`` — ``down_blocks.2.attentions.1``;
    ``full``: ``s`` everywhere.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown style preset '{preset}': choose from {', '.join(PRESETS)}")
    if scale < 0:
        raise ConfigError(f"the style scale must be ≥ 0, got {scale}")
    if preset == "full":
        return float(scale)
    style = {"up": {"block_0": [0.0, float(scale), 0.0]}}
    if preset == "style":
        return style
    return {"down": {"block_2": [0.0, float(scale)]}, **style}


def set_style_preset(pipe: Any, preset: str = "style", scale: float = 1.0) -> None:
    """Apply a preset to a pipeline with an IP-Adapter loaded.

    The block presets follow SDXL's UNet (InstantStyle's own targeting); on SD 1.x/2.x
    only ``full`` is offered, since InstantStyle defines no block choice there.
    """
    scales = instantstyle_scales(preset, scale)
    if preset != "full" and pipeline_family(pipe) != "sdxl":
        raise ConfigError(
            f"the '{preset}' preset targets SDXL's UNet blocks (InstantStyle); with this "
            "model use the plain IP-Adapter (preset 'full', e.g. with --style-scale 0.5)"
        )
    if not style_layer_scales(pipe):
        raise ConfigError("no IP-Adapter is loaded: call load_style_adapter(pipe) first")
    try:
        pipe.set_ip_adapter_scale(scales)
    except ValueError as error:
        raise ConfigError(f"cannot apply the '{preset}' preset to this UNet: {error}") from error


def style_layer_scales(pipe: Any) -> dict[str, float]:
    """``{cross-attention layer name: IP-Adapter scale}`` (first adapter), empty if none."""
    scales = {}
    for key, processor in pipe.unet.attn_processors.items():
        scale = getattr(processor, "scale", None)
        if isinstance(scale, list) and hasattr(processor, "to_k_ip"):
            scales[key.removesuffix(".processor")] = float(scale[0])
    return scales


def generate_with_style(
    pipe: Any,
    prompt: str,
    *,
    style_image: Any = None,
    image_embeds: list[torch.Tensor] | None = None,
    steps: int = 30,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
    callback: Any = None,
) -> torch.Tensor:
    """Generate one image for ``prompt`` in the style of ``style_image`` (a PIL image).

    ``image_embeds`` (diffusers' ``ip_adapter_image_embeds``) replaces the image when the
    adapter was loaded without an image encoder. Returns (3, H, W) float32 in [0, 1].
    """
    from brushwork.diffusion.editing import check_prompt

    check_prompt(pipe.tokenizer, prompt)
    if (style_image is None) == (image_embeds is None):
        raise ConfigError("give exactly one of style_image and image_embeds")
    call: dict[str, Any] = dict(
        prompt=prompt,
        num_inference_steps=steps,
        height=height,
        width=width,
        negative_prompt=negative_prompt,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pt",
    )
    if guidance_scale is not None:
        call["guidance_scale"] = guidance_scale
    if style_image is not None:
        call["ip_adapter_image"] = style_image
    else:
        call["ip_adapter_image_embeds"] = image_embeds
    if callback is not None:

        def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            callback(step + 1, steps, float("nan"))
            return kwargs

        call["callback_on_step_end"] = on_step
    images = pipe(**call).images
    return images[0].float().cpu().clamp(0, 1)
