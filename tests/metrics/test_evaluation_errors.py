"""``brushwork evaluate``: missing networks named at once, and bad inputs refused early."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest
import torch

from brushwork import hub
from brushwork.cli.main import main
from brushwork.image import save_image
from cli_testing import error_line


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No downloads, private caches, a fresh network probe."""
    for var in list(os.environ):
        if var.startswith("BRUSHWORK_") or var in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HOME"):
            monkeypatch.delenv(var)
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setattr(hub, "_PROBES", {})


def _style_args(sets: dict[str, Path]) -> list[str]:
    return ["evaluate", "--content", str(sets["content"]), "--style", str(sets["style"]),
            "--results", str(sets["results"])]  # fmt: skip


def _suggested_metrics(message: str) -> str:
    match = re.search(r"--metrics (\S+)$", message)
    assert match, message
    return match.group(1)


def test_all_missing_networks_in_one_line_and_the_suggestion_runs(style_sets, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main([*_style_args(style_sets), "-q", "-o", str(out)]) == 1
    message = error_line(capsys.readouterr().err)
    for name, flag in (
        ("alexnet", "--lpips-trunk-weights"),
        ("lpips-alex", "--lpips-weights"),
        ("vgg19", "--vgg-weights"),
        ("inception-fid", "--inception-weights"),
        ("inception-art", "--art-inception-weights"),
        ("clip-vit-large", "--clip-model"),
    ):
        assert f"{name} (" in message and flag in message
    assert "brushwork weights download alexnet lpips-alex" in message
    suggested = _suggested_metrics(message)
    assert suggested == "ssim,histogram"
    assert not out.exists()

    assert main([*_style_args(style_sets), "-q", "-o", str(out), "--metrics", suggested]) == 0
    assert out.is_file() and (out.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_suggestion_keeps_metrics_whose_files_are_given(
    style_sets, alexnet_file, lpips_alex_file, capsys
):
    lpips = ["--lpips-weights", str(lpips_alex_file), "--lpips-trunk-weights", str(alexnet_file)]
    args = [*_style_args(style_sets), "-q", *lpips, "--metrics", "ssim,lpips,gram_loss,artfid"]
    assert main(args) == 1
    message = error_line(capsys.readouterr().err)
    assert "vgg19 (" in message and "inception-art (" in message and "alexnet (" not in message
    suggested = _suggested_metrics(message)
    assert suggested == "ssim,lpips"
    assert main([*args[:-1], suggested]) == 0


def test_given_path_that_does_not_exist_is_named(style_sets, tmp_path, capsys):
    absent = tmp_path / "absent.pth"
    args = [*_style_args(style_sets), "-q", "--metrics", "ssim,gram_loss"]
    assert main([*args, "--vgg-weights", str(absent)]) == 1
    message = error_line(capsys.readouterr().err)
    assert f"{absent} does not exist" in message and message.endswith("--metrics ssim")


def test_edit_mode_names_clip_and_dino(tmp_path, make_image, capsys):
    save_image(make_image(1), tmp_path / "cat.png")
    save_image(make_image(2), tmp_path / "pig.png")
    args = ["evaluate", "--edit", "--input", str(tmp_path / "cat.png"), "--result",
            str(tmp_path / "pig.png"), "--target", "a pig", "-q",
            "--metrics", "clip_text,structure"]  # fmt: skip
    assert main(args) == 1
    message = error_line(capsys.readouterr().err)
    assert "clip-vit-large (" in message and "dino-vitb8 (" in message
    assert "--clip-model" in message and "--dino-model" in message
    assert "no chosen metric can run without them" in message


def test_hub_model_without_network_is_found_missing_in_a_second(style_sets, monkeypatch, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("BRUSHWORK_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    assert main([*_style_args(style_sets), "-q", "--metrics", "ssim,clip_style"]) == 1
    assert time.perf_counter() - start < 3
    message = error_line(capsys.readouterr().err)
    assert "no network answered" in message and "clip-vit-large" in message
    assert message.endswith("--metrics ssim")


def _not_an_image(sets: dict[str, Path], tmp_path: Path) -> list[str]:
    (sets["results"] / "b.png").write_bytes(b"not a png")
    return _style_args(sets)


def _mismatched(sets: dict[str, Path], tmp_path: Path) -> list[str]:
    (sets["results"] / "c.png").unlink()
    return _style_args(sets)


def _read_only_output(sets: dict[str, Path], tmp_path: Path) -> list[str]:
    folder = Path("/sys") if os.geteuid() == 0 else tmp_path / "read-only"
    if folder != Path("/sys"):
        folder.mkdir()
        folder.chmod(0o555)
    return [*_style_args(sets), "-o", str(folder / "scores.csv")]


BAD_INPUTS = {
    "nonexistent folder": lambda s, t: [*_style_args(s)[:-1], str(t / "nowhere")],
    "not an image": _not_an_image,
    "mismatched pairs": _mismatched,
    "read-only output": _read_only_output,
    "batch size 0": lambda s, t: [*_style_args(s), "--batch-size", "0"],
    "device gpu7": lambda s, t: [*_style_args(s), "--device", "gpu7"],
    "output not csv": lambda s, t: [*_style_args(s), "-o", str(t / "scores.txt")],
    "unknown metric": lambda s, t: [*_style_args(s), "--metrics", "ssim,lpipz"],
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_no_output(case, style_sets, tmp_path, capsys):
    args = [*BAD_INPUTS[case](style_sets, tmp_path), "-q", "--metrics", "ssim"]
    if case == "unknown metric":
        args = args[:-2]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "scores.csv")]
    try:
        code = main(args)
    except SystemExit as exit_info:  # argparse errors
        code = exit_info.code
    assert code not in (0, None)
    error_line(capsys.readouterr().err)
    assert not (tmp_path / "scores.csv").exists()
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".") and "probe" in p.name]
    assert not leftovers


def test_cuda_n_is_accepted_by_the_parser(style_sets, capsys):
    code = main([*_style_args(style_sets), "-q", "--metrics", "ssim", "--device", "cuda:1"])
    if torch.cuda.device_count() < 2:
        assert code == 1
        assert "Traceback" not in capsys.readouterr().err
