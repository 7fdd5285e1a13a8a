"""``brushwork export``: a trained Johnson or AdaIN model to ONNX (dynamic sizes)."""

from __future__ import annotations

import argparse
import sys

from brushwork.cli import options

#: One line for ``brushwork --help``.
HELP = "export a Johnson or AdaIN model to ONNX"

#: The option that gives each weight file this command uses (for missing-weights hints):
#: none, export reads only the model file it is given.
WEIGHT_FLAGS: dict[str, str] = {}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help=HELP,
        description="Export a trained Johnson or AdaIN model (.safetensors) to ONNX with "
        "dynamic batch, height and width; run it with `brushwork stylize --model X.onnx` "
        "(AdaIN: with --style and --alpha; one style). WCT does not export (its whitening "
        "needs an eigendecomposition, which ONNX has no operator for).",
        epilog="examples:\n  brushwork export starry.safetensors -o starry.onnx\n"
        "  brushwork export adain.safetensors -o adain.onnx\n"
        "  brushwork export adain.safetensors -o adain-int8.onnx --int8 --calibration-dir coco/\n"
        "  brushwork stylize photo.jpg --model adain.onnx --style a.jpg --alpha 0.7 -o out.png",
    )
    p.add_argument("model", help="model file from `brushwork train johnson|adain`")
    options.add_output(p, what="ONNX file to write (.onnx)")
    p.add_argument("--opset", type=options.count(13), default=17, help="ONNX opset version")
    p.add_argument(
        "--int8",
        action="store_true",
        help="quantise to 8 bits (onnxruntime static quantisation): several times faster on "
        "CPUs with VNNI, somewhat less accurate; needs --calibration-dir",
    )
    p.add_argument("--calibration-dir", default=None, help="typical images for --int8")
    p.add_argument(
        "--calibration-count",
        type=options.count(1),
        default=32,
        metavar="N",
        help="images used from it",
    )
    options.add_quiet(p)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brushwork.errors import ConfigError, OutputPathError
    from brushwork.resources import probe_writable
    from brushwork.transfer.onnx_export import export_onnx

    model = Path(args.model)
    if model.is_dir():
        raise ConfigError(f"the model {model} is a folder; give the .safetensors model file")
    if not model.is_file():
        raise ConfigError(f"the model file {model} does not exist")
    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise OutputPathError(f"the ONNX output must end in .onnx, got '{output}'")
    if not output.parent.is_dir():
        raise OutputPathError(f"folder {output.parent} for '{output}' does not exist")
    probe_writable(output.parent, "ONNX file")
    if args.int8 and args.calibration_dir is None:
        raise ConfigError("--int8 needs --calibration-dir DIR with a few dozen typical images")
    calibration = None
    if args.calibration_dir is not None:
        from brushwork.image import load_image
        from brushwork.transfer.data import list_images

        files = list_images(args.calibration_dir, what="calibration folder")
        calibration = [load_image(f) for f in files[: args.calibration_count]]
    out = export_onnx(
        args.model, args.output, opset=args.opset, int8=args.int8, calibration=calibration
    )
    if not args.quiet:
        print(f"saved {out}", file=sys.stderr)
    if args.int8 and not args.quiet:
        from brushwork.transfer.onnx_export import open_session, read_metadata

        error = read_metadata(open_session(out)).get("int8_mean_abs_error")
        print(
            f"int8 differs from the float model by {error:.4f} on average (pixels in [0, 1]) "
            "on the calibration images; check a few results before relying on it",
            file=sys.stderr,
        )
    return 0
