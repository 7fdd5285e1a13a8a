"""``brushwork weights list|download|path``: see, fetch and locate pretrained weights."""

from __future__ import annotations

import argparse
import sys

from brushwork.cli.options import add_quiet

_DESCRIPTION = """\
Two kinds of pretrained weights:

* weight files (VGG, AdaIN, LPIPS, Inception, ...), looked up in this order: the
  command's own flag (--weights PATH, or evaluate's --<net>-weights PATH);
  BRUSHWORK_<NAME>_WEIGHTS=<file> or BRUSHWORK_WEIGHTS_DIR=<folder>; the torch cache
  (<TORCH_HOME>/hub/checkpoints, shared with torchvision); otherwise they are downloaded
  there, unless BRUSHWORK_OFFLINE=1;
* Hugging Face Hub models (Stable Diffusion, CLIP, DINO, IP-Adapter), kept in the
  Hugging Face cache (HF_HUB_CACHE, or HF_HOME/hub); commands take a local folder
  instead with --model (or --clip-model, --dino-model, --ip-adapter).

On a machine with internet, `brushwork weights download --bundle evaluate` (or
transfer, diffusion) fetches a whole set; copy the caches to an offline machine."""

_EXAMPLES = """examples:
  brushwork weights list
  brushwork weights download vgg19 clip-vit-large
  brushwork weights download --bundle transfer --bundle evaluate
  brushwork weights path sd-1.5
"""

#: One line for ``brushwork --help``.
HELP = "list, download or locate pretrained weights and Hub models"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("weights", help=HELP, description=_DESCRIPTION, epilog=_EXAMPLES)
    actions = parser.add_subparsers(
        dest="weights_command", metavar="ACTION", parser_class=type(parser)
    )
    actions.required = True

    shown = actions.add_parser(
        "list",
        help="show known weights and Hub models, whether present and where",
        description="Show every weight file and Hub model brushwork uses, whether it is on "
        "this machine, and where it is (or would be) cached.",
    )
    add_quiet(shown)

    fetch = actions.add_parser(
        "download",
        help="prefetch weights and Hub models (needs internet)",
        description="Download weight files into the torch cache and Hub models into the "
        "Hugging Face cache, and print where they are.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="names from `weights list`")
    fetch.add_argument(
        "--bundle",
        action="append",
        default=None,
        metavar="NAME",
        help="a named set: transfer, diffusion or evaluate (repeatable)",
    )
    fetch.add_argument("--all", action="store_true", help="download every known file and model")
    fetch.add_argument(
        "--force", action="store_true", help="download weight files again even if cached"
    )
    add_quiet(fetch)

    where = actions.add_parser(
        "path",
        help="print where a weights file or Hub model is found",
        description="Print the path of a weights file (or a Hub model's cache folder); "
        "exit 1 if it is not on this machine.",
    )
    where.add_argument("name", metavar="NAME")
    add_quiet(where)
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


def _rows() -> list[tuple[str, str, str, str, str, str]]:
    """(name, kind, file or repo id, MiB, status, path) for every registered name."""
    from brushwork import weights
    from brushwork.hub import repo_cache_dir

    rows = []
    for name, spec in weights.REGISTRY.items():
        found, source = weights.status(name)
        label = "env" if source.startswith("env") else source
        shown = found if found is not None else weights.expected_cache_path(name)
        size = "?" if spec.size_bytes is None else f"{spec.size_bytes / (1 << 20):.0f}"
        rows.append((name, "file", spec.filename, size, label, str(shown)))
    for name, model in weights.HUB_MODELS.items():
        _, source = weights.hub_status(name)
        size = "?" if model.size_bytes is None else f"{model.size_bytes / (1 << 20):.0f}"
        rows.append((name, "hub", model.repo_id, size, source, str(repo_cache_dir(model.repo_id))))
    return rows


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    rows = _rows()
    console = Console()
    if console.is_terminal:
        table = Table(title="pretrained weights (files: torch cache; hub: Hugging Face cache)")
        headers = ("name", "kind", "file / hub id", "MiB", "status", "path")
        for header in headers:
            justify = "right" if header == "MiB" else "left"
            table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
        styles = {"cache": "green", "env": "green", "missing": "yellow"}
        for row in rows:
            table.add_row(*row[:4], f"[{styles[row[4]]}]{row[4]}[/]", row[5])
        console.print(table)
        return 0
    header = ("NAME", "KIND", "SOURCE", "MiB", "STATUS", "PATH")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        cells = [row[i].rjust(w) if i == 3 else row[i].ljust(w) for i, w in enumerate(widths)]
        print("  ".join([*cells, row[5]]))
    return 0


def _chosen_names(args: argparse.Namespace) -> list[str]:
    """The names to download, in order, without repeats; unknown names raise first."""
    from brushwork import weights

    bundles = args.bundle or []
    if args.all and (args.names or bundles):
        args._parser.error("give names and bundles, or --all, not both")
    if args.all:
        return weights.all_names()
    names = [name for bundle in bundles for name in weights.bundle(bundle)]
    names += args.names
    if not names:
        args._parser.error(
            "name the weights to download, or --bundle transfer|diffusion|evaluate "
            "(see `brushwork weights list`)"
        )
    chosen: list[str] = []
    for name in names:
        canonical = weights.hub_name_of(name) or weights.get(name).name
        if canonical not in chosen:
            chosen.append(canonical)
    return chosen


def _download(args: argparse.Namespace) -> int:
    from brushwork import weights

    for name in _chosen_names(args):
        if weights.is_hub(name):
            print(weights.download_hub(name, progress=not args.quiet))
        else:
            print(weights.download(name, force=args.force, progress=not args.quiet))
    return 0


def _path(name: str) -> int:
    from brushwork import weights
    from brushwork.hub import repo_cache_dir

    if weights.is_hub(name):
        model = weights.get_hub(name)
        found, _ = weights.hub_status(model.name)
        if found is not None:
            print(found)
            return 0
        print(
            f"{model.name}: Hub model {model.repo_id} is not in the Hugging Face cache; "
            f"expected under {repo_cache_dir(model.repo_id)}; run `brushwork weights download "
            f"{model.name}` (or `hf download {model.repo_id}`) on a machine with internet",
            file=sys.stderr,
        )
        return 1
    found, _ = weights.status(name)
    if found is not None:
        print(found)
        return 0
    spec = weights.get(name)
    print(
        f"{spec.name}: {spec.filename} is not on this machine; expected at "
        f"{weights.expected_cache_path(name)}; run `brushwork weights download {spec.name}` "
        f"(needs internet), or set {weights.ENV_WEIGHTS_DIR}=<folder containing "
        f"{spec.filename}> or {weights.file_env_var(spec.name)}=<file>",
        file=sys.stderr,
    )
    return 1
