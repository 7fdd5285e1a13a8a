"""``brushwork demo``: a first style transfer that needs no pictures of your own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.cli import options

EPILOG = """examples:
  brushwork demo                       # writes demo/content.png, style.png, result.png, sheet.png
  brushwork demo -o first/ --size 512 --steps 300 --device cuda

The content (a drawn landscape) and the style (a drawn brush-stroke painting) are made by
the command itself; the VGG-19 weights (548 MiB) are downloaded on first use. Offline,
the command says in one line which file to fetch and how to pass it (--weights PATH).
Then try your own: brushwork transfer photo.jpg --style painting.jpg -o out.png
"""

#: One line for ``brushwork --help``.
HELP = "a first style transfer on drawn images (no files needed)"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights"}

#: The files the demo writes into its folder.
DEMO_FILES = ("content.png", "style.png", "result.png", "sheet.png")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help=HELP,
        description="Draw a content and a style image and stylise one with the other "
        "(Gatys et al.), to see brushwork work before using your own pictures.",
        epilog=EPILOG,
    )
    p.add_argument(
        "-o", "--output", default="demo", metavar="FOLDER", help="output folder (default: demo)"
    )
    g = p.add_argument_group("run")
    options.add_size(g, default="256")
    options.add_steps(g, default=100, what="optimisation steps in all")
    options.add_seed(g)
    options.add_device(g)
    options.add_precision(g)
    options.add_weights(g, what="VGG-19 network")
    options.add_memory_limit(g)
    options.add_quiet(p)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.resources import check_folder_writable, check_memory

    folder = check_folder_writable(args.output, "demo folder")
    if args.size < 32:
        raise ConfigError(f"--size must be 32 or more for the demo, got {args.size}")
    existing = [name for name in DEMO_FILES if (folder / name).exists()]
    if existing and not args.quiet:
        print(f"note: replacing {', '.join(existing)} in {folder}", file=sys.stderr)

    from brushwork.devices import resolve_device
    from brushwork.transfer.gatys import GatysSettings, estimate_memory

    device = resolve_device(args.device)
    settings = GatysSettings(size=args.size, steps=args.steps, precision=args.precision)
    need = estimate_memory(
        (args.size * 3 // 4, args.size), settings, style_sizes=[(args.size, args.size)]
    )
    check_memory(need, device, what=f"the demo at {args.size} px", limit_gib=args.memory_limit)
    from brushwork import weights

    weights.resolve("vgg19", path=args.weights, progress=not args.quiet)  # fail before drawing

    from brushwork.cli.progress import step_progress
    from brushwork.demo import run_demo
    from brushwork.image import save_image

    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("demo", total=args.steps, loss="–")

        def on_step(info) -> None:
            progress.update(task, completed=info.step, total=info.total_steps,
                            loss=f"{info.loss:.4g}")  # fmt: skip

        result = run_demo(
            size=args.size,
            steps=args.steps,
            seed=args.seed,
            device=device,
            precision=args.precision,
            weights=args.weights,
            callback=on_step,
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(
        DEMO_FILES, (result.content, result.style, result.image, result.sheet), strict=True
    ):
        save_image(image, Path(folder) / name)
    if not args.quiet:
        print(
            f"wrote {folder}/: content.png, style.png, result.png and sheet.png "
            f"({result.steps} steps in {result.seconds:.1f} s); open {folder / 'sheet.png'}",
            file=sys.stderr,
        )
    return 0
