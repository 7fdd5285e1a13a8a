"""Tests of ``brushwork weights list|download|path`` (no network: file:// URLs only)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from brushwork import weights
from brushwork.cli.main import main
from brushwork.weights import WeightFile
from weights_testing import isolate_weights_env


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private TORCH_HOME and no BRUSHWORK_* variables for every test."""
    return isolate_weights_env(monkeypatch, tmp_path)


@pytest.fixture
def tiny(tmp_path: Path):
    """A registered test entry whose URL is a local file:// checkpoint."""
    source = tmp_path / "published" / "tiny-cli.pth"
    source.parent.mkdir()
    torch.save({"w": torch.ones(3)}, source)
    spec = weights.register(
        WeightFile(
            name="tiny-cli",
            filename="tiny-cli.pth",
            url=source.as_uri(),
            sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
            size_bytes=source.stat().st_size,
        )
    )
    yield spec, source
    weights.REGISTRY.pop(spec.name, None)


def _status_of(out: str, name: str) -> str:
    row = next(line for line in out.splitlines() if line.split()[:1] == [name])
    return row.split()[4]


def test_list_shows_names_and_status(capsys, tiny):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "KIND", "SOURCE", "MiB", "STATUS", "PATH"]
    for name in ("vgg19", "vgg16", "tiny-cli"):
        assert _status_of(out, name) == "missing"
    assert "vgg19-dcbb9e9d.pth" in out and " 548 " in out

    assert main(["weights", "download", "tiny-cli", "-q"]) == 0
    capsys.readouterr()
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert _status_of(out, "tiny-cli") == "cache"
    assert str(weights.expected_cache_path("tiny-cli")) in out


def test_path_of_missing_file_exits_1(capsys, isolated):
    assert main(["weights", "path", "vgg19"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(isolated / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in captured.err
    assert "brushwork weights download vgg19" in captured.err


def test_path_found_in_env_dir(capsys, tiny, monkeypatch):
    folder = tiny[1].parent
    monkeypatch.setenv("BRUSHWORK_WEIGHTS_DIR", str(folder))
    assert main(["weights", "path", "tiny-cli"]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "tiny-cli.pth")
    assert main(["weights", "list"]) == 0
    assert _status_of(capsys.readouterr().out, "tiny-cli") == "env"


def test_download_from_file_url(capsys, tiny, isolated):
    assert main(["weights", "download", "tiny-cli"]) == 0
    target = isolated / "hub" / "checkpoints" / "tiny-cli.pth"
    captured = capsys.readouterr()
    assert captured.out.strip() == str(target)
    assert target.is_file()
    assert weights.load_state_dict("tiny-cli")["w"].tolist() == [1.0, 1.0, 1.0]

    assert main(["weights", "path", "tiny-cli"]) == 0
    assert capsys.readouterr().out.strip() == str(target)

    before = target.stat().st_mtime_ns
    os.utime(target, ns=(before - 10**9, before - 10**9))
    assert main(["weights", "download", "tiny-cli", "--force", "--no-progress"]) == 0
    assert target.stat().st_mtime_ns != before - 10**9  # replaced by a fresh download
    assert "--no-progress is deprecated" in capsys.readouterr().err


def test_download_needs_names(capsys):
    with pytest.raises(SystemExit) as info:
        main(["weights", "download"])
    assert info.value.code == 2
    assert "name the weights" in capsys.readouterr().err


def test_download_unknown_name(capsys, tiny):
    assert main(["weights", "download", "tiny-cli", "vgg91"]) == 1
    err = capsys.readouterr().err
    assert "did you mean 'vgg19'" in err
    assert not weights.expected_cache_path("tiny-cli").exists()  # nothing fetched first


def test_download_offline_fails_cleanly(capsys, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    assert main(["weights", "download", "vgg19"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "offline" in err


def test_weights_needs_an_action(capsys):
    with pytest.raises(SystemExit) as info:
        main(["weights"])
    assert info.value.code == 2


def test_mistyped_option_of_an_action_suggests_the_nearest(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["weights", "download", "--forse", "vgg19"])
    assert exit_info.value.code == 2
    assert "did you mean --force?" in capsys.readouterr().err
