"""Evaluation metrics for stylisation, editing and video results.

Content fidelity: :func:`ssim`, :class:`LPIPS`, :func:`content_feature_loss`.
Style fidelity: :func:`gram_style_loss`, :meth:`CLIPScorer.image_similarity`,
:func:`color_histogram_distance`, FID and ArtFID (:mod:`brushwork.metrics.fid`).
Editing: CLIP text/direction scores and accuracy, :class:`StructureScorer`, LPIPS.
Video: :func:`warping_error`. Summaries and paired tests: :mod:`.summary`.

Heavy models are loaded by ``load_*`` functions through :mod:`brushwork.weights`
(single files) or :mod:`brushwork.hub` (Hugging Face models).
"""

from __future__ import annotations

from brushwork.metrics.fid import art_fid, fid_from_features, frechet_distance, load_inception
from brushwork.metrics.lpips import LPIPS, load_lpips
from brushwork.metrics.ssim import SSIM, ssim
from brushwork.metrics.style import (
    color_histogram_distance,
    content_feature_loss,
    gram_style_loss,
)
from brushwork.metrics.summary import paired_comparison, summarize

__all__ = [
    "LPIPS",
    "SSIM",
    "art_fid",
    "color_histogram_distance",
    "content_feature_loss",
    "fid_from_features",
    "frechet_distance",
    "gram_style_loss",
    "load_inception",
    "load_lpips",
    "paired_comparison",
    "ssim",
    "summarize",
]
