"""The top-level command: fast help without torch, suggestions for mistyped names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brushwork.cli.main import SUBCOMMANDS, build_parser, main


def test_top_level_help_lists_every_command_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from brushwork.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("NO TORCH")
    for name in SUBCOMMANDS:
        assert name in out.stdout


def test_stub_and_full_parsers_have_the_same_help(capsys) -> None:
    full = build_parser()
    stubs = build_parser("")
    helps = []
    for parser in (full, stubs):
        action = next(a for a in parser._actions if a.dest == "command")
        helps.append({c.dest: c.help for c in action._choices_actions})
    assert helps[0] == helps[1] and set(helps[0]) == set(SUBCOMMANDS)


def test_mistyped_command_gets_a_suggestion(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stylzie", "x.jpg"])
    assert exit_info.value.code == 2
    assert "did you mean 'stylize'" in capsys.readouterr().err
