"""Running a benchmark: one job per (method, content, style), stored as it finishes.

:func:`prepare` checks everything before any folder exists (the metrics and their
networks, each method's weights); :func:`run_benchmark` then runs every pending job of
every method that can run, in-process (``engine="local"``) or as Ray tasks
(``engine="ray"``, like the study's engine: one task per job, networks cached per
worker, every result written back by this driver).

Per job: the content and style are loaded (a file that fails is a failed job with the
reason) and resized to the run's long side, python/numpy/torch are seeded with the run's
seed, the method runs inside a :class:`~brushwork.benchmark.measure.Measurement`
(seconds and peak memory), the result is saved atomically as
``results/<method>/<content>_stylized_<style>.png`` (StyleID's names, which
``brushwork evaluate`` pairs), scored, and its row written. Methods run one after the
other, style by style, so a network is loaded once and each style encoded once.

The harness's own cost is :attr:`RunSummary.overhead_seconds`: the wall time minus the
methods (loading and running), the metrics (loading, per-item and set scores).
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brushwork.benchmark.measure import Measurement, environment
from brushwork.benchmark.methods import LoadedMethod, MethodSettings, MethodSpec, load_method
from brushwork.benchmark.protocol import BenchmarkInputs
from brushwork.benchmark.scoring import (
    SET_METRICS,
    StyleScorer,
    check_metrics,
    per_item_metrics,
)
from brushwork.benchmark.store import BenchmarkStore, Job
from brushwork.errors import ConfigError, ImageError, WeightsError
from brushwork.metrics.evaluation import NetworkSettings

__all__ = [
    "RESULTS_FOLDER",
    "BenchmarkSettings",
    "Plan",
    "RunSummary",
    "benchmark_folder",
    "prepare",
    "result_name",
    "run_benchmark",
]

RESULTS_FOLDER = "results"


@dataclass(frozen=True)
class BenchmarkSettings:
    """What a benchmark computes (recorded and checked on resume, except the methods).

    Attributes:
        methods: the ``--methods`` specs (see :mod:`brushwork.benchmark.methods`).
        method: size, seed, steps, device, precision shared by the methods.
        metrics: metric names (``None``: every style metric of ``brushwork evaluate``).
        networks: where the metrics' networks come from.
    """

    methods: tuple[MethodSpec, ...]
    method: MethodSettings = field(default_factory=MethodSettings)
    metrics: tuple[str, ...] | None = None
    networks: NetworkSettings = field(default_factory=NetworkSettings)

    def record(self, inputs: BenchmarkInputs, metrics: Sequence[str]) -> dict[str, Any]:
        """The settings as stored: everything that changes a number."""
        data = asdict(self.method)
        data.pop("device")  # recorded per method (resolved) and in the environment
        return {
            **data,
            "metrics": list(metrics),
            "networks": asdict(self.networks),
            "protocol": inputs.protocol,
            "contents": [image.name for image in inputs.contents],
            "styles": [image.name for image in inputs.styles],
        }


@dataclass
class Plan:
    """What :func:`prepare` found: the metrics to compute and why methods cannot run."""

    metrics: list[str]
    missing: dict[str, str]


@dataclass
class RunSummary:
    """What one :func:`run_benchmark` call did, and where its time went (seconds)."""

    done: int = 0
    failed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    method_seconds: float = 0.0
    load_seconds: float = 0.0
    score_seconds: float = 0.0
    set_score_seconds: float = 0.0
    metric_load_seconds: float = 0.0
    #: Writing the report (:func:`benchmark_folder`; part of the harness's own time).
    report_seconds: float = 0.0

    @property
    def overhead_seconds(self) -> float:
        """The harness's own time: everything except the methods and the metrics."""
        work = self.method_seconds + self.load_seconds + self.score_seconds
        work += self.set_score_seconds + self.metric_load_seconds
        return max(0.0, self.wall_seconds - work)

    @property
    def overhead_share(self) -> float:
        return self.overhead_seconds / self.wall_seconds if self.wall_seconds else 0.0


