"""CFSD, StyleID's content-fidelity structure distance (Chung et al., CVPR 2024).

From ``evaluation/image_metrics.py`` (``PatchSimi``) of github.com/jiwoogit/StyleID: the
VGG-19 (torchvision ImageNet weights) activations at ``features[11]`` (``relu3_1``) of
the result and of the content image, each spatial position a patch; the patch
similarity matrix ``softmax_j(⟨f_i, f_j⟩ / C²)`` (features divided by the channel
count C before the dot products) of each image; and the KL divergence
``KL(P_content ‖ P_result)`` summed over the rows (``F.kl_div(..., 'batchmean')`` on one
image per batch): 0 when the structure is kept, larger as it changes. Images go in at
their own size (the result's; both must be of one size) with ImageNet normalisation;
StyleID's images are 512 × 512. Rows are processed in chunks, so memory stays at
``chunk × positions`` floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.encoders import VGGEncoder
from brushwork.errors import ImageError

__all__ = ["CFSD_LAYER", "cfsd"]

CFSD_LAYER = "relu3_1"
_CHUNK = 1024


@torch.no_grad()
def cfsd(encoder: VGGEncoder, result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """(B,) CFSD between (B, 3, H, W) results and contents in [0, 1] (of one size)."""
    if result.shape != content.shape:
        raise ImageError(
            f"CFSD needs images of one size; got {tuple(result.shape)} and {tuple(content.shape)}"
        )
    fr = encoder(result, [CFSD_LAYER])[CFSD_LAYER].float()
    fc = encoder(content, [CFSD_LAYER])[CFSD_LAYER].float()
    c = fr.shape[1]
    r = fr.flatten(2).transpose(1, 2) / c  # (B, N, C)
    q = fc.flatten(2).transpose(1, 2) / c
    total = torch.zeros(result.shape[0], dtype=torch.float64, device=result.device)
    for start in range(0, r.shape[1], _CHUNK):
        log_result = F.log_softmax(r[:, start : start + _CHUNK] @ r.transpose(1, 2), dim=-1)
        log_content = F.log_softmax(q[:, start : start + _CHUNK] @ q.transpose(1, 2), dim=-1)
        kl = (log_content.exp() * (log_content - log_result)).sum(dim=(1, 2))
        total += kl.double()
    return total.float()
