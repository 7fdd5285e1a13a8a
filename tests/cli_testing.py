"""Test helpers for command-line behaviour (imported by name: not a conftest)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

_ERROR = re.compile(r"^(brushwork[\w ]*: )?error:")


def error_line(err: str, *, only: bool = False) -> str:
    """The one ``error:`` line of a command's stderr (argparse's ``prog: error:`` too).

    Asserts there is no traceback and exactly one error line; with ``only``, that
    nothing but deprecation warnings stands beside it.
    """
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR.match(line)]
    assert len(errors) == 1, err
    if only:
        others = [line for line in lines if line not in errors and not line.startswith("warning:")]
        assert not others, err
    return errors[0]


def read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody may write in: chmod for users, a read-only mount for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys"), Path("/proc/sys")):
        try:
            (candidate / ".probe").touch()
        except OSError:
            return candidate
    pytest.skip("no read-only location for root on this machine")