def prepare(settings: BenchmarkSettings, inputs: BenchmarkInputs) -> Plan:
    """Check the metrics, their networks and every method's weights, before any work.

    Returns the metrics and, per method label, why it cannot run (it is then skipped).

    Raises:
        ConfigError, ImageError, WeightsError: bad metrics or missing metric networks.
        WeightsError: no method can run (every reason named).
    """
    from brushwork.devices import resolve_device

    if not settings.methods:
        raise ConfigError("no method to run: give --methods")
    resolve_device(settings.method.device)  # a bad or absent device: refused here
    count = len(inputs.contents) * len(inputs.styles)
    metrics = check_metrics(
        settings.metrics, settings.networks, count=count, styles=len(inputs.styles)
    )
    missing = {}
    for spec in settings.methods:
        reason = spec.missing()
        if reason is not None:
            missing[spec.label] = reason
    if len(missing) == len(settings.methods):
        reasons = "; ".join(f"{label}: {reason}" for label, reason in missing.items())
        raise WeightsError(f"no method can run: {reasons}")
    return Plan(metrics, missing)


def result_name(content: str, style: str) -> str:
    """StyleID's result file name, which ``brushwork evaluate`` pairs by name."""
    return f"{content}_stylized_{style}.png"


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Inputs:
    """Content and style images loaded once, resized to the run's long side."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: dict[str, torch.Tensor] = {}

    def get(self, path: str) -> torch.Tensor:
        if path not in self.images:
            from brushwork.image import load_image, resize_long_side

            self.images[path] = resize_long_side(load_image(path), self.size)
        return self.images[path]


ProgressFn = Callable[[str, int, int], None]


def run_benchmark(
    store: BenchmarkStore,
    settings: BenchmarkSettings,
    inputs: BenchmarkInputs,
    plan: Plan,
    *,
    engine: str = "local",
    ray_options: dict[str, Any] | None = None,
    retry_failed: bool = True,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Run every pending job of ``settings.methods`` on ``inputs`` and store it.

    Args:
        store: the benchmark folder's store (settings recorded or checked here).
        plan: from :func:`prepare`.
        engine: ``"local"`` or ``"ray"`` (``ray_options``: ``address``, ``num_gpus``,
            ``num_cpus``, ``max_retries``).
        progress: ``progress(method_label, done, total)`` after every job.

    Raises:
        ConfigError: the folder holds a run with other settings.
    """
    began = time.perf_counter()
    device = settings.method.device
    from brushwork.devices import resolve_device

    resolved = resolve_device(device)
    store.create_or_check(settings.record(inputs, plan.metrics), environment(resolved))
    store.add_methods(settings.methods)
    contents = [(c.name, str(c.path)) for c in inputs.contents]
    styles = [(s.name, str(s.path)) for s in inputs.styles]
    for spec in settings.methods:
        store.add_jobs(spec.label, contents, styles)
    if inputs.unreadable:
        store.record_unreadable(inputs.unreadable)
    summary = RunSummary()
    for label, reason in plan.missing.items():
        store.set_method(label, "skipped", reason=reason)
        summary.skipped[label] = reason
    todo = {
        spec.label: store.pending(spec.label, include_failed=retry_failed)
        for spec in settings.methods
        if spec.label not in plan.missing
    }
    needs_scores = any(todo.values()) or _set_scores_missing(store, settings, plan)
    scorer = None
    if needs_scores:
        loaded = time.perf_counter()
        scorer = StyleScorer(plan.metrics, settings.networks, resolved)
        summary.metric_load_seconds = time.perf_counter() - loaded
    if engine == "ray":
        _run_ray(store, settings, plan, todo, scorer, summary, ray_options or {}, progress)
    else:
        _run_local(store, settings, plan, todo, scorer, summary, progress)
    if scorer is not None:
        _score_sets(store, settings, scorer, summary)
    summary.wall_seconds = time.perf_counter() - began
    return summary


