"""Style metrics with their networks loaded once, for results scored one at a time.

``brushwork evaluate`` and :func:`~brushwork.metrics.evaluation.score_triples` score a
finished folder; a caller that produces results one by one (``brushwork benchmark``
scores each job right after writing it, and resumes later) needs the networks loaded
once and a score per result, then the set metrics (FID, ArtFID) once over all of them.

Example::

    metrics = ["ssim", "lpips", "csd", "artfid"]
    check_networks("style", metrics, NetworkSettings())       # one line if any is missing
    scorer = StyleScorer(metrics, NetworkSettings(), "cpu")
    scorer.score(result, content, style)                      # {"ssim": …, "lpips": …, "csd": …}
    scorer.score_set([(result, content, style), …], lpips=[…])  # {"artfid": …, "artfid_fid": …}
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brushwork.metrics.evaluation import (
    SET_METRICS,
    Item,
    MetricNetworks,
    NetworkSettings,
    score_style_items,
)

__all__ = ["StyleScorer", "per_item_metrics"]


def per_item_metrics(metrics: Sequence[str]) -> list[str]:
    """The per-item metrics to compute: ArtFID (and ArtFID∞) need LPIPS of every item."""
    items = [m for m in metrics if m not in SET_METRICS]
    if any(m.startswith("artfid") for m in metrics) and "lpips" not in items:
        items.append("lpips")
    return items


class StyleScorer:
    """The chosen style metrics' networks, loaded once; scores of one result or a set.

    Args:
        metrics: names from :data:`~brushwork.metrics.evaluation.STYLE_METRICS`, already
            checked (:func:`~brushwork.metrics.evaluation.check_networks`).
        networks: where the networks come from (the same lookup as the CLI).
        device: a torch device.
    """

    def __init__(self, metrics: Sequence[str], networks: NetworkSettings, device: Any) -> None:
        self.metrics = list(metrics)
        self.item_metrics = per_item_metrics(self.metrics)
        self.set_metrics = [m for m in self.metrics if m in SET_METRICS]
        models = MetricNetworks(self.item_metrics + self.set_metrics, networks, device)
        # Two views of the same loaded networks: per item without the Inception features,
        # per set with only them (the items' LPIPS, ArtFID's content term, is given).
        self._items = copy.copy(models)
        self._items.inception = {}
        self._sets = copy.copy(models)
        self._sets.lpips = self._sets.vgg = self._sets.clip = self._sets.dino = None
        self._sets.csd = None

    def score(self, result: Path, content: Path, style: Path) -> dict[str, float]:
        """Per-item scores of one result file against its (original) content and style."""
        item = _item(result, content, style)
        score_style_items([item], self.item_metrics, self._items, batch_size=1)
        return {m: float(item.scores.get(m, math.nan)) for m in self.item_metrics}

    def score_set(
        self, triples: Sequence[tuple[Path, Path, Path]], lpips: Sequence[float | None] = ()
    ) -> dict[str, float]:
        """Set scores (FID, ArtFID and ArtFID's FID ``artfid_fid``) of (result, content,
        style) files; ``lpips``: the items' LPIPS (ArtFID's content term), in order."""
        if not self.set_metrics or len(triples) < 2:
            return {}
        items = [_item(*triple) for triple in triples]
        for item, value in zip(items, lpips, strict=False):
            item.scores["lpips"] = math.nan if value is None else value
        return score_style_items(items, ["lpips"], self._sets, batch_size=16)


def _item(result: Path, content: Path, style: Path) -> Item:
    files = {"content": Path(content), "style": Path(style), "result": Path(result)}
    return Item(Path(result).stem, files)
