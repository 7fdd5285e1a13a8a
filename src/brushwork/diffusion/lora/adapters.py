"""LoRA layers on CLIP text encoders through peft itself.

diffusers puts LoRA layers on a ``transformers`` text encoder with the model's own
``add_adapter``/``load_adapter``, which need a newer peft than some installations have
(transformers 5 asks for peft ≥ 0.22). The text encoders' layers are therefore injected
with peft's ``inject_adapter_in_model`` and registered the way transformers registers
them (``peft_config`` and ``_hf_peft_config_loaded``), so that diffusers'
``set_adapters``, ``fuse_lora``, ``unfuse_lora`` and ``delete_adapters`` treat them as
their own.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["add_text_encoder_adapter", "load_text_encoder_lora", "remove_text_encoder_adapter"]


def add_text_encoder_adapter(model: Any, config: Any, name: str) -> None:
    """Inject LoRA layers of peft ``config`` into ``model`` under adapter ``name``."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(config, model, adapter_name=name)
    if not isinstance(getattr(model, "peft_config", None), dict):
        model.peft_config = {}
    model.peft_config[name] = config
    model._hf_peft_config_loaded = True


def load_text_encoder_lora(model: Any, state: dict[str, torch.Tensor], name: str) -> None:
    """Add the LoRA ``state`` (``<module>.lora_A|B.weight`` keys, alpha = rank) to ``model``.

    Raises:
        ValueError: a key names no module of ``model`` or the shapes differ.
    """
    from peft import LoraConfig, set_peft_model_state_dict

    modules = sorted({key.rsplit(".lora_", 1)[0] for key in state})
    ranks = {m: int(state[f"{m}.lora_A.weight"].shape[0]) for m in modules}
    rank = max(ranks.values())
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=modules,
        rank_pattern={m: r for m, r in ranks.items() if r != rank},
        alpha_pattern={m: r for m, r in ranks.items() if r != rank},
    )
    missing = [m for m in modules if not _has(model, m)]
    if missing:
        raise ValueError(f"the text encoder has no layer {missing[0]}")
    add_text_encoder_adapter(model, config, name)
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        remove_text_encoder_adapter(model, name)
        raise ValueError(f"unexpected text-encoder LoRA keys such as {unexpected[0]}")


def _has(model: Any, module: str) -> bool:
    try:
        model.get_submodule(module)
    except AttributeError:
        return False
    return True


def remove_text_encoder_adapter(model: Any, name: str) -> None:
    """Remove adapter ``name``'s layers (and its registration) from ``model``."""
    from diffusers.utils.peft_utils import delete_adapter_layers

    delete_adapter_layers(model, name)
