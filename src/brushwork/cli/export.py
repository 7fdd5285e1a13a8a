"""``brushwork export``: a trained Johnson model to ONNX (dynamic height and width)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a Johnson model to ONNX",
        description="Export a trained Johnson model (.safetensors) to ONNX with dynamic "
        "batch, height and width; run it with `brushwork stylize --model X.onnx`.",
        epilog="example:\n  brushwork export starry.safetensors -o starry.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file from `brushwork train johnson`")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.transfer.onnx_export import export_onnx

    out = export_onnx(args.model, args.output, opset=args.opset)
    print(f"saved {out}", file=sys.stderr)
    return 0
