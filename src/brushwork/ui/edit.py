"""The Edit tab: text-guided editing by score distillation (CDS, DDS).

:func:`edit` calls what ``brushwork edit`` calls:
:func:`~brushwork.diffusion.editing.edit_keeping_size` with an
:class:`~brushwork.diffusion.editing.EditSettings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from brushwork.ui.common import (
    Job,
    Session,
    command,
    job_folder,
    load_upload,
    readable_errors,
    stream,
    upload_name,
)

METHODS = [("Contrastive Denoising Score (CDS)", "cds"), ("Delta Denoising Score (DDS)", "dds")]


@readable_errors
def edit(
    session: Session,
    model: str,
    image: Any,
    source: str,
    target: str,
    method: str = "cds",
    iterations: int = 200,
    guidance_scale: float = 7.5,
    size: int = 0,
    seed: int = 0,
    progress: Any = None,
) -> Iterator[tuple[Any, list[str], str, str]]:
    """Edit ``image`` from the ``source`` to the ``target`` prompt.

    Yields (edited image path, files, command, status); the edit has the input's size.
    """
    from brushwork.diffusion.editing import EditSettings, check_prompt, edit_keeping_size
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.image import save_image
    from brushwork.ui.models import model_name, pipeline

    settings = replace(
        EditSettings(),
        method=method,
        iterations=int(iterations),
        guidance_scale=float(guidance_scale),
        seed=int(seed),
    )
    settings.validate()
    picture = load_upload(image, "image to edit")
    side = int(size or 0) or None
    cli = command(
        "edit", upload_name(image), "--source", source, "--target", target, "--method", method,
        "--iterations", int(iterations), "--guidance-scale", f"{float(guidance_scale):g}",
        ["--size", side] if side else None, "--seed", int(seed),
        "--model", model_name(session, model), "-o", "edited.png",
    )  # fmt: skip
    yield None, [], cli, "loading the model…"
    pipe = pipeline(session, model)
    for prompt, what in ((source, "source prompt"), (target, "target prompt")):
        check_prompt(pipe.tokenizer, prompt, what=what)
    long_side = side or pipe.unet.config.sample_size * pipe.vae_scale_factor

    def work(job: Job):
        with user_errors("the edit"):
            return edit_keeping_size(
                pipe,
                picture,
                source,
                target,
                long_side=long_side,
                settings=settings,
                callback=lambda done, total, loss: job.step(done, total, method.upper()),
            )

    result = yield from stream(work, session, progress)
    output = save_image(result.image, job_folder("edit") / "edited.png")
    yield str(output), [str(output)], cli, f"{method.upper()}: {settings.iterations} iterations"


def build(session_state: Any, settings: Any) -> None:
    import gradio as gr

    from brushwork.ui.layout import run_controls, status_line

    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", elem_id="edit-image")
            source = gr.Textbox(label="Source prompt (what the image shows)", value="a cat")
            target = gr.Textbox(label="Target prompt (what it should show)", value="a pig")
            model = gr.Textbox(label="Model (Hub id or folder)", value=settings.model)
            with gr.Row():
                method = gr.Radio(METHODS, value="cds", label="Method")
                iterations = gr.Slider(1, 500, value=200, step=1, label="Iterations")
            with gr.Row():
                guidance = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance scale")
                size = gr.Slider(0, 1536, value=0, step=8, label="Size (0: the model's)")
                seed = gr.Number(value=0, precision=0, label="Seed")
        with gr.Column():
            result = gr.Image(label="Edited", type="filepath", interactive=False)
            files = gr.File(label="Download", file_count="multiple")
    cli = gr.Textbox(label="Equivalent command", interactive=False)
    status = status_line("edit")
    run_controls(
        "edit",
        edit,
        [session_state, model, image, source, target, method, iterations, guidance, size, seed],
        [result, files, cli, status],
        session_state,
        status,
        concurrency_id="diffusion",
        label="Edit",
    )
