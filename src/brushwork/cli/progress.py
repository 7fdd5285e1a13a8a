"""Progress display shared by the subcommands (rich, on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Steps per second ("it/s"), or seconds per step when slower than 1 it/s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("– it/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} it/s", style="progress.data.speed")
        return Text(f"{1 / speed:.2f} s/it", style="progress.data.speed")


def step_progress(*, enabled: bool = True) -> Progress:
    """A progress bar with step count, a ``loss`` field, rate, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
