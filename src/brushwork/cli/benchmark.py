"""``brushwork benchmark``: every method on the same inputs, measured the same way.

``brushwork benchmark --contents DIR --styles DIR -o FOLDER`` (or ``--protocol NAME
--data DIR``) runs each (method, content, style) job, stores images, scores, time and
peak memory (resumable) and writes the report; ``brushwork benchmark report FOLDER
[FOLDER_B] -o FILE.html`` writes the report again, or compares two folders. Everything
is in :mod:`brushwork.benchmark`; this module parses, calls and prints.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from brushwork.cli import options
from brushwork.cli.argtypes import names

#: The methods run without --methods (Johnson needs a trained network per style).
DEFAULT_METHODS = "gatys,adain,wct,wct2,photowct,styleid"

EPILOG = """examples:
  brushwork benchmark --contents contents/ --styles styles/ \\
          --methods gatys,johnson:starry.safetensors,adain,wct,wct2,styleid -o bench/
  brushwork benchmark --protocol styleid-20x40 --data bench_data/ -o bench/   # the standard set
  brushwork benchmark --contents c/ --styles s/ --methods adain,wct:wct.safetensors \\
          --metrics ssim,lpips,gram_loss --size 256 -o bench/
  brushwork benchmark report bench/ -o bench/report.html
  brushwork benchmark report bench_a/ bench_b/ -o compare.html      # paired tests, B − A

