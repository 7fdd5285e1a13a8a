"""The Generate tab: plain text-to-image, SGOOL and style-reference generation.

:func:`generate` calls what ``brushwork generate`` calls:
:func:`~brushwork.diffusion.pipelines.generate_image`,
:func:`~brushwork.diffusion.sgool.sgool` (saliency-guided latent optimisation) and
:func:`~brushwork.diffusion.style_reference.generate_with_style` (IP-Adapter with the
InstantStyle presets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from brushwork.errors import ConfigError
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

MODES = [
    ("Plain", "plain"),
    ("SGOOL (saliency-guided)", "sgool"),
    ("Style reference (IP-Adapter)", "style"),
]
#: InstantStyle presets (``generate --style-only`` / ``--style-layout`` / neither).
PRESETS = [("style only", "style"), ("style + layout", "style+layout"), ("full", "full")]


@readable_errors
def generate(
    session: Session,
    model: str,
    prompt: str,
    mode: str = "plain",
    style: Any = None,
    preset: str = "style",
    adapter_scale: float = 1.0,
    adapter: str = "",
    steps: int = 30,
    iterations: int = 20,
    guidance_scale: float = 7.5,
    size: int = 0,
    seed: int = 0,
    clip_model: str = "",
    progress: Any = None,
) -> Iterator[tuple[Any, list[str], str, str]]:
    """Generate ``prompt``; yields (image path, files, command, status).

    ``adapter``: the IP-Adapter of the style mode, a hub repo, a folder in the published
    layout or one ``.safetensors`` file (``generate --ip-adapter``); empty: the published
    one for the model's family.
    """
    from brushwork.diffusion.editing import check_prompt
    from brushwork.image import save_image
    from brushwork.ui.models import model_name, pipeline

    prompt = (prompt or "").strip()
    if not prompt:
        raise ConfigError("type a prompt first")
    if mode not in {value for _, value in MODES}:
        raise ConfigError(f"unknown mode '{mode}'")
    style_image = load_upload(style, "style image") if mode == "style" else None
    side = int(size or 0) or None
    if side is not None and side % 8:
        raise ConfigError(f"size must be a multiple of 8, got {side}")
    adapter = (adapter or "").strip()
    cli = _command(session, model, prompt, mode, style, preset, adapter_scale, adapter, steps,
                   iterations, guidance_scale, side, seed, clip_model)  # fmt: skip
    yield None, [], cli, "loading the model…"
    pipe = pipeline(session, model, adapter=adapter if mode == "style" else None)
    check_prompt(pipe.tokenizer, prompt)
    if mode == "sgool":
        image = yield from _sgool(session, pipe, prompt, steps, iterations, guidance_scale,
                                  side, seed, clip_model, progress)  # fmt: skip
    elif mode == "style":
        image = yield from _with_style(session, pipe, prompt, style_image, preset,
                                       adapter_scale, steps, guidance_scale, side, seed,
                                       progress)  # fmt: skip
    else:
        from brushwork.diffusion.pipelines import generate_image

        def work(job: Job):
            done = []

            def advance() -> None:
                done.append(1)
                job.step(len(done), int(steps), "generating")

            return generate_image(
                pipe, prompt, steps=int(steps), guidance_scale=float(guidance_scale),
                height=side, width=side, seed=int(seed), callback=advance,
            )  # fmt: skip

        image = yield from stream(work, session, progress)
    output = save_image(image.clamp(0, 1), job_folder("generate") / "generated.png")
    yield str(output), [str(output)], cli, f"{model_name(session, model)}: {mode}"


def _sgool(session, pipe, prompt, steps, iterations, guidance, side, seed, clip_model, progress):
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.sgool import SGOOLSettings, sgool
    from brushwork.metrics.clip import DEFAULT_CLIP_MODEL, load_clip

    settings = SGOOLSettings(
        iterations=int(iterations), steps=int(steps), guidance_scale=float(guidance), seed=int(seed)
    )
    settings.validate()
    name = (clip_model or "").strip() or DEFAULT_CLIP_MODEL
    device = pipe.unet.device
    clip = session.models.get(("clip", name, str(device)), lambda: load_clip(name, device=device))

    def work(job: Job):
        with user_errors():
            return sgool(
                pipe, prompt, clip, settings=settings, height=side, width=side,
                callback=lambda done, total, loss: job.step(done, total, "SGOOL"),
            ).image  # fmt: skip

    return (yield from stream(work, session, progress))


def _with_style(session, pipe, prompt, style, preset, scale, steps, guidance, side, seed, progress):
    from PIL import Image

    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.style_reference import generate_with_style, set_style_preset
    from brushwork.ui.common import to_array

    set_style_preset(pipe, preset, float(scale))
    picture = Image.fromarray(to_array(style))

    def work(job: Job):
        with user_errors():
            return generate_with_style(
                pipe, prompt, style_image=picture, steps=int(steps),
                guidance_scale=float(guidance), height=side, width=side, seed=int(seed),
                callback=lambda *_: job.step(0, int(steps), "generating"),
            )  # fmt: skip

    return (yield from stream(work, session, progress))


def _command(session, model, prompt, mode, style, preset, scale, adapter, steps, iterations,
             guidance, side, seed, clip_model) -> str:  # fmt: skip
    from brushwork.ui.models import model_name

    extra: list[Any] = []
    if mode == "sgool":
        extra = ["--saliency-guided", "--iterations", int(iterations)]
        if clip_model:
            extra += ["--clip-model", clip_model]
    elif mode == "style":
        extra = ["--style", upload_name(style)]
        extra += {"style": ["--style-only"], "style+layout": ["--style-layout"]}.get(preset, [])
        extra += ["--ip-adapter-scale", f"{float(scale):g}"]
        if adapter:
            extra += ["--ip-adapter", adapter]
    return command(
        "generate", prompt, extra, "--model", model_name(session, model), "--steps", int(steps),
        "--guidance-scale", f"{float(guidance):g}", ["--size", side] if side else None,
        "--seed", int(seed), "-o", "generated.png",
    )  # fmt: skip


def build(session_state: Any, settings: Any) -> None:
    import gradio as gr

    from brushwork.ui.layout import run_controls, status_line

    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", value="a lighthouse at dusk")
            model = gr.Textbox(label="Model (Hub id or folder)", value=settings.model)
            mode = gr.Radio(MODES, value="plain", label="Mode")
            with gr.Row():
                steps = gr.Slider(1, 100, value=30, step=1, label="Steps")
                iterations = gr.Slider(1, 100, value=20, step=1, label="SGOOL iterations")
                seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                guidance = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance scale")
                size = gr.Slider(0, 1536, value=0, step=8, label="Size (0: the model's)")
            clip_model = gr.Textbox(label="CLIP model for SGOOL (Hub id or folder)")
            with gr.Accordion("Style reference", open=False):
                style = gr.Image(label="Style image", type="filepath")
                preset = gr.Radio(PRESETS, value="style", label="InstantStyle preset")
                scale = gr.Slider(0, 2, value=1.0, step=0.05, label="IP-Adapter scale")
                adapter = gr.Textbox(
                    label="IP-Adapter (Hub id, folder or .safetensors file)",
                    placeholder="empty: h94/IP-Adapter, the model family's published file",
                )
        with gr.Column():
            result = gr.Image(label="Generated", type="filepath", interactive=False)
            files = gr.File(label="Download", file_count="multiple")
    cli = gr.Textbox(label="Equivalent command", interactive=False)
    status = status_line("generate")
    run_controls(
        "generate",
        generate,
        [session_state, model, prompt, mode, style, preset, scale, adapter, steps, iterations,
         guidance, size, seed, clip_model],
        [result, files, cli, status],
        session_state,
        status,
        concurrency_id="diffusion",
        label="Generate",
    )  # fmt: skip
