"""``brushwork evaluate``: score stylisation, editing and video results."""

from __future__ import annotations

import argparse
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.choices import DEVICE_CHOICES
from brushwork.cli.argtypes import names

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
first use (see `brushwork weights`); leave a metric out with --metrics to skip its
download.
"""

STYLE_METRICS = (
    "ssim",
    "lpips",
    "content_loss",
    "gram_loss",
    "clip_style",
    "histogram",
    "fid",
    "artfid",
)
EDIT_METRICS = ("clip_text", "clip_direction", "clip_accuracy", "structure", "lpips")
VIDEO_METRICS = ("warping_error",)
#: Metrics over whole sets (no per-item value).
SET_METRICS = ("fid", "artfid")
#: Direction of improvement, shown in the summary.
HIGHER_IS_BETTER = {"ssim", "clip_style", "clip_text", "clip_direction", "clip_accuracy"}
ASPECT_TOLERANCE = 0.02


#: One line for ``brushwork --help``.
HELP = "score stylisation, editing and video results"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help=HELP,
        description="Score results against their inputs: content and style fidelity, "
        "FID/ArtFID, CLIP and structure scores for edits, warping error for videos. "
        "Prints a summary (mean, std, 95%% CI) and writes per-item scores.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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

    g = p.add_argument_group("models and weights")
    g.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    g.add_argument("--lpips-weights", metavar="PATH", help="LPIPS linear layers (alex.pth)")
    g.add_argument("--lpips-trunk-weights", metavar="PATH", help="AlexNet/VGG-16 trunk file")
    g.add_argument("--vgg-weights", metavar="PATH", help="VGG-19 file (content/Gram loss)")
    g.add_argument("--inception-weights", metavar="PATH", help="FID Inception file")
    g.add_argument("--art-inception-weights", metavar="PATH", help="ArtFID Inception file")
    g.add_argument(
        "--inception-size",
        type=int,
        default=299,
        help="Inception input size (299: comparable FID; smaller only for quick checks)",
    )
    g.add_argument("--clip-model", default=None, help="CLIP hub id or folder")
    g.add_argument("--dino-model", default=None, help="DINO-ViT hub id or folder")
    g.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="optical flow")

    g = p.add_argument_group("running")
    g.add_argument("--device", default="auto", help="|".join(DEVICE_CHOICES))
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


# --------------------------------------------------------------------------- helpers


@dataclass
class Item:
    """One scored item: names of its files and its per-item scores."""

    name: str
    files: dict[str, Path]
    scores: dict[str, float] = field(default_factory=dict)


def _choose_metrics(args: argparse.Namespace, available: tuple[str, ...]) -> list[str]:
    from brushwork.errors import ConfigError

    if args.metrics is None:
        return list(available)
    chosen = []
    for name in args.metrics:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown metric '{name}' for this mode{hint} (valid: {', '.join(available)})"
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


def _skip_hint(metric: str, metrics: list[str]) -> str:
    others = [m for m in metrics if m != metric and not (metric == "lpips" and m == "artfid")]
    if others:
        return f"\nTo score without it, leave '{metric}' out: --metrics {','.join(others)}"
    return ""


def _load(metric: str, metrics: list[str], loader):
    """Run ``loader()``; a WeightsError gains a hint on skipping ``metric``."""
    from brushwork.errors import WeightsError

    try:
        return loader()
    except WeightsError as error:
        raise WeightsError(f"{error}{_skip_hint(metric, metrics)}") from error


def _fit(reference, result, ref_path: Path, result_path: Path):
    """``reference`` resized to ``result``'s size (aspect ratios must agree)."""
    from brushwork.errors import ImageError
    from brushwork.image import resize_to

    (rh, rw), (h, w) = reference.shape[-2:], result.shape[-2:]
    if (rh, rw) == (h, w):
        return reference
    if abs((rw / rh) / (w / h) - 1) > ASPECT_TOLERANCE:
        raise ImageError(
            f"{ref_path.name} is {rw}×{rh} px but its result {result_path.name} is {w}×{h} px: "
            "the aspect ratios differ, so they cannot be compared pixel for pixel; "
            "crop the result (or the input) to the same aspect ratio"
        )
    return resize_to(reference, h, w)


