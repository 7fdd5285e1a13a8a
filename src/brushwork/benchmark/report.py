"""The report of a benchmark folder (or of two compared): one self-contained HTML page,
CSV and JSON.

One folder: ``report.html`` (the summary table per method with mean and 95 % CI of each
metric, seconds per image and peak memory; skipped methods with their reason; failed
jobs and unreadable inputs; the content-vs-style trade-off plot; one grid comparing the
methods on the same pairs; one grid per method, contents down and styles across), and
beside it ``rows.csv`` (one row per job), ``summary.csv`` and ``summary.json`` (summary,
settings, environment, skips). Two folders: the two summaries and the paired tests of
B against A (``comparison.csv``, ``comparison.json``). Images and plots are embedded as
base64; the page loads nothing from the network.

Example::

    write_report(["bench/"], "bench/report.html")
    write_report(["bench_a/", "bench_b/"], "compare.html")
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brushwork.atomic import write_text_atomic
from brushwork.benchmark import figures
from brushwork.benchmark.scoring import HIGHER_IS_BETTER, content_metric, style_metric
from brushwork.benchmark.tables import (
    BenchmarkData,
    columns_of,
    compare_rows,
    job_rows,
    load_benchmark,
    summary_rows,
)
from brushwork.errors import ConfigError, OutputPathError

__all__ = ["check_report_path", "write_report"]

#: Pairs shown in the grid that compares the methods (spread over the jobs).
DEFAULT_PAIRS = 8


def check_report_path(path: str | Path) -> Path:
    """The HTML file to write: ``.html``, its folder existing and writable."""
    from brushwork.resources import probe_writable

    out = Path(path).expanduser()
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report is an HTML file: give -o NAME.html, got {out.name}")
    if out.is_dir():
        raise OutputPathError(f"-o {out} is a folder; give an .html file")
    if not out.parent.is_dir():
        raise OutputPathError(f"the folder of {out} does not exist; create it first")
    probe_writable(out.parent, "report")
    return out


def write_report(
    folders: Sequence[str | Path],
    output: str | Path,
    *,
    thumb: int = 96,
    pairs: int = DEFAULT_PAIRS,
) -> list[Path]:
    """Write the report of one benchmark folder, or the comparison of two.

    Returns the files written (the HTML first).

    Raises:
        ConfigError: not one or two folders, a bad output name.
        OutputPathError: a folder that is not a benchmark folder.
    """
    if not 1 <= len(folders) <= 2:
        raise ConfigError(f"give one benchmark folder, or two to compare; got {len(folders)}")
    out = check_report_path(output)
    data = [load_benchmark(folder) for folder in folders]
    if len(data) == 1:
        return _single(data[0], out, thumb, pairs)
    return _compared(data[0], data[1], out)


# --------------------------------------------------------------------------- files


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def _csv(records: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(records), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell(v) for k, v in record.items()})
    return buffer.getvalue()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json(payload: Any) -> str:
    return json.dumps(_clean(payload), indent=2, default=str)


# --------------------------------------------------------------------------- one folder


def _single(data: BenchmarkData, out: Path, thumb: int, pairs: int) -> list[Path]:
    rows = job_rows(data)
    summary = summary_rows(data)
    folder = out.parent
    written = [out]
    for name, text in (
        ("rows.csv", _csv(rows)),
        ("summary.csv", _csv(summary)),
        (
            "summary.json",
            _json(
                {
                    "summary": summary,
                    "settings": data.settings,
                    "environment": data.environment,
                    "methods": data.methods,
                    "unreadable_inputs": data.unreadable,
                }
            ),
        ),
    ):
        written.append(write_text_atomic(folder / name, text))
    write_text_atomic(out, _single_html(data, rows, summary, thumb, pairs))
    return written


def _img(data: bytes, kind: str, alt: str, css: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} alt="{html.escape(alt)}" src="data:image/{kind};base64,{encoded}">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.4g}"
    return html.escape(str(value))


def _ci(record: dict[str, Any], key: str) -> str:
    low, high = record.get(f"{key}_low", math.nan), record.get(f"{key}_high", math.nan)
    mean = _fmt(record.get(key, math.nan))
    if isinstance(low, float) and math.isfinite(low):
        return f"{mean} <small>[{_fmt(low)}, {_fmt(high)}]</small>"
    return mean


def _arrow(metric: str) -> str:
    return "↑" if metric in HIGHER_IS_BETTER else "↓"


def _summary_table(data: BenchmarkData, summary: list[dict[str, Any]]) -> str:
    metrics = data.item_metrics
    set_metrics = [m for m in data.metrics if any(m in v for v in data.set_scores.values())]
    head = ["method", "state", "device", "precision", "done", "failed", "s / image", "peak MiB"]
    head += [f"{m} {_arrow(m)}" for m in metrics + set_metrics]
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for r in summary:
        row = [
            html.escape(r["method"]),
            html.escape(r["state"]),
            html.escape(r["device"]),
            html.escape(r["precision"]),
            str(r["done"]),
            str(r["failed"]),
            _ci(r, "seconds_per_image"),
            _fmt(r["peak_mib_median"]),
        ]
        row += [_ci(r, m) for m in metrics]
        row += [_fmt(r.get(m, math.nan)) for m in set_metrics]
        body.append(
            f'<tr data-method="{html.escape(r["method"])}">'
            + "".join(f"<td>{c}</td>" for c in row)
            + "</tr>"
        )
    return f'<table class="summary"><tr>{cells}</tr>{"".join(body)}</table>'


def _inputs(data: BenchmarkData) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    contents: dict[str, Path] = {}
    styles: dict[str, Path] = {}
    for job in data.jobs:
        contents.setdefault(job.content, Path(job.content_path))
        styles.setdefault(job.style, Path(job.style_path))
    return list(contents.items()), list(styles.items())


def _results(data: BenchmarkData) -> dict[tuple[str, str, str], Path]:
    return {
        (j.method, j.content, j.style): data.folder / j.result
        for j in data.jobs
        if j.state == "done" and j.result
    }


def _chosen_pairs(data: BenchmarkData, count: int) -> list[tuple[str, str]]:
    """``count`` (content, style) pairs spread over the grid (content and style vary)."""
    contents, styles = _inputs(data)
    every = [(c, s) for i, (c, _) in enumerate(contents) for s, _ in styles[i:] + styles[:i]]
    if len(every) <= count:
        return every
    step = len(every) / count
    return [every[int(k * step)] for k in range(count)]


def _tradeoff(data: BenchmarkData, rows: list[dict[str, Any]]) -> str:
    x, y = content_metric(data.item_metrics), style_metric(data.item_metrics)
    if x is None or y is None:
        return (
            "<p>No trade-off plot: it needs a content metric (cfsd, lpips, ssim, content_loss) "
            "and a style metric (csd, gram_loss, clip_style, histogram).</p>"
        )
    series = []
    for method in data.methods:
        done = [r for r in rows if r["method"] == method["label"] and r["state"] == "done"]
        if done:
            series.append((method["label"], [r[x] for r in done], [r[y] for r in done]))
    plot = figures.tradeoff_plot(series, f"{x} {_arrow(x)} (content)", f"{y} {_arrow(y)} (style)")
    return _img(plot, "png", "content vs style trade-off", "tradeoff")


def _single_html(
    data: BenchmarkData,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    thumb: int,
    pairs: int,
) -> str:
    contents, styles = _inputs(data)
    results = _results(data)
    ran = [m["label"] for m in data.methods if any(k[0] == m["label"] for k in results)]
    skipped = [m for m in data.methods if m["state"] == "skipped"]
    failed = [j for j in data.jobs if j.state == "failed"]
    skip_html = "".join(
        f'<li class="skip" data-method="{html.escape(m["label"])}"><b>{html.escape(m["label"])}'
        f"</b> ({html.escape(m['spec'])}): {html.escape(m['reason'] or '')}</li>"
        for m in skipped
    )
    failed_html = "".join(
        f"<li>{html.escape(j.method)} · {html.escape(j.content)} × {html.escape(j.style)}: "
        f"{html.escape(j.error or '')}</li>"
        for j in failed
    )
    unreadable_html = "".join(
        f"<li>{html.escape(path)}: {html.escape(reason)}</li>" for path, reason in data.unreadable
    )
    notes = "".join(
        f"<li><b>{html.escape(m['label'])}</b>: {html.escape(m['note'])} "
        f"<small>{html.escape(json.dumps(m['defaults']))}</small></li>"
        for m in data.methods
        if m["state"] == "ready"
    )
    grids = []
    for label in ran:
        grid = figures.method_grid(
            contents,
            styles,
            {(c, s): p for (m, c, s), p in results.items() if m == label},
            thumb=thumb,
        )
        grids.append(
            f'<section class="grid" data-method="{html.escape(label)}"><h3>{html.escape(label)}'
            f"</h3>{_img(grid, 'jpeg', f'{label}: contents down, styles across')}</section>"
        )
    shown = _chosen_pairs(data, pairs)
    paths_c, paths_s = dict(contents), dict(styles)
    compare = figures.pairs_grid(
        [((c, paths_c[c]), (s, paths_s[s])) for c, s in shown], ran, results, thumb=thumb + 32
    )
    settings = data.settings
    env = data.environment
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())
    described = (
        f"protocol: {settings.get('protocol') or 'own folders'}; {len(contents)} contents × "
        f"{len(styles)} styles; long side {settings.get('size')} px; seed {settings.get('seed')}; "
        f"steps {settings.get('steps') or 'each method’s default'}; precision "
        f"{settings.get('precision')}; metrics {', '.join(data.metrics)}"
    )
    machine = (
        f"{env.get('device')} ({env.get('gpu') or env.get('processor')}, {env.get('platform')})"
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Benchmark {html.escape(data.label())}</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
img{{max-width:100%}}.grid img{{max-width:none}}section.grid{{overflow-x:auto}}</style>
</head><body>
<h1>Style transfer benchmark: {html.escape(data.label())}</h1>
<p>{html.escape(described)}</p>
<p>Machine: {html.escape(machine)}; {html.escape(versions)}</p>
<h2>Summary per method</h2>
<p>Mean over the method's results with the 95% t-interval in brackets; ↑/↓: higher/lower is
better. Seconds per image: the method's call only (loading and scoring excluded); peak MiB:
median over jobs of the memory each job added at its peak
({html.escape(_memory_kind(data))}). FID/ArtFID: one value per method over all its results.</p>
{_summary_table(data, summary)}
<h3>Method settings</h3><ul>{notes or "<li>–</li>"}</ul>
<h2>Skipped methods</h2><ul class="skips">{skip_html or "<li>none</li>"}</ul>
<h2>Failed jobs</h2><ul>{failed_html or "<li>none</li>"}</ul>
<h2>Inputs that did not load</h2><ul>{unreadable_html or "<li>none</li>"}</ul>
<h2>Content vs style</h2>{_tradeoff(data, rows)}
<h2>The methods on the same pairs</h2>{_img(compare, "jpeg", "methods on the same pairs", "pairs")}
<h2>Grids (contents down, styles across)</h2>
{"".join(grids) or "<p>no results yet</p>"}
</body></html>
"""


