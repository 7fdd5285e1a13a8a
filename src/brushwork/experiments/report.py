"""Report of one or more study runs: CSV of all rows, tables, PNG plots and one
self-contained HTML page (plots embedded as base64). Several runs (e.g. SDXL, SD3.5 and
Flux) are compared in the same tables and plots, each labelled ``<folder> (<family>)``
with the family the run's pipeline loaded as (``sd``, ``sdxl``, ``sd3``, ``flux``,
``flux2``).

Files written to the output folder (each atomically):
``rows.csv``, ``summary.csv``, ``per_content.csv``, ``per_style.csv`` (long tables with
``run`` and ``family`` columns), ``backbones_by_threshold.csv``,
``backbones_per_content.csv``, ``backbones_per_style.csv`` (the runs side by side: one
``delta[<label>]`` column per run and the paired ``diff[<label> - <first>]`` against the
first run, see :func:`~.stats.compare_deltas`), ``delta_by_threshold.png``,
``per_content.png``, ``per_style.png``, ``scatter.png``, ``backbones.png``, ``index.html``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushwork.atomic import write_bytes_atomic
from brushwork.errors import ConfigError, OutputPathError
from brushwork.experiments.stats import (
    by_word,
    compare_by_threshold,
    compare_by_word,
    summary,
)
from brushwork.experiments.store import StudyStore

__all__ = ["REPORT_FILES", "ReportOptions", "write_report"]

REPORT_FILES = (
    "rows.csv",
    "summary.csv",
    "per_content.csv",
    "per_style.csv",
    "backbones_by_threshold.csv",
    "backbones_per_content.csv",
    "backbones_per_style.csv",
    "delta_by_threshold.png",
    "per_content.png",
    "per_style.png",
    "scatter.png",
    "backbones.png",
    "index.html",
)
#: The paper's highlighted words (shown first in the per-word tables when present).
PAPER_VIEW = ("giraffe", "person", "Albrecht Durer", "Rembrandt")


@dataclass(frozen=True)
class ReportOptions:
    """Which slice the per-word tables, bars and scatter show (the paper's: fixed 0.4).

    ``rule=None`` picks "first" (the original rule) when the runs have it.
    """

    rule: str | None = None
    mode: str = "fixed"
    threshold: float = 0.4


def _write_bytes(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)


def _csv_bytes(records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    buffer = io.StringIO()
    columns = list(columns or (records[0].keys() if records else []))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({c: _cell(record.get(c)) for c in columns})
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def load_runs(folders: Sequence[str | Path]) -> list[tuple[str, dict[str, Any], dict]]:
    """(name, settings, rows) per run folder; names are the folder names (made unique).

    ``settings["family"]`` is the family the run's pipeline loaded as (recorded by the
    runner), or, for a run whose pipeline has not run yet, the one its model's configs or
    name say.
    """
    from brushwork.diffusion.sizes import guess_family

    runs = []
    names: set[str] = set()
    for folder in folders:
        with StudyStore(folder, create=False) as store:
            settings = dict(store.settings() or {})
            info = store.model_info() or {}
            rows = store.rows()
        settings["family"] = info.get("family") or guess_family(str(settings.get("model", "")))
        settings["model_info"] = info
        name = Path(folder).name or str(folder)
        while name in names:
            name += "'"
        names.add(name)
        runs.append((name, settings, rows))
    return runs


def write_report(
    folders: Sequence[str | Path], out: str | Path, options: ReportOptions | None = None
) -> list[Path]:
    """Write the report of the runs in ``folders`` to ``out``; returns the files written."""
    try:
        import matplotlib
    except ImportError as error:
        raise ConfigError(
            "the study report needs matplotlib: pip install 'brushwork[study]'"
        ) from error

    matplotlib.use("Agg")
    options = options or ReportOptions()
    runs = load_runs(folders)
    if not any(rows["prompt_index"] for _, _, rows in runs):
        raise ConfigError("the run(s) have no stored rows yet: run 'brushwork study run' first")
    rules = sorted({r for _, _, rows in runs for r in rows["rule"]})
    rule = options.rule or ("first" if "first" in rules else rules[0])
    if rule not in rules:
        raise ConfigError(
            f"the runs were not stored with rule '{rule}' (they have: {', '.join(rules)}); "
            f"use --rule {rules[0]}, or run the study with --rule {rule} or both"
        )
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create the report folder {out}: {error}") from error

    all_rows, summaries, contents, styles = [], [], [], []
    for name, settings, rows in runs:
        run = {"run": name, "family": settings["family"]}
        keys = list(rows)
        for i in range(len(rows["prompt_index"])):
            all_rows.append({**run, **{k: rows[k][i] for k in keys}})
        for record in summary(rows):
            summaries.append({**run, **record})
        for column, target in (("content", contents), ("style", styles)):
            for record in by_word(
                rows, column, rule=rule, mode=options.mode, threshold=options.threshold
            ):
                target.append({**run, **record})
    labelled = [(run_label(name, settings), rows) for name, settings, rows in runs]
    side = {
        "threshold": compare_by_threshold(labelled, rule=rule),
        "content": compare_by_word(
            labelled, "content", rule=rule, mode=options.mode, threshold=options.threshold
        ),
        "style": compare_by_word(
            labelled, "style", rule=rule, mode=options.mode, threshold=options.threshold
        ),
    }

    files = []
    for file, records in (
        ("rows.csv", all_rows),
        ("summary.csv", summaries),
        ("per_content.csv", contents),
        ("per_style.csv", styles),
        ("backbones_by_threshold.csv", side["threshold"]),
        ("backbones_per_content.csv", side["content"]),
        ("backbones_per_style.csv", side["style"]),
    ):
        _write_bytes(out / file, _csv_bytes(records))
        files.append(out / file)
    pictures = {
        "delta_by_threshold.png": _plot_delta(summaries, rule),
        "per_content.png": _plot_words(contents, "content", options, rule),
        "per_style.png": _plot_words(styles, "style", options, rule),
        "scatter.png": _plot_scatter(runs, options, rule),
        "backbones.png": _plot_backbones(side["threshold"], [lb for lb, _ in labelled], options),
    }
    for file, data in pictures.items():
        _write_bytes(out / file, data)
        files.append(out / file)
    page = _html(runs, summaries, contents, styles, pictures, options, rule, side)
    _write_bytes(out / "index.html", page.encode("utf-8"))
    files.append(out / "index.html")
    return files


def run_label(name: str, settings: dict[str, Any]) -> str:
    """How a run is named in the side-by-side tables and plots: ``"sd35 (sd3)"``."""
    family = settings.get("family")
    return f"{name} ({family})" if family else name


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _plot_delta(summaries: list[dict[str, Any]], rule: str) -> bytes:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in summaries:
        if record["rule"] == rule:
            label = run_label(record["run"], record)
            series.setdefault((label, record["mode"]), []).append(record)
    for (run, mode), records in sorted(series.items()):
        records.sort(key=lambda r: r["threshold"])
        x = [r["threshold"] for r in records]
        y = [r["delta"] for r in records]
        err = [
            [r["delta"] - r["delta_low"] for r in records],
            [r["delta_high"] - r["delta"] for r in records],
        ]
        axis.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{run} · {mode}")
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_xlabel("threshold")
    axis.set_ylabel("Δ = mIoU_B − IoU_cs (95% CI)")
    axis.set_title(f"Δ by threshold (rule: {rule})")
    axis.legend(fontsize=8)
    return _png(figure)


def _plot_words(records: list[dict[str, Any]], column: str, options: ReportOptions, rule: str):
    import matplotlib.pyplot as plt
    import numpy as np

    runs = list(dict.fromkeys(run_label(r["run"], r) for r in records))
    words = list(dict.fromkeys(r[column] for r in records))
    first = {r[column]: r["delta"] for r in records if runs and run_label(r["run"], r) == runs[0]}
    words.sort(key=lambda w: -first.get(w, -math.inf))
    figure, axis = plt.subplots(figsize=(max(6, 0.22 * len(words) * max(1, len(runs))), 4))
    width = 0.8 / max(1, len(runs))
    for k, run in enumerate(runs):
        values = {r[column]: r for r in records if run_label(r["run"], r) == run}
        y = [values[w]["delta"] if w in values else np.nan for w in words]
        axis.bar(np.arange(len(words)) + k * width, y, width=width, label=run)
    axis.set_xticks(np.arange(len(words)) + 0.4 - width / 2)
    axis.set_xticklabels(words, rotation=90, fontsize=7)
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_ylabel("mean Δ")
    axis.set_title(f"Δ per {column} ({rule}, {options.mode} {options.threshold})")
    if len(runs) > 1:
        axis.legend(fontsize=8)
    return _png(figure)


def _plot_scatter(runs: list, options: ReportOptions, rule: str) -> bytes:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    for name, settings, rows in runs:
        pick = [
            i
            for i in range(len(rows["rule"]))
            if rows["rule"][i] == rule
            and rows["mode"][i] == options.mode
            and abs(rows["threshold"][i] - options.threshold) < 1e-9
        ]
        x = [rows["miou_b"][i] for i in pick]
        y = [rows["iou_cs"][i] for i in pick]
        axis.scatter(x, y, s=8, alpha=0.6, label=run_label(name, settings))
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    axis.set_xlabel("mIoU_B (baseline)")
    axis.set_ylabel("IoU_cs (content–style)")
    axis.set_title(f"per prompt ({rule}, {options.mode} {options.threshold})")
    axis.legend(fontsize=8)
    return _png(figure)


def _plot_backbones(records: list[dict[str, Any]], labels: list[str], options: ReportOptions):
    """Left: each run's Δ by threshold (``options.mode``); right: the paired difference
    of Δ of each later run against the first, with 95 % intervals."""
    import matplotlib.pyplot as plt

    records = sorted(
        (r for r in records if r["mode"] == options.mode), key=lambda r: r["threshold"]
    )
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = [r["threshold"] for r in records]
    # One colour per run in both panels: a difference has its later run's colour.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
    for label in labels:
        y = [r[f"delta[{label}]"] for r in records]
        err = [
            [r[f"delta[{label}]"] - r[f"delta_low[{label}]"] for r in records],
            [r[f"delta_high[{label}]"] - r[f"delta[{label}]"] for r in records],
        ]
        left.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, color=colour[label])
    for label in labels[1:]:
        key = f"{label} - {labels[0]}"
        y = [r[f"diff[{key}]"] for r in records]
        err = [
            [r[f"diff[{key}]"] - r[f"diff_low[{key}]"] for r in records],
            [r[f"diff_high[{key}]"] - r[f"diff[{key}]"] for r in records],
        ]
        right.errorbar(x, y, yerr=err, marker="o", capsize=3, label=key, color=colour[label])
    for axis in (left, right):
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel(f"threshold ({options.mode})")
    left.set_ylabel("Δ = mIoU_B − IoU_cs (95% CI)")
    left.set_title("Δ per backbone")
    right.set_ylabel("paired Δ difference (95% CI)")
    right.set_title(f"Δ against {labels[0]}" if len(labels) > 1 else "one run: no difference")
    left.legend(fontsize=8)
    if len(labels) > 1:
        right.legend(fontsize=8)
    return _png(figure)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return html.escape(str(value))


def _table(records: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in records
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _side_columns(records: list[dict[str, Any]], first: Sequence[str]) -> list[str]:
    """The key columns, then each run's Δ and n, then the paired differences and p."""
    names = list(dict.fromkeys(k for r in records for k in r))
    shown = [c for c in names if c.startswith(("delta[", "n[", "diff[", "diff_wilcoxon_p["))]
    return [*first, *shown]


