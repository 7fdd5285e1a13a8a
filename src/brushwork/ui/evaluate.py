"""The Evaluate tab: result images (uploads or folders) scored against their inputs.

:func:`score` calls what ``brushwork evaluate`` calls
(:func:`~brushwork.metrics.evaluation.evaluate` with an
:class:`~brushwork.metrics.evaluation.EvaluationSettings`): files are paired by name,
the same rules and the same one-line errors (missing networks named with the metrics
that run without them).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from brushwork.ui.common import (
    Session,
    command,
    file_paths,
    job_folder,
    local_path,
    readable_errors,
)

#: Metrics ticked at first: the ones that need no pretrained network.
DEFAULT_METRICS = ("ssim", "histogram")
SUMMARY_COLUMNS = ("metric", "n", "mean", "std", "ci95_low", "ci95_high")


def _set(uploads: Any, folder_text: str, where: Path, what: str) -> str | None:
    """A folder holding the uploaded files (names kept: pairing is by name), or the path."""
    typed = local_path(folder_text)
    files = file_paths(uploads, what)
    if not files:
        return typed
    where.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, where / Path(path).name)
    return str(where)


@readable_errors
def score(
    session: Session,
    contents: Any,
    styles: Any,
    results: Any,
    content_folder: str = "",
    style_folder: str = "",
    results_folder: str = "",
    metrics: list[str] | None = None,
    progress: Any = None,
) -> tuple[dict, dict, list[str], str]:
    """Score style-transfer results; returns (per-item table, summary, files, command).

    The tables are ``{"headers": [...], "data": [[...], ...]}``: one row per item (its
    files and scores), one per metric (n, mean, std, 95 % CI; set metrics: their value).

    Each set is the uploaded files or, when none are uploaded, the typed folder (or file);
    files are paired by name as in ``brushwork evaluate``.
    """
    from brushwork.errors import ConfigError
    from brushwork.metrics.evaluation import EvaluationSettings, evaluate

    folder = job_folder("evaluate")
    content = _set(contents, content_folder, folder / "content", "content")
    style = _set(styles, style_folder, folder / "style", "style")
    result_set = _set(results, results_folder, folder / "results", "results")
    for value, what in ((content, "content"), (style, "style"), (result_set, "results")):
        if value is None:
            raise ConfigError(f"no {what} images: upload them or type a folder")
    chosen = tuple(metrics) if metrics else None
    output = folder / "scores.csv"
    settings = EvaluationSettings(
        mode="style",
        results=(result_set,),
        content=content,
        style=style,
        metrics=chosen,
        device=session.settings.device,
        output=str(output),
    )
    result = evaluate(settings, progress=_Progress(progress))
    columns = list(result.rows[0]) if result.rows else ["name"]
    files_of = ("content", "style", "result")  # shown by file name (the CSV keeps the paths)
    rows = [
        [Path(row[c]).name if c in files_of else _cell(row.get(c)) for c in columns]
        for row in result.rows
    ]
    summary = []
    for name, stats in result.summary.items():
        if "value" in stats:
            summary.append([name, stats["n"], _cell(stats["value"]), None, None, None])
        else:
            summary.append([name, *(_cell(stats.get(c)) for c in SUMMARY_COLUMNS[1:])])
    cli = command(
        "evaluate", "--content", content_folder or "content/", "--style", style_folder or "style/",
        "--results", results_folder or "results/",
        ["--metrics", ",".join(chosen)] if chosen else None, "-o", "scores.csv",
    )  # fmt: skip
    table = {"headers": columns, "data": rows}
    return table, {"headers": list(SUMMARY_COLUMNS), "data": summary}, [str(output)], cli


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


class _Progress:
    """rich's ``add_task``/``advance`` (what :func:`evaluate` reports to) on a Gradio bar."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.done = 0
        self.total: float | None = None
        self.description = "scoring"

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        self.description, self.total, self.done = description, total, 0
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.done += advance
        if self.progress is not None:
            self.progress((self.done, self.total), desc=self.description)


def build(session_state: Any, settings: Any) -> None:
    import gradio as gr

    from brushwork.metrics.evaluation import STYLE_METRICS
    from brushwork.ui.layout import with_progress

    with gr.Row():
        contents = gr.File(
            label="Content images",
            file_count="multiple",
            file_types=["image"],
            elem_id="evaluate-contents",
        )
        styles = gr.File(
            label="Style image(s)",
            file_count="multiple",
            file_types=["image"],
            elem_id="evaluate-styles",
        )
        results = gr.File(
            label="Results",
            file_count="multiple",
            file_types=["image"],
            elem_id="evaluate-results",
        )
    with gr.Row():
        content_folder = gr.Textbox(label="…or the content folder on this machine")
        style_folder = gr.Textbox(label="…or the style folder or file")
        results_folder = gr.Textbox(label="…or the results folder")
    metrics = gr.CheckboxGroup(
        list(STYLE_METRICS),
        value=list(DEFAULT_METRICS),
        label="Metrics (LPIPS, CLIP, FID, ... need their networks: see brushwork weights list)",
    )
    run = gr.Button("Score", variant="primary", elem_id="evaluate-run")
    summary = gr.Dataframe(
        headers=list(SUMMARY_COLUMNS),
        label="Summary (mean, std, 95 % CI)",
        interactive=False,
        elem_id="evaluate-summary",
    )
    table = gr.Dataframe(
        headers=["name"], label="Per item", interactive=False, elem_id="evaluate-table"
    )
    files = gr.File(label="Download scores", file_count="multiple")
    cli = gr.Textbox(label="Equivalent command", interactive=False)

    run.click(
        with_progress(score),
        [session_state, contents, styles, results, content_folder, style_folder, results_folder,
         metrics],
        [table, summary, files, cli],
        concurrency_limit=1,
        concurrency_id="evaluate",
    )  # fmt: skip
