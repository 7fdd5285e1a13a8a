"""Progress display shared by every subcommand, on stderr.

On a terminal: a rich progress bar (count, rate, elapsed, ETA and an optional ``loss``
field). Elsewhere (a log file, CI, a pipe): one plain line per 10 % of the work, so logs
stay readable. Under ``-q``: nothing. Every command makes its bar with
:func:`step_progress`; both kinds offer rich's ``add_task``/``update``/``advance``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

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

__all__ = ["LineProgress", "RateColumn", "step_progress"]


class RateColumn(ProgressColumn):
    """Items per second (``"it/s"``), or seconds per item when slower than 1 per second."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text(f"– {self.unit}/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.2f} s/{self.unit}", style="progress.data.speed")


class LineProgress:
    """A progress display for non-terminals: one line per ``every`` (fraction) of a task.

    Mirrors the part of :class:`rich.progress.Progress` the commands use.
    """

    def __init__(self, stream: TextIO | None = None, *, every: float = 0.1, unit: str = "it"):
        self.stream = stream or sys.stderr
        self.every = every
        self.unit = unit
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task_id, task in self._tasks.items():
            if task["completed"] and task["printed"] < task["completed"]:
                self._print(task_id, final=True)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": 0.0,
            "fields": fields,
            "started": time.perf_counter(),
            "next": self.every,
            "printed": 0.0,
        }
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        task = self._tasks[task_id]
        if total is not None:
            task["total"] = total
        if description is not None:
            task["description"] = description
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        task["fields"].update(fields)
        total_now = task["total"]
        if total_now and task["completed"] / total_now >= task["next"] - 1e-9:
            self._print(task_id)
            done = task["completed"] / total_now
            task["next"] = (int(done / self.every + 1e-9) + 1) * self.every

    def _print(self, task_id: int, final: bool = False) -> None:
        task = self._tasks[task_id]
        done, total = task["completed"], task["total"]
        elapsed = time.perf_counter() - task["started"]
        parts = [task["description"]]
        if total:
            parts.append(f"{done:g}/{total:g} ({100 * done / total:.0f} %)")
            if 0 < done < total:
                parts.append(f"ETA {elapsed * (total - done) / done:.0f} s")
        else:
            parts.append(f"{done:g}")
        parts.append(f"{elapsed:.1f} s")
        for key, value in task["fields"].items():
            if value not in (None, "", "–"):
                parts.append(f"{key} {value}")
        print(" · ".join(parts), file=self.stream, flush=True)
        task["printed"] = done


def step_progress(
    *, enabled: bool = True, unit: str = "it", loss: bool = True
) -> Progress | LineProgress:
    """The progress display of a command.

    Args:
        enabled: ``False`` under ``-q``: nothing is shown.
        unit: what is counted, for the rate ("it", "frame", "image", "prompt").
        loss: show the task's ``loss`` field (give ``loss=...`` to ``add_task``).
    """
    if enabled and not sys.stderr.isatty():
        return LineProgress(unit=unit)
    columns: list[ProgressColumn | str] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if loss:
        columns.append(TextColumn("loss {task.fields[loss]}"))
    columns += [RateColumn(unit), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)