def _run_local(store, settings, plan, todo, scorer, summary, progress) -> None:
    images = _Inputs(settings.method.size)
    for spec in settings.methods:
        jobs = todo.get(spec.label) or []
        if not jobs:
            continue
        try:
            with Measurement(settings.method.device) as timing:
                method = load_method(spec, settings.method)
        except (WeightsError, ConfigError, OSError) as error:
            reason = _one_line(error)
            store.set_method(spec.label, "skipped", reason=reason)
            summary.skipped[spec.label] = reason
            continue
        summary.load_seconds += timing.seconds
        store.set_method(
            spec.label,
            "ready",
            device=method.device,
            precision=method.precision,
            defaults=method.defaults,
            note=method.note,
            load_seconds=timing.seconds,
        )
        folder = store.folder / RESULTS_FOLDER / spec.label
        folder.mkdir(parents=True, exist_ok=True)
        for done, job in enumerate(jobs, start=1):
            _run_job(store, method, job, images, folder, settings, scorer, summary)
            if progress is not None:
                progress(spec.label, done, len(jobs))
        del method
        _release(settings.method.device)


def _run_job(store, method: LoadedMethod, job: Job, images, folder, settings, scorer, summary):
    from brushwork.image import save_image

    try:
        content = images.get(job.content_path)
        style = images.get(job.style_path)
    except ImageError as error:
        store.fail_job(job.index, _one_line(error))
        summary.failed += 1
        return
    _seed(settings.method.seed)
    try:
        with Measurement(method.device) as run:
            image = method.stylise(content, style, job.style)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # one failed job does not stop the benchmark
        summary.method_seconds += run.seconds
        store.fail_job(job.index, f"{type(error).__name__}: {_one_line(error)}")
        summary.failed += 1
        return
    summary.method_seconds += run.seconds
    path = folder / result_name(job.content, job.style)
    save_image(image, path)
    scores, score_seconds = _score(scorer, path, job)
    summary.score_seconds += score_seconds
    store.write_job(
        job.index,
        result=str(path.relative_to(store.folder)),
        seconds=run.seconds,
        peak_bytes=run.peak_bytes,
        memory_kind=run.memory_kind,
        scores=scores,
        score_seconds=score_seconds,
    )
    summary.done += 1


def _score(scorer: StyleScorer | None, path: Path, job: Job) -> tuple[dict[str, float], float]:
    if scorer is None:
        return {}, 0.0
    began = time.perf_counter()
    scores = scorer.score(path, Path(job.content_path), Path(job.style_path))
    return scores, time.perf_counter() - began


def _release(device: str) -> None:
    gc.collect()
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.empty_cache()


def _one_line(error: BaseException) -> str:
    return (
        " ".join(part.strip() for part in str(error).splitlines() if part.strip())
        or type(error).__name__
    )


