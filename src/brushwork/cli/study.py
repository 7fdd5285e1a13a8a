"""``brushwork study``: the content/style separation study ("The Cow of Rembrandt").

``run`` generates every prompt of the grid with attention recording and stores its
metrics in the run folder (resumable), ``status`` shows the progress, ``report`` writes
tables, plots and statistics of one or more runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.cli import options

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = """examples:
  brushwork study run --model stabilityai/stable-diffusion-xl-base-1.0 -o runs/sdxl
  brushwork study run --contents cow,giraffe --styles Rembrandt,Cubism --templates 1 -o runs/small
  brushwork study run -o runs/sdxl --engine ray --address auto --batch-size 4
  brushwork study run --model stable-diffusion-v1-5/stable-diffusion-v1-5 --size 512 \\
          --precision fp32 -o runs/sd15
  brushwork study run --model stabilityai/stable-diffusion-3.5-medium -o runs/sd35
  brushwork study run --model black-forest-labs/FLUX.1-dev --size 1024 -o runs/flux
  brushwork study status runs/sdxl
  brushwork study report runs/sdxl runs/sd35 runs/flux -o report/      # backbones side by side

Interrupt a run at any time (Ctrl-C, kill, crash): the same command continues where it
stopped; nothing stored is lost or counted twice. A folder keeps one set of settings:
resuming with another model, steps, guidance, size, precision, rule or software version
is refused. Sizes (--size N or HxW: multiples of 8 for SD 1.x/2.x/XL, of 16 for SD3/3.5
and Flux) and the model are checked before the run folder is created: a refused run
stores nothing. SD3 maps use the CLIP stream, Flux maps the T5 stream; Flux runs without
CFG (--guidance-scale sets Flux.1-dev's guidance embedding).
"""

#: No registry weight file: the pipeline comes from --model (a hub id or folder).
WEIGHT_FLAGS: dict[str, str] = {}


#: One line for ``brushwork --help``.
HELP = "content/style separation study of text-to-image attention (Cow of Rembrandt)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.diffusion_common import add_device_precision, add_generated_size

    parser = subparsers.add_parser(
        "study",
        help=HELP,
        description="Do diffusion models keep content and style apart? Overlap of the "
        "content and style words' attention maps vs other word pairs, over a prompt grid "
        "(Ferrara et al., MLSP 2025).",
        epilog=EPILOG,
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
    )
    options.add_output(run, what="run folder")
    g = run.add_argument_group("prompt grid (default: the paper's 16,000 prompts)")
    g.add_argument("--contents", help="comma-separated list or a file (default: 80 COCO classes)")
    g.add_argument("--styles", help="comma-separated list or a file (default: 50 WikiArt styles)")
    g.add_argument(
        "--templates",
        help="protocol template numbers ('1,3'), templates separated by '|' with <CONTENT>, "
        "<STYLE> and <MEDIUM>, or a file (default: all four)",
    )
    g.add_argument("--mediums", help="comma-separated mediums (default: painting)")
    g.add_argument(
        "--limit", type=options.count(1), metavar="N", help="only the first N prompts of the grid"
    )
    m = run.add_argument_group("generation and maps")
    options.add_model(m, default=DEFAULT_MODEL)
    options.add_steps(m, default=30, what="denoising steps")
    m.add_argument(
        "--guidance-scale",
        type=options.non_negative_float,
        help="CFG scale (Flux.1-dev: its guidance embedding; schnell ignores it); unset: "
        "the pipeline's (SDXL: 5.0, SD3: 7.0, Flux.1: 3.5)",
    )
    add_generated_size(m)
    add_device_precision(m)
    m.add_argument(
        "--rules",
        type=_stored_rules,
        default="both",
        metavar="mean,first",
        help="word→token rules to store: mean of a phrase's tokens, first token (original), "
        "or both from the same images so that report can show either (default: mean,first)",
    )
    options.add_deprecated(m, "--rule", dest="rules", new="--rules", type=_stored_rules)
    e = run.add_argument_group("execution")
    options.add_steps(e, default=1, what="prompts per pipeline call", flag="--batch-size")
    e.add_argument("--engine", choices=("local", "ray"), default="local", help="where to run")
    e.add_argument("--address", help="Ray cluster address ('auto': a running cluster)")
    e.add_argument(
        "--num-gpus", type=options.non_negative_float, default=1.0, help="GPUs per Ray task"
    )
    e.add_argument(
        "--num-cpus", type=options.non_negative_float, default=1.0, help="CPUs per Ray task"
    )
    e.add_argument(
        "--retries",
        type=options.count(0),
        default=3,
        help="Ray task retries (0: no retry)",
    )
    e.add_argument(
        "--save-images", action="store_true", help="also save 256² image and overlay JPEGs"
    )
    e.add_argument("--skip-failed", action="store_true", help="do not retry failed prompts")
    options.add_quiet(e)

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
    options.add_output(report, what="report folder")
    options.add_rule(report)
    options.add_quiet(report)
    report.add_argument(
        "--mode", choices=("fixed", "quantile"), default="fixed", help="mask threshold mode"
    )
    report.add_argument(
        "--threshold", type=options.fraction, default=0.4, help="mask threshold of the tables"
    )
    for action_parser in actions.choices.values():
        action_parser.set_defaults(_parser=action_parser)
    return parser


def _stored_rules(text: str) -> str:
    """``"mean,first"`` (or the old ``"both"``) -> ``"both"``; ``"mean"`` -> ``"mean"``."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if "both" in names:
        names = (names - {"both"}) | {"first", "mean"}
    unknown = names - {"first", "mean"}
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected mean, first or mean,first, got '{text}'")
    return "both" if names == {"first", "mean"} else names.pop()


def run(args: argparse.Namespace) -> int:
    if args.study_command == "run":
        return _run(args)
    if args.study_command == "status":
        return _status(args)
    return _report(args)


def _run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
    )
    from brushwork.cli.progress import step_progress
    from brushwork.devices import resolve_device
    from brushwork.diffusion.pipelines import dtype_name
    from brushwork.experiments import grid as grids
    from brushwork.experiments.runner import StudySettings, run_local, run_ray
    from brushwork.experiments.store import StudyStore
    from brushwork.resources import check_folder_writable

    # everything a run needs is checked before the run folder or its database exist
    height, width, flag = generated_sides(args)
    settings = StudySettings(
        model=args.model,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        height=height,
        width=width,
        dtype=dtype_name(args.precision),  # stored under the library's dtype names
        rule=args.rules,
    )
    settings.validate()
    check_model_folder(args.model)
    check_sides_for_model(args.model, height, width, flag)
    check_folder_writable(args.output, "run folder")
    if args.engine == "ray" and args.device == "auto":
        device_type = "cuda" if args.num_gpus > 0 else "cpu"  # the workers' device
    else:
        device_type = resolve_device(args.device).type
    if args.engine == "local":
        check_run_memory(args, args.model, height, width, what="study", batch=args.batch_size)
    settings = settings.resolved(device_type)  # workers load the recorded dtype
    prompts = grids.build_grid(
        templates=grids.parse_templates(args.templates),
        mediums=grids.parse_list(args.mediums, grids.MEDIUMS),
        contents=grids.parse_list(args.contents, grids.paper_contents()),
        styles=grids.parse_list(args.styles, grids.paper_styles()),
    )
    created = not Path(args.output).exists()
    with StudyStore(args.output) as store:
        try:
            new = store.create_or_check(prompts, settings.record())
        except BaseException:
            if created:  # a refused new run leaves no folder behind
                store.close()
                _remove_folder(args.output)
            raise
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
        progress = step_progress(enabled=not args.quiet, unit="prompt", loss=False)
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


def _remove_folder(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _status(args: argparse.Namespace) -> int:
    from brushwork.experiments.store import StudyStore

    with StudyStore(args.folder, create=False) as store:
        counts = store.counts()
        settings = store.settings() or {}
        info = store.model_info()
        per_prompt = store.seconds_per_prompt()
        failures = store.failures()
    left = counts["pending"] + counts["failed"]
    print(f"run:      {args.folder}")
    print(
        f"model:    {settings.get('model')} ({settings.get('steps')} steps, "
        f"rule {settings.get('rule')}, {settings.get('dtype')})"
    )
    print(f"family:   {_family_line(settings, info)}")
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


def _family_line(settings: dict, info: dict | None) -> str:
    """``flux (FluxPipeline; maps from the t5 stream, blocks joint+single)``, or the family
    the model's configs or name say while no batch has run yet."""
    if info:
        blocks = "+".join(info.get("blocks") or [])
        return (
            f"{info.get('family')} ({info.get('pipeline')}; maps from the "
            f"{info.get('stream')} stream, blocks {blocks})"
        )
    from brushwork.diffusion.sizes import guess_family

    family = guess_family(str(settings.get("model", "")))
    return f"{family} (from the model's name or configs; recorded when a batch runs)"


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
