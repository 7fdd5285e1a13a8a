"""Statistics of a study run: means with 95 % confidence intervals, paired tests, tables.

Per (rule, mode, threshold) group of rows (one row per prompt):

* mean IoU_cs, mIoU_B, mIoU_B,cs, Δ and Δ_cs with 95 % t-intervals
  (mean ± t₀.₉₇₅,ₙ₋₁ · s / √n, s with ddof = 1);
* paired tests of mIoU_B against IoU_cs: Wilcoxon signed-rank (two-sided,
  ``zero_method="wilcox"``: zero differences dropped) and the paired t-test (scipy);
* effect size mean(Δ) / std(Δ) with the sample std (ddof = 1) — a standardised mean
  difference (Cohen's d_z), our reading of the paper's "0.64 standard deviations".

Several runs (backbones) side by side (:func:`compare_by_threshold`,
:func:`compare_by_word`): each run's mean Δ, and per later run the paired difference of
Δ against the first run over the prompts both have (same prompt text, same seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "GROUP_KEYS",
    "by_word",
    "compare_by_threshold",
    "compare_by_word",
    "compare_deltas",
    "mean_ci",
    "paired_tests",
    "prompt_deltas",
    "summary",
]

GROUP_KEYS = ("rule", "mode", "threshold")


def mean_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its t confidence interval (NaN bounds for n < 2)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return (mean, mean - half, mean + half)


def paired_tests(baseline: np.ndarray, iou_cs: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank and paired t-test of ``baseline`` vs ``iou_cs`` (Δ = b − cs),
    and the effect size mean(Δ)/std(Δ, ddof=1). NaN where a test is undefined."""
    from scipy import stats

    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(iou_cs, dtype=np.float64)
    keep = np.isfinite(b) & np.isfinite(c)
    b, c = b[keep], c[keep]
    delta = b - c
    out = {"n": int(delta.size), "wilcoxon_stat": math.nan, "wilcoxon_p": math.nan}
    out.update({"t_stat": math.nan, "t_p": math.nan, "effect_size": math.nan})
    if delta.size >= 2:
        sd = float(delta.std(ddof=1))
        out["effect_size"] = float(delta.mean()) / sd if sd > 0 else math.nan
        if sd > 0:
            t = stats.ttest_rel(b, c)
            out["t_stat"], out["t_p"] = float(t.statistic), float(t.pvalue)
        if np.any(delta != 0):
            try:
                w = stats.wilcoxon(b, c, zero_method="wilcox", alternative="two-sided")
                out["wilcoxon_stat"], out["wilcoxon_p"] = float(w.statistic), float(w.pvalue)
            except ValueError:
                pass
    return out


def _groups(rows: Mapping[str, Sequence[Any]], keys: Sequence[str]) -> dict[tuple, np.ndarray]:
    columns = [rows[k] for k in keys]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*columns, strict=True)):
        groups.setdefault(key, []).append(i)
    return {k: np.asarray(v) for k, v in groups.items()}


def _column(rows: Mapping[str, Sequence[Any]], name: str, index: np.ndarray) -> np.ndarray:
    values = np.asarray(rows[name], dtype=object)[index]
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def summary(
    rows: Mapping[str, Sequence[Any]], keys: Sequence[str] = GROUP_KEYS
) -> list[dict[str, Any]]:
    """One record per group (default per rule, mode, threshold), sorted by the keys."""
    out = []
    for key, index in sorted(_groups(rows, keys).items(), key=lambda kv: kv[0]):
        record: dict[str, Any] = dict(zip(keys, key, strict=True))
        cs = _column(rows, "iou_cs", index)
        base = _column(rows, "miou_b", index)
        base_cs = _column(rows, "miou_bcs", index)
        for name, values in (
            ("iou_cs", cs),
            ("miou_b", base),
            ("miou_bcs", base_cs),
            ("delta", base - cs),
            ("delta_cs", base_cs - cs),
        ):
            mean, low, high = mean_ci(values)
            record.update({name: mean, f"{name}_low": low, f"{name}_high": high})
        delta = (base - cs)[np.isfinite(base - cs)]
        record["delta_std"] = float(delta.std(ddof=1)) if delta.size >= 2 else math.nan
        record.update(paired_tests(base, cs))
        tests_cs = paired_tests(base_cs, cs)
        record["wilcoxon_p_cs"] = tests_cs["wilcoxon_p"]
        record["effect_size_cs"] = tests_cs["effect_size"]
        out.append(record)
    return out


def by_word(
    rows: Mapping[str, Sequence[Any]],
    column: str,
    *,
    rule: str,
    mode: str = "fixed",
    threshold: float = 0.4,
) -> list[dict[str, Any]]:
    """Mean Δ (with CI), IoU_cs and mIoU_B per content (``column="content"``) or style word,
    at one (rule, mode, threshold); words in the order they first appear."""
    select = [
        i
        for i, (r, m, t) in enumerate(
            zip(rows["rule"], rows["mode"], rows["threshold"], strict=True)
        )
        if r == rule and m == mode and abs(float(t) - threshold) < 1e-9
    ]
    words: dict[str, list[int]] = {}
    for i in select:
        words.setdefault(rows[column][i], []).append(i)
    out = []
    for word, index in words.items():
        idx = np.asarray(index)
        cs = _column(rows, "iou_cs", idx)
        base = _column(rows, "miou_b", idx)
        mean, low, high = mean_ci(base - cs)
        out.append(
            {
                column: word,
                "n": len(index),
                "delta": mean,
                "delta_low": low,
                "delta_high": high,
                "iou_cs": float(np.nanmean(cs)),
                "miou_b": float(np.nanmean(base)),
            }
        )
    return out