Methods: gatys, johnson:FILE|FOLDER, adain[:WEIGHTS], wct[:FILE], wct2[:WEIGHTS],
photowct[:FILE], styleid[:MODEL], each with its documented defaults (docs/benchmark.md).
A method whose weights are missing is skipped and the report gives the reason; the
command fails only when nothing can run. Interrupt at any time: the same command
continues, and no stored job is computed again. --protocol styleid-20x40 needs StyleID's
20 MS-COCO contents and 40 WikiArt styles under --data (cnt/ and sty/; nothing is
downloaded: see docs/benchmark.md); their SHA-256 are checked.
"""

#: One line for ``brushwork --help``.
HELP = "run every style-transfer method on the same inputs: scores, time, memory, HTML report"

#: Registry name -> the flag that gives the file (the metrics' networks, as evaluate).
WEIGHT_FLAGS = {
    "alexnet": "--lpips-trunk-weights",
    "vgg16": "--lpips-trunk-weights",
    "lpips-alex": "--lpips-weights",
    "lpips-vgg": "--lpips-weights",
    "vgg19": "--vgg-weights (metrics) or --methods gatys:FILE",
    "inception-fid": "--inception-weights",
    "inception-art": "--art-inception-weights",
    "clip-vit-large": "--clip-model",
    "dino-vitb8": "--dino-model",
}


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from brushwork.cli.evaluate import add_network_options

    options.add_output(
        parser, what="benchmark folder (created; resumed when it exists)", required=False
    )
    g = parser.add_argument_group("inputs (--contents and --styles, or --protocol and --data)")
    g.add_argument("--contents", metavar="DIR", help="content images (a folder or one file)")
    g.add_argument("--styles", metavar="DIR", help="style images (a folder or one file)")
    g.add_argument("--protocol", metavar="NAME", help="a standard set: styleid-20x40")
    g.add_argument("--data", metavar="DIR", help="the folder holding the protocol's images")
    g.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="do not check the protocol images' SHA-256",
    )
    m = parser.add_argument_group("methods and metrics")
    m.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        metavar="M[:WEIGHTS],...",
        help=f"comma-separated method specs (default: {DEFAULT_METHODS})",
    )
    m.add_argument(
        "--metrics",
        type=names,
        default=None,
        help="comma-separated metrics of `brushwork evaluate` (default: all of its style "
        "metrics; FID/ArtFID only with enough images)",
    )
    options.add_size(
        m, default=None, what="long side of contents and styles (default: 512, or the protocol's)"
    )
    options.add_steps(
        m,
        default=None,
        what="Gatys optimisation steps and StyleID DDIM steps (default: each method's own: "
        "200 and 50)",
    )
    options.add_seed(m)
    options.add_device(m)
    options.add_precision(
        m,
        auto="each method's documented default: Gatys bf16 where fast, feed-forward "
        "networks fp32, StyleID fp16 on CUDA",
    )
    add_network_options(parser)
    e = parser.add_argument_group("execution")
    e.add_argument("--engine", choices=("local", "ray"), default="local", help="where to run")
    e.add_argument("--address", help="Ray cluster address ('auto': a running cluster)")
    e.add_argument(
        "--num-gpus", type=options.non_negative_float, default=0.0, help="GPUs per Ray task"
    )
    e.add_argument(
        "--num-cpus", type=options.non_negative_float, default=1.0, help="CPUs per Ray task"
    )
    e.add_argument("--retries", type=options.count(0), default=3, help="Ray task retries")
    e.add_argument("--skip-failed", action="store_true", help="do not retry failed jobs")
    _add_thumb(e)
    options.add_quiet(e)


def _add_thumb(group: Any) -> None:
    group.add_argument(
        "--thumb",
        type=options.count(16),
        default=96,
        metavar="PX",
        help="side of a grid cell in the report",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "benchmark",
        help=HELP,
        description="Run every style-transfer method on the same contents and styles with "
        "one seed, score each result with the metrics of `brushwork evaluate`, measure "
        "seconds per image and peak memory, and write an HTML report (tables with 95 % "
        "confidence intervals, image grids, a content-vs-style plot), CSV and JSON.",
        epilog=EPILOG,
    )
    _add_run_arguments(parser)
    actions = parser.add_subparsers(
        dest="benchmark_command", metavar="[report]", parser_class=type(parser)
    )
    actions.required = False
    report = actions.add_parser(
        "report",
        help="write the report of a benchmark folder, or compare two",
        description="Write the HTML report (and rows.csv, summary.csv, summary.json beside "
        "it) of a benchmark folder; with two folders, the paired comparison of B against A "
        "(comparison.csv, comparison.json).",
    )
    report.add_argument("folders", nargs="+", metavar="FOLDER", help="benchmark folder(s)")
    options.add_output(report, what="report file (.html)")
    _add_thumb(report)
    options.add_quiet(report)
    report.set_defaults(_parser=report)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.benchmark_command == "report":
        return _report(args)
    return _run(args)


def _inputs(args: argparse.Namespace) -> Any:
    from brushwork.benchmark.protocol import folder_inputs, protocol_inputs
    from brushwork.errors import ConfigError

    if args.protocol:
        if args.contents or args.styles:
            raise ConfigError("give --protocol with --data, or --contents and --styles, not both")
        if not args.data:
            raise ConfigError(f"--protocol {args.protocol} needs --data DIR (its images)")
        return protocol_inputs(args.protocol, args.data, verify=args.verify)
    if args.data:
        raise ConfigError("--data is for --protocol; give --contents and --styles for folders")
    if not (args.contents and args.styles):
        raise ConfigError(
            "give --contents DIR and --styles DIR, or --protocol NAME --data DIR "
            "(and -o FOLDER); see `brushwork benchmark --help`"
        )
    return folder_inputs(args.contents, args.styles)


def _run(args: argparse.Namespace) -> int:
    from brushwork.benchmark.methods import MethodSettings, parse_methods
    from brushwork.benchmark.protocol import get_protocol
    from brushwork.benchmark.runner import BenchmarkSettings, benchmark_folder
    from brushwork.cli.evaluate import network_settings
    from brushwork.cli.progress import step_progress
    from brushwork.errors import ConfigError

    if not args.output:
        raise ConfigError("give the benchmark folder: -o FOLDER")
    specs = parse_methods(args.methods)
    size = args.size or (get_protocol(args.protocol).size if args.protocol else 512)
    settings = BenchmarkSettings(
        methods=tuple(specs),
        method=MethodSettings(
            size=size,
            seed=args.seed,
            steps=args.steps,
            device=args.device,
            precision=args.precision,
        ),
        metrics=tuple(args.metrics) if args.metrics is not None else None,
        networks=network_settings(args),
    )
    inputs = _inputs(args)
    ray_options = {
        "address": args.address,
        "num_gpus": args.num_gpus,
        "num_cpus": args.num_cpus,
        "max_retries": args.retries,
    }
    bar = step_progress(enabled=not args.quiet, unit="image", loss=False)
    tasks: dict[str, Any] = {}

    def advance(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    try:
        with bar:
            summary, files = benchmark_folder(
                args.output,
                settings,
                inputs,
                engine=args.engine,
                ray_options=ray_options,
                retry_failed=not args.skip_failed,
                progress=advance,
                thumb=args.thumb,
            )
    except KeyboardInterrupt:
        print(
            "interrupted: the jobs done so far are stored; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    from brushwork.benchmark.tables import load_benchmark, summary_rows

    data = load_benchmark(args.output)
    if not args.quiet:
        _print_summary(data, summary_rows(data))
        for path, reason in data.unreadable:
            print(f"not an image, left out: {path}: {reason}", file=sys.stderr)
        print(
            f"{summary.done} jobs done, {summary.failed} failed in {summary.wall_seconds:.1f} s "
            f"(harness {summary.overhead_share:.1%}); wrote {files[0]}",
            file=sys.stderr,
        )
    if not any(j.state == "done" for j in data.jobs):
        reasons = "; ".join(f"{m}: {r}" for m, r in summary.skipped.items())
        print(f"error: nothing ran{': ' + reasons if reasons else ''}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from brushwork.benchmark.report import write_report

    files = write_report(args.folders, args.output, thumb=args.thumb)
    if not args.quiet:
        print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr)
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _print_summary(data: Any, summary: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from brushwork.benchmark.scoring import HIGHER_IS_BETTER

    metrics = data.item_metrics
    sets = [m for m in data.metrics if any(m in v for v in data.set_scores.values())]
    table = Table(title=f"benchmark {data.folder} (mean over done jobs)")
    for column in ("method", "state", "done", "failed", "s/image", "peak MiB"):
        table.add_column(column, justify="left" if column in ("method", "state") else "right")
    for metric in metrics + sets:
        table.add_column(f"{metric} {'↑' if metric in HIGHER_IS_BETTER else '↓'}", justify="right")
    for r in summary:
        table.add_row(
            r["method"],
            r["state"] if r["state"] != "skipped" else "skipped",
            str(r["done"]),
            str(r["failed"]),
            _fmt(r["seconds_per_image"]),
            _fmt(r["peak_mib_median"]),
            *(_fmt(r.get(m, math.nan)) for m in metrics + sets),
        )
    Console(stderr=False).print(table)
    for r in summary:
        if r["state"] == "skipped":
            print(f"skipped {r['method']}: {r['reason']}", file=sys.stderr)