def benchmark_folder(
    output: str | Path,
    settings: BenchmarkSettings,
    inputs: BenchmarkInputs,
    *,
    engine: str = "local",
    ray_options: dict[str, Any] | None = None,
    retry_failed: bool = True,
    progress: ProgressFn | None = None,
    thumb: int = 96,
) -> tuple[RunSummary, list[Path]]:
    """What ``brushwork benchmark`` does: check everything, run (or resume) the benchmark
    in ``output`` and write its report (``report.html``, ``rows.csv``, ``summary.csv``,
    ``summary.json``).

    A refused new run (bad settings, a resumed folder of other settings) leaves no folder
    behind. Returns the run's summary (its wall time includes the report) and the files.

    Raises:
        BrushworkError: anything :func:`prepare` or :func:`run_benchmark` refuses.
    """
    import shutil

    from brushwork.benchmark.report import write_report
    from brushwork.resources import check_folder_writable

    plan = prepare(settings, inputs)
    folder = check_folder_writable(output, "benchmark folder")
    created = not folder.exists()
    try:
        with BenchmarkStore(folder) as store:
            summary = run_benchmark(
                store,
                settings,
                inputs,
                plan,
                engine=engine,
                ray_options=ray_options,
                retry_failed=retry_failed,
                progress=progress,
            )
    except ConfigError:
        if created and _nothing_done(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    began = time.perf_counter()
    files = write_report([folder], folder / "report.html", thumb=thumb)
    summary.report_seconds = time.perf_counter() - began
    summary.wall_seconds += summary.report_seconds
    return summary, files


def _nothing_done(folder: Path) -> bool:
    with BenchmarkStore(folder, create=False) as store:
        return store.counts()["done"] == 0


# --------------------------------------------------------------------------- set metrics


def _set_scores_missing(store: BenchmarkStore, settings: BenchmarkSettings, plan: Plan) -> bool:
    wanted = [m for m in plan.metrics if m in SET_METRICS]
    if not wanted:
        return False
    stored = store.set_scores()
    return any(
        any(m not in stored.get(spec.label, {}) for m in wanted)
        for spec in settings.methods
        if spec.label not in plan.missing
    )


def _score_sets(store, settings, scorer: StyleScorer, summary: RunSummary) -> None:
    """FID/ArtFID of every method whose jobs are all done and whose set scores are not
    stored yet (computed once: a resumed run does not recompute them)."""
    if not scorer.set_metrics:
        return
    stored = store.set_scores()
    per_job = store.scores()
    for spec in settings.methods:
        if all(m in stored.get(spec.label, {}) for m in scorer.set_metrics):
            continue
        counts = store.counts(spec.label)
        if counts["done"] < 2 or counts["pending"] or counts["failed"]:
            continue
        jobs = store.jobs(spec.label, states=("done",))
        triples = [
            (store.folder / str(j.result), Path(j.content_path), Path(j.style_path)) for j in jobs
        ]
        lpips = [per_job.get(j.index, {}).get("lpips") for j in jobs]
        began = time.perf_counter()
        values = scorer.score_set(triples, lpips)
        summary.set_score_seconds += time.perf_counter() - began
        store.write_set_scores(spec.label, values)


# --------------------------------------------------------------------------- Ray engine

_WORKER: dict[str, Any] = {}


def _ray_job(
    spec_data: dict[str, Any],
    method_data: dict[str, Any],
    job_data: dict[str, Any],
    metrics: list[str],
    networks_data: dict[str, Any],
) -> dict[str, Any]:
    """Body of one Ray task: one job on a worker (method and metric networks cached)."""
    import tempfile

    from brushwork.image import save_image

    spec = MethodSpec(**spec_data)
    method_settings = MethodSettings(**method_data)
    key = repr((spec, method_settings))
    out: dict[str, Any] = {"versions": environment("cpu")["versions"]}
    if _WORKER.get("key") != key:
        _WORKER.clear()
        try:
            with Measurement(method_settings.device) as timing:
                _WORKER["method"] = load_method(spec, method_settings)
        except (WeightsError, ConfigError, OSError) as error:
            return {**out, "skip": _one_line(error)}
        _WORKER["key"] = key
        out["load_seconds"] = timing.seconds
    method: LoadedMethod = _WORKER["method"]
    out["method"] = {
        "device": method.device,
        "precision": method.precision,
        "defaults": method.defaults,
        "note": method.note,
    }
    scorer_key = repr((metrics, networks_data, method.device))
    if metrics and _WORKER.get("scorer_key") != scorer_key:
        _WORKER["scorer"] = StyleScorer(metrics, NetworkSettings(**networks_data), method.device)
        _WORKER["scorer_key"] = scorer_key
    job = Job(**job_data)
    images = _WORKER.setdefault("images", _Inputs(method_settings.size))
    try:
        content, style = images.get(job.content_path), images.get(job.style_path)
    except ImageError as error:
        return {**out, "error": _one_line(error)}
    _seed(method_settings.seed)
    try:
        with Measurement(method.device) as run:
            image = method.stylise(content, style, job.style)
    except Exception as error:
        return {**out, "error": f"{type(error).__name__}: {_one_line(error)}"}
    out.update(seconds=run.seconds, peak_bytes=run.peak_bytes, memory_kind=run.memory_kind)
    out["image"] = (image * 255).round().to(torch.uint8)
    scores: dict[str, float] = {}
    score_seconds = 0.0
    if metrics:
        with tempfile.TemporaryDirectory() as tmp:
            path = save_image(image, Path(tmp) / result_name(job.content, job.style))
            scores, score_seconds = _score(_WORKER["scorer"], path, job)
    out.update(scores=scores, score_seconds=score_seconds)
    return out


def _run_ray(store, settings, plan, todo, scorer, summary, options, progress) -> None:
    try:
        import ray
    except ImportError as error:
        raise ConfigError(
            "the Ray engine needs ray: pip install 'brushwork[study]' (or pip install ray)"
        ) from error
    from brushwork.image import save_image

    num_gpus = float(options.get("num_gpus", 0.0))
    if not ray.is_initialized():
        ray.init(address=options.get("address"), ignore_reinit_error=True, include_dashboard=False)
    resources = ray.cluster_resources()
    if num_gpus > resources.get("GPU", 0):
        raise ConfigError(
            f"each Ray task asks for {num_gpus:g} GPU(s) but the cluster has "
            f"{resources.get('GPU', 0):g}: start Ray on GPU nodes, or pass --num-gpus 0"
        )
    task = ray.remote(_ray_job).options(
        num_gpus=num_gpus,
        num_cpus=float(options.get("num_cpus", 1.0)),
        max_retries=int(options.get("max_retries", 3)),
    )
    item_metrics = per_item_metrics(plan.metrics)
    networks = asdict(settings.networks)
    method_data = asdict(settings.method)
    versions = (store.environment() or {}).get("versions", {})
    for spec in settings.methods:
        jobs = todo.get(spec.label) or []
        if not jobs:
            continue
        folder = store.folder / RESULTS_FOLDER / spec.label
        folder.mkdir(parents=True, exist_ok=True)
        refs = {
            task.remote(asdict(spec), method_data, asdict(job), item_metrics, networks): job
            for job in jobs
        }
        ready_method = False
        done = 0
        try:
            while refs:
                finished, _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(finished[0])
                done += 1
                try:
                    out = ray.get(finished[0])
                except Exception as error:  # the task failed after its retries
                    store.fail_job(job.index, f"Ray task failed: {_one_line(error)}")
                    summary.failed += 1
                    continue
                if out["versions"].get("torch") != versions.get("torch"):
                    raise ConfigError(
                        f"a Ray worker runs other software versions ({out['versions']}) than "
                        f"the benchmark records ({versions}); install the same on every node"
                    )
                if "skip" in out:
                    store.set_method(spec.label, "skipped", reason=out["skip"])
                    summary.skipped[spec.label] = out["skip"]
                    for ref in refs:
                        ray.cancel(ref, force=True)
                    refs.clear()
                    break
                summary.load_seconds += out.get("load_seconds", 0.0)
                if not ready_method:
                    store.set_method(spec.label, "ready", **out["method"])
                    ready_method = True
                if "error" in out:
                    store.fail_job(job.index, out["error"])
                    summary.failed += 1
                    continue
                path = folder / result_name(job.content, job.style)
                save_image(out["image"].float() / 255, path)
                summary.method_seconds += out["seconds"]
                summary.score_seconds += out["score_seconds"]
                store.write_job(
                    job.index,
                    result=str(path.relative_to(store.folder)),
                    seconds=out["seconds"],
                    peak_bytes=out["peak_bytes"],
                    memory_kind=out["memory_kind"],
                    scores=out["scores"],
                    score_seconds=out["score_seconds"],
                )
                summary.done += 1
                if progress is not None:
                    progress(spec.label, done, len(jobs))
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
