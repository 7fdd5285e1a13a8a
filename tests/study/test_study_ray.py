"""The Ray engine (a local Ray started here) stores the same rows as the local engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from brushwork.experiments.grid import TEMPLATES, build_grid
from brushwork.experiments.metrics import METRIC_COLUMNS
from brushwork.experiments.runner import StudySettings, run_local, run_ray
from brushwork.experiments.store import StudyStore

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def _rows(folder: Path) -> dict:
    with StudyStore(folder, create=False) as store:
        return store.rows()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_study_ray_engine_equals_local_engine(study_model, study_pipe, local_ray, tmp_path):
    settings = StudySettings(
        model=str(study_model), steps=2, height=32, width=32, dtype="float32", rule="first"
    )
    grid = build_grid(templates=[TEMPLATES[2]], contents=["giraffe", "cat"], styles=["Cubism"])
    with StudyStore(tmp_path / "local") as store:
        store.create_or_check(grid, settings.record("cpu"))
        run_local(store, settings, store.pending(), pipe=study_pipe, batch_size=1)
    calls = []
    with StudyStore(tmp_path / "ray") as store:
        store.create_or_check(grid, settings.record("cpu"))
        summary = run_ray(
            store,
            settings,
            store.pending(),
            num_gpus=0,
            num_cpus=1,
            device="cpu",
            batch_size=1,
            progress=lambda done, failed: calls.append((done, failed)),
        )
        assert store.counts()["done"] == 2
    assert summary.done == 2 and summary.failed == 0 and calls == [(1, 0), (1, 0)]
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(remote["prompt_index"]) == 2 * 18
    for key in ("prompt_index", "rule", "mode", "threshold", "prompt"):
        assert remote[key] == local[key]
    for key in METRIC_COLUMNS:  # same batch size, same seeds: the same numbers
        assert remote[key] == local[key], key


def test_study_ray_refuses_missing_gpus(study_model, local_ray, tmp_path):
    from brushwork.errors import ConfigError

    settings = StudySettings(model=str(study_model), steps=2, height=32, width=32, dtype="float32")
    grid = build_grid(templates=[TEMPLATES[2]], contents=["cat"], styles=["Cubism"])
    with StudyStore(tmp_path) as store:
        store.create_or_check(grid, settings.record("cpu"))
        with pytest.raises(ConfigError, match="num-gpus 0"):
            run_ray(store, settings, store.pending(), num_gpus=1, device="cpu")
        assert store.counts()["pending"] == 1


@pytest.mark.parametrize("name", ["sd3_model", "flux_model"])
def test_study_ray_engine_on_transformers_equals_local_engine(name, request, local_ray, tmp_path):
    from brushwork.diffusion.pipelines import load_pipeline

    model = request.getfixturevalue(name)
    settings = StudySettings(
        model=str(model), steps=1, height=32, width=32, dtype="float32", rule="mean"
    )
    grid = build_grid(templates=[TEMPLATES[0]], contents=["cow", "giraffe"], styles=["Cubism"])
    pipe = load_pipeline(str(model), dtype="float32", device="cpu")
    with StudyStore(tmp_path / "local") as store:
        store.create_or_check(grid, settings.record("cpu"))
        run_local(store, settings, store.pending(), pipe=pipe, batch_size=1)
    with StudyStore(tmp_path / "ray") as store:
        store.create_or_check(grid, settings.record("cpu"))
        summary = run_ray(store, settings, store.pending(), num_gpus=0, device="cpu")
        info = store.model_info()
    assert summary.done == 2 and summary.failed == 0
    assert info["family"] == {"sd3_model": "sd3", "flux_model": "flux"}[name]
    with StudyStore(tmp_path / "local", create=False) as store:
        assert store.model_info() == info  # the worker describes the model as the driver does
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(remote["prompt_index"]) == 2 * 18
    for key in ("prompt_index", "rule", "mode", "threshold", "prompt", *METRIC_COLUMNS):
        assert remote[key] == local[key], key
