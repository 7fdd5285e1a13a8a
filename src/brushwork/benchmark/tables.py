"""A benchmark folder as tables: one row per job, a summary per method, a comparison.

* :func:`load_benchmark` reads a folder's store into a :class:`BenchmarkData`;
* :func:`job_rows` — one row per (method, content, style): state, error, seconds, peak
  memory, result file and every metric;
* :func:`summary_rows` — per method: state (a skip with its exact reason), device,
  precision, jobs done/failed, mean seconds per image with its 95 % t-interval, median
  and largest peak memory, and per metric the mean with its 95 % t-interval
  (:func:`brushwork.experiments.stats.mean_ci`); set metrics (FID, ArtFID) as values;
* :func:`compare_rows` — two folders, per method label both have and per metric: the
  paired difference B − A over the (content, style) pairs both have, with the paired
  t-test and the Wilcoxon signed-rank test
  (:func:`brushwork.metrics.summary.paired_comparison`, as ``brushwork evaluate
  --compare``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.benchmark.store import BenchmarkStore, Job
from brushwork.experiments.stats import mean_ci

__all__ = [
    "BenchmarkData",
    "compare_rows",
    "job_rows",
    "load_benchmark",
    "summary_rows",
]


@dataclass
class BenchmarkData:
    """Everything a benchmark folder holds (read once)."""

    folder: Path
    settings: dict[str, Any]
    environment: dict[str, Any]
    methods: list[dict[str, Any]]
    jobs: list[Job]
    scores: dict[int, dict[str, float | None]]
    set_scores: dict[str, dict[str, float | None]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(self.settings.get("metrics", []))

    @property
    def item_metrics(self) -> list[str]:
        """Per-job metrics, in the settings' order (plus LPIPS kept for ArtFID)."""
        seen = {m for values in self.scores.values() for m in values}
        ordered = [m for m in self.metrics if m in seen]
        return ordered + sorted(seen - set(ordered))

    def label(self) -> str:
        return self.folder.name or str(self.folder)


def load_benchmark(folder: str | Path) -> BenchmarkData:
    """Read a benchmark folder.

    Raises:
        OutputPathError: not a benchmark folder.
    """
    with BenchmarkStore(folder, create=False) as store:
        return BenchmarkData(
            folder=Path(folder),
            settings=store.settings() or {},
            environment=store.environment() or {},
            methods=store.methods(),
            jobs=store.jobs(),
            scores=store.scores(),
            set_scores=store.set_scores(),
            unreadable=store.unreadable(),
        )


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)


def job_rows(data: BenchmarkData) -> list[dict[str, Any]]:
    """One row per job, in the order they were added."""
    metrics = data.item_metrics
    rows = []
    for job in data.jobs:
        scores = data.scores.get(job.index, {})
        rows.append(
            {
                "method": job.method,
                "content": job.content,
                "style": job.style,
                "state": job.state,
                "error": job.error or "",
                "seconds": _value(job.seconds),
                "peak_mib": math.nan if job.peak_bytes is None else job.peak_bytes / 2**20,
                "memory_kind": job.memory_kind or "",
                "score_seconds": _value(job.score_seconds),
                "result": job.result or "",
                **{m: _value(scores.get(m)) for m in metrics},
            }
        )
    return rows


def summary_rows(data: BenchmarkData) -> list[dict[str, Any]]:
    """One record per method (see the module docstring); skipped methods have NaNs."""
    rows = job_rows(data)
    out = []
    for method in data.methods:
        label = method["label"]
        mine = [r for r in rows if r["method"] == label]
        done = [r for r in mine if r["state"] == "done"]
        seconds = mean_ci([r["seconds"] for r in done])
        peaks = [r["peak_mib"] for r in done if math.isfinite(r["peak_mib"])]
        record: dict[str, Any] = {
            "method": label,
            "spec": method["spec"],
            "state": method["state"],
            "reason": method["reason"] or "",
            "device": method["device"] or "",
            "precision": method["precision"] or "",
            "note": method["note"] or "",
            "jobs": len(mine),
            "done": len(done),
            "failed": sum(r["state"] == "failed" for r in mine),
            "load_seconds": _value(method["load_seconds"]),
            "seconds_per_image": seconds[0],
            "seconds_per_image_low": seconds[1],
            "seconds_per_image_high": seconds[2],
            "peak_mib_median": statistics.median(peaks) if peaks else math.nan,
            "peak_mib_max": max(peaks) if peaks else math.nan,
        }
        for metric in data.item_metrics:
            mean, low, high = mean_ci([r[metric] for r in done])
            record.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        for metric, value in data.set_scores.get(label, {}).items():
            record[metric] = _value(value)
        out.append(record)
    return out


def compare_rows(a: BenchmarkData, b: BenchmarkData) -> list[dict[str, Any]]:
    """Per (method, metric) both folders have: the paired comparison B − A.

    Pairs are the (content, style) jobs done in both. Seconds per image are compared
    the same way (``metric = "seconds"``). Set metrics are listed as their two values.
    """
    from brushwork.metrics.summary import paired_comparison

    def by_pair(data: BenchmarkData, label: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (r["content"], r["style"]): r
            for r in job_rows(data)
            if r["method"] == label and r["state"] == "done"
        }

    labels_b = {m["label"] for m in b.methods}
    metrics = [m for m in a.item_metrics if m in b.item_metrics] + ["seconds"]
    out = []
    for method in a.methods:
        label = method["label"]
        if label not in labels_b:
            continue
        rows_a, rows_b = by_pair(a, label), by_pair(b, label)
        pairs = sorted(set(rows_a) & set(rows_b))
        for metric in metrics:
            c = paired_comparison(
                [rows_a[p][metric] for p in pairs], [rows_b[p][metric] for p in pairs]
            )
            out.append(
                {
                    "method": label,
                    "metric": metric,
                    "n": c.n,
                    "mean_a": c.mean_a,
                    "mean_b": c.mean_b,
                    "difference": c.difference.mean,
                    "ci95_low": c.difference.ci_low,
                    "ci95_high": c.difference.ci_high,
                    "t_pvalue": c.t_pvalue,
                    "wilcoxon_pvalue": c.wilcoxon_pvalue,
                }
            )
        sets_a, sets_b = a.set_scores.get(label, {}), b.set_scores.get(label, {})
        for metric in sorted(set(sets_a) & set(sets_b)):
            va, vb = _value(sets_a[metric]), _value(sets_b[metric])
            out.append(
                {"method": label, "metric": metric, "n": math.nan, "mean_a": va, "mean_b": vb,
                 "difference": vb - va}
            )  # fmt: skip
    return out


def columns_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of ``records``, in first-seen order."""
    return list(dict.fromkeys(k for r in records for k in r))
