"""Which layers a LoRA trains: the attention projections, or B-LoRA's two SDXL blocks.

* UNets (SD 1.x/2.x/XL): ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of every self- and
  cross-attention (what diffusers' LoRA training scripts train).
* Flux.1: the same four in every block, and the text stream's ``add_q_proj``,
  ``add_k_proj``, ``add_v_proj``, ``to_add_out`` of the double-stream blocks.
* CLIP text encoders (optional): ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.
* B-LoRA (Frenkel et al., "Implicit Style-Content Separation using B-LoRA", ECCV 2024):
  on SDXL, only ``up_blocks.0.attentions.0`` (content) and/or ``up_blocks.0.attentions.1``
  (style).
"""

from __future__ import annotations

import re

from brushwork.errors import ConfigError

__all__ = [
    "B_LORA_BLOCKS",
    "B_LORA_PARTS",
    "DENOISER_TARGETS",
    "TEXT_ENCODER_TARGETS",
    "b_lora_blocks",
    "denoiser_targets",
]

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
FLUX_TARGETS = (*UNET_TARGETS, "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
#: Family -> the attention projections a LoRA trains in its denoiser.
DENOISER_TARGETS = {"sd": UNET_TARGETS, "sdxl": UNET_TARGETS, "flux": FLUX_TARGETS}
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

#: B-LoRA part -> the SDXL UNet block it lives in (the paper's Section 4).
B_LORA_BLOCKS = {"content": "up_blocks.0.attentions.0", "style": "up_blocks.0.attentions.1"}
#: ``--b-lora`` values.
B_LORA_PARTS = ("style", "content", "both")


def b_lora_blocks(part: str) -> tuple[str, ...]:
    """``"style"`` -> (style block,), ``"content"``, ``"both"`` -> both blocks."""
    if part == "both":
        return (B_LORA_BLOCKS["content"], B_LORA_BLOCKS["style"])
    if part not in B_LORA_BLOCKS:
        raise ConfigError(f"unknown B-LoRA part '{part}' (valid: {', '.join(B_LORA_PARTS)})")
    return (B_LORA_BLOCKS[part],)


def denoiser_targets(family: str, b_lora: str | None = None) -> list[str] | str:
    """peft ``target_modules`` for the denoiser of ``family``: a list of module-name
    endings, or (B-LoRA) one regular expression matched against full module names.

    Raises:
        ConfigError: an unsupported family, or B-LoRA on anything but SDXL.
    """
    if family not in DENOISER_TARGETS:
        raise ConfigError(
            f"LoRA training supports SD 1.x/2.x, SDXL and Flux.1 pipelines, not '{family}'"
        )
    if b_lora is None:
        return list(DENOISER_TARGETS[family])
    if family != "sdxl":
        raise ConfigError(
            f"B-LoRA's blocks are defined for SDXL (up_blocks.0.attentions.0/1); this is a "
            f"'{family}' pipeline"
        )
    blocks = "|".join(re.escape(b) for b in b_lora_blocks(b_lora))
    ends = "|".join(re.escape(t) for t in UNET_TARGETS)
    return rf"({blocks})\..*\.({ends})"
