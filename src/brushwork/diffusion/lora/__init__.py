"""Style LoRAs: train them (SD 1.x/2.x, SDXL, Flux.1; B-LoRA on SDXL), write, read, apply.

* :mod:`.data`: training images, captions, resolution buckets, the seeded order;
* :mod:`.targets`: which layers are trained (attention projections, B-LoRA blocks);
* :mod:`.training`: :class:`LoraSettings`, :func:`train_lora` (cached latents,
  checkpoints and exact resume, mixed precision, gradient checkpointing, samples);
* :mod:`.files`: the safetensors file (diffusers layout + metadata), kohya names on load,
  base-model checks, :func:`apply_loras` (scales, several LoRAs, fuse/unfuse).

See docs/lora.md.
"""

from brushwork.diffusion.lora.data import TrainingSet, load_training_set
from brushwork.diffusion.lora.files import (
    LoadedLoras,
    LoraFile,
    LoraInfo,
    LoraSpec,
    apply_loras,
    check_fits,
    describe,
    load_loras,
    read_lora,
    read_specs,
    save_lora,
    unload_loras,
)
from brushwork.diffusion.lora.training import (
    LoraSettings,
    LoraStep,
    LoraTrainer,
    LoraTrainResult,
    size_multiple,
    train_lora,
)

__all__ = [
    "LoadedLoras",
    "LoraFile",
    "LoraInfo",
    "LoraSettings",
    "LoraSpec",
    "LoraStep",
    "LoraTrainResult",
    "LoraTrainer",
    "TrainingSet",
    "apply_loras",
    "check_fits",
    "describe",
    "load_loras",
    "load_training_set",
    "read_lora",
    "read_specs",
    "save_lora",
    "size_multiple",
    "train_lora",
    "unload_loras",
]
