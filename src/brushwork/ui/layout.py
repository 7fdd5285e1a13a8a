"""Widgets every tab uses the same way: Run/Cancel buttons, the busy state, the queue."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from brushwork.ui.common import request_cancel


def with_progress(handler: Callable) -> Callable:
    """``handler`` with Gradio's progress tracker as its ``progress`` argument."""
    import gradio as gr

    if inspect.isgeneratorfunction(handler):

        def generator(*args: Any, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
            yield from handler(*args, progress=progress)

        generator.__name__ = handler.__name__
        return generator  # no __wrapped__: Gradio must see this signature, with its tracker

    def plain(*args: Any, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        return handler(*args, progress=progress)

    plain.__name__ = handler.__name__
    return plain


def status_line(name: str) -> Any:
    """The job's status line, tall enough for the progress bar Gradio draws over it while
    the job runs (drawn over the status only: over the whole output area, redrawing it
    took a quarter of a 2-core CPU from the job)."""
    import gradio as gr

    return gr.Markdown(elem_id=f"{name}-status", min_height=56)


def run_controls(
    name: str,
    handler: Callable,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    session_state: Any,
    status: Any,
    *,
    concurrency_id: str,
    label: str = "Run",
) -> Any:
    """Run and Cancel buttons for ``handler``; returns the job's event.

    One job at a time per ``concurrency_id`` (a model kind) across every session: the
    others wait in Gradio's queue and see their place in it. While a job runs its Run
    button says "Running…" and is disabled; Cancel stops it at its next step.
    """
    import gradio as gr

    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{name}-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id=f"{name}-cancel")
    busy = run.click(
        lambda: gr.update(value="Running…", interactive=False), None, [run], queue=False
    )
    job = busy.then(
        with_progress(handler),
        list(inputs),
        list(outputs),
        concurrency_limit=1,
        concurrency_id=concurrency_id,
        show_progress="full",
        show_progress_on=[status],
    )
    job.then(lambda: gr.update(value=label, interactive=True), None, [run], queue=False)
    cancel.click(
        lambda session: (request_cancel(session), gr.update(value=label, interactive=True)),
        [session_state],
        [status, run],
        cancels=[job],
        queue=False,
    )
    return job
