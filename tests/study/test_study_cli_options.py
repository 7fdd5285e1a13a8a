"""`brushwork study` options: a refused run stores nothing, --rule of report, the shared
progress display."""

from __future__ import annotations

import pytest

from brushwork.cli.main import main
from cli_testing import error_line


def _run_args(model, out, *extra):
    return ["study", "run", "--model", str(model), "--contents", "cat", "--styles", "Cubism",
            "--templates", "1", "--steps", "1", "--size", "32", "--precision", "fp32",
            "--device", "cpu", "-o", str(out), "-q", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("--size", "50"), "--size 50 is not a multiple of 8 (the VAE's factor); use 48 or 56"),
        (("--size", "30x32"), "the height 30 is not a multiple of 8"),
        (("--model", "./no/such/model"), "does not exist"),
        (("--device", "cuda:1"), "no CUDA GPU"),
    ],
)
def test_refused_run_stores_nothing(study_model, tmp_path, capsys, change, needle):
    import torch

    if change[1] == "cuda:1" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    out = tmp_path / "run"
    args = _run_args(study_model, out)
    args[args.index(change[0]) + 1] = change[1]
    assert main(args) == 1
    assert needle in error_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("extra", [["--steps", "0"], ["--batch-size", "0"], ["--limit", "0"]])
def test_counts_are_argparse_errors(study_model, tmp_path, extra):
    with pytest.raises(SystemExit) as exc:
        main([*_run_args(study_model, tmp_path / "run"), *extra])
    assert exc.value.code == 2
    assert not (tmp_path / "run").exists()


def test_old_dtype_still_works_progress_lines_and_report_rule(study_model, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    args = _run_args(study_model, out, "--rules", "first")
    args.remove("-q")
    args[args.index("--precision")] = "--dtype"
    args[args.index("--dtype") + 1] = "float32"
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: --dtype is deprecated" in err
    assert "prompts · 1/1 (100 %)" in err  # the shared progress display, off a terminal
    assert main(["study", "report", str(out), "-o", str(tmp_path / "report")]) == 1
    line = error_line(capsys.readouterr().err)
    assert "not stored with rule 'mean'" in line and "--rule first" in line
    assert not (tmp_path / "report").exists()
    assert main(["study", "report", str(out), "-o", str(tmp_path / "report"), "--rule",
                 "first"]) == 0  # fmt: skip


def test_run_rules_flag_and_its_old_spelling():
    from brushwork.cli.main import build_parser

    parser = build_parser("study")
    base = ["study", "run", "-o", "x"]
    assert parser.parse_args([*base, "--rules", "mean,first"]).rules == "both"
    assert parser.parse_args([*base, "--rules", "mean"]).rules == "mean"
    assert parser.parse_args(base).rules == "both"
    assert parser.parse_args([*base, "--rule", "both"]).rules == "both"  # deprecated spelling
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--rules", "last"])