# ------------------------------------------------------------------ backbones side by side


def prompt_deltas(
    rows: Mapping[str, Sequence[Any]], *, rule: str, mode: str, threshold: float
) -> dict[str, tuple[float, str, str]]:
    """Per prompt text at one (rule, mode, threshold): (Δ = mIoU_B − IoU_cs, content, style).

    Runs of different models share the grid's prompt texts (and seeds), so the prompt text
    pairs their rows.
    """
    out = {}
    for i, (r, m, t) in enumerate(zip(rows["rule"], rows["mode"], rows["threshold"], strict=True)):
        if r != rule or m != mode or abs(float(t) - threshold) >= 1e-9:
            continue
        base, cs = rows["miou_b"][i], rows["iou_cs"][i]
        delta = math.nan if base is None or cs is None else float(base) - float(cs)
        out[rows["prompt"][i]] = (delta, rows["content"][i], rows["style"][i])
    return out


def compare_deltas(per_run: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Side-by-side columns of several runs' per-prompt Δ (``[(label, {prompt: Δ})]``).

    ``delta[L]``, ``delta_low[L]``, ``delta_high[L]``, ``n[L]``: mean Δ of run ``L`` with its
    95 % t-interval (as :func:`summary`); for every run after the first,
    ``diff[L - F]`` (with ``diff_low``, ``diff_high``, ``diff_n``, ``diff_wilcoxon_p``): the
    mean over the prompts both runs have of Δ_L − Δ_F, i.e. how much more (positive) or
    less run ``L`` separates content and style than the first run ``F`` on the same prompts
    — equal to ``delta[L] − delta[F]`` when both runs have every prompt.
    """
    record: dict[str, Any] = {}
    for label, deltas in per_run:
        values = np.array(list(deltas.values()), dtype=np.float64)
        mean, low, high = mean_ci(values)
        record[f"delta[{label}]"] = mean
        record[f"delta_low[{label}]"] = low
        record[f"delta_high[{label}]"] = high
        record[f"n[{label}]"] = int(np.isfinite(values).sum())
    if not per_run:
        return record
    first_label, first = per_run[0]
    for label, deltas in per_run[1:]:
        common = [p for p in deltas if p in first]
        this = np.array([deltas[p] for p in common], dtype=np.float64)
        that = np.array([first[p] for p in common], dtype=np.float64)
        mean, low, high = mean_ci(this - that)
        key = f"{label} - {first_label}"
        record[f"diff[{key}]"] = mean
        record[f"diff_low[{key}]"] = low
        record[f"diff_high[{key}]"] = high
        record[f"diff_n[{key}]"] = int(np.isfinite(this - that).sum())
        record[f"diff_wilcoxon_p[{key}]"] = paired_tests(this, that)["wilcoxon_p"]
    return record


def compare_by_threshold(
    runs: Sequence[tuple[str, Mapping[str, Sequence[Any]]]], *, rule: str
) -> list[dict[str, Any]]:
    """One record per (mode, threshold) of ``rule``: :func:`compare_deltas` of the runs
    (``[(label, rows)]``), sorted by mode and threshold."""
    slices = sorted(
        {
            (m, float(t))
            for _, rows in runs
            for r, m, t in zip(rows["rule"], rows["mode"], rows["threshold"], strict=True)
            if r == rule
        }
    )
    out = []
    for mode, threshold in slices:
        per_run = [
            (label, {p: d for p, (d, _, _) in prompt_deltas(rows, rule=rule, mode=mode,
                                                             threshold=threshold).items()})
            for label, rows in runs
        ]  # fmt: skip
        out.append({"rule": rule, "mode": mode, "threshold": threshold, **compare_deltas(per_run)})
    return out


def compare_by_word(
    runs: Sequence[tuple[str, Mapping[str, Sequence[Any]]]],
    column: str,
    *,
    rule: str,
    mode: str = "fixed",
    threshold: float = 0.4,
) -> list[dict[str, Any]]:
    """One record per content (``column="content"``) or style word at one slice:
    :func:`compare_deltas` of the runs' prompts with that word; words in order of first
    appearance."""
    position = 1 if column == "content" else 2
    sliced = [
        (label, prompt_deltas(rows, rule=rule, mode=mode, threshold=threshold))
        for label, rows in runs
    ]
    words = list(dict.fromkeys(v[position] for _, d in sliced for v in d.values()))
    out = []
    for word in words:
        per_run = [
            (label, {p: v[0] for p, v in deltas.items() if v[position] == word})
            for label, deltas in sliced
        ]
        out.append({column: word, **compare_deltas(per_run)})
    return out
