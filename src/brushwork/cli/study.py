"""``brushwork study``: the content/style separation study ("The Cow of Rembrandt").

``run`` generates every prompt of the grid with attention recording and stores its
metrics in the run folder (resumable), ``status`` shows the progress, ``report`` writes
tables, plots and statistics of one or more runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from brushwork.choices import DEVICE_CHOICES

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = """examples:
  brushwork study run --model stabilityai/stable-diffusion-xl-base-1.0 -o runs/sdxl
  brushwork study run --contents cow,giraffe --styles Rembrandt,Cubism --templates 1 -o runs/small
  brushwork study run -o runs/sdxl --engine ray --address auto --batch-size 4
  brushwork study status runs/sdxl
  brushwork study report runs/sdxl runs/sd15 -o report/

Interrupt a run at any time (Ctrl-C, kill, crash): the same command continues where it
stopped; nothing stored is lost or counted twice. A folder keeps one set of settings:
resuming with another model, steps, guidance, size, dtype, rule or software version is
refused.
"""


#: One line for ``brushwork --help``.
HELP = "content/style separation study of text-to-image attention (Cow of Rembrandt)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "study",
        help=HELP,
        description="Do diffusion models keep content and style apart? Overlap of the "
        "content and style words' attention maps vs other word pairs, over a prompt grid "
        "(Ferrara et al., MLSP 2025).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(
        dest="study_command", metavar="ACTION", parser_class=type(parser)
    )
    actions.required = True

    run = actions.add_parser(
        "run",
        help="generate the grid and store its metrics (resumable)",
        description="Generate every prompt of the grid with attention recording and store "
        "its metrics in the run folder. Run again with the same folder to continue.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-o", "--output", required=True, help="run folder")
    g = run.add_argument_group("prompt grid (default: the paper's 16,000 prompts)")
    g.add_argument("--contents", help="comma-separated list or a file (default: 80 COCO classes)")
    g.add_argument("--styles", help="comma-separated list or a file (default: 50 WikiArt styles)")
    g.add_argument(
        "--templates",
        help="protocol template numbers ('1,3'), templates separated by '|' with <CONTENT>, "
        "<STYLE> and <MEDIUM>, or a file (default: all four)",
    )
    g.add_argument("--mediums", help="comma-separated mediums (default: painting)")
    g.add_argument("--limit", type=int, help="only the first N prompts of the grid")
    m = run.add_argument_group("generation and maps")
    m.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder (%(default)s)")
    m.add_argument("--steps", type=int, default=30, help="denoising steps (%(default)s)")
    m.add_argument("--guidance-scale", type=float, help="default: the pipeline's (SDXL: 5.0)")
    m.add_argument("--size", help="image size N or HxW (default: the model's, SDXL 1024)")
    m.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    m.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    m.add_argument(
        "--rule",
        choices=("first", "mean", "both"),
        default="both",
        help="word→token rule: first token (original), mean of a phrase's tokens, or both "
        "from the same images (%(default)s)",
    )
    e = run.add_argument_group("execution")
    e.add_argument("--batch-size", type=int, default=1, help="prompts per pipeline call")
    e.add_argument("--engine", choices=("local", "ray"), default="local")
    e.add_argument("--address", help="Ray cluster address ('auto': a running cluster)")
    e.add_argument("--num-gpus", type=float, default=1.0, help="GPUs per Ray task (%(default)s)")
    e.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per Ray task (%(default)s)")
    e.add_argument("--retries", type=int, default=3, help="Ray task retries (%(default)s)")
    e.add_argument(
        "--save-images", action="store_true", help="also save 256² image and overlay JPEGs"
    )
    e.add_argument("--skip-failed", action="store_true", help="do not retry failed prompts")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    status = actions.add_parser(
        "status", help="done / pending / failed prompts and ETA of a run folder"
    )
    status.add_argument("folder", help="run folder")

    report = actions.add_parser(
        "report",
        help="tables, plots and statistics (HTML + CSV) of one or more runs",
        description="Write rows.csv, summary.csv, per-content and per-style tables, PNG plots "
        "and index.html. Several run folders are compared in one report.",
    )
    report.add_argument("folders", nargs="+", metavar="FOLDER", help="run folder(s)")
    report.add_argument("-o", "--output", required=True, help="report folder")
    report.add_argument("--rule", choices=("first", "mean"), help="default: first if stored")
    report.add_argument("--mode", choices=("fixed", "quantile"), default="fixed")
    report.add_argument("--threshold", type=float, default=0.4, help="(%(default)s)")
    for action_parser in actions.choices.values():
        action_parser.set_defaults(_parser=action_parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.study_command == "run":
        return _run(args)
    if args.study_command == "status":
        return _status(args)
    return _report(args)


def _size(text: str | None) -> tuple[int | None, int | None]:
    from brushwork.errors import ConfigError

    if text is None:
        return None, None
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise ConfigError(
            f"--size expects N or HxW (e.g. 1024 or 768x1024), got '{text}'"
        ) from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ConfigError(f"--size expects N or HxW, got '{text}'")


def _run(args: argparse.Namespace) -> int:
    from brushwork.devices import resolve_device
    from brushwork.errors import ConfigError
    from brushwork.experiments import grid as grids
    from brushwork.experiments.runner import StudySettings, run_local, run_ray
    from brushwork.experiments.store import StudyStore

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be ≥ 1, got {args.limit}")
    height, width = _size(args.size)
    settings = StudySettings(
        model=args.model,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        height=height,
        width=width,
        dtype=args.dtype,
        rule=args.rule,
    )
    settings.validate()
    if args.engine == "ray" and args.device == "auto":
        device_type = "cuda" if args.num_gpus > 0 else "cpu"  # the workers' device
    else:
        device_type = resolve_device(args.device).type
    settings = settings.resolved(device_type)  # workers load the recorded dtype
    prompts = grids.build_grid(
        templates=grids.parse_templates(args.templates),
        mediums=grids.parse_list(args.mediums, grids.MEDIUMS),
        contents=grids.parse_list(args.contents, grids.paper_contents()),
        styles=grids.parse_list(args.styles, grids.paper_styles()),
    )
    with StudyStore(args.output) as store:
        new = store.create_or_check(prompts, settings.record())
        todo = store.pending(include_failed=not args.skip_failed, limit=args.limit)
        counts = store.counts()
        if not args.quiet:
            verb = "new run" if new else "resuming"
            print(
                f"{verb}: {counts['total']} prompts, {counts['done']} done, {len(todo)} to do now",
                file=sys.stderr,
            )
        if not todo:
            return 0
        progress = _progress(len(todo), enabled=not args.quiet)
        task = progress.add_task("prompts", total=len(todo))

        def advance(done: int, failed: int) -> None:
            progress.advance(task, done + failed)

        try:
            with progress:
                if args.engine == "local":
                    summary = run_local(
                        store,
                        settings,
                        todo,
                        device=args.device,
                        batch_size=args.batch_size,
                        save_images=args.save_images,
                        progress=advance,
                    )
                else:
                    summary = run_ray(
                        store,
                        settings,
                        todo,
                        address=args.address,
                        num_gpus=args.num_gpus,
                        num_cpus=args.num_cpus,
                        device=args.device,
                        batch_size=args.batch_size,
                        max_retries=args.retries,
                        save_images=args.save_images,
                        progress=advance,
                    )
        except KeyboardInterrupt:
            counts = store.counts()
            print(
                f"interrupted: {counts['done']} of {counts['total']} prompts are stored; run "
                "the same command again to continue",
                file=sys.stderr,
            )
            return 130
        counts = store.counts()
    if not args.quiet:
        print(
            f"stored {summary.done} prompts ({summary.failed} failed) in {summary.seconds:.1f} s; "
            f"{counts['done']}/{counts['total']} done, {counts['failed']} failed",
            file=sys.stderr,
        )
    return 1 if summary.failed else 0


def _progress(total: int, *, enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class PromptRate(ProgressColumn):
        """Prompts per second, or seconds per prompt when slower than 1/s."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                text = "– prompts/s"
            elif speed >= 1:
                text = f"{speed:.2f} prompts/s"
            else:
                text = f"{1 / speed:.1f} s/prompt"
            return Text(text, style="progress.data.speed")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        PromptRate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _status(args: argparse.Namespace) -> int:
    from brushwork.experiments.store import StudyStore

    with StudyStore(args.folder, create=False) as store:
        counts = store.counts()
        settings = store.settings() or {}
        per_prompt = store.seconds_per_prompt()
        failures = store.failures()
    left = counts["pending"] + counts["failed"]
    print(f"run:      {args.folder}")
    print(
        f"model:    {settings.get('model')} ({settings.get('steps')} steps, "
        f"rule {settings.get('rule')}, {settings.get('dtype')})"
    )
    print(
        f"prompts:  {counts['total']} total, {counts['done']} done, "
        f"{counts['pending']} pending, {counts['failed']} failed"
    )
    print(f"rows:     {counts['rows']}")
    if per_prompt is not None and left:
        print(f"ETA:      {_duration(left * per_prompt)} at {per_prompt:.2f} s/prompt")
    for index, prompt, error in failures[:5]:
        print(f"failed #{index} {prompt!r}: {error}")
    if len(failures) > 5:
        print(f"... and {len(failures) - 5} more failed prompts")
    return 0


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _report(args: argparse.Namespace) -> int:
    from brushwork.experiments.report import ReportOptions, write_report

    files = write_report(
        args.folders,
        args.output,
        ReportOptions(rule=args.rule, mode=args.mode, threshold=args.threshold),
    )
    print(f"wrote {len(files)} files to {args.output}/ (open index.html)", file=sys.stderr)
    return 0
