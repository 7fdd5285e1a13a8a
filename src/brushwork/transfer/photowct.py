"""PhotoWCT: photorealistic WCT with max-unpooling decoders (Li et al., ECCV 2018).

Y. Li, M.-Y. Liu, X. Li, M.-H. Yang, J. Kautz, *A Closed-form Solution to Photorealistic
Image Stylization*, ECCV 2018. Reference code and weights: ``NVIDIA/FastPhotoStyle``
(``photo_wct.py``, ``models.py``, ``PhotoWCTModels/photo_wct.pth``; CC BY-NC-SA 4.0).

Four normalised VGG-19 encoders ``e1`` … ``e4`` (to relu1_1 … relu4_1) and decoders
``d1`` … ``d4`` whose upsampling is max-unpooling at the positions the encoder's max
pooling took (its indices), so edges are put back where they were. Coarse to fine
(level 4 → 1): encode the current image with e_k (recording the pooling indices),
whiten–colour the relu{k}_1 features with the style's (all style features come from
e4, as in the reference; 1 is added to the content covariance), blend with α, decode
with d_k and the content's indices. The smoothing step is :mod:`brushwork.transfer.smoothing`.

The modules keep the reference's attribute names (``e4.conv3_2.weight``,
``d4.conv4_1.bias``, …), so the published ``photo_wct.pth`` loads key for key
(:func:`load_published_photowct`).

Example::

    model = load_published_photowct()
    out = model.stylize(content, style)                  # (1, 3, H, W), H, W multiples of 8
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer.adain import VGG19_WIDTHS, check_alpha
from brushwork.transfer.namedvgg import NamedVGGDecoder, NamedVGGEncoder
from brushwork.transfer.regions import RegionStats, region_statistics, region_whiten_colour
from brushwork.transfer.wct import stack_maps

#: The reference's content-covariance regulariser (``contentConv + iden``).
CONTENT_RIDGE = 1.0
#: Three max poolings: inputs must be multiples of this.
MULTIPLE = 8
LEVELS = (4, 3, 2, 1)


def max_pool(feats: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Size]]:
    """2 × 2 max pooling of (B, C, H, W) -> pooled map and (indices, (H, W)) to unpool with."""
    out, indices = F.max_pool2d(feats, 2, 2, return_indices=True)
    return out, (indices, feats.shape[-2:])


def max_unpool(pooled: torch.Tensor, record: tuple[torch.Tensor, torch.Size]) -> torch.Tensor:
    """Max-unpooling: each value back at the position its pooling took it from, zeros elsewhere."""
    indices, size = record
    return F.max_unpool2d(pooled, indices, 2, 2, output_size=size)


class PhotoEncoder(NamedVGGEncoder):
    """Encoder to relu{level}_1 with 2 × 2 max pooling that records its indices."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(B, 3, H, W) -> relu{level}_1 features and ``{"pool{k}": (indices, size)}``."""
        pools: dict = {}

        def pool(name: str, feats: torch.Tensor) -> torch.Tensor:
            out, pools[name] = max_pool(feats)
            return out

        for stage in range(1, self.level + 1):
            x = self.stage(x, stage, pool)
        return x, pools

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """relu1_1 … relu{level}_1 of one pass (the reference's ``forward_multiple``)."""
        out = {}
        for stage in range(1, self.level + 1):
            x = self.stage(x, stage, lambda _name, f: F.max_pool2d(f, 2, 2))
            out[stage] = x
        return out


class PhotoDecoder(NamedVGGDecoder):
    """Decoder from relu{level}_1 with max-unpooling at the encoder's indices."""

    def decode(self, x: torch.Tensor, pools: dict) -> torch.Tensor:
        """Features and the encoder's ``pools`` -> (B, 3, H, W) unclamped."""

        def unpool(name: str, feats: torch.Tensor) -> torch.Tensor:
            return max_unpool(feats, pools["pool" + name[-1]])

        for stage in range(self.level, 0, -1):
            x = self.stage(x, stage, unpool)
        return x


class PhotoWCTModel(nn.Module):
    """``e1`` … ``e4`` and ``d1`` … ``d4``; :meth:`stylize` runs the coarse-to-fine cascade."""

    multiple = MULTIPLE

    def __init__(self, *, widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
        super().__init__()
        for k in (1, 2, 3, 4):
            self.add_module(f"e{k}", PhotoEncoder(k, widths))
            self.add_module(f"d{k}", PhotoDecoder(k, widths))
        self.requires_grad_(False)

    def style_features(
        self,
        style: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        use: set[int] | None = None,
    ) -> dict[int, RegionStats]:
        """(1, 3, H, W) style (and its (H, W) labels) -> level -> statistics (from e4)."""
        feats = self.e4.features(style)
        return {k: region_statistics(feats[k][0], labels, use=use) for k in LEVELS}

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The cascade without transfer: d1(e1(… d4(e4(images))))."""
        return self.stylize(images, {}, alpha=0.0)

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | dict[int, RegionStats],
        *,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """PhotoWCT stylisation (without the smoothing step).

        Args:
            content: (B, 3, H, W) in [0, 1], H and W multiples of 8.
            style: (1, 3, H', W') style image, or its :meth:`style_features`.
            alpha: blend of the transformed and the content features at every level
                (0: the cascade's reconstruction; the reference has no α, i.e. 1).
            content_labels, style_labels: (H, W) and (H', W') label maps (region to region).

        Returns:
            (B, 3, H, W) unclamped.
        """
        check_alpha(alpha)
        if content.shape[-2] % MULTIPLE or content.shape[-1] % MULTIPLE:
            raise ConfigError(
                f"PhotoWCT needs sides that are multiples of {MULTIPLE}, got "
                f"{content.shape[-2]}×{content.shape[-1]} (the Stylizer pads them)"
            )
        if isinstance(style, torch.Tensor) and alpha > 0:
            style = self.style_features(style, style_labels)
        image = content
        for level in LEVELS:
            feats, pools = getattr(self, f"e{level}").encode(image)
            if alpha > 0:
                moved = stack_maps(
                    [
                        region_whiten_colour(f, style[level], content_labels, ridge=CONTENT_RIDGE)
                        for f in feats
                    ]
                )
                feats = torch.lerp(feats, moved.to(feats.dtype), alpha)
            image = getattr(self, f"d{level}").decode(feats, pools)
        return image


# --------------------------------------------------------------------------- weights

#: Registry name of the published file (brushwork.weights).
WEIGHT_NAME = "photowct"


def load_photowct_state(
    model: PhotoWCTModel, state: dict[str, torch.Tensor], *, source: str = "PhotoWCT weights"
) -> PhotoWCTModel:
    """Load a ``photo_wct.pth``-layout state dict (strict: keys and shapes)."""
    from brushwork.transfer.modelfile import check_state

    check_state(model, state, source=source, architecture="PhotoWCT")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def load_published_photowct(
    path: str | os.PathLike | None = None, *, download: bool = True
) -> PhotoWCTModel:
    """PhotoWCT with the published ``photo_wct.pth`` (NVIDIA/FastPhotoStyle).

    Args:
        path: the file, or a folder holding it; ``None``: the usual lookup of
            :mod:`brushwork.weights` (environment, cache, download).
    """
    from brushwork import weights as store

    if path is not None and not Path(path).exists():
        raise WeightsError(f"PhotoWCT weights {path} do not exist")
    state = store.load_state_dict(WEIGHT_NAME, path=path, download=download)
    return load_photowct_state(PhotoWCTModel(), state, source=str(path or WEIGHT_NAME))