def _progress(total: int, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    return progress


# --------------------------------------------------------------------------- modes


def _style_items(args: argparse.Namespace, results_dir: str) -> list[Item]:
    from brushwork.metrics.pairing import list_images, pair_style_triples

    triples = pair_style_triples(
        list_images(args.content, what="content"),
        list_images(args.style, what="style"),
        list_images(results_dir, what="results"),
    )
    return [
        Item(t.name, {"content": t.content, "style": t.style, "result": t.result}) for t in triples
    ]


def _edit_items(args: argparse.Namespace, results_dir: str) -> list[Item]:
    from brushwork.metrics.pairing import list_images, pair_by_name

    pairs = pair_by_name(
        list_images(args.input, what="input"),
        list_images(results_dir, what="results"),
        what="input",
    )
    return [Item(p.name, {"input": p.reference, "result": p.result}) for p in pairs]


class Models:
    """The networks the chosen metrics need, loaded once (fails early on missing weights)."""

    def __init__(self, args: argparse.Namespace, metrics: list[str], device) -> None:
        self.device = device
        self.lpips = self.vgg = self.clip = self.dino = None
        self.inception: dict[str, Any] = {}
        if "lpips" in metrics or "artfid" in metrics:
            from brushwork.metrics.lpips import load_lpips

            self.lpips = _load(
                "lpips",
                metrics,
                lambda: load_lpips(
                    args.lpips_net,
                    linear_weights=args.lpips_weights,
                    trunk_weights=args.lpips_trunk_weights,
                    device=device,
                ),
            )
        if "content_loss" in metrics or "gram_loss" in metrics:
            from brushwork.encoders import load_vgg_encoder

            self.vgg = _load(
                "gram_loss",
                metrics,
                lambda: load_vgg_encoder("vgg19", weights=args.vgg_weights, device=device),
            )
        for metric, variant, path in (
            ("fid", "fid", args.inception_weights),
            ("artfid", "art", args.art_inception_weights),
        ):
            if metric in metrics:
                from brushwork.metrics.fid import load_inception

                size = args.inception_size if variant == "fid" else "default"
                self.inception[metric] = _load(
                    metric,
                    metrics,
                    lambda v=variant, p=path, s=size: load_inception(
                        v, weights=p, input_size=s, device=device
                    ),
                )
        if any(m.startswith("clip") for m in metrics):
            from brushwork.metrics.clip import DEFAULT_CLIP_MODEL, load_clip

            self.clip = _load(
                "clip",
                metrics,
                lambda: load_clip(args.clip_model or DEFAULT_CLIP_MODEL, device=device),
            )
        if "structure" in metrics:
            from brushwork.metrics.structure import DEFAULT_DINO_MODEL, load_dino

            self.dino = _load(
                "structure",
                metrics,
                lambda: load_dino(args.dino_model or DEFAULT_DINO_MODEL, device=device),
            )


def _score_style(
    items: list[Item], metrics: list[str], models: Models, args: argparse.Namespace
) -> dict[str, float]:
    """Fill per-item scores; returns the set-level scores (fid, artfid)."""
    import numpy as np
    import torch

    from brushwork.image import load_image, resize_long_side
    from brushwork.metrics.ssim import ssim
    from brushwork.metrics.style import (
        color_histogram_distance,
        content_feature_loss,
        gram_style_loss,
    )

    device = models.device
    features: dict[str, list] = {m: [] for m in models.inception}
    style_cache: dict[Path, torch.Tensor] = {}
    with _progress(len(items), not args.quiet) as bar, torch.no_grad():
        task = bar.add_task("scoring", total=len(items))
        for item in items:
            result = load_image(item.files["result"])
            content = _fit(
                load_image(item.files["content"]),
                result,
                item.files["content"],
                item.files["result"],
            )
            if item.files["style"] not in style_cache:
                style_cache[item.files["style"]] = load_image(item.files["style"])
            style_full = style_cache[item.files["style"]]
            style = resize_long_side(style_full, max(result.shape[-2:]))
            r, c, s = (x[None].to(device) for x in (result, content, style))
            scores = item.scores
            if "ssim" in metrics:
                scores["ssim"] = float(ssim(result, content))
            if models.lpips is not None:
                scores["lpips"] = float(models.lpips(r, c)[0])
            if "content_loss" in metrics:
                scores["content_loss"] = float(content_feature_loss(models.vgg, r, c)[0])
            if "gram_loss" in metrics:
                scores["gram_loss"] = float(gram_style_loss(models.vgg, r, s)[0])
            if "clip_style" in metrics:
                scores["clip_style"] = float(models.clip.image_similarity(r, s)[0])
            if "histogram" in metrics:
                scores["histogram"] = float(color_histogram_distance(result, style_full))
            for metric, model in models.inception.items():
                features[metric].append(model(r).double().cpu().numpy()[0])
            bar.advance(task)
    set_scores: dict[str, float] = {}
    if models.inception:
        from brushwork.metrics.fid import art_fid, fid_from_features, inception_features

        styles = sorted(style_cache)
        for metric, model in models.inception.items():
            style_feats = inception_features(
                model,
                lambda i: style_cache[styles[i]],
                count=len(styles),
                batch_size=args.batch_size,
                device=device,
            )
            fid = fid_from_features(style_feats, np.stack(features[metric]))
            if metric == "fid":
                set_scores["fid"] = fid
            else:
                lpips_mean = float(np.mean([it.scores["lpips"] for it in items]))
                set_scores["artfid"] = art_fid(fid, lpips_mean)
                set_scores["artfid_fid"] = fid
    if "lpips" not in metrics:  # computed only for ArtFID
        for item in items:
            item.scores.pop("lpips", None)
    return set_scores


def _score_edit(
    items: list[Item], metrics: list[str], models: Models, args: argparse.Namespace
) -> dict[str, float]:
    import torch

    from brushwork.image import load_image

    device = models.device
    with _progress(len(items), not args.quiet) as bar, torch.no_grad():
        task = bar.add_task("scoring", total=len(items))
        for item in items:
            result = load_image(item.files["result"])
            source = _fit(
                load_image(item.files["input"]), result, item.files["input"], item.files["result"]
            )
            r, x = result[None].to(device), source[None].to(device)
            scores = item.scores
            if "clip_text" in metrics:
                scores["clip_text"] = float(models.clip.text_score(r, args.target)[0])
            if "clip_direction" in metrics:
                scores["clip_direction"] = float(
                    models.clip.direction_score(x, r, args.source, args.target)[0]
                )
            if "clip_accuracy" in metrics:
                scores["clip_accuracy"] = float(
                    models.clip.accuracy(r, args.source, args.target)[0]
                )
            if "structure" in metrics:
                scores["structure"] = float(models.dino.distance(r, x)[0])
            if "lpips" in metrics:
                scores["lpips"] = float(models.lpips(r, x)[0])
            bar.advance(task)
    return {}


def _score_video(args: argparse.Namespace) -> tuple[list[Item], dict[str, float]]:
    from brushwork.metrics.warping import read_video_frames, warping_error

    frames = read_video_frames(args.video)
    stylised = read_video_frames(args.results)
    result = warping_error(frames, stylised, method=args.flow)
    items = [
        Item(
            f"frame_{t:05d}",
            {"input": Path(args.video), "result": Path(args.results)},
            {"warping_error": value},
        )
        for t, value in enumerate(result.per_pair, start=1)
    ]
    return items, {"warping_error": result.mean}


# --------------------------------------------------------------------------- output


def _rows(items: list[Item], metrics: list[str], label: str | None = None) -> list[dict]:
    rows = []
    for item in items:
        row: dict[str, Any] = {"name": item.name}
        if label is not None:
            row["set"] = label
        row.update({k: str(v) for k, v in item.files.items()})
        row.update({m: item.scores.get(m, math.nan) for m in metrics if m not in SET_METRICS})
        rows.append(row)
    return rows


def _write_output(path: Path, rows: list[dict], summary: dict) -> None:
    import csv
    import io
    import json

    if path.suffix.lower() == ".json":
        text = json.dumps({"items": rows, "summary": summary}, indent=2, default=_jsonable)
    else:
        buffer = io.StringIO()
        fields: list[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    from brushwork.atomic import write_text_atomic

    write_text_atomic(path, text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _summary(items: list[Item], metrics: list[str], set_scores: dict[str, float]) -> dict:
    from brushwork.metrics.summary import summarize

    out: dict[str, Any] = {}
    for m in metrics:
        if m in SET_METRICS:
            if m in set_scores:
                out[m] = {"value": set_scores[m], "n": len(items)}
        else:
            out[m] = summarize([it.scores.get(m, math.nan) for it in items]).as_dict()
    if "artfid_fid" in set_scores:
        out["artfid"]["fid_art_inception"] = set_scores["artfid_fid"]
    if "warping_error" in set_scores:
        out["warping_error"]["video_mean"] = set_scores["warping_error"]
    return out


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_summary(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("metric", "n", "mean", "std", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, s in summary.items():
        arrow = "↑" if name in HIGHER_IS_BETTER else "↓"
        if "value" in s:
            table.add_row(f"{name} {arrow}", _fmt(s["n"]), _fmt(s["value"]), "", "")
        else:
            ci = f"[{_fmt(s['ci95_low'])}, {_fmt(s['ci95_high'])}]"
            table.add_row(f"{name} {arrow}", _fmt(s["n"]), _fmt(s["mean"]), _fmt(s["std"]), ci)
    Console().print(table)


def _print_comparison(comparison: dict, labels: tuple[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"A = {labels[0]}   B = {labels[1]}   (paired over the same items)")
    for column in ("metric", "n", "mean A", "mean B", "B − A", "95% CI", "t-test p", "Wilcoxon p"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, c in comparison.items():
        arrow = "↑" if name in HIGHER_IS_BETTER else "↓"
        if "value_a" in c:
            table.add_row(
                f"{name} {arrow}",
                "",
                _fmt(c["value_a"]),
                _fmt(c["value_b"]),
                _fmt(c["value_b"] - c["value_a"]),
                "",
                "",
                "",
            )
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


# --------------------------------------------------------------------------- run


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


def _edit_metrics(args: argparse.Namespace) -> list[str]:
    from brushwork.errors import ConfigError

    metrics = _choose_metrics(args, EDIT_METRICS)
    needs_source = ("clip_direction", "clip_accuracy")
    if args.source is None:
        explicit = [m for m in needs_source if args.metrics and m in args.metrics]
        if explicit:
            raise ConfigError(f"{', '.join(explicit)} needs --source (the prompt of the input)")
        metrics = [m for m in metrics if m not in needs_source]
    if any(m.startswith("clip") for m in metrics) and not args.target:
        raise ConfigError("CLIP edit scores need --target (the prompt of the edit)")
    return metrics


def _check_fid_sizes(items: list[Item], metrics: list[str], explicit: bool) -> list[str]:
    from brushwork.errors import ImageError
    from brushwork.metrics.fid import MIN_FID_IMAGES

    wanted = [m for m in metrics if m in SET_METRICS]
    if not wanted:
        return metrics
    n_styles = len({it.files["style"] for it in items})
    if len(items) >= MIN_FID_IMAGES and n_styles >= MIN_FID_IMAGES:
        return metrics
    if not explicit:
        return [m for m in metrics if m not in SET_METRICS]
    raise ImageError(
        f"{' and '.join(wanted)} need at least {MIN_FID_IMAGES} results and {MIN_FID_IMAGES} "
        f"style images (got {len(items)} results, {n_styles} style images); reliable values "
        "need hundreds. Leave them out with --metrics"
    )


def _evaluate(args, mode: str, results: str, metrics: list[str], device):
    items = _style_items(args, results) if mode == "style" else _edit_items(args, results)
    if mode == "style":
        metrics = _check_fid_sizes(items, metrics, explicit=args.metrics is not None)
    return items, metrics


def run(args: argparse.Namespace) -> int:
    import json

    from brushwork.devices import resolve_device
    from brushwork.errors import ConfigError

    mode = _mode(args)
    device = resolve_device(args.device)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    output = None
    if args.output:
        output = Path(args.output)
        if output.suffix.lower() not in (".csv", ".json"):
            raise ConfigError(f"--output must end in .csv or .json, got {output.name}")
        if not output.parent.is_dir():
            from brushwork.errors import OutputPathError

            raise OutputPathError(f"the folder of {output} does not exist; create it first")

    if mode == "video":
        metrics = _choose_metrics(args, VIDEO_METRICS)
        items, set_scores = _score_video(args)
        summary = _summary(items, metrics, set_scores)
        rows = _rows(items, metrics)
        _finish(args, output, rows, summary, f"warping error of {Path(args.results).name}")
        return 0

    metrics = _choose_metrics(args, STYLE_METRICS) if mode == "style" else _edit_metrics(args)
    score = _score_style if mode == "style" else _score_edit
    result_sets = list(args.compare) if args.compare else [args.results]
    evaluated = []
    models = None
    for results in result_sets:
        items, metrics_here = _evaluate(args, mode, results, metrics, device)
        if models is None:
            metrics = metrics_here
            models = Models(args, metrics, device)
        set_scores = score(items, metrics, models, args)
        evaluated.append((items, set_scores))

    if not args.compare:
        items, set_scores = evaluated[0]
        summary = _summary(items, metrics, set_scores)
        _finish(args, output, _rows(items, metrics), summary, f"scores of {args.results}")
        return 0

    from brushwork.metrics.summary import paired_comparison

    (items_a, sets_a), (items_b, sets_b) = evaluated
    _check_same_items(items_a, items_b)
    comparison: dict[str, Any] = {}
    for m in metrics:
        if m in SET_METRICS:
            if m in sets_a and m in sets_b:
                comparison[m] = {"value_a": sets_a[m], "value_b": sets_b[m]}
            continue
        c = paired_comparison(
            [it.scores.get(m, math.nan) for it in items_a],
            [it.scores.get(m, math.nan) for it in items_b],
        )
        comparison[m] = {
            "n": c.n,
            "mean_a": c.mean_a,
            "mean_b": c.mean_b,
            "difference": c.difference.as_dict(),
            "t_statistic": c.t_statistic,
            "t_pvalue": c.t_pvalue,
            "wilcoxon_pvalue": c.wilcoxon_pvalue,
        }
    rows = _rows(items_a, metrics, "A") + _rows(items_b, metrics, "B")
    if output is not None:
        _write_output(output, rows, _clean(comparison))
    if args.json:
        print(json.dumps(_clean(comparison), indent=2))
    else:
        _print_comparison(comparison, (args.compare[0], args.compare[1]))
    return 0


def _check_same_items(items_a: list[Item], items_b: list[Item]) -> None:
    from brushwork.errors import ImageError

    names_a, names_b = [it.name for it in items_a], [it.name for it in items_b]
    if names_a != names_b:
        only_a = sorted(set(names_a) - set(names_b))
        only_b = sorted(set(names_b) - set(names_a))
        raise ImageError(
            "--compare needs the same items in both folders; only in A: "
            f"{', '.join(only_a) or '–'}; only in B: {', '.join(only_b) or '–'}"
        )


def _finish(args, output: Path | None, rows: list[dict], summary: dict, title: str) -> None:
    import json

    if output is not None:
        _write_output(output, rows, _clean(summary))
    if args.json:
        print(json.dumps(_clean(summary), indent=2))
    else:
        _print_summary(summary, title)
