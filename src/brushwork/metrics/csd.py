"""CSD style similarity (Somepalli et al. 2024, "Measuring Style Similarity in Diffusion Models").

CSD is OpenAI CLIP's ViT-L/14 image tower fine-tuned for style, with two linear heads on
its pooled (CLS, ``ln_post``) feature in place of CLIP's projection: ``last_layer_style``
and ``last_layer_content``, each a (1024, 768) matrix applied as ``feature @ W`` and
followed by L2 normalisation (``CSD_CLIP.forward`` in github.com/learn2phoenix/CSD,
``CSD/model.py``). The style score of a result is the cosine of the style embeddings of
the result and of its style image (1 for the same image, symmetric).

The tower here is transformers' :class:`~transformers.CLIPVisionModel` (ViT-L/14 config:
1024 wide, 24 layers, 16 heads, patch 14, 224 px, QuickGELU); the published checkpoint
(``pytorch_model.bin`` of ``tomg-group-umd/CSD-ViT-L``; the README's Google Drive
``checkpoint.pth`` has the same layout) holds ``model_state_dict`` with the keys of
OpenAI's ``VisionTransformer`` behind ``module.backbone.`` (``proj`` removed). The key
mapping (:func:`csd_key_map`)::

    backbone.conv1.weight                        -> embeddings.patch_embedding.weight
    backbone.class_embedding                     -> embeddings.class_embedding
    backbone.positional_embedding                -> embeddings.position_embedding.weight
    backbone.ln_pre.*                            -> pre_layrnorm.*
    backbone.transformer.resblocks.I.attn.in_proj_weight|bias
                                                 -> encoder.layers.I.self_attn.{q,k,v}_proj.*
                                                    (split in three along dim 0: q, k, v)
    backbone.transformer.resblocks.I.attn.out_proj.* -> encoder.layers.I.self_attn.out_proj.*
    backbone.transformer.resblocks.I.ln_1.*      -> encoder.layers.I.layer_norm1.*
    backbone.transformer.resblocks.I.mlp.c_fc.*  -> encoder.layers.I.mlp.fc1.*
    backbone.transformer.resblocks.I.mlp.c_proj.* -> encoder.layers.I.mlp.fc2.*
    backbone.transformer.resblocks.I.ln_2.*      -> encoder.layers.I.layer_norm2.*
    backbone.ln_post.*                           -> post_layernorm.*
    last_layer_style, last_layer_content         -> the heads (kept as they are)

Preprocessing is CSD's ``transforms_branch0``: bicubic resize of the short side to
224 px, centre crop 224 × 224, CLIP mean/std normalisation (here in torch, antialiased,
on [0, 1] tensors). CSD's own feature extraction runs in fp16 autocast; here float32.

The CSD README warns that the uploaded weights show "some discrepancy with the reported
numbers in the paper"; scores made with them are comparable with other users of the
released file, not with the paper's tables.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import WeightsError

__all__ = [
    "CSD_WEIGHTS",
    "CSDModel",
    "config_from_state",
    "csd_key_map",
    "csd_vision_config",
    "load_csd",
    "openai_state_from_csd",
]

#: Registry name of the published checkpoint.
CSD_WEIGHTS = "csd-vit-large"
CSD_SIZE = 224
_RESBLOCK = re.compile(r"backbone\.transformer\.resblocks\.(\d+)\.(.+)")
_PLAIN = {
    "backbone.conv1.weight": "embeddings.patch_embedding.weight",
    "backbone.class_embedding": "embeddings.class_embedding",
    "backbone.positional_embedding": "embeddings.position_embedding.weight",
    "backbone.ln_pre.weight": "pre_layrnorm.weight",
    "backbone.ln_pre.bias": "pre_layrnorm.bias",
    "backbone.ln_post.weight": "post_layernorm.weight",
    "backbone.ln_post.bias": "post_layernorm.bias",
}
_BLOCK = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}
HEADS = ("last_layer_style", "last_layer_content")


def csd_vision_config(**overrides: Any):
    """The CLIP ViT-L/14 vision config of CSD (``overrides`` for tiny test models)."""
    from transformers import CLIPVisionConfig

    values = dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    values.update(overrides)
    return CLIPVisionConfig(**values)


class CSDModel(nn.Module):
    """CLIP vision tower + CSD's style and content heads.

    Args:
        config: a ``CLIPVisionConfig`` (default: :func:`csd_vision_config`).
        embed_dim: width of the heads' output (768 for ViT-L/14).
    """

    def __init__(self, config=None, *, embed_dim: int | None = None) -> None:
        super().__init__()
        from transformers import CLIPVisionModel

        config = config or csd_vision_config()
        self.tower = CLIPVisionModel(config)
        width, out = config.hidden_size, embed_dim or config.projection_dim
        scale = width**-0.5
        self.last_layer_style = nn.Parameter(scale * torch.randn(width, out))
        self.last_layer_content = nn.Parameter(scale * torch.randn(width, out))
        self.image_size = int(config.image_size)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) CLIP-normalised pixels (CSD's transform)."""
        from brushwork.metrics.clip import clip_pixels

        return clip_pixels(images, self.image_size)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, width) pooled backbone features (ln_post of CLS)."""
        x = self.preprocess(images.to(self.last_layer_style.device).float())
        return self.tower(pixel_values=x).pooler_output.float()

    @torch.no_grad()
    def style_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 768) unit-length style embeddings."""
        return F.normalize(self.features(images) @ self.last_layer_style, dim=-1)

    @torch.no_grad()
    def content_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 768) unit-length content embeddings."""
        return F.normalize(self.features(images) @ self.last_layer_content, dim=-1)

    def style_similarity(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B,) cosine of the style embeddings of paired images (any sizes)."""
        return (self.style_embeddings(images) * self.style_embeddings(references)).sum(-1)

    def csd_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in the published layout (``backbone.*`` in OpenAI's names, heads)."""
        return openai_state_from_csd(self)


def csd_key_map(num_layers: int) -> dict[str, str]:
    """Published key (without ``module.``) -> ``CLIPVisionModel.vision_model`` key.

    The attention's ``in_proj_weight|bias`` are not in the map: they are split in three.
    """
    mapping = dict(_PLAIN)
    for i in range(num_layers):
        for theirs, ours in _BLOCK.items():
            mapping[f"backbone.transformer.resblocks.{i}.{theirs}"] = f"encoder.layers.{i}.{ours}"
    return mapping


def _strip(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def load_csd_state(model: CSDModel, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Fill ``model`` from a published-layout state dict (``module.`` prefixes allowed).

    Raises:
        WeightsError: a key is missing or has the wrong shape (naming the first few).
    """
    state = _strip(state)
    vision = getattr(model.tower, "vision_model", model.tower)
    ours = vision.state_dict()
    layers = model.tower.config.num_hidden_layers
    renamed: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for theirs, key in csd_key_map(layers).items():
        if theirs not in state:
            problems.append(f"missing {theirs}")
        else:
            renamed[key] = state[theirs]
    for i in range(layers):
        for part in ("weight", "bias"):
            theirs = f"backbone.transformer.resblocks.{i}.attn.in_proj_{part}"
            if theirs not in state:
                problems.append(f"missing {theirs}")
                continue
            for name, chunk in zip("qkv", state[theirs].chunk(3, dim=0), strict=True):
                renamed[f"encoder.layers.{i}.self_attn.{name}_proj.{part}"] = chunk
    for key, value in renamed.items():
        if key in ours and tuple(value.shape) != tuple(ours[key].shape):
            problems.append(
                f"{key} has shape {tuple(value.shape)}, expected {tuple(ours[key].shape)}"
            )
    heads = {}
    for head in HEADS:
        expected = tuple(getattr(model, head).shape)
        if head not in state:
            problems.append(f"missing {head}")
        elif tuple(state[head].shape) != expected:
            problems.append(f"{head} has shape {tuple(state[head].shape)}, expected {expected}")
        else:
            heads[head] = state[head]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; … ({len(problems)} problems)" if len(problems) > 3 else ""
        )
        raise WeightsError(
            f"{source} does not hold CSD ViT weights in the published layout: {shown}"
        )
    for key in ours:  # buffers such as position_ids stay as they are
        renamed.setdefault(key, ours[key])
    vision.load_state_dict({k: v.float() for k, v in renamed.items()}, strict=True)
    with torch.no_grad():
        for head, value in heads.items():
            getattr(model, head).copy_(value.float())


def openai_state_from_csd(model: CSDModel) -> dict[str, torch.Tensor]:
    """The inverse of the key mapping: ``model`` in the published ``backbone.*`` layout."""
    ours = getattr(model.tower, "vision_model", model.tower).state_dict()
    layers = model.tower.config.num_hidden_layers
    state = {theirs: ours[key].clone() for theirs, key in csd_key_map(layers).items()}
    for i in range(layers):
        for part in ("weight", "bias"):
            parts = [ours[f"encoder.layers.{i}.self_attn.{n}_proj.{part}"] for n in "qkv"]
            state[f"backbone.transformer.resblocks.{i}.attn.in_proj_{part}"] = torch.cat(parts)
    for head in HEADS:
        state[head] = getattr(model, head).detach().clone()
    return state


def config_from_state(state: dict[str, torch.Tensor]):
    """The vision config a published-layout state dict was made for (read from its shapes;
    heads = width / 64 as in every OpenAI CLIP ViT). ViT-L/14 for the released file."""
    state = _strip(state)
    try:
        width = int(state["backbone.class_embedding"].shape[0])
        patch = int(state["backbone.conv1.weight"].shape[-1])
        tokens = int(state["backbone.positional_embedding"].shape[0])
        hidden = int(state["backbone.transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
        out = int(state["last_layer_style"].shape[1])
    except (KeyError, IndexError) as error:
        raise WeightsError(
            f"not a CSD checkpoint in the published layout: missing {error}"
        ) from None
    layers = len(
        {k.split(".")[3] for k in state if k.startswith("backbone.transformer.resblocks.")}
    )
    side = round((tokens - 1) ** 0.5) * patch
    return csd_vision_config(
        hidden_size=width, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64), image_size=side, patch_size=patch,
        projection_dim=out,
    )  # fmt: skip


def load_csd(
    weights: str | os.PathLike[str] | None = None,
    *,
    device: torch.device | str | None = None,
    config=None,
    download: bool = True,
) -> CSDModel:
    """CSD with the published weights (``weights``: a local copy; ``None``: the registry).

    The published ``pytorch_model.bin`` is a training checkpoint (``model_state_dict``
    plus optimiser states, the iteration and the training ``args``); it is read with
    ``torch.load(weights_only=True)`` allowing only argparse's ``Namespace`` and NumPy
    scalars besides tensors (:func:`brushwork.weights.load_checkpoint_state`). A
    ``.safetensors`` copy of ``model_state_dict`` (see docs/evaluation.md) loads as well.
    A file under the published name is hash-checked; another only for its keys and shapes.
    """
    from brushwork import weights as store

    spec = store.get(CSD_WEIGHTS)
    name = os.path.basename(str(weights)) if weights is not None else spec.filename
    published = name in (spec.filename, "pytorch_model.bin")
    state = store.load_checkpoint_state(
        CSD_WEIGHTS, path=weights, download=download, verify_hash=published,
        entries=("model_state_dict", "state_dict"),
    )  # fmt: skip
    model = CSDModel(config or config_from_state(state))
    load_csd_state(model, state, source=str(weights or CSD_WEIGHTS))
    return model.to(device) if device is not None else model
