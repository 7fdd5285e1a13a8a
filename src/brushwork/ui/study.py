"""The Study tab: a run folder's status, and its report inline.

:func:`status` reads the run's store (:class:`~brushwork.experiments.store.StudyStore`)
as ``brushwork study status`` does; :func:`report` writes the report with
:func:`~brushwork.experiments.report.write_report` (as ``brushwork study report``) and
shows its page in the app.
"""

from __future__ import annotations

import re
from typing import Any

from brushwork.errors import ConfigError
from brushwork.ui.common import Session, command, job_folder, local_path, readable_errors


def _folder(text: str) -> str:
    folder = local_path(text)
    if folder is None:
        raise ConfigError("type the run folder (written by `brushwork study run -o FOLDER`)")
    return folder


@readable_errors
def status(session: Session, folder_text: str) -> str:
    """The run's status as Markdown: model, prompts done/pending/failed, ETA, failures."""
    from brushwork.experiments.store import StudyStore

    folder = _folder(folder_text)
    with StudyStore(folder, create=False) as store:
        counts = store.counts()
        settings = store.settings() or {}
        per_prompt = store.seconds_per_prompt()
        failures = store.failures()
    left = counts["pending"] + counts["failed"]
    lines = [
        f"**run** `{folder}`",
        f"- model: `{settings.get('model')}` ({settings.get('steps')} steps, "
        f"rule {settings.get('rule')}, {settings.get('dtype')})",
        f"- prompts: {counts['total']} total, {counts['done']} done, {counts['pending']} "
        f"pending, {counts['failed']} failed",
        f"- rows: {counts['rows']}",
    ]
    if per_prompt is not None and left:
        lines.append(f"- ETA: {left * per_prompt / 60:.1f} min at {per_prompt:.2f} s/prompt")
    lines += [f"- failed #{i} `{prompt}`: {error}" for i, prompt, error in failures[:5]]
    if len(failures) > 5:
        lines.append(f"- … and {len(failures) - 5} more failed prompts")
    lines.append(f"\nCommand: `{command('study', 'status', folder)}`")
    return "\n".join(lines)


@readable_errors
def report(
    session: Session, folder_text: str, rule: str = "auto", threshold: float = 0.4
) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Write the run's report; returns (its page as inline HTML, pictures, files)."""
    from brushwork.experiments.report import ReportOptions, write_report

    folder = _folder(folder_text)
    out = job_folder("study-report")
    options = ReportOptions(rule=None if rule == "auto" else rule, threshold=float(threshold))
    files = write_report([folder], out, options)
    page = (out / "index.html").read_text(encoding="utf-8")
    pictures = [(str(f), f.stem.replace("_", " ")) for f in files if f.suffix == ".png"]
    return _body(page), pictures, [str(f) for f in files if f.suffix != ".png"]


def _body(page: str) -> str:
    """The report page's body (its figures are data URIs already), for inline display."""
    body = re.search(r"<body[^>]*>(.*)</body>", page, flags=re.S)
    return body.group(1) if body else page


def build(session_state: Any, settings: Any) -> None:
    import gradio as gr

    folder = gr.Textbox(label="Run folder (brushwork study run -o FOLDER)", elem_id="study-folder")
    with gr.Row():
        rule = gr.Radio(["auto", "first", "mean"], value="auto", label="Token rule")
        threshold = gr.Slider(0, 1, value=0.4, step=0.05, label="Mask threshold")
    with gr.Row():
        show = gr.Button("Status", elem_id="study-status-button")
        make = gr.Button("Report", variant="primary", elem_id="study-report-button")
    text = gr.Markdown(elem_id="study-status")
    page = gr.HTML(elem_id="study-report")
    pictures = gr.Gallery(label="Figures", columns=3)
    files = gr.File(label="Download (tables, index.html)", file_count="multiple")
    show.click(status, [session_state, folder], [text])
    make.click(
        report,
        [session_state, folder, rule, threshold],
        [page, pictures, files],
        concurrency_limit=1,
        concurrency_id="study",
    )
