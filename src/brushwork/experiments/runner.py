"""Running the study: generate each prompt with attention recording, compute its metrics,
store them. Two engines share :func:`compute_batch`:

* :func:`run_local` — in-process, batches of prompts per pipeline call, progress bar with
  prompts/s and ETA; Ctrl-C or a kill loses at most the batch in flight.
* :func:`run_ray` — one Ray task per batch (``num_gpus`` per task, retried when a worker
  dies); every result is written back to the run's store by the driver.

Each image has its own ``torch.Generator`` on the generating device seeded with the
prompt's index (and python/numpy/torch are seeded with the batch's first index), so a
batch gives the images of the same prompts generated one at a time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brushwork.errors import BrushworkError, ConfigError
from brushwork.experiments.grid import PromptSpec
from brushwork.experiments.metrics import (
    METRIC_COLUMNS,
    MODES,
    THRESHOLDS,
    prompt_metrics,
    word_heatmaps,
)
from brushwork.experiments.store import StudyStore

__all__ = [
    "RULE_CHOICES",
    "BatchResult",
    "StudySettings",
    "compute_batch",
    "describe_model",
    "run_local",
    "run_ray",
    "software_versions",
]

RULE_CHOICES = ("first", "mean", "both")
PREVIEW_SIZE = 256


@dataclass(frozen=True)
class StudySettings:
    """What a run computes; recorded in the store and checked when resuming.

    Defaults are the protocol's: SDXL base 1.0, 30 steps, the pipeline's guidance scale
    (5.0 for SDXL) and size (1024²), fp16 on a GPU, thresholds 0.1 … 0.9 in fixed and
    quantile mode, maps from the family's default blocks (``blocks=None``: a UNet's down
    and up blocks as DAAM, every joint/single block of SD3 and Flux) in the model's
    default text stream (CLIP for UNets and SD3, T5 for Flux). ``rule``: ``"first"`` (the
    original first-token rule), ``"mean"`` (mean of a phrase's tokens) or ``"both"``
    (both from the same generation; rows carry the rule).
    """

    model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    steps: int = 30
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    dtype: str = "auto"
    rule: str = "both"
    thresholds: tuple[float, ...] = THRESHOLDS
    modes: tuple[str, ...] = MODES
    blocks: tuple[str, ...] | None = None

    def validate(self) -> None:
        if self.rule not in RULE_CHOICES:
            raise ConfigError(f"unknown rule '{self.rule}': choose from {', '.join(RULE_CHOICES)}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be ≥ 1, got {self.steps}")
        for side in (self.height, self.width):
            if side is not None and (side < 8 or side % 8):
                raise ConfigError(f"image sides must be multiples of 8, got {side}")
        if any(not 0 <= t <= 1 for t in self.thresholds) or not self.thresholds:
            raise ConfigError(f"thresholds must lie in [0, 1], got {self.thresholds}")

    @property
    def rules(self) -> tuple[str, ...]:
        return ("first", "mean") if self.rule == "both" else (self.rule,)

    def resolved(self, device_type: str) -> StudySettings:
        """A copy with ``dtype="auto"`` resolved for a device type (float16 on CUDA, as
        :func:`~brushwork.diffusion.pipelines.load_pipeline` does; float32 elsewhere)."""
        if self.dtype != "auto":
            return self
        return replace(self, dtype="float16" if device_type == "cuda" else "float32")

    def record(self, device: str = "auto") -> dict[str, Any]:
        """The settings as stored: dtype resolved for ``device``, software versions added."""
        from brushwork.devices import resolve_device

        data = asdict(self.resolved(resolve_device(device).type if self.dtype == "auto" else ""))
        data["versions"] = software_versions()
        return data


def software_versions() -> dict[str, str]:
    """Versions that can change the numbers: brushwork, torch, diffusers, transformers."""
    import diffusers
    import transformers

    import brushwork

    return {
        "brushwork": brushwork.__version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


@dataclass
class BatchResult:
    """What one batch produced: metric rows, done prompts (index → seconds each), failed
    prompts (index → error) and optional previews (index → {name: (3, h, w)}, 256 px long
    side)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    done: dict[int, float] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    previews: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


def describe_model(pipe: Any, settings: StudySettings) -> dict[str, Any]:
    """What the run's maps come from, as the store records it: the family (``"sd"``,
    ``"sdxl"``, ``"sd3"``, ``"flux"``, ``"flux2"``), the pipeline class, the text stream
    (CLIP for UNets and SD3, T5 for Flux) and the recorded blocks."""
    from brushwork.diffusion.backbones import backbone_for
    from brushwork.diffusion.pipelines import pipeline_family, text_stream

    backbone = backbone_for(pipe)
    return {
        "family": pipeline_family(pipe),
        "pipeline": type(pipe).__name__,
        "stream": text_stream(pipe).name,
        "blocks": list(settings.blocks or backbone.default_blocks),
    }


def compute_batch(
    pipe: Any, specs: Sequence[PromptSpec], settings: StudySettings, *, previews: bool = False
) -> BatchResult:
    """Generate ``specs`` in one pipeline call and compute every row of every prompt.

    Prompts whose words cannot be found in their tokens (or are cut off) are reported in
    ``failed`` without generating. Words are looked up in the model's default text stream;
    families without classifier-free guidance in the batch (Flux.1's guidance embedding)
    get ``guidance_scale`` as their embedding's value, as the pipelines take it.
    """
    from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
    from brushwork.diffusion.pipelines import text_stream
    from brushwork.diffusion.tokens import WordNotFoundError, prompt_tokens
    from brushwork.experiments.words import locate_words

    start = time.perf_counter()
    result = BatchResult()
    stream = text_stream(pipe)
    tokenizer = stream.tokenizer
    ready: list[tuple[PromptSpec, dict[str, list[list[int]]]]] = []
    for spec in specs:
        try:
            tokens = prompt_tokens(tokenizer, spec.prompt, stream=stream)
            found = {r: locate_words(tokenizer, tokens, spec.words, rule=r) for r in settings.rules}
        except WordNotFoundError as error:
            result.failed[spec.index] = str(error)
            continue
        ready.append((spec, found))
    if not ready:
        return result
    first_seed = ready[0][0].seed
    random.seed(first_seed)
    np.random.seed(first_seed % 2**32)
    torch.manual_seed(first_seed)
    generator_device = "cpu" if pipe.device.type == "mps" else pipe.device
    generators = [torch.Generator(generator_device).manual_seed(s.seed) for s, _ in ready]
    prompts = [s.prompt for s, _ in ready]
    max_tokens = max(prompt_tokens(tokenizer, p, stream=stream).end for p in prompts)
    blocks = tuple(settings.blocks) if settings.blocks else None
    recording = RecordingSettings(blocks=blocks, max_tokens=max_tokens)
    call: dict[str, Any] = dict(
        prompt=prompts,
        num_inference_steps=settings.steps,
        height=settings.height,
        width=settings.width,
        generator=generators,
        output_type="pt",
    )
    if settings.guidance_scale is not None:
        call["guidance_scale"] = settings.guidance_scale
    with AttentionRecorder(pipe, recording) as recorder, torch.inference_mode():
        output = pipe(**call)
        token_maps = recorder.token_maps()
    images = output.images.float().clamp(0, 1)
    size = (int(images.shape[-2]), int(images.shape[-1]))
    for i, (spec, found) in enumerate(ready):
        heat_first = None
        for rule in settings.rules:
            heat = word_heatmaps(token_maps[i], found[rule], size)
            if rule == "first":
                heat_first = heat
            values = prompt_metrics(
                heat,
                spec.content_word,
                spec.style_word,
                thresholds=settings.thresholds,
                modes=settings.modes,
            )
            for m, (mode, threshold) in enumerate(
                zip(values["mode"], values["threshold"], strict=True)
            ):
                row = {"prompt_index": spec.index, "rule": rule, "mode": mode}
                row["threshold"] = float(threshold)
                row.update({c: float(values[c][m]) for c in METRIC_COLUMNS})
                result.rows.append(row)
        if previews:
            shown = heat_first if heat_first is not None else heat
            result.previews[spec.index] = _previews(
                images[i].cpu(), shown[spec.content_word].cpu(), shown[spec.style_word].cpu()
            )
    seconds = (time.perf_counter() - start) / len(ready)
    result.done = {spec.index: seconds for spec, _ in ready}
    return result


def _previews(image: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict:
    """Three previews, 256 px on the long side: the image and jet overlays of the content
    and style maps."""
    import torch.nn.functional as F

    from brushwork.diffusion.maps import overlay

    height, width = image.shape[-2:]
    scale = PREVIEW_SIZE / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = F.interpolate(image[None], size=size, mode="area")[0]
    return {
        "image": small,
        "content": overlay(small, content.float()),
        "style": overlay(small, style.float()),
    }


def save_previews(folder: Path, previews: dict[int, dict[str, torch.Tensor]]) -> None:
    """Write ``images/<index>_<name>.jpg`` for every preview (atomic writes)."""
    from brushwork.image import save_image

    out = folder / "images"
    out.mkdir(parents=True, exist_ok=True)
    for index, pictures in previews.items():
        for name, picture in pictures.items():
            save_image(picture, out / f"{index:05d}_{name}.jpg", quality=90)


def _batches(specs: Sequence[PromptSpec], size: int) -> list[list[PromptSpec]]:
    if size < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {size}")
    return [list(specs[i : i + size]) for i in range(0, len(specs), size)]


def _safe_batch(
    pipe: Any, batch: Sequence[PromptSpec], settings: StudySettings, previews: bool
) -> BatchResult:
    """:func:`compute_batch`; when a batch fails (e.g. out of memory) its prompts are
    tried one at a time and those that still fail are reported as failed."""
    try:
        return compute_batch(pipe, batch, settings, previews=previews)
    except BrushworkError:
        raise
    except Exception as error:
        if len(batch) == 1:
            return BatchResult(failed={batch[0].index: f"{type(error).__name__}: {error}"})
    merged = BatchResult()
    for spec in batch:
        part = _safe_batch(pipe, [spec], settings, previews)
        merged.rows += part.rows
        merged.done.update(part.done)
        merged.failed.update(part.failed)
        merged.previews.update(part.previews)
    return merged


@dataclass
class RunSummary:
    """Prompts done and failed by this call, and its wall time."""

    done: int = 0
    failed: int = 0
    seconds: float = 0.0


ProgressFn = Callable[[int, int], None]


def run_local(
    store: StudyStore,
    settings: StudySettings,
    specs: Sequence[PromptSpec],
    *,
    pipe: Any = None,
    device: str = "auto",
    batch_size: int = 1,
    save_images: bool = False,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Compute ``specs`` in-process, one pipeline call per batch, storing each batch.

    ``progress(done, failed)`` is called after every stored batch.
    """
    if pipe is None:
        from brushwork.diffusion.pipelines import load_pipeline

        pipe = load_pipeline(settings.model, dtype=settings.dtype, device=device)
    store.record_model_info(describe_model(pipe, settings))
    summary = RunSummary()
    start = time.perf_counter()
    for batch in _batches(specs, batch_size):
        result = _safe_batch(pipe, batch, settings, save_images)
        _store(store, result)
        summary.done += len(result.done)
        summary.failed += len(result.failed)
        if progress is not None:
            progress(len(result.done), len(result.failed))
    summary.seconds = time.perf_counter() - start
    return summary


def _store(store: StudyStore, result: BatchResult) -> None:
    if result.previews:
        save_previews(store.folder, result.previews)  # images first: a done prompt has them
    store.write_batch(result.rows, result.done, result.failed)


# ----------------------------------------------------------------------------- Ray engine
_WORKER_PIPES: dict[tuple[str, str, str], Any] = {}


def _ray_task(
    settings_data: dict[str, Any], spec_data: list[dict[str, Any]], device: str, previews: bool
) -> dict[str, Any]:
    """Body of one Ray task: a batch of prompts on a worker (pipeline cached per worker)."""
    from brushwork.diffusion.pipelines import load_pipeline

    settings = _settings_from(settings_data)
    key = (settings.model, settings.dtype, device)
    if key not in _WORKER_PIPES:
        _WORKER_PIPES.clear()
        _WORKER_PIPES[key] = load_pipeline(settings.model, dtype=settings.dtype, device=device)
    specs = [PromptSpec(**{**d, "words": tuple(d["words"])}) for d in spec_data]
    result = _safe_batch(_WORKER_PIPES[key], specs, settings, previews)
    return {
        "rows": result.rows,
        "done": result.done,
        "failed": result.failed,
        "previews": result.previews,
        "versions": software_versions(),
        "model": describe_model(_WORKER_PIPES[key], settings),
    }


def _settings_from(data: dict[str, Any]) -> StudySettings:
    fields = StudySettings.__dataclass_fields__
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
    return StudySettings(**values)


def run_ray(
    store: StudyStore,
    settings: StudySettings,
    specs: Sequence[PromptSpec],
    *,
    address: str | None = None,
    num_gpus: float = 1.0,
    num_cpus: float = 1.0,
    device: str = "auto",
    batch_size: int = 1,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    save_images: bool = False,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Compute ``specs`` with Ray: one task per batch, results stored by this driver.

    Args:
        address: Ray cluster address (``"auto"`` for a running cluster); ``None`` starts a
            local Ray unless one is already initialised in this process.
        num_gpus, num_cpus: resources per task (``num_gpus=0`` for CPU workers).
        max_retries: task retries when a worker process dies (crash, node lost).
        max_in_flight: tasks submitted at once (default: twice the cluster's slots).
    """
    try:
        import ray
    except ImportError as error:
        raise ConfigError(
            "the Ray engine needs ray: pip install 'brushwork[study]' (or pip install ray)"
        ) from error
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False)
    task = ray.remote(_ray_task).options(
        num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries
    )
    resources = ray.cluster_resources()
    if num_gpus > resources.get("GPU", 0):
        raise ConfigError(
            f"each Ray task asks for {num_gpus} GPU(s) but the cluster has "
            f"{resources.get('GPU', 0):g}: start Ray on GPU nodes, or pass --num-gpus 0 for "
            "CPU workers"
        )
    if max_in_flight is None:
        slots = resources.get("GPU", 0) / num_gpus if num_gpus else 0
        slots = slots or resources.get("CPU", 1) / max(num_cpus, 1e-3)
        max_in_flight = max(1, int(2 * slots))
    settings_data = asdict(settings)
    expected = store.settings() or {}
    queue = _batches(specs, batch_size)
    running: dict[Any, list[PromptSpec]] = {}
    summary = RunSummary()
    start = last = time.perf_counter()
    try:
        while queue or running:
            while queue and len(running) < max_in_flight:
                batch = queue.pop(0)
                data = [asdict(s) for s in batch]
                running[task.remote(settings_data, data, device, save_images)] = batch
            ready, _ = ray.wait(list(running), num_returns=1)
            batch = running.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as error:  # the task failed after its retries
                message = f"Ray task failed: {type(error).__name__}: {error}"[:2000]
                result = BatchResult(failed={s.index: message for s in batch})
            else:
                if expected.get("versions") and out["versions"] != expected["versions"]:
                    raise ConfigError(
                        f"a Ray worker runs other software versions ({out['versions']}) than "
                        f"the run records ({expected['versions']}); install the same versions "
                        "on every node"
                    )
                store.record_model_info(out["model"])
                now = time.perf_counter()
                per_prompt = (now - last) / max(1, len(out["done"]))
                last = now
                result = BatchResult(
                    rows=out["rows"],
                    done={int(k): per_prompt for k in out["done"]},
                    failed={int(k): v for k, v in out["failed"].items()},
                    previews=out["previews"],
                )
            _store(store, result)
            summary.done += len(result.done)
            summary.failed += len(result.failed)
            if progress is not None:
                progress(len(result.done), len(result.failed))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    summary.seconds = time.perf_counter() - start
    return summary
