"""``brushwork export``: a trained Johnson or AdaIN model to ONNX (dynamic sizes)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a Johnson or AdaIN model to ONNX",
        description="Export a trained Johnson or AdaIN model (.safetensors) to ONNX with "
        "dynamic batch, height and width; run it with `brushwork stylize --model X.onnx` "
        "(AdaIN: with --style and --alpha; one style). WCT does not export (its whitening "
        "needs an eigendecomposition, which ONNX has no operator for).",
        epilog="examples:\n  brushwork export starry.safetensors -o starry.onnx\n"
        "  brushwork export adain.safetensors -o adain.onnx\n"
        "  brushwork stylize photo.jpg --model adain.onnx --style a.jpg --alpha 0.7 -o out.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file from `brushwork train johnson|adain`")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.transfer.onnx_export import export_onnx

    out = export_onnx(args.model, args.output, opset=args.opset)
    print(f"saved {out}", file=sys.stderr)
    return 0
