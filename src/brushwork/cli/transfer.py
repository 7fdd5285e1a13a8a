"""``brushwork transfer``: optimisation-based style transfer (Gatys et al.)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.choices import DEVICE_CHOICES, PRECISION_CHOICES
from brushwork.cli.argtypes import floats, names

EPILOG = """examples:
  brushwork transfer photo.jpg starry.jpg -o out.png
  brushwork transfer photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --preserve-color luminance \\
            --size 1024 --steps 400 --seed 0 --device cuda
  brushwork transfer photo.jpg sky.jpg ground.jpg --mask sky_mask.png ground_mask.png -o out.png

Pretrained VGG weights are downloaded on first use (VGG-19: 548 MiB); see
`brushwork weights --help` to prefetch them or to use a local copy.
"""


#: One line for ``brushwork --help``.
HELP = "optimisation-based style transfer (Gatys)"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.image import DEFAULT_MAX_PIXELS
    from brushwork.transfer.gatys import (
        INIT_CHOICES,
        OPTIMIZER_CHOICES,
        PRESERVE_COLOR_CHOICES,
        PYRAMID_CHOICES,
        GatysSettings,
    )

    d = GatysSettings()
    p = subparsers.add_parser(
        "transfer",
        help=HELP,
        description="Stylise CONTENT with one or more STYLE images by optimising the pixels "
        "(Gatys et al. 2016, with the controls of Gatys et al. 2017).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")

    g = p.add_argument_group("size and schedule")
    g.add_argument("--size", type=int, default=d.size, help="long side of the output (%(default)s)")
    g.add_argument("--steps", type=int, default=d.steps, help="steps at full size (%(default)s)")
    g.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.optimizer)
    g.add_argument(
        "--learning-rate", "--lr", type=float, default=None, help="default: 1 (L-BFGS), 0.02 (Adam)"
    )
    g.add_argument("--init", choices=INIT_CHOICES, default=d.init, help="starting image")
    g.add_argument(
        "--pyramid",
        choices=PYRAMID_CHOICES,
        default=d.pyramid,
        help=f"coarse-to-fine optimisation (auto: above {d.pyramid_threshold} pixels)",
    )
    g.add_argument(
        "--pyramid-min-size", type=int, default=d.pyramid_min_size, help="coarsest long side"
    )
    g.add_argument(
        "--coarse-steps",
        type=int,
        default=d.coarse_steps,
        help="steps at each coarser level (%(default)s)",
    )
    g.add_argument(
        "--pyramid-threshold",
        type=int,
        default=d.pyramid_threshold,
        help="output pixels above which --pyramid auto goes coarse to fine",
    )
    g.add_argument("--lbfgs-history", type=int, default=d.lbfgs_history)
    g.add_argument(
        "--no-line-search",
        dest="line_search",
        action="store_false",
        help="plain L-BFGS steps (stalls on losses of small scale)",
    )

    g = p.add_argument_group("losses")
    g.add_argument("--content-weight", type=float, default=d.content_weight)
    g.add_argument("--style-weight", type=float, default=d.style_weight)
    g.add_argument("--tv-weight", type=float, default=d.tv_weight, help="total variation")
    g.add_argument("--content-layers", type=names, default=d.content_layers, help="e.g. relu4_2")
    g.add_argument(
        "--style-layers", type=names, default=d.style_layers, help="e.g. relu1_1,relu2_1,..."
    )
    g.add_argument("--style-layer-weights", type=floats, default=None, help="one per style layer")
    g.add_argument("--encoder", choices=("vgg19", "vgg16"), default=d.encoder)
    g.add_argument("--pooling", choices=("max", "avg"), default=d.pooling)
    g.add_argument("--weights", default=None, metavar="PATH", help="encoder weight file")

    g = p.add_argument_group("style controls")
    g.add_argument(
        "--style-blend",
        type=floats,
        default=None,
        help="weights of the style images, e.g. 0.7,0.3",
    )
    g.add_argument(
        "--style-scale", type=float, default=d.style_scale, help="style size relative to output"
    )
    g.add_argument(
        "--preserve-color",
        choices=PRESERVE_COLOR_CHOICES,
        default=d.preserve_color,
        help="keep the content's colours: luminance-only transfer, or match the style's "
        "colours to the content by histogram or mean/covariance",
    )
    g.add_argument(
        "--mask",
        nargs="+",
        default=None,
        metavar="MASK",
        help="one mask per style (regional style)",
    )

    g = p.add_argument_group("running")
    g.add_argument("--device", default="auto", help="|".join(DEVICE_CHOICES))
    g.add_argument("--precision", choices=PRECISION_CHOICES, default=d.precision)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument(
        "--save-every", type=int, default=0, metavar="N", help="save the image every N steps"
    )
    g.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse input images larger than this (%(default)s)",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.image import check_output_path, load_image, load_mask, save_image
    from brushwork.transfer.gatys import GatysSettings, gatys

    inputs = [args.content, *args.styles, *(args.mask or [])]
    output = check_output_path(args.output, inputs=inputs)
    if args.save_every < 0:
        raise ConfigError(f"--save-every must be 0 or more, got {args.save_every}")
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
        style_blend=args.style_blend,
        style_scale=args.style_scale,
        preserve_color=args.preserve_color,
        pyramid=args.pyramid,
        pyramid_threshold=args.pyramid_threshold,
        pyramid_min_size=args.pyramid_min_size,
        coarse_steps=args.coarse_steps,
        encoder=args.encoder,
        pooling=args.pooling,
        precision=args.precision,
        lbfgs_history=args.lbfgs_history,
        line_search=args.line_search,
        seed=args.seed,
    )
    settings.validate(num_styles=len(args.styles))
    content = load_image(args.content, max_pixels=args.max_pixels)
    styles = [load_image(path, max_pixels=args.max_pixels) for path in args.styles]
    masks = None
    if args.mask is not None:
        masks = [load_mask(path, max_pixels=args.max_pixels) for path in args.mask]

    from brushwork.cli.progress import step_progress

    with step_progress(enabled=not args.quiet and sys.stderr.isatty()) as progress:
        task = progress.add_task("transfer", total=None, loss="–")

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

        result = gatys(
            content,
            styles,
            settings=settings,
            masks=masks,
            weights=args.weights,
            device=args.device,
            callback=on_step,
        )
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


def _intermediate_path(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}_step{step:05d}{output.suffix}")
