"""A benchmark killed (SIGKILL) mid-run continues without duplicates or recomputation;
the Ray engine stores what the local engine stores."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from brushwork.benchmark.store import DB_NAME, BenchmarkStore
from brushwork.cli.main import main


def _argv(bench_data, out):
    methods = f"adain:{bench_data['adain']},johnson:{bench_data['johnson']}"
    return [
        "benchmark", "--contents", str(bench_data["contents"]), "--styles",
        str(bench_data["styles"]), "--methods", methods, "--metrics", "ssim,histogram",
        "--size", "40", "--device", "cpu", "-o", str(out), "-q",
    ]  # fmt: skip


def _done(folder) -> int:
    try:
        with sqlite3.connect(folder / DB_NAME, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_killed_run_resumes_without_duplicates(bench_data, tmp_path):
    out = tmp_path / "bench"
    argv = _argv(bench_data, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "brushwork.cli.main", *argv], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while _done(out) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    with BenchmarkStore(out, create=False) as store:
        before = {j.index: (j.seconds, j.result) for j in store.jobs(states=("done",))}
    assert 1 <= len(before) < 8
    assert main(_argv(bench_data, out)) == 0
    with BenchmarkStore(out, create=False) as store:
        jobs = store.jobs()
        scores = store.scores()
    assert len(jobs) == 8 and len({(j.method, j.content, j.style) for j in jobs}) == 8
    assert all(j.state == "done" and j.attempts == 1 for j in jobs)  # none computed twice
    assert {j.index: (j.seconds, j.result) for j in jobs if j.index in before} == before
    assert sorted(scores) == sorted(j.index for j in jobs)


@pytest.mark.slow
def test_ray_engine_stores_what_the_local_engine_stores(bench_data, tmp_path):
    ray = pytest.importorskip("ray")
    from brushwork.benchmark.methods import MethodSettings, parse_methods
    from brushwork.benchmark.protocol import folder_inputs
    from brushwork.benchmark.runner import BenchmarkSettings, benchmark_folder

    settings = BenchmarkSettings(
        methods=tuple(
            parse_methods(f"adain:{bench_data['adain']},johnson:{bench_data['johnson']}")
        ),
        method=MethodSettings(size=40, seed=0, device="cpu"),
        metrics=("ssim", "histogram"),
    )
    inputs = folder_inputs(bench_data["contents"], bench_data["styles"])
    benchmark_folder(tmp_path / "local", settings, inputs)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary, _ = benchmark_folder(
            tmp_path / "ray", settings, inputs, engine="ray", ray_options={"num_gpus": 0}
        )
    finally:
        ray.shutdown()
    assert summary.done == 8
    stored = {}
    for name in ("local", "ray"):
        with BenchmarkStore(tmp_path / name, create=False) as store:
            scores = store.scores()
            stored[name] = {(j.method, j.content, j.style): scores[j.index] for j in store.jobs()}
    assert stored["ray"].keys() == stored["local"].keys()
    for key, values in stored["local"].items():
        assert stored["ray"][key] == pytest.approx(values, abs=1e-6), key