def _memory_kind(data: BenchmarkData) -> str:
    kinds = {j.memory_kind for j in data.jobs if j.memory_kind}
    meaning = {
        "cuda-allocated": "CUDA tensors, torch.cuda.max_memory_allocated",
        "rss-peak": "process resident memory peak, Linux VmHWM reset per job",
        "rss-max": "process ru_maxrss, not reset between jobs: an upper bound",
    }
    return "; ".join(meaning.get(k, k) for k in sorted(kinds)) or "not measured"


# --------------------------------------------------------------------------- two folders


def _compared(a: BenchmarkData, b: BenchmarkData, out: Path) -> list[Path]:
    records = compare_rows(a, b)
    folder = out.parent
    written = [out]
    written.append(write_text_atomic(folder / "comparison.csv", _csv(records)))
    payload = {
        "a": str(a.folder),
        "b": str(b.folder),
        "comparison": records,
        "summary_a": summary_rows(a),
        "summary_b": summary_rows(b),
    }
    written.append(write_text_atomic(folder / "comparison.json", _json(payload)))
    head = [
        "method",
        "metric",
        "n",
        "mean A",
        "mean B",
        "B − A",
        "95% CI",
        "t-test p",
        "Wilcoxon p",
    ]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>"
            for c in (
                html.escape(r["method"]),
                f"{html.escape(r['metric'])} {_arrow(r['metric'])}",
                _fmt(r["n"]),
                _fmt(r["mean_a"]),
                _fmt(r["mean_b"]),
                _fmt(r["difference"]),
                f"[{_fmt(r.get('ci95_low', math.nan))}, {_fmt(r.get('ci95_high', math.nan))}]",
                _fmt(r.get("t_pvalue", math.nan)),
                _fmt(r.get("wilcoxon_pvalue", math.nan)),
            )
        )
        + "</tr>"
        for r in records
    )
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    summaries = []
    for data in (a, b):
        summary = summary_rows(data)
        summaries.append(f"<h2>{html.escape(str(data.folder))}</h2>{_summary_table(data, summary)}")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Benchmark comparison</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
</style></head><body>
<h1>A = {html.escape(str(a.folder))}, B = {html.escape(str(b.folder))}</h1>
<p>Paired over the (content, style) pairs both folders have for the same method label:
mean difference B − A with its 95% t-interval, paired t-test and Wilcoxon signed-rank test
(two-sided), as <code>brushwork evaluate --compare</code>. Set metrics: the two values.</p>
<table class="comparison"><tr>{cells}</tr>{body}</table>
{"".join(summaries)}
</body></html>
"""
    write_text_atomic(out, page)
    return written
