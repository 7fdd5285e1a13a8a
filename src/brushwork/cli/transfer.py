"""``brushwork transfer``: optimisation-based style transfer (Gatys et al.)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.cli import options
from brushwork.cli.argtypes import floats, names

EPILOG = """examples:
  brushwork transfer photo.jpg --style starry.jpg -o out.png
  brushwork transfer photo.jpg --style a.jpg b.jpg --style-weights 0.7,0.3 \\
            --preserve-color luminance --size 1024 --steps 400 --seed 0 --device cuda
  brushwork transfer photo.jpg --style sky.jpg ground.jpg --mask sky_mask.png ground_mask.png \\
            -o out.png

With --pyramid on (or auto, above --pyramid-threshold pixels) --steps is the total over
all pyramid levels: the coarser levels share --coarse-share of it evenly, the full-size
level gets the rest (at least one step).
Pretrained VGG weights are downloaded on first use (VGG-19: 548 MiB); see
`brushwork weights --help` to prefetch them or to use a local copy (--weights PATH).
"""


#: One line for ``brushwork --help``.
HELP = "optimisation-based style transfer (Gatys)"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights"}

#: Largest relative difference of aspect ratio between a mask and the content.
MASK_ASPECT_TOLERANCE = 0.02


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.image import DEFAULT_MAX_PIXELS
    from brushwork.transfer.gatys import (
        INIT_CHOICES,
        OPTIMIZER_CHOICES,
        PYRAMID_CHOICES,
        GatysSettings,
    )

    d = GatysSettings()
    p = subparsers.add_parser(
        "transfer",
        help=HELP,
        description="Stylise CONTENT with one or more --style images by optimising the pixels "
        "(Gatys et al. 2016, with the controls of Gatys et al. 2017).",
        epilog=EPILOG,
    )
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="*", metavar="style", help=argparse.SUPPRESS)
    options.add_output(p)
    options.add_styles(p)

    g = p.add_argument_group("size and schedule")
    options.add_size(g, default=str(d.size))
    options.add_steps(g, default=d.steps, what="optimisation steps in total, over all levels")
    g.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.optimizer)
    options.add_deprecated(g, "--optimiser", dest="optimizer", new="--optimizer")
    g.add_argument(
        "--learning-rate",
        "--lr",
        type=options.positive_float,
        default=None,
        help="default: 1 (L-BFGS), 0.02 (Adam)",
    )
    g.add_argument("--init", choices=INIT_CHOICES, default=d.init, help="starting image")
    g.add_argument(
        "--pyramid",
        choices=PYRAMID_CHOICES,
        default=d.pyramid,
        help=f"coarse-to-fine optimisation (auto: above {d.pyramid_threshold} pixels)",
    )
    g.add_argument(
        "--pyramid-min-size",
        type=options.count(16),
        default=d.pyramid_min_size,
        metavar="N",
        help="coarsest long side",
    )
    g.add_argument(
        "--coarse-share",
        type=options.fraction,
        default=d.coarse_share,
        help="fraction of --steps the coarser levels get together (below 1)",
    )
    g.add_argument(
        "--coarse-steps",
        type=options.count(1),
        default=None,
        metavar="N",
        help="steps each coarser level asks for instead of --coarse-share; still taken out "
        "of --steps, the full-size level keeping at least one",
    )
    g.add_argument(
        "--pyramid-threshold",
        type=options.count(0),
        default=d.pyramid_threshold,
        metavar="PIXELS",
        help="output pixels above which --pyramid auto goes coarse to fine",
    )
    g.add_argument("--lbfgs-history", type=options.count(1), default=d.lbfgs_history, metavar="N")
    g.add_argument(
        "--no-line-search",
        dest="line_search",
        action="store_false",
        help="plain L-BFGS steps (stalls on losses of small scale)",
    )
    g.add_argument(
        "--precondition",
        type=options.non_negative_float,
        default=d.precondition,
        metavar="C",
        help="weight of the multiscale preconditioner of L-BFGS (0: textbook L-BFGS)",
    )

    g = p.add_argument_group("losses")
    g.add_argument("--content-weight", type=options.non_negative_float, default=d.content_weight)
    g.add_argument("--style-weight", type=options.non_negative_float, default=d.style_weight)
    g.add_argument(
        "--tv-weight", type=options.non_negative_float, default=d.tv_weight, help="total variation"
    )
    g.add_argument("--content-layers", type=names, default=d.content_layers, help="e.g. relu4_2")
    g.add_argument(
        "--style-layers", type=names, default=d.style_layers, help="e.g. relu1_1,relu2_1,..."
    )
    g.add_argument("--style-layer-weights", type=floats, default=None, help="one per style layer")
    g.add_argument("--encoder", choices=("vgg19", "vgg16"), default=d.encoder)
    g.add_argument("--pooling", choices=("max", "avg"), default=d.pooling)
    options.add_weights(g, what="VGG encoder")

    g = p.add_argument_group("style controls")
    g.add_argument(
        "--style-scale",
        type=options.positive_float,
        default=d.style_scale,
        help="style size relative to the output",
    )
    options.add_preserve_color(g)
    options.add_regions(p)

    g = p.add_argument_group("running")
    options.add_device(g)
    options.add_precision(g, default=d.precision)
    options.add_seed(g, default=d.seed)
    g.add_argument(
        "--save-every",
        type=options.count(0),
        default=0,
        metavar="N",
        help="save the image every N steps (0: never)",
    )
    g.add_argument(
        "--max-pixels",
        type=options.count(1),
        default=DEFAULT_MAX_PIXELS,
        help="refuse input images larger than this",
    )
    options.add_memory_limit(g)
    options.add_quiet(g)
    return p


def style_paths(args: argparse.Namespace) -> list[str]:
    """The style images from ``--style``, and from the deprecated positional form."""
    from brushwork.errors import ConfigError

    if args.styles:
        print(
            "warning: style images after the content image are deprecated and will not be "
            "accepted in the next release; use --style " + " ".join(args.styles),
            file=sys.stderr,
        )
    paths = [*args.styles, *(args.style or [])]
    if not paths:
        raise ConfigError("give at least one style image: --style STYLE.jpg")
    return paths


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.regions import read_region_flags
    from brushwork.image import check_output_path, load_image
    from brushwork.resources import check_memory
    from brushwork.transfer.gatys import (
        GatysSettings,
        describe_schedule,
        estimate_memory,
        planned_schedule,
    )

    regions = read_region_flags(args)
    styles_given = list(regions.styles) if regions.wanted else style_paths(args)
    settings = GatysSettings(
        size=args.size,
        steps=args.steps,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        init=args.init,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        content_layers=args.content_layers,
        style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights,
        style_blend=args.style_weights,
        style_scale=args.style_scale,
        preserve_color=args.preserve_color,
        pyramid=args.pyramid,
        pyramid_threshold=args.pyramid_threshold,
        pyramid_min_size=args.pyramid_min_size,
        coarse_share=args.coarse_share,
        coarse_steps=args.coarse_steps,
        encoder=args.encoder,
        pooling=args.pooling,
        precision=args.precision,
        lbfgs_history=args.lbfgs_history,
        precondition=args.precondition,
        line_search=args.line_search,
        seed=args.seed,
    )
    settings.validate(num_styles=len(styles_given))
    content = load_image(args.content, max_pixels=args.max_pixels)
    styles = [load_image(path, max_pixels=args.max_pixels) for path in styles_given]
    output = check_output_path(
        args.output,
        inputs=[args.content, *styles_given, *regions.plain_masks, *regions.word_masks.values()],
    )
    masks = load_masks(regions.plain_masks or None, args, content, len(styles))
    content_size = tuple(content.shape[-2:])
    style_sizes = [tuple(style.shape[-2:]) for style in styles]
    check_memory(
        estimate_memory(content_size, settings, style_sizes=style_sizes),
        _memory_device(args.device),
        what=f"Gatys transfer at {args.size} px",
        limit_gib=args.memory_limit,
    )
    if not args.quiet:
        schedule = planned_schedule(content_size, style_sizes, settings)
        print(f"schedule: {describe_schedule(schedule)}", file=sys.stderr)
    if regions.wanted:
        from brushwork.cli.regions import regions_for_image

        masks = regions_for_image(args, regions, content)
    result = _optimise(args, content, styles, masks, settings, output, regions)
    from brushwork.image import save_image

    save_image(result.image, output)
    height, width = result.image.shape[-2:]
    steps = sum(level[2] for level in result.levels)
    if not args.quiet:
        print(
            f"saved {output} ({width}×{height}) — {steps} steps in {result.seconds:.1f} s "
            f"on {result.device} ({result.precision}), final loss {result.final_loss:.4g}",
            file=sys.stderr,
        )
    return 0


def load_masks(paths: list[str] | None, args: argparse.Namespace, content, num_styles: int):
    """The ``--mask`` images as (1, H, W) masks of the content's size, or ``None``.

    Refuses a count other than one per style, and a mask whose aspect ratio is not the
    content's (both sizes in the message); a mask of the right shape is resized.
    """
    from brushwork.errors import ConfigError
    from brushwork.image import load_mask, resize_to

    if paths is None:
        return None
    if len(paths) != num_styles:
        raise ConfigError(
            f"{len(paths)} mask(s) given for {num_styles} style image(s): --mask needs "
            "one mask per style"
        )
    height, width = content.shape[-2:]
    masks = []
    for path in paths:
        mask = load_mask(path, max_pixels=args.max_pixels)
        mask_height, mask_width = mask.shape[-2:]
        if abs(mask_width / mask_height - width / height) > MASK_ASPECT_TOLERANCE * width / height:
            raise ConfigError(
                f"mask {path} is {mask_width}×{mask_height} but the content image is "
                f"{width}×{height}; a mask must have the content's aspect ratio"
            )
        masks.append(resize_to(mask, height, width))
    return masks


def _memory_device(name: str):
    from brushwork.devices import resolve_device

    return resolve_device(name)


def _optimise(args, content, styles, masks, settings, output: Path, regions=None):
    """Run :func:`gatys` with the progress display and ``--save-every`` snapshots."""
    from brushwork.cli.progress import step_progress
    from brushwork.image import save_image
    from brushwork.transfer.gatys import gatys

    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("transfer", total=settings.steps, loss="–")

        def on_step(info) -> None:
            progress.update(
                task,
                total=info.total_steps,
                completed=info.step,
                description=f"level {info.level + 1}",
                loss=f"{info.loss:.4g}",
            )
            if args.save_every and info.step % args.save_every == 0:
                save_image(info.preview(), _intermediate_path(output, info.step))

        common = dict(settings=settings, weights=args.weights, device=args.device, callback=on_step)
        if regions is not None and regions.wanted:
            from brushwork.regional.apply import regional_gatys

            return regional_gatys(content, regions.styles, masks, **common)
        return gatys(content, styles, masks=masks, **common)


def _intermediate_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")
