"""End-to-end runs on a tiny pipeline: local engine, kill and resume, refused settings,
failed prompts, status and report (statistics checked against scipy)."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from brushwork.cli.main import main
from brushwork.experiments.grid import TEMPLATES, build_grid
from brushwork.experiments.report import REPORT_FILES, write_report
from brushwork.experiments.runner import StudySettings, run_local
from brushwork.experiments.store import DB_NAME, StudyStore

CONTENTS, STYLES = ["giraffe", "cat"], ["Rembrandt", "Cubism"]
TEMPLATE_NUMBERS = "1,4"


def _settings(model: Path, **changes) -> StudySettings:
    values = dict(model=str(model), steps=2, height=32, width=32, dtype="float32", rule="both")
    return StudySettings(**{**values, **changes})


def _grid():
    return build_grid(templates=[TEMPLATES[0], TEMPLATES[3]], contents=CONTENTS, styles=STYLES)


def _cli_args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "study", "run", "--model", str(model), "--contents", ",".join(CONTENTS),
        "--styles", ",".join(STYLES), "--templates", TEMPLATE_NUMBERS, "--steps", "2",
        "--size", "32", "--precision", "fp32", "--device", "cpu", "-o", str(out), "-q", *extra,
    ]  # fmt: skip


def _rows(folder: Path) -> list[tuple]:
    with StudyStore(folder, create=False) as store:
        rows = store.rows()
    keys = ("prompt_index", "rule", "mode", "threshold", "iou_cs", "miou_b", "miou_b_std",
            "miou_bcs", "area_content", "area_style", "delta")  # fmt: skip
    return list(zip(*(rows[k] for k in keys), strict=True))


@pytest.fixture(scope="module")
def reference(study_model, study_pipe, tmp_path_factory) -> Path:
    """An uninterrupted run of the tiny grid, one prompt per pipeline call."""
    folder = tmp_path_factory.mktemp("reference")
    settings = _settings(study_model)
    with StudyStore(folder) as store:
        store.create_or_check(_grid(), settings.record("cpu"))
        summary = run_local(store, settings, store.pending(), pipe=study_pipe, batch_size=1)
    assert summary.done == 8 and summary.failed == 0
    return folder


def test_study_local_run_stores_every_row_once(reference):
    rows = _rows(reference)
    assert len(rows) == 8 * 2 * 18 == len({r[:4] for r in rows})
    assert {r[1] for r in rows} == {"first", "mean"}
    assert all(0 <= r[4] <= 1 and 0 <= r[5] <= 1 for r in rows)
    assert all(math.isclose(r[10], r[5] - r[4], abs_tol=1e-12) for r in rows)


def test_study_batches_match_single_prompts(study_model, study_pipe, reference, tmp_path):
    settings = _settings(study_model)
    with StudyStore(tmp_path) as store:
        store.create_or_check(_grid(), settings.record("cpu"))
        run_local(store, settings, store.pending(), pipe=study_pipe, batch_size=4)
    batched, single = (
        np.array(_rows(tmp_path))[:, 4:].astype(float),
        np.array(_rows(reference))[:, 4:].astype(float),
    )
    # same seeds → same images and maps up to float rounding of batched kernels, which can
    # move a pixel across a threshold: one pixel of 32² changes an IoU by ≤ ~1e-3
    np.testing.assert_allclose(batched, single, atol=5e-3)
    assert np.mean(batched == single) > 0.9


def test_study_kill_and_resume_equals_uninterrupted(study_model, reference, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "brushwork.cli.main", *_cli_args(study_model, out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (out / DB_NAME).exists():
                with sqlite3.connect(out / DB_NAME, timeout=10) as db:
                    try:
                        done = db.execute(
                            "SELECT COUNT(*) FROM prompts WHERE state='done'"
                        ).fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        done = 0
                if done >= 2:
                    break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert 2 <= done < 8, "the run should be killed mid-way"
    with StudyStore(out, create=False) as store:
        partial = store.counts()
    assert partial["rows"] == partial["done"] * 36  # no half-written prompt
    assert main(_cli_args(study_model, out)) == 0  # resume in-process
    assert _rows(out) == _rows(reference)  # same rows, nothing twice


def test_study_changed_settings_are_refused(study_model, reference, capsys, tmp_path):
    out = tmp_path / "run"
    assert main([*_cli_args(study_model, out), "--limit", "1"]) == 0
    with StudyStore(out, create=False) as store:
        assert store.counts()["done"] == 1
    assert main([*_cli_args(study_model, out), "--limit", "1", "--rules", "first"]) == 1
    assert "other settings" in capsys.readouterr().err
    args = _cli_args(study_model, out)
    args[args.index("--steps") + 1] = "3"
    assert main(args) == 1
    assert "steps: stored 2, now 3" in capsys.readouterr().err
    args = _cli_args(study_model, out)
    args[args.index("--styles") + 1] = "Rembrandt"
    assert main(args) == 1
    assert "prompt grid" in capsys.readouterr().err
    with StudyStore(out, create=False) as store:
        assert store.counts()["rows"] == 36  # nothing mixed in


def test_study_missing_words_fail_alone_and_status_shows_them(study_model, capsys, tmp_path):
    out = tmp_path / "run"
    long_style = "x" * 80  # cut off by the 75-token limit
    args = _cli_args(study_model, out)
    args[args.index("--styles") + 1] = f"Cubism,{long_style}"
    args[args.index("--contents") + 1] = "cat"
    args[args.index("--templates") + 1] = "3"
    assert main([*args, "--save-images"]) == 1  # some prompts failed
    assert main(["study", "status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 total, 1 done, 0 pending, 1 failed" in text and "limit" in text
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "00000_content.jpg", "00000_image.jpg", "00000_style.jpg",
    ]  # fmt: skip


def test_study_report_files_and_statistics_match_scipy(reference, tmp_path):
    pytest.importorskip("matplotlib")
    files = write_report([reference, reference], tmp_path / "report")
    assert sorted(f.name for f in files) == sorted(REPORT_FILES)
    for file in files:
        assert file.stat().st_size > 0
    html = (tmp_path / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "Wilcoxon" in html
    with open(tmp_path / "report" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 2 * 2 * 2 * 9  # two runs × rules × modes × thresholds
    with StudyStore(reference, create=False) as store:
        rows = store.rows()
    checked = 0
    for record in summary[: 2 * 2 * 9]:
        pick = [
            i
            for i in range(len(rows["rule"]))
            if rows["rule"][i] == record["rule"]
            and rows["mode"][i] == record["mode"]
            and rows["threshold"][i] == float(record["threshold"])
        ]
        base = np.array([rows["miou_b"][i] for i in pick])
        cs = np.array([rows["iou_cs"][i] for i in pick])
        delta = base - cs
        assert int(record["n"]) == len(pick) == 8
        assert float(record["delta"]) == pytest.approx(delta.mean(), abs=1e-12)
        half = stats.t.ppf(0.975, 7) * delta.std(ddof=1) / np.sqrt(8)
        assert float(record["delta_high"]) == pytest.approx(delta.mean() + half, abs=1e-12)
        if delta.std() > 0:
            assert float(record["t_p"]) == pytest.approx(stats.ttest_rel(base, cs).pvalue)
            expected = delta.mean() / delta.std(ddof=1)
            assert float(record["effect_size"]) == pytest.approx(expected)
        if np.any(delta != 0):
            wilcoxon = stats.wilcoxon(base, cs)
            assert float(record["wilcoxon_p"]) == pytest.approx(wilcoxon.pvalue)
            checked += 1
    assert checked > 0
    with open(tmp_path / "report" / "rows.csv") as f:
        assert sum(1 for _ in f) == 1 + 2 * 8 * 36


def test_study_report_cli(reference, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["study", "report", str(reference), "-o", str(tmp_path / "r"), "--mode",
                 "quantile", "--threshold", "0.5"]) == 0  # fmt: skip
    assert (tmp_path / "r" / "index.html").exists()
    assert main(["study", "status", str(tmp_path / "missing")]) == 1
    assert "not a study run folder" in capsys.readouterr().err


def test_study_sdxl_pipeline_non_square(tmp_path):
    from tiny_sd import build_sdxl_pipeline

    from brushwork.experiments.runner import compute_batch

    pipe = build_sdxl_pipeline(tmp_path)
    specs = build_grid(
        templates=[TEMPLATES[1]], contents=["giraffe"], styles=["Rembrandt", "x" * 80]
    )
    settings = StudySettings(model="tiny-sdxl", steps=2, height=64, width=48, rule="mean")
    result = compute_batch(pipe, specs, settings, previews=True)
    assert list(result.failed) == [1] and "limit" in result.failed[1]
    assert list(result.done) == [0] and len(result.rows) == 18
    assert {r["pairs_b"] for r in result.rows} == {14} and {r["rule"] for r in result.rows} == {
        "mean"
    }
    assert result.previews[0]["image"].shape == (3, 256, 192)
