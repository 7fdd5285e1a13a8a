"""Scores of benchmark results, by metric name, through the evaluation library.

The metrics are those of ``brushwork evaluate`` in style mode
(:data:`brushwork.metrics.evaluation.STYLE_METRICS`): a metric added there is a name
here too. Per-item metrics are computed for each job right after its result is written
(:meth:`Scorer.score`); set metrics (FID, ArtFID: :data:`SET_METRICS`) once per method
over all its results (:meth:`Scorer.score_set`). Every network the chosen metrics need
is checked before any work (:func:`check_metrics`), with evaluate's one-line message.

Example::

    metrics = check_metrics(["ssim", "lpips", "artfid"], NetworkSettings(), count=800)
    scorer = Scorer(metrics, NetworkSettings(), device)
    scorer.score(result_path, content_path, style_path)     # {"ssim": ..., "lpips": ...}
    scorer.score_set([(result, content, style), ...])      # {"artfid": ..., "fid": ...}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError
from brushwork.metrics import evaluation
from brushwork.metrics.evaluation import HIGHER_IS_BETTER, NetworkSettings

__all__ = [
    "HIGHER_IS_BETTER",
    "SET_METRICS",
    "Scorer",
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
    evaluation._check_networks("style", metrics, networks)
    return metrics


def per_item_metrics(metrics: Sequence[str]) -> list[str]:
    """The per-item metrics to compute: ArtFID (and ArtFID∞) need LPIPS of every item."""
    items = [m for m in metrics if m not in SET_METRICS]
    if any(m.startswith("artfid") for m in metrics) and "lpips" not in items:
        items.append("lpips")
    return items


class Scorer:
    """The chosen metrics' networks, loaded once; scores of one job or of a whole set."""

    def __init__(self, metrics: Sequence[str], networks: NetworkSettings, device: Any) -> None:
        import copy

        self.metrics = list(metrics)
        self.item_metrics = per_item_metrics(self.metrics)
        self.set_metrics = [m for m in self.metrics if m in SET_METRICS]
        models = evaluation._Models(self.item_metrics + self.set_metrics, networks, device)
        # Two views of the same loaded networks: per item without the Inception features,
        # per set with only them (the items' LPIPS, ArtFID's content term, is given).
        self._items = copy.copy(models)
        self._items.inception = {}
        self._sets = copy.copy(models)
        self._sets.lpips = self._sets.vgg = self._sets.clip = self._sets.dino = None

    def score(self, result: Path, content: Path, style: Path) -> dict[str, float]:
        """Per-item scores of one result against its (original) content and style files."""
        item = _item(result, content, style)
        evaluation._score_style([item], self.item_metrics, self._items, 1, evaluation._NoProgress())
        return {m: float(item.scores.get(m, math.nan)) for m in self.item_metrics}

    def score_set(
        self, triples: Sequence[tuple[Path, Path, Path]], lpips: Sequence[float | None] = ()
    ) -> dict[str, float]:
        """Set scores (FID, ArtFID and ArtFID's FID ``artfid_fid``) of one method's
        (result, content, style) files; ``lpips``: the items' stored LPIPS (ArtFID's
        content term), in ``triples`` order."""
        if not self.set_metrics or len(triples) < 2:
            return {}
        items = [_item(*triple) for triple in triples]
        for item, value in zip(items, lpips, strict=False):
            item.scores["lpips"] = math.nan if value is None else value
        return evaluation._score_style(items, ["lpips"], self._sets, 16, evaluation._NoProgress())


def _item(result: Path, content: Path, style: Path) -> Any:
    files = {"content": Path(content), "style": Path(style), "result": Path(result)}
    return evaluation.Item(Path(result).stem, files)


def content_metric(metrics: Sequence[str]) -> str | None:
    """The content-fidelity metric of the trade-off plot (first of :data:`CONTENT_METRICS`
    that was computed)."""
    return next((m for m in CONTENT_METRICS if m in metrics), None)


def style_metric(metrics: Sequence[str]) -> str | None:
    """The style-fidelity metric of the trade-off plot."""
    return next((m for m in STYLE_FIDELITY if m in metrics), None)
