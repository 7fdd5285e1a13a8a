"""The benchmark on 2 contents × 2 styles × 2 cheap methods (Gatys on a random VGG-19 in
the published layout, a tiny AdaIN model file): every row, resume, skips, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from brushwork.benchmark.methods import MethodSettings, parse_methods
from brushwork.benchmark.protocol import folder_inputs
from brushwork.benchmark.runner import BenchmarkSettings, benchmark_folder, prepare, run_benchmark
from brushwork.benchmark.store import BenchmarkStore
from brushwork.errors import ConfigError, WeightsError
from brushwork.metrics.evaluation import NetworkSettings

METRICS = ("ssim", "histogram", "gram_loss")


def _settings(bench_data, vgg, methods: str, **method) -> BenchmarkSettings:
    return BenchmarkSettings(
        methods=tuple(parse_methods(methods)),
        method=MethodSettings(**{"size": 40, "seed": 0, "steps": 2, "device": "cpu", **method}),
        metrics=METRICS,
        networks=NetworkSettings(vgg_weights=str(vgg)),
    )


@pytest.fixture
def two_methods(bench_data, vgg19_file) -> BenchmarkSettings:
    return _settings(
        bench_data, vgg19_file[0], f"gatys:{vgg19_file[0]},adain:{bench_data['adain']}"
    )


def _inputs(bench_data):
    return folder_inputs(bench_data["contents"], bench_data["styles"])


def test_every_job_has_its_row_image_scores_time_and_memory(bench_data, two_methods, tmp_path):
    summary, _ = benchmark_folder(tmp_path / "bench", two_methods, _inputs(bench_data))
    assert (summary.done, summary.failed, summary.skipped) == (8, 0, {})
    with BenchmarkStore(tmp_path / "bench", create=False) as store:
        jobs = store.jobs()
        scores = store.scores()
        methods = store.methods()
    assert len(jobs) == 8 and {j.method for j in jobs} == {"gatys-vgg19-test", "adain-tiny-adain"}
    assert len({(j.method, j.content, j.style) for j in jobs}) == 8
    for job in jobs:
        assert job.state == "done" and job.attempts == 1
        assert job.seconds > 0 and job.peak_bytes >= 0 and job.memory_kind
        assert (tmp_path / "bench" / job.result).is_file()
        assert job.result.endswith(f"{job.content}_stylized_{job.style}.png")
        assert set(scores[job.index]) == set(METRICS)
        assert all(v is not None for v in scores[job.index].values())
    assert all(m["state"] == "ready" and m["precision"] and m["device"] == "cpu" for m in methods)
    rows = (tmp_path / "bench" / "rows.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and rows[0].startswith("method,content,style,state")
    summary_json = json.loads((tmp_path / "bench" / "summary.json").read_text())
    assert summary_json["environment"]["versions"]["torch"]
    by_method = {r["method"]: r for r in summary_json["summary"]}
    for record in by_method.values():
        assert record["done"] == 4
        assert record["ssim_low"] <= record["ssim"] <= record["ssim_high"]
    assert summary.wall_seconds >= summary.method_seconds + summary.score_seconds
    assert 0 <= summary.overhead_share < 1


def test_report_has_one_grid_per_method_and_the_table(bench_data, two_methods, tmp_path):
    benchmark_folder(tmp_path / "bench", two_methods, _inputs(bench_data))
    page = (tmp_path / "bench" / "report.html").read_text()
    grids = re.findall(r'<section class="grid" data-method="([^"]+)">', page)
    assert grids == ["gatys-vgg19-test", "adain-tiny-adain"]
    table = page.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-method=") == 2
    assert "ssim ↑" in table and "gram_loss ↓" in table
    assert 'class="pairs"' in page and 'class="tradeoff"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network


def test_resume_after_an_interrupt_computes_nothing_twice(bench_data, two_methods, tmp_path):
    inputs = _inputs(bench_data)
    plan = prepare(two_methods, inputs)
    stop_after = 3

    def interrupt(label, done, total):
        nonlocal stop_after
        stop_after -= 1
        if stop_after == 0:
            raise KeyboardInterrupt

    with BenchmarkStore(tmp_path / "bench") as store:
        with pytest.raises(KeyboardInterrupt):
            run_benchmark(store, two_methods, inputs, plan, progress=interrupt)
        assert store.counts() == {"pending": 5, "done": 3, "failed": 0, "total": 8}
        before = {j.index: (j.seconds, j.result) for j in store.jobs(states=("done",))}
    calls = []
    with BenchmarkStore(tmp_path / "bench") as store:
        summary = run_benchmark(
            store, two_methods, inputs, plan, progress=lambda *a: calls.append(a)
        )
        jobs = store.jobs()
        scores = store.scores()
    assert summary.done == 5 and len(calls) == 5
    assert len(jobs) == 8 and all(j.state == "done" and j.attempts == 1 for j in jobs)
    assert {j.index: (j.seconds, j.result) for j in jobs if j.index in before} == before
    assert len(scores) == 8
    with BenchmarkStore(tmp_path / "bench") as store:  # a third run: nothing left to do
        assert run_benchmark(store, two_methods, inputs, plan).done == 0


def test_a_resumed_run_with_other_settings_is_refused(bench_data, vgg19_file, tmp_path):
    adain = f"adain:{bench_data['adain']}"
    benchmark_folder(
        tmp_path / "b", _settings(bench_data, vgg19_file[0], adain), _inputs(bench_data)
    )
    with pytest.raises(ConfigError, match="seed: stored 0, now 1"):
        benchmark_folder(
            tmp_path / "b", _settings(bench_data, vgg19_file[0], adain, seed=1), _inputs(bench_data)
        )


def test_missing_weights_are_skipped_with_their_reason(
    bench_data, vgg19_file, tmp_path, monkeypatch
):
    monkeypatch.delenv("BRUSHWORK_WCT_MODEL", raising=False)
    methods = f"adain:{bench_data['adain']},wct,johnson:{tmp_path / 'none.safetensors'}"
    summary, _ = benchmark_folder(
        tmp_path / "b", _settings(bench_data, vgg19_file[0], methods), _inputs(bench_data)
    )
    assert summary.done == 4
    assert summary.skipped["wct"].startswith("WCT needs its decoders")
    assert summary.skipped["johnson-none"] == f"{tmp_path / 'none.safetensors'} does not exist"
    page = (tmp_path / "b" / "report.html").read_text()
    skips = dict(re.findall(r'<li class="skip" data-method="([^"]+)">.*?: ([^<]*)</li>', page))
    assert skips["johnson-none"].endswith("none.safetensors does not exist")
    assert "brushwork train wct" in skips["wct"]
    rows = json.loads((tmp_path / "b" / "summary.json").read_text())["summary"]
    assert {r["method"]: r["state"] for r in rows} == {
        "adain-tiny-adain": "ready", "wct": "skipped", "johnson-none": "skipped",
    }  # fmt: skip


def test_nothing_can_run_is_refused_before_any_folder(
    bench_data, vgg19_file, tmp_path, monkeypatch
):
    monkeypatch.delenv("BRUSHWORK_WCT_MODEL", raising=False)
    settings = _settings(bench_data, vgg19_file[0], "wct,johnson")
    with pytest.raises(WeightsError, match=r"no method can run: wct: .*; johnson: Johnson needs"):
        benchmark_folder(tmp_path / "b", settings, _inputs(bench_data))
    assert not (tmp_path / "b").exists()


def test_unreadable_inputs_are_listed_and_left_out(bench_data, vgg19_file, tmp_path):
    import shutil

    styles = shutil.copytree(bench_data["styles"], tmp_path / "styles")
    (styles / "broken.png").write_bytes(b"\x89PNG not really")
    inputs = folder_inputs(bench_data["contents"], styles)
    assert [Path(p).name for p, _ in inputs.unreadable] == ["broken.png"]
    settings = _settings(bench_data, vgg19_file[0], f"adain:{bench_data['adain']}")
    summary, _ = benchmark_folder(tmp_path / "b", settings, inputs)
    assert summary.done == 4
    page = (tmp_path / "b" / "report.html").read_text()
    listed = page.split("<h2>Inputs that did not load</h2>", 1)[1].split("</ul>", 1)[0]
    assert "broken.png" in listed


def test_a_failing_image_is_a_failed_job_with_its_reason(bench_data, vgg19_file, tmp_path):
    import shutil

    contents = shutil.copytree(bench_data["contents"], tmp_path / "contents")
    inputs = folder_inputs(contents, bench_data["styles"])
    (contents / "dog.png").write_bytes(b"gone after listing")  # breaks between listing and load
    settings = _settings(bench_data, vgg19_file[0], f"adain:{bench_data['adain']}")
    summary, _ = benchmark_folder(tmp_path / "b", settings, inputs)
    assert (summary.done, summary.failed) == (2, 2)
    with BenchmarkStore(tmp_path / "b", create=False) as store:
        failed = store.jobs(states=("failed",))
    assert {j.content for j in failed} == {"dog"} and all("dog.png" in j.error for j in failed)
    page = (tmp_path / "b" / "report.html").read_text()
    assert "dog × dots" in page.split("<h2>Failed jobs</h2>", 1)[1].split("</ul>", 1)[0]
