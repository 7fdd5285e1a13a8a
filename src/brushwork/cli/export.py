"""``brushwork export``: a trained Johnson or AdaIN model to ONNX (dynamic sizes)."""

from __future__ import annotations

import argparse
import sys

#: One line for ``brushwork --help``.
HELP = "export a Johnson or AdaIN model to ONNX"


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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file from `brushwork train johnson|adain`")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument(
        "--int8",
        action="store_true",
        help="quantise to 8 bits (onnxruntime static quantisation): several times faster on "
        "CPUs with VNNI, somewhat less accurate; needs --calibration-dir",
    )
    p.add_argument("--calibration-dir", default=None, help="typical images for --int8")
    p.add_argument(
        "--calibration-count", type=int, default=32, help="images used from it (%(default)s)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.transfer.onnx_export import export_onnx

    calibration = None
    if args.calibration_dir is not None:
        from brushwork.image import load_image
        from brushwork.transfer.data import list_images

        files = list_images(args.calibration_dir, what="calibration folder")
        calibration = [load_image(f) for f in files[: max(1, args.calibration_count)]]
    out = export_onnx(
        args.model, args.output, opset=args.opset, int8=args.int8, calibration=calibration
    )
    print(f"saved {out}", file=sys.stderr)
    if args.int8:
        from brushwork.transfer.onnx_export import open_session, read_metadata

        error = read_metadata(open_session(out)).get("int8_mean_abs_error")
        print(
            f"int8 differs from the float model by {error:.4f} on average (pixels in [0, 1]) "
            "on the calibration images; check a few results before relying on it",
            file=sys.stderr,
        )
    return 0
