"""``brushwork ui``: the local web app over every method (Gradio; ``brushwork[ui]``)."""

from __future__ import annotations

import argparse
import sys

from brushwork.cli import options

EPILOG = """examples:
  brushwork ui                                     # http://127.0.0.1:7860
  brushwork ui --port 7861 --model stabilityai/stable-diffusion-xl-base-1.0
  brushwork ui --model ./sd15-folder --device cpu  # offline: a save_pretrained folder

The app binds to 127.0.0.1 (this machine only) unless --host says otherwise, and never
makes a public link unless --share is given. Models load on first use in each browser
session (the same lookup as the other commands: Hub cache, local folders, the weights
registry); one job runs at a time per kind of model, the others wait in the queue.
"""

#: One line for ``brushwork --help``.
HELP = "a local web app over every method (style transfer, attention maps, editing, ...)"


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.attend import DEFAULT_MODEL

    p = subparsers.add_parser(
        "ui", help=HELP, description="Serve the brushwork web app locally.", epilog=EPILOG
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (this machine only)")
    p.add_argument("--port", type=options.count(1), default=7860, help="port to serve on")
    p.add_argument(
        "--share",
        type=_flag,
        nargs="?",
        const=True,
        default=False,
        metavar="true|false",
        help="make a public Gradio link (off unless given)",
    )
    options.add_model(p, default=DEFAULT_MODEL, what="default diffusion model: Hub id or folder")
    options.add_device(p)
    options.add_precision(p, default="auto", what="diffusion precision")
    options.add_quiet(p)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.devices import resolve_device
    from brushwork.errors import ConfigError

    if args.port > 65535:
        raise ConfigError(f"--port must be at most 65535, got {args.port}")
    resolve_device(args.device)  # one line now if the device is not there
    check_model_folder(args.model)
    from brushwork.ui.app import build_app, launch
    from brushwork.ui.common import UISettings

    app = build_app(UISettings(model=args.model, device=args.device, precision=args.precision))
    if not args.quiet:
        where = f"http://{args.host}:{args.port}/"
        print(f"brushwork ui: serving on {where} (Ctrl+C stops it)", file=sys.stderr)
    launch(app, host=args.host, port=args.port, share=args.share, quiet=True)
    return 0
