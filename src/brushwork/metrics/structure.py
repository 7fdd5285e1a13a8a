"""Structure distance: DINO-ViT self-similarity of keys (Tumanyan et al. 2022).

The structure of an image is the cosine self-similarity matrix of the keys of
the last transformer layer of DINO ViT-B/8 (``facebook/dino-vitb8``), over all
tokens (CLS included). The distance between two images is the mean squared
difference of their matrices — the "structure distance" of Splicing ViT, used
by Plug-and-Play and the DDS/CDS editing papers (lower = structure kept).

Images are resized to :attr:`StructureScorer.size` on the short side (224 by
default, keeping the aspect ratio, both sides rounded to whole patches) and
ImageNet-normalised; position embeddings are interpolated for non-square inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.encoders import IMAGENET_MEAN, IMAGENET_STD
from brushwork.errors import ImageError, WeightsError

__all__ = ["DEFAULT_DINO_MODEL", "StructureScorer", "load_dino", "self_similarity"]

DEFAULT_DINO_MODEL = "facebook/dino-vitb8"


def self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """(B, T, D) token keys -> (B, T, T) cosine similarity matrix."""
    k = F.normalize(keys.float(), dim=-1)
    return k @ k.transpose(1, 2)


class StructureScorer:
    """DINO-ViT structure distance on one device.

    Args:
        model: a ``transformers.ViTModel``.
        size: short side the images are resized to.
        layer: which layer's keys (-1: the last).
    """

    def __init__(
        self, model, *, size: int = 224, layer: int = -1, device: torch.device | str = "cpu"
    ) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.size = size
        self.patch = int(model.config.patch_size)
        layers = getattr(model, "layers", None)
        if layers is None:
            encoder = getattr(model, "encoder", None)
            layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
        if layers is None:
            raise WeightsError("the DINO model has no transformer layers brushwork recognises")
        attention = layers[layer].attention
        inner = getattr(attention, "attention", attention)
        self._key = getattr(inner, "k_proj", None) or getattr(inner, "key", None)
        if self._key is None:
            raise WeightsError("the DINO model's attention has no key projection brushwork knows")
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        scale = self.size / min(h, w)
        size = tuple(max(self.patch, round(v * scale / self.patch) * self.patch) for v in (h, w))
        return F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)

    @torch.no_grad()
    def keys(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, T, D) last-layer keys."""
        x = (self._resize(images.to(self.device).float()).clamp(0, 1) - self.mean) / self.std
        captured: list[torch.Tensor] = []
        handle = self._key.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            self.model(pixel_values=x, interpolate_pos_encoding=True)
        finally:
            handle.remove()
        return captured[-1]

    def distance(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B,) structure distance between paired (B, 3, H, W) batches of one size."""
        if images.shape != references.shape:
            raise ImageError(
                f"structure distance needs images of one size; got {tuple(images.shape)} and "
                f"{tuple(references.shape)}"
            )
        a = self_similarity(self.keys(images))
        b = self_similarity(self.keys(references))
        return (a - b).pow(2).mean(dim=(1, 2))


def load_dino(
    model_id: str = DEFAULT_DINO_MODEL, *, device: torch.device | str = "cpu", size: int = 224
) -> StructureScorer:
    """A :class:`StructureScorer` for a hub id or a local ``save_pretrained`` folder."""
    from transformers import ViTModel

    from brushwork.hub import from_pretrained

    model = from_pretrained(
        ViTModel.from_pretrained, model_id, what="DINO-ViT model", add_pooling_layer=False
    )
    return StructureScorer(model, size=size, device=device)
