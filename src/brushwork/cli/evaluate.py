"""``brushwork evaluate``: score stylisation, editing and video results.

Parses the flags, calls :func:`brushwork.metrics.evaluation.evaluate` and prints its
summary; every check, the scoring and the scores file are in that library module.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from brushwork.cli.argtypes import names
from brushwork.cli.options import add_device, add_quiet, count
from brushwork.metrics.evaluation import (
    EDIT_METRICS,
    HIGHER_IS_BETTER,
    STYLE_METRICS,
    VIDEO_METRICS,
    EvaluationResult,
    EvaluationSettings,
    NetworkSettings,
    clean,
)

EPILOG = """examples:
  brushwork evaluate --content content/ --style style/ --results results/ -o scores.csv
  brushwork evaluate --content photo.jpg --style starry.jpg --results out.png
  brushwork evaluate --edit --input cat.png --result pig.png --target "a pig" --source "a cat"
  brushwork evaluate --video in.mp4 --result out.mp4
  brushwork evaluate --content content/ --style style/ --compare results_a/ results_b/

Files are paired by name: results/X.png goes with content/X.* and style/X.*, or a
result named <content>_<style>.png with content/<content>.* and style/<style>.*.
Resize policy: each pairwise metric is computed at the result's size; a content or
input image of another size is resized to it (bilinear, antialiased) provided the
aspect ratios agree within 2 %, otherwise it is an error. Style images are resized
so their long side matches the result's. Pretrained networks are downloaded on
first use (see `brushwork weights`, and `brushwork weights download --bundle evaluate`
on a machine with internet); without network, every missing one is named at once
with the flag that takes a local copy and a --metrics list that runs without it.
"""

#: One line for ``brushwork --help``.
HELP = "score stylisation, editing and video results"

#: Registry name -> the flag of this command that gives that network.
WEIGHT_FLAGS = {
    "alexnet": "--lpips-trunk-weights",
    "vgg16": "--lpips-trunk-weights",
    "lpips-alex": "--lpips-weights",
    "lpips-vgg": "--lpips-weights",
    "vgg19": "--vgg-weights",
    "inception-fid": "--inception-weights",
    "inception-art": "--art-inception-weights",
    "clip-vit-large": "--clip-model",
    "dino-vitb8": "--dino-model",
    "csd-vit-large": "--csd-weights",
}


def add_network_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The flags that say where each metric's pretrained network comes from (shared by
    ``evaluate`` and ``benchmark``; :func:`network_settings` reads them); returns their
    group."""
    g = parser.add_argument_group("models and weights")
    g.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    g.add_argument("--lpips-weights", metavar="PATH", help="LPIPS linear layers (alex.pth)")
    g.add_argument("--lpips-trunk-weights", metavar="PATH", help="AlexNet/VGG-16 trunk file")
    g.add_argument("--vgg-weights", metavar="PATH", help="VGG-19 file (content/Gram loss)")
    g.add_argument("--inception-weights", metavar="PATH", help="FID Inception file")
    g.add_argument("--art-inception-weights", metavar="PATH", help="ArtFID Inception file")
    g.add_argument(
        "--inception-size",
        type=count(),
        default=299,
        metavar="N",
        help="Inception input size (299: comparable FID; smaller only for quick checks)",
    )
    g.add_argument(
        "--clip-model", default=None, metavar="ID|FOLDER", help="CLIP hub id or local folder"
    )
    g.add_argument(
        "--dino-model", default=None, metavar="ID|FOLDER", help="DINO-ViT hub id or local folder"
    )
    g.add_argument(
        "--csd-weights", metavar="PATH", help="CSD checkpoint (pytorch_model.bin or .safetensors)"
    )
    return g


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help=HELP,
        description="Score results against their inputs: content and style fidelity, "
        "FID/ArtFID, CLIP and structure scores for edits, warping error for videos. "
        "Prints a summary (mean, std, 95%% CI) and writes per-item scores.",
        epilog=EPILOG,
    )
    g = p.add_argument_group("what to score")
    g.add_argument("--content", metavar="DIR|FILE", help="content image(s)")
    g.add_argument("--style", metavar="DIR|FILE", help="style image(s)")
    g.add_argument(
        "--results", "--result", dest="results", metavar="DIR|FILE", help="result image(s)/video"
    )
    g.add_argument("--edit", action="store_true", help="score image edits (CLIP, structure)")
    g.add_argument("--input", metavar="DIR|FILE", help="edit input image(s)")
    g.add_argument("--target", help="edit target prompt, e.g. 'a pig'")
    g.add_argument("--source", help="edit source prompt, e.g. 'a cat' (direction, accuracy)")
    g.add_argument("--video", metavar="FILE", help="input video (warping error of --result)")
    g.add_argument(
        "--compare",
        nargs=2,
        metavar=("DIR_A", "DIR_B"),
        help="score two result folders on the same items, with paired tests",
    )
    g.add_argument(
        "--metrics",
        type=names,
        default=None,
        help=f"comma-separated subset (style: {','.join(STYLE_METRICS)}; "
        f"edit: {','.join(EDIT_METRICS)}; video: {','.join(VIDEO_METRICS)})",
    )

    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", metavar="FILE", help="per-item scores (.csv or .json)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    g = add_network_options(p)
    g.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="optical flow")

    g = p.add_argument_group("running")
    add_device(g)
    g.add_argument(
        "--batch-size",
        type=count(),
        default=8,
        metavar="N",
        help="images per Inception batch (FID/ArtFID)",
    )
    add_quiet(g)
    return p


