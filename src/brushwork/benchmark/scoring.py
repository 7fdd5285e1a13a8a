"""Scores of benchmark results, by metric name, through the evaluation library.

The metrics are those of ``brushwork evaluate`` in style mode
(:data:`brushwork.metrics.evaluation.STYLE_METRICS`): a metric added there is a name
here too. Per-item metrics are computed for each job right after its result is written
and set metrics (FID, ArtFID: :data:`SET_METRICS`) once per method over all its results,
both by the public :class:`~brushwork.metrics.scorer.StyleScorer` (networks loaded once).
Every network the chosen metrics need is checked before any work (:func:`check_metrics`),
with evaluate's one-line message.

Example::

    metrics = check_metrics(["ssim", "lpips", "artfid"], NetworkSettings(), count=800)
    scorer = StyleScorer(metrics, NetworkSettings(), device)
    scorer.score(result_path, content_path, style_path)     # {"ssim": ..., "lpips": ...}
    scorer.score_set([(result, content, style), ...])      # {"artfid": ..., "fid": ...}
"""

from __future__ import annotations

from collections.abc import Sequence

from brushwork.errors import ConfigError
from brushwork.metrics import evaluation
from brushwork.metrics.evaluation import HIGHER_IS_BETTER, NetworkSettings
from brushwork.metrics.scorer import StyleScorer, per_item_metrics

__all__ = [
    "HIGHER_IS_BETTER",
    "SET_METRICS",
    "StyleScorer",
    "check_metrics",
    "content_metric",
    "default_metrics",
    "per_item_metrics",
    "style_metric",
]

SET_METRICS = evaluation.SET_METRICS
#: Content-fidelity metrics in the order the trade-off plot prefers them.
CONTENT_METRICS = ("cfsd", "lpips", "lpips_gray", "ssim", "content_loss")
#: Style-fidelity metrics in the order the trade-off plot prefers them.
STYLE_FIDELITY = ("csd", "gram_loss", "clip_style", "histogram")


def default_metrics() -> list[str]:
    """Every style metric of ``brushwork evaluate``."""
    return list(evaluation.STYLE_METRICS)


def check_metrics(
    requested: Sequence[str] | None, networks: NetworkSettings, *, count: int, styles: int
) -> list[str]:
    """The metrics to compute, checked before any work.

    Args:
        requested: names, or ``None`` for :func:`default_metrics`.
        count, styles: results per method and style images (set metrics need at least
            :data:`~brushwork.metrics.fid.MIN_FID_IMAGES` of each; without an explicit
            request they are then left out).

    Raises:
        ConfigError: an unknown metric name (with the nearest valid one).
        ImageError: FID/ArtFID asked for with too few images.
        WeightsError: every missing network, in one line, with a ``--metrics`` list that
            runs without them.
    """
    from brushwork.metrics.fid import MIN_FID_IMAGES

    metrics = evaluation.choose_metrics("style", requested)
    wanted = [m for m in metrics if m in SET_METRICS]
    if wanted and (count < MIN_FID_IMAGES or styles < MIN_FID_IMAGES):
        if requested is not None:
            from brushwork.errors import ImageError

            raise ImageError(
                f"{' and '.join(wanted)} need at least {MIN_FID_IMAGES} results and style "
                f"images per method (got {count} and {styles}); leave them out with --metrics"
            )
        metrics = [m for m in metrics if m not in SET_METRICS]
    if not metrics:
        raise ConfigError("no metric to compute: give --metrics")
    evaluation.check_networks("style", metrics, networks)
    return metrics


def content_metric(metrics: Sequence[str]) -> str | None:
    """The content-fidelity metric of the trade-off plot (first of :data:`CONTENT_METRICS`
    that was computed)."""
    return next((m for m in CONTENT_METRICS if m in metrics), None)


def style_metric(metrics: Sequence[str]) -> str | None:
    """The style-fidelity metric of the trade-off plot."""
    return next((m for m in STYLE_FIDELITY if m in metrics), None)
