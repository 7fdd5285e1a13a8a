"""Entry point of the ``brushwork`` command.

Each subcommand lives in its own module under ``brushwork.cli`` and exposes

* ``add_parser(subparsers) -> argparse.ArgumentParser`` — declares its flags;
* ``run(args: argparse.Namespace) -> int`` — does the work, returns the exit code.

Modules import torch and other heavy packages inside ``run`` so that
``brushwork --help`` stays fast. A :class:`~brushwork.errors.BrushworkError`
raised anywhere is printed as one line (no traceback) and exits with status 1;
usage errors exit with status 2, as argparse does.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence

from brushwork.errors import BrushworkError

#: Subcommand name -> module under ``brushwork.cli`` that implements it.
SUBCOMMANDS: dict[str, str] = {
    "demo": "brushwork.cli.demo",
    "transfer": "brushwork.cli.transfer",
    "attend": "brushwork.cli.attend",
    "video": "brushwork.cli.video",
    "evaluate": "brushwork.cli.evaluate",
    "weights": "brushwork.cli.weights",
    "train": "brushwork.cli.train",
    "stylize": "brushwork.cli.stylize",
    "export": "brushwork.cli.export",
    "edit": "brushwork.cli.edit",
    "generate": "brushwork.cli.generate",
    "study": "brushwork.cli.study",
    "lora": "brushwork.cli.lora",
    "regions": "brushwork.cli.regions",
    "ui": "brushwork.cli.ui",
    "benchmark": "brushwork.cli.benchmark",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse with "did you mean" suggestions for mistyped names.

    Every parser shows option defaults in ``--help`` and keeps its epilog's layout
    (:class:`~brushwork.cli.options.HelpFormatter`).
    """

    def __init__(self, *args, **kwargs) -> None:
        from brushwork.cli.options import HelpFormatter

        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if "invalid choice:" in message:
            message = _suggest_choice(message)
        super().error(message)


def _suggest_choice(message: str) -> str:
    """Add a suggestion to argparse's "invalid choice: 'x' (choose from ...)" message."""
    try:
        bad = message.split("invalid choice:", 1)[1].split("'")[1]
        choices_text = message.split("choose from", 1)[1]
    except IndexError:
        return message
    choices = [c.strip(" '\",()") for c in choices_text.split(",")]
    close = difflib.get_close_matches(bad, choices, n=1, cutoff=0.5)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def option_suggestions(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> str:
    """Describe unknown command-line options, each with the nearest valid one if any."""
    known = [s for action in parser._actions for s in action.option_strings]
    parts = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        close = (
            difflib.get_close_matches(name, known, n=1, cutoff=0.6) if name.startswith("-") else []
        )
        parts.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
    return "unrecognized arguments: " + " ".join(parts)


def build_parser(command: str | None = None) -> ArgumentParser:
    """The top-level parser.

    Args:
        command: the subcommand being run: only its full parser is built (building some
            imports torch); the others get a one-line stub, enough for ``--help`` and for
            "did you mean" on a mistyped name. ``None`` builds every full parser.
    """
    from brushwork import __version__

    parser = ArgumentParser(
        prog="brushwork",
        description="Artistic style in images: style transfer, attention maps, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=ArgumentParser
    )
    subparsers.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        if command is not None and name != command:
            subparsers.add_parser(name, help=module.HELP)
            continue
        sub = module.add_parser(subparsers)
        # Nested parsers may override _parser with their own (for option suggestions).
        sub.set_defaults(_run=module.run, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``brushwork`` command; returns the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), "")
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(words)
    if unknown:
        sub = getattr(args, "_parser", parser)
        sub.error(option_suggestions(sub, unknown))
    from brushwork.cli.quiet import third_party_output
    from brushwork.weights import flag_hints

    module = importlib.import_module(SUBCOMMANDS[args.command])
    try:
        with (
            third_party_output(quiet=bool(getattr(args, "quiet", False))),
            flag_hints(getattr(module, "WEIGHT_FLAGS", {})),
        ):
            return int(args._run(args) or 0)
    except BrushworkError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(error: BaseException) -> str:
    """The error's message on one line (a message should be one already)."""
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