def _html(runs, summaries, contents, styles, pictures, options, rule, side) -> str:
    def image(name: str) -> str:
        data = base64.b64encode(pictures[name]).decode("ascii")
        return f'<img alt="{name}" src="data:image/png;base64,{data}">'

    def paper_first(records: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
        return sorted(records, key=lambda r: (r[column] not in PAPER_VIEW, -r["delta"]))

    settings = "".join(
        f"<li><b>{html.escape(run_label(name, s))}</b>: {html.escape(_describe(s))} — "
        f"{len(set(rows['prompt_index']))} prompts, {len(rows['prompt_index'])} rows</li>"
        for name, s, rows in runs
    )
    columns = [
        "run", "family", "rule", "mode", "threshold", "n", "iou_cs", "miou_b", "delta", "delta_low",
        "delta_high", "effect_size", "wilcoxon_p", "t_p", "miou_bcs", "delta_cs", "wilcoxon_p_cs",
    ]  # fmt: skip
    word_columns = ["run", "family", "n", "delta", "delta_low", "delta_high", "iou_cs", "miou_b"]
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Content/style separation study</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
img{{max-width:100%}}</style></head><body>
<h1>Content/style separation study ("The Cow of Rembrandt")</h1>
<ul>{settings}</ul>
<p>Δ = mIoU_B − IoU_cs per prompt; positive Δ: the content and style words attend to more
separate regions than other word pairs. Word→token rule of the tables and plots:
<b>{html.escape(rule)}</b> ("first": the original first-token rule; "mean": mean of a
phrase's tokens). Tests: Wilcoxon signed-rank (two-sided, zero differences dropped) and
paired t-test of mIoU_B against IoU_cs per rule, mode and threshold; effect size
mean(Δ)/std(Δ) with the sample standard deviation (ddof = 1); 95% t confidence intervals.
Baseline mIoU_B,cs and Δ_cs use only the pairs with the content or the style word.</p>
<h2>Δ by threshold</h2>{image("delta_by_threshold.png")}
<h2>Summary</h2>{_table([s for s in summaries if s["rule"] == rule], columns)}
<h2>IoU_cs vs mIoU_B</h2>{image("scatter.png")}
<h2>Per content ({options.mode} {options.threshold})</h2>{image("per_content.png")}
{_table(paper_first(contents, "content"), ["content", *word_columns])}
<h2>Per style ({options.mode} {options.threshold})</h2>{image("per_style.png")}
{_table(paper_first(styles, "style"), ["style", *word_columns])}
<h2>Backbones side by side</h2>
<p>One column per run (<code>delta[run]</code>: mean Δ, <code>n</code>: prompts); for each run
after the first, <code>diff[run - first]</code>: the mean over the prompts both runs have
(same prompt, same seed) of Δ<sub>run</sub> − Δ<sub>first</sub>, with the Wilcoxon p of
the pairs. Rule {html.escape(rule)}.</p>
{image("backbones.png")}
<h3>Δ per threshold</h3>
{_table(side["threshold"], _side_columns(side["threshold"], ["mode", "threshold"]))}
<h3>Δ per content ({options.mode} {options.threshold})</h3>
{_table(side["content"], _side_columns(side["content"], ["content"]))}
<h3>Δ per style ({options.mode} {options.threshold})</h3>
{_table(side["style"], _side_columns(side["style"], ["style"]))}
<h2>All rules</h2>{_table(summaries, columns)}
</body></html>
"""


def _describe(settings: dict[str, Any]) -> str:
    keys = ("model", "family", "steps", "guidance_scale", "height", "width", "dtype", "rule")
    text = ", ".join(f"{k}={settings.get(k)}" for k in keys)
    info = settings.get("model_info") or {}
    if info:
        text += f"; {info.get('pipeline')}, maps from the {info.get('stream')} stream, blocks "
        text += "+".join(info.get("blocks") or [])
    versions = settings.get("versions") or {}
    return text + "; " + ", ".join(f"{k} {v}" for k, v in versions.items())
