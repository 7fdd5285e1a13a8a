"""``brushwork stylize``: run a trained feed-forward model on images or folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.choices import DEVICE_CHOICES
from brushwork.cli.argtypes import floats

EPILOG = """examples:
  brushwork stylize photo.jpg --model starry.safetensors -o out.png
  brushwork stylize photos/ --model starry.onnx -o stylised/            # a folder in, a folder out
  brushwork stylize photo.jpg --model adain.safetensors --style a.jpg --alpha 0.7 -o out.png
  brushwork stylize photo.jpg --method adain --style a.jpg b.jpg --style-weights 0.7,0.3 -o out.png
  brushwork stylize photo.jpg --method adain --style sky.jpg ground.jpg \\
            --mask sky.png ground.png -o out.png                      # a style per region
  brushwork stylize photo.jpg --model wct.safetensors --style a.jpg --alpha 0.6 -o out.png
  brushwork stylize big.jpg --model starry.safetensors --tile 1024 -o out.png

--method adain without --model uses the published AdaIN weights (downloaded on first use).
"""


#: One line for ``brushwork --help``.
HELP = "stylise images with a trained network (Johnson, AdaIN, WCT, ONNX)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stylize",
        help=HELP,
        description="Stylise an image or a folder of images with a feed-forward model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="image file or folder of images")
    p.add_argument("-o", "--output", required=True, help="output image, or folder for a folder")
    p.add_argument("--model", default=None, help="model file (.safetensors or .onnx)")
    p.add_argument("--method", choices=("johnson", "adain", "wct"), default=None)
    p.add_argument("--style", nargs="+", default=None, help="style image(s) for AdaIN/WCT")
    p.add_argument("--style-weights", type=floats, default=None, help="e.g. 0.7,0.3")
    p.add_argument("--style-size", type=int, default=512, help="style long side (%(default)s)")
    p.add_argument("--alpha", type=float, default=1.0, help="content–style trade-off (AdaIN/WCT)")
    p.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    p.add_argument("--mask", nargs="+", default=None, help="one mask per style (AdaIN)")
    p.add_argument("--size", type=int, default=None, help="resize inputs to this long side")
    p.add_argument("--tile", type=int, default=None, help="tile side for large images")
    p.add_argument("--tile-overlap", type=int, default=64, help="tile overlap (%(default)s)")
    p.add_argument("--device", default="auto", help="|".join(DEVICE_CHOICES))
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile a Johnson network: slow first image, faster later ones of that size",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    from brushwork.errors import OutputPathError
    from brushwork.image import check_output_path
    from brushwork.transfer.data import list_images

    source = Path(args.input)
    if source.is_dir():
        files = list_images(source, what="input folder")
        out_dir = Path(args.output)
        if out_dir.suffix:
            raise OutputPathError(
                f"input {source} is a folder, so --output must be a folder, got '{out_dir}'"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        return [
            (f, check_output_path(out_dir / f.relative_to(source).with_suffix(".png"), inputs=[f]))
            for f in files
        ]
    inputs = [source, *(args.style or []), *(args.mask or [])]
    return [(source, check_output_path(args.output, inputs=inputs))]


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.image import load_image, load_mask, resize_long_side, save_image
    from brushwork.transfer.stylize import load_stylizer

    pairs = _pairs(args)
    styles = [load_image(s) for s in args.style] if args.style else None
    masks = None
    if args.mask is not None:
        if not styles or len(args.mask) != len(styles):
            raise ConfigError("--mask needs one mask per --style image")
        import torch

        loaded = [load_mask(m) for m in args.mask]
        size = loaded[0].shape[-2:]
        from brushwork.image import resize_to

        masks = torch.cat([resize_to(m, *size) for m in loaded])[None]
    stylizer = load_stylizer(
        args.model,
        method=args.method,
        styles=styles,
        style_weights=args.style_weights,
        alpha=args.alpha,
        preserve_color=args.preserve_color,
        device=args.device,
        masks=masks,
        precision=args.precision,
        style_size=args.style_size,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        compile=args.compile,
    )
    import time

    for source, target in pairs:
        image = load_image(source)
        if args.size:
            image = resize_long_side(image, args.size)
        began = time.perf_counter()
        out = stylizer(image[None])[0]
        save_image(out, target)
        if not args.quiet:
            print(f"saved {target} ({time.perf_counter() - began:.2f} s)", file=sys.stderr)
    return 0