def _mode(args: argparse.Namespace) -> str:
    from brushwork.errors import ConfigError

    if args.video:
        if not args.results:
            raise ConfigError("--video needs --result OUT (the stylised video)")
        if args.compare:
            raise ConfigError("--compare is not supported with --video; score each video alone")
        return "video"
    if args.edit:
        if not args.input or not (args.results or args.compare):
            raise ConfigError("--edit needs --input and --result (or --compare DIR_A DIR_B)")
        return "edit"
    if not (args.content and args.style and (args.results or args.compare)):
        raise ConfigError(
            "give --content, --style and --results (or --compare DIR_A DIR_B); "
            "or --edit --input --result --target; or --video IN --result OUT"
        )
    return "style"


def network_settings(args: argparse.Namespace) -> NetworkSettings:
    """The :class:`NetworkSettings` of the flags of :func:`add_network_options`."""
    return NetworkSettings(
        lpips_net=args.lpips_net,
        lpips_weights=args.lpips_weights,
        lpips_trunk_weights=args.lpips_trunk_weights,
        vgg_weights=args.vgg_weights,
        inception_weights=args.inception_weights,
        art_inception_weights=args.art_inception_weights,
        inception_size=args.inception_size,
        clip_model=args.clip_model,
        dino_model=args.dino_model,
        csd_weights=args.csd_weights,
    )


def settings_from(args: argparse.Namespace) -> EvaluationSettings:
    """The library settings for the parsed command line."""
    networks = network_settings(args)
    return EvaluationSettings(
        mode=_mode(args),
        results=tuple(args.compare) if args.compare else (args.results,),
        content=args.content,
        style=args.style,
        input=args.input,
        target=args.target,
        source=args.source,
        video=args.video,
        metrics=tuple(args.metrics) if args.metrics is not None else None,
        networks=networks,
        flow=args.flow,
        device=args.device,
        batch_size=args.batch_size,
        output=args.output,
    )


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.progress import step_progress
    from brushwork.metrics.evaluation import evaluate

    settings = settings_from(args)
    with step_progress(enabled=not args.quiet, unit="image", loss=False) as bar:
        result = evaluate(settings, progress=bar)
    if args.json:
        print(json.dumps(clean(result.summary), indent=2))
    elif result.compared:
        _print_comparison(result)
    else:
        _print_summary(result)
    return 0


# --------------------------------------------------------------------------- printing


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_summary(result: EvaluationResult) -> None:
    from rich.console import Console
    from rich.table import Table

    what = "warping error" if result.mode == "video" else "scores"
    table = Table(title=f"{what} of {result.labels[0]}")
    for column in ("metric", "n", "mean", "std", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, s in result.summary.items():
        arrow = "↑" if name in HIGHER_IS_BETTER else "↓"
        if "value" in s:
            table.add_row(f"{name} {arrow}", _fmt(s["n"]), _fmt(s["value"]), "", "")
        else:
            ci = f"[{_fmt(s['ci95_low'])}, {_fmt(s['ci95_high'])}]"
            table.add_row(f"{name} {arrow}", _fmt(s["n"]), _fmt(s["mean"]), _fmt(s["std"]), ci)
    Console().print(table)


def _print_comparison(result: EvaluationResult) -> None:
    from rich.console import Console
    from rich.table import Table

    label_a, label_b = result.labels
    table = Table(title=f"A = {label_a}   B = {label_b}   (paired over the same items)")
    for column in ("metric", "n", "mean A", "mean B", "B − A", "95% CI", "t-test p", "Wilcoxon p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, c in result.summary.items():
        arrow = "↑" if name in HIGHER_IS_BETTER else "↓"
        if "value_a" in c:
            difference = _fmt(c["value_b"] - c["value_a"])
            table.add_row(
                f"{name} {arrow}", "", _fmt(c["value_a"]), _fmt(c["value_b"]), difference,
                "", "", "",
            )  # fmt: skip
            continue
        d = c["difference"]
        table.add_row(
            f"{name} {arrow}",
            _fmt(c["n"]),
            _fmt(c["mean_a"]),
            _fmt(c["mean_b"]),
            _fmt(d["mean"]),
            f"[{_fmt(d['ci95_low'])}, {_fmt(d['ci95_high'])}]",
            _fmt(c["t_pvalue"]),
            _fmt(c["wilcoxon_pvalue"]),
        )
    Console().print(table)
