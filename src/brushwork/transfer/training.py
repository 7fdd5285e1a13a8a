"""The training loop shared by Johnson, AdaIN and WCT: Adam, checkpoints, resume.

A method supplies ``loss_fn(step) -> {"total": loss, ...parts}`` that builds the
batch for ``step`` itself (see :mod:`brushwork.transfer.data`, batches are a
function of the seed and the step), so a run resumed from a checkpoint at step
``s`` continues exactly as the uninterrupted run would.

Checkpoints are written atomically with ``torch.save`` and read back with
``torch.load(weights_only=True)``: model and optimiser state, the step, and the
model's JSON config (so a checkpoint of another architecture is refused).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from brushwork.atomic import atomic_path
from brushwork.errors import ConfigError, OptimisationError, WeightsError

LossFn = Callable[[int], dict[str, torch.Tensor]]


@dataclass
class TrainStep:
    """What the progress callback receives after each step.

    Attributes:
        step: steps done so far (1-based).
        total_steps: steps of the whole run.
        losses: loss name -> value (float) of this step, ``"total"`` included.
        images_per_second: training throughput averaged over this session.
        checkpoint: path written after this step, if any.
    """

    step: int
    total_steps: int
    losses: dict[str, float]
    images_per_second: float
    checkpoint: Path | None = None


@dataclass
class TrainResult:
    """The end of a run: steps done, last losses, seconds spent in this session."""

    steps: int
    losses: dict[str, float]
    seconds: float


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict,
) -> Path:
    """Write a resumable checkpoint atomically (loadable with ``weights_only=True``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "config": json.dumps(config, sort_keys=True),
    }
    with atomic_path(out, ".part") as tmp:
        torch.save(payload, tmp)
    return out


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: dict,
) -> int:
    """Restore model and optimiser from ``path``; returns the step it was written at.

    Raises:
        WeightsError: the file is missing, not a checkpoint, or of another architecture.
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"checkpoint {file} does not exist; check the --resume path")
    try:
        payload = torch.load(str(file), weights_only=True, map_location="cpu")
    except Exception as error:
        raise WeightsError(
            f"{file} is not a brushwork training checkpoint ({str(error).splitlines()[0]})"
        ) from error
    if not isinstance(payload, dict) or not {"model", "optimizer", "step", "config"} <= set(
        payload
    ):
        raise WeightsError(f"{file} is not a brushwork training checkpoint (missing entries)")
    saved = json.loads(payload["config"])
    if saved != json.loads(json.dumps(config, sort_keys=True)):
        raise WeightsError(
            f"checkpoint {file} was written for another model: saved config {saved}, "
            f"this run uses {config}; resume with the same architecture options"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return int(payload["step"])


def train_loop(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    steps: int,
    batch_size: int,
    config: dict,
    lr_fn: Callable[[int], float] | None = None,
    checkpoint_every: int = 0,
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[TrainStep], None] | None = None,
) -> TrainResult:
    """Run Adam-style training from step 0 (or the resumed step) to ``steps``.

    Args:
        model: the trainable network (its parameters are in ``optimizer``).
        loss_fn: step -> dict of scalar losses, with the optimised sum under ``"total"``.
        steps: total steps of the run (including those before a resume).
        batch_size: images per step (for the images/s figure).
        config: the model's JSON config, stored in checkpoints.
        lr_fn: step -> learning rate, applied before each step (``None``: fixed).
        checkpoint_every: write ``checkpoint_path`` every N steps (0: only at the end).
        checkpoint_path: where checkpoints go (``None``: no checkpoints).
        resume: checkpoint to continue from.
        callback: called after each step with a :class:`TrainStep`.

    Raises:
        OptimisationError: a loss became NaN or infinite.
    """
    if steps < 1:
        raise ConfigError(f"the number of training steps must be at least 1, got {steps}")
    if checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be 0 or more, got {checkpoint_every}")
    start = 0
    if resume is not None:
        start = load_checkpoint(resume, model=model, optimizer=optimizer, config=config)
        if start >= steps:
            raise ConfigError(
                f"checkpoint {resume} is at step {start}, the run has only {steps} steps; "
                "raise --steps to train further"
            )
    model.train()
    began = time.perf_counter()
    losses: dict[str, float] = {}
    for step in range(start, steps):
        if lr_fn is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_fn(step)
        optimizer.zero_grad(set_to_none=True)
        parts = loss_fn(step)
        total = parts["total"]
        value = float(total.detach())
        if not math.isfinite(value):
            raise OptimisationError(
                f"training diverged at step {step + 1}: loss is {value}; "
                "lower the learning rate or the style weight"
            )
        total.backward()
        optimizer.step()
        losses = {name: float(part.detach()) for name, part in parts.items()}
        done = step + 1
        written = None
        if checkpoint_path is not None and (
            (checkpoint_every and done % checkpoint_every == 0) or done == steps
        ):
            written = save_checkpoint(
                checkpoint_path, model=model, optimizer=optimizer, step=done, config=config
            )
        if callback is not None:
            elapsed = time.perf_counter() - began
            rate = (done - start) * batch_size / elapsed if elapsed > 0 else 0.0
            callback(TrainStep(done, steps, losses, rate, written))
    model.eval()
    return TrainResult(steps, losses, time.perf_counter() - began)


#: Float32 values held per training pixel: the network's activations (≈ 600 for the
#: Johnson network or a VGG decoder) and the loss network's for the output and the
#: target (≈ 530 each for VGG to relu4), doubled for their gradients.
_TRAINING_VALUES_PER_PIXEL = 2 * (600 + 2 * 530)


def estimate_training_memory(crop_size: int, batch_size: int) -> int:
    """A rough upper estimate of the bytes one training step needs.

    ``batch · crop² · 3320 values · 4 bytes + 1 GiB`` (weights, optimiser state and the
    loss network). At 256 px crops in batches of 4: about 4.3 GiB.
    """
    pixels = int(crop_size) ** 2 * int(batch_size)
    return pixels * _TRAINING_VALUES_PER_PIXEL * 4 + (1 << 30)
