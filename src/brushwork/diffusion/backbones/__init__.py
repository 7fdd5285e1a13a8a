"""Per-family adapters of the attention recorder: one file per denoiser family.

:func:`backbone_for` picks the adapter for a pipeline (or a bare denoiser) by the class
of its denoiser; :data:`FAMILIES` maps each supported class to its adapter.
"""

from __future__ import annotations

import importlib
from typing import Any

from brushwork.diffusion.backbones.base import (
    AttentionInputs,
    AttentionLayer,
    Backbone,
    ProcessorCall,
)
from brushwork.errors import ConfigError

__all__ = [
    "FAMILIES",
    "AttentionInputs",
    "AttentionLayer",
    "Backbone",
    "ProcessorCall",
    "backbone_for",
    "denoiser_of",
]

#: Denoiser class name -> "module:AdapterClass" under this package.
FAMILIES: dict[str, str] = {
    "UNet2DConditionModel": "unet:UNetBackbone",
    "SD3Transformer2DModel": "sd3:SD3Backbone",
    "FluxTransformer2DModel": "flux:FluxBackbone",
    "Flux2Transformer2DModel": "flux2:Flux2Backbone",
}


def denoiser_of(pipe: Any) -> Any:
    """The pipeline's denoiser (``pipe.unet`` or ``pipe.transformer``), or ``pipe`` itself."""
    for attribute in ("unet", "transformer"):
        model = getattr(pipe, attribute, None)
        if model is not None:
            return model
    return pipe


def backbone_for(pipe: Any) -> Backbone:
    """The adapter for ``pipe``'s denoiser.

    Raises:
        ConfigError: the denoiser's class is not a supported family.
    """
    denoiser = denoiser_of(pipe)
    name = type(denoiser).__name__
    target = FAMILIES.get(name)
    if target is None:
        raise ConfigError(
            f"attention maps are not supported for {name} models (supported: {', '.join(FAMILIES)})"
        )
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"brushwork.diffusion.backbones.{module_name}")
    return getattr(module, class_name)(denoiser)
