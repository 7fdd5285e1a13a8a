"""``brushwork weights list|download|path``: see, fetch and locate pretrained weights."""

from __future__ import annotations

import argparse
import sys

_DESCRIPTION = """\
Pretrained weights are looked up in this order: --weights PATH on the command that uses
them; BRUSHWORK_<NAME>_WEIGHTS=<file> or BRUSHWORK_WEIGHTS_DIR=<folder>; the torch cache
(<TORCH_HOME>/hub/checkpoints, shared with torchvision); otherwise they are downloaded
there, unless BRUSHWORK_OFFLINE=1."""


#: One line for ``brushwork --help``.
HELP = "list, download or locate pretrained weights"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "weights",
        help=HELP,
        description=_DESCRIPTION,
    )
    actions = parser.add_subparsers(
        dest="weights_command", metavar="ACTION", parser_class=type(parser)
    )
    actions.required = True

    actions.add_parser("list", help="show known weights and where they are found")

    fetch = actions.add_parser(
        "download",
        help="download weights into the torch cache",
        description="Download weights into the torch cache and print where they are.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="weights to download")
    fetch.add_argument("--all", action="store_true", help="download every known file")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")

    where = actions.add_parser(
        "path",
        help="print where a weights file is found",
        description="Print the path of a weights file; exit 1 if it is not on this machine.",
    )
    where.add_argument("name", metavar="NAME")
    for action_parser in actions.choices.values():
        action_parser.set_defaults(_parser=action_parser)  # for "did you mean" on its options
    return parser


def run(args: argparse.Namespace) -> int:
    command = args.weights_command
    if command == "list":
        return _list()
    if command == "download":
        return _download(args)
    return _path(args.name)


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from brushwork import weights

    rows = []
    for name, spec in weights.REGISTRY.items():
        found, source = weights.status(name)
        label = "env" if source.startswith("env") else source
        shown = found if found is not None else weights.expected_cache_path(name)
        size = "?" if spec.size_bytes is None else f"{spec.size_bytes / (1 << 20):.0f}"
        rows.append((name, spec.filename, size, label, str(shown)))

    console = Console()
    if console.is_terminal:
        table = Table(title="pretrained weights (missing ones show the cache path)")
        for header, justify in zip(
            ("name", "file", "MiB", "status", "path"),
            ("left", "left", "right", "left", "left"),
            strict=True,
        ):
            table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
        styles = {"cache": "green", "env": "green", "missing": "yellow"}
        for row in rows:
            table.add_row(*row[:3], f"[{styles[row[3]]}]{row[3]}[/]", row[4])
        console.print(table)
        return 0
    header = ("NAME", "FILE", "MiB", "STATUS", "PATH")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [row[i].rjust(w) if i == 2 else row[i].ljust(w) for i, w in enumerate(widths)]
        print("  ".join([*cells, row[4]]))
    return 0


def _download(args: argparse.Namespace) -> int:
    from brushwork import weights

    if args.all and args.names:
        args._parser.error("give names or --all, not both")
    names = list(weights.REGISTRY) if args.all else args.names
    if not names:
        args._parser.error("name the weights to download (see `brushwork weights list`)")
    specs = [weights.get(name) for name in names]  # unknown names fail before any download
    for spec in specs:
        print(weights.download(spec.name, force=args.force, progress=not args.no_progress))
    return 0


def _path(name: str) -> int:
    from brushwork import weights

    found, _ = weights.status(name)
    if found is not None:
        print(found)
        return 0
    spec = weights.get(name)
    print(
        f"{spec.name}: {spec.filename} is not on this machine; expected at\n"
        f"{weights.expected_cache_path(name)}\n"
        f"hint: run `brushwork weights download {spec.name}` (needs internet), or set "
        f"{weights.ENV_WEIGHTS_DIR}=<folder containing {spec.filename}> "
        f"or {weights.file_env_var(spec.name)}=<file>",
        file=sys.stderr,
    )
    return 1
