"""Evaluation metrics for stylisation, editing and video results.

Content fidelity: :func:`brushwork.metrics.ssim.ssim` (the submodule keeps the name),
:class:`LPIPS`, :func:`content_feature_loss`.
Style fidelity: :func:`gram_style_loss`, :meth:`CLIPScorer.image_similarity`,
:func:`color_histogram_distance`, FID and ArtFID (:mod:`brushwork.metrics.fid`).
Content leakage of the style image into the result: :func:`content_leakage`
(:mod:`brushwork.metrics.leakage`, DINO-ViT structure).
Editing: CLIP text/direction scores and accuracy, :class:`StructureScorer`, LPIPS.
Video: :func:`warping_error`. Summaries and paired tests: :mod:`.summary`.

Heavy models are loaded by ``load_*`` functions through :mod:`brushwork.weights`
(single files) or :mod:`brushwork.hub` (Hugging Face models).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it. Imported on first use, so that
#: ``brushwork.metrics.evaluation`` (and with it ``brushwork evaluate --help``) loads
#: without torch.
_WHERE = {
    "art_fid": "fid",
    "fid_from_features": "fid",
    "frechet_distance": "fid",
    "load_inception": "fid",
    "LPIPS": "lpips",
    "load_lpips": "lpips",
    "SSIM": "ssim",
    "color_histogram_distance": "style",
    "content_leakage": "leakage",
    "content_feature_loss": "style",
    "gram_style_loss": "style",
    "paired_comparison": "summary",
    "summarize": "summary",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'brushwork.metrics' has no attribute '{name}'")
    return getattr(importlib.import_module(f"brushwork.metrics.{_WHERE[name]}"), name)


__all__ = [
    "LPIPS",
    "SSIM",
    "art_fid",
    "color_histogram_distance",
    "content_feature_loss",
    "content_leakage",
    "fid_from_features",
    "frechet_distance",
    "gram_style_loss",
    "load_inception",
    "load_lpips",
    "paired_comparison",
    "summarize",
]
