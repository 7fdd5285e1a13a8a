"""The Style transfer tab: content + styles through every stylisation method.

The handler :func:`stylize` calls what ``brushwork transfer`` (Gatys) and
``brushwork stylize`` (Johnson, AdaIN, WCT, WCT², PhotoWCT, StyleID) call:
:func:`~brushwork.transfer.gatys.gatys`, :func:`~brushwork.transfer.stylize.load_stylizer`
and :func:`~brushwork.diffusion.styleid.stylize_styleid`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from brushwork.errors import ConfigError
from brushwork.ui.common import (
    Job,
    Session,
    command,
    file_paths,
    job_folder,
    load_upload,
    local_path,
    numbers,
    readable_errors,
    stream,
    to_array,
    upload_name,
)

#: (label, method) in the method menu; the value is the CLI's ``--method``.
METHODS = [
    ("AdaIN (arbitrary style)", "adain"),
    ("WCT (arbitrary style, model file)", "wct"),
    ("Johnson (trained model file)", "johnson"),
    ("WCT² (photorealistic)", "wct2"),
    ("PhotoWCT (photorealistic)", "photowct"),
    ("Gatys (optimisation, live preview)", "gatys"),
    ("StyleID (diffusion)", "styleid"),
]
FEED_FORWARD = ("adain", "wct", "johnson", "wct2", "photowct")
PRESERVE_COLOR = ("none", "luminance", "histogram", "mean-cov")
#: Gatys previews per run (one every ``steps / PREVIEWS`` steps), and one at least every
#: PREVIEW_SECONDS (a 512 px step takes ≈ 2 s on a 2-core CPU: 1000 steps / 10 would
#: leave the page without a new picture for minutes).
PREVIEWS = 10
PREVIEW_SECONDS = 5.0


@readable_errors
def stylize(
    session: Session,
    content: Any,
    styles: Any,
    method: str,
    model_file: str = "",
    weights: str = "",
    alpha: float = 1.0,
    style_weights: str = "",
    preserve_color: str = "none",
    size: int = 0,
    steps: int = 200,
    seed: int = 0,
    style_weight_log10: float = 6.0,
    diffusion_model: str = "",
    progress: Any = None,
) -> Iterator[tuple[Any, list[str], str, str]]:
    """Stylise ``content`` with ``styles``; yields (image, files, command, status).

    Gatys yields a preview every ``steps / 10`` steps, then the result; the other
    methods yield the result once. ``image`` is the result file's path (previews:
    arrays); ``files`` the files to download; ``command`` the equivalent command line.

    Args:
        content: the content upload (path). styles: one or more uploads (paths).
        method: a value of :data:`METHODS`.
        model_file: Johnson/AdaIN/WCT model file (.safetensors/.onnx) on this machine.
        weights: published weights (file or folder) instead of the download/cache.
        alpha: content–style trade-off (feed-forward methods). style_weights: "0.7,0.3".
        size: long side of the output (0: the content's size; Gatys: 512).
        steps, seed: Gatys and StyleID. style_weight_log10: Gatys' style weight, 10^x.
        diffusion_model: StyleID's pipeline (Hub id or folder; default: the app's).
    """
    if method not in dict((v, v) for _, v in METHODS):
        raise ConfigError(f"unknown method '{method}'")
    content_image = load_upload(content, "content image")
    style_files = file_paths(styles, "style image")
    if not style_files and method != "johnson":
        raise ConfigError(f"{method} needs a style image: upload one or more styles")
    from brushwork.image import load_image

    style_images = [load_image(path) for path in style_files]
    blend = numbers(style_weights, "style weights")
    model = local_path(model_file)
    weights_path = local_path(weights)
    folder = job_folder("transfer")
    output = folder / "result.png"
    size = int(size or 0)
    cli = _command(
        content, styles, method, model, weights_path, alpha, style_weights, preserve_color,
        size, steps, seed, style_weight_log10, diffusion_model, session,
    )  # fmt: skip
    # Long jobs say so at once; the feed-forward ones answer in about a second, and each
    # update is a round trip to the page (≈ 50 ms, measured in benchmarks/ui.py).
    if method in ("gatys", "styleid"):
        yield None, [], cli, f"running {method}…"
    if method == "gatys":
        run = _gatys(
            session, content_image, style_images, blend, weights_path, preserve_color,
            size or 512, int(steps), int(seed), style_weight_log10, progress,
        )  # fmt: skip
        while True:
            try:
                preview = next(run)
            except StopIteration as stop:
                image = stop.value
                break
            yield to_array(preview), [], cli, "optimising…"
    elif method == "styleid":
        image = yield from _styleid(
            session, content_image, style_images, diffusion_model, size, int(steps), int(seed),
            progress,
        )  # fmt: skip
    else:
        image = _feed_forward(
            session, content_image, style_images, method, model, weights_path, alpha, blend,
            preserve_color, size,
        )  # fmt: skip
    from brushwork.image import save_image

    save_image(image, output)
    height, width = image.shape[-2:]
    yield str(output), [str(output)], cli, f"done: {width}×{height} ({method})"


def _feed_forward(
    session, content, styles, method, model, weights, alpha, blend, preserve_color, size
):
    """One stylisation through :func:`load_stylizer` (the stylizer cached per settings)."""
    from brushwork.image import resize_long_side
    from brushwork.transfer.modelfile import tensor_sha256
    from brushwork.transfer.stylize import load_stylizer

    if method == "johnson" and model is None:
        raise ConfigError("Johnson needs its trained model file: type its path in 'Model file'")
    key = (
        "stylizer", method, model, weights, float(alpha), tuple(blend or ()), preserve_color,
        tuple(tensor_sha256(s) for s in styles), session.settings.device,
    )  # fmt: skip

    def load():
        return load_stylizer(
            model,
            method=method,
            styles=styles or None,
            style_weights=blend,
            alpha=float(alpha),
            preserve_color=preserve_color,
            device=session.settings.device,
            weights=weights,
        )

    stylizer = session.models.get(key, load)
    image = resize_long_side(content, size) if size else content
    return stylizer(image[None])[0]


def _gatys(
    session, content, styles, blend, weights, preserve_color, size, steps, seed, log10, progress
):
    """Gatys with the VGG-19 cached per session; yields previews, returns the image."""
    from brushwork.encoders import load_vgg_encoder
    from brushwork.transfer.gatys import GatysSettings, gatys

    settings = GatysSettings(
        size=size,
        steps=steps,
        style_weight=10.0 ** float(log10),
        style_blend=tuple(blend) if blend else None,
        preserve_color=preserve_color,
        seed=seed,
    )
    settings.validate(num_styles=len(styles))
    encoder = session.models.get(
        ("vgg19", weights), lambda: load_vgg_encoder("vgg19", weights=weights, progress=False)
    )
    every = max(1, steps // PREVIEWS)

    def work(job: Job):
        shown = [time.monotonic()]

        def callback(info) -> None:
            preview = None
            if info.step % every == 0 or time.monotonic() - shown[0] >= PREVIEW_SECONDS:
                preview = info.preview()
                shown[0] = time.monotonic()
            job.step(info.step, info.total_steps, f"Gatys level {info.level}", preview)

        return gatys(
            content,
            styles,
            settings=settings,
            encoder=encoder,
            device=session.settings.device,
            callback=callback,
        ).image

    return (yield from stream(work, session, progress))


def _styleid(session, content, styles, model, size, steps, seed, progress):
    """StyleID through its library function; the pipeline cached per session."""
    from brushwork.diffusion.editing import fit_image, latent_multiple
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.styleid import stylize_styleid
    from brushwork.image import resize_to
    from brushwork.ui.models import pipeline

    if len(styles) != 1:
        raise ConfigError(f"StyleID takes one style image, got {len(styles)}")
    pipe = pipeline(session, model)
    long_side = size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    multiple = latent_multiple(pipe)
    fitted = fit_image(content, multiple=multiple, long_side=long_side)
    fitted_style = fit_image(styles[0], multiple=multiple, long_side=long_side)

    def work(job: Job):
        with user_errors("StyleID"):
            return stylize_styleid(
                pipe,
                fitted,
                fitted_style,
                steps=steps,
                seed=seed,
                callback=lambda phase, done, total: job.step(done, total, f"StyleID {phase}"),
            ).image

    image = yield from stream(work, session, progress)
    height, width = content.shape[-2:]
    return image if tuple(image.shape[-2:]) == (height, width) else resize_to(image, height, width)


def _command(
    content, styles, method, model, weights, alpha, style_weights, preserve_color, size,
    steps, seed, log10, diffusion_model, session,
) -> str:  # fmt: skip
    """The ``brushwork transfer``/``stylize`` command that does the same."""
    style_names = [upload_name(s) for s in (styles or [])] if isinstance(styles, list) else []
    if styles and not isinstance(styles, list):
        style_names = [upload_name(styles)]
    style_part = ["--style", *style_names] if style_names else []
    weights_part = ["--style-weights", style_weights.replace(" ", "")] if style_weights else []
    color = ["--preserve-color", preserve_color] if preserve_color != "none" else []
    if method == "gatys":
        return command(
            "transfer", upload_name(content), style_part, weights_part, color,
            "--size", size or 512, "--steps", int(steps), "--seed", int(seed),
            "--style-weight", f"{10.0 ** float(log10):g}",
            ["--weights", weights] if weights else None, "-o", "result.png",
        )  # fmt: skip
    if method == "styleid":
        return command(
            "stylize", upload_name(content), "--method", "styleid", style_part,
            ["--model", diffusion_model or session.settings.model],
            ["--size", size] if size else None, "--steps", int(steps), "--seed", int(seed),
            "-o", "result.png",
        )  # fmt: skip
    return command(
        "stylize", upload_name(content), "--method", method,
        ["--model", model] if model else None, ["--weights", weights] if weights else None,
        style_part, weights_part, ["--alpha", f"{float(alpha):g}"] if method != "johnson" else None,
        color, ["--size", size] if size else None, "-o", "result.png",
    )  # fmt: skip


def build(session_state: Any, settings: Any) -> None:
    """The tab's widgets and events (inside a ``gr.Blocks`` / ``gr.Tab`` context)."""
    import gradio as gr

    from brushwork.ui.layout import run_controls, status_line

    with gr.Row():
        with gr.Column():
            content = gr.Image(
                label="Content",
                type="filepath",
                sources=["upload", "webcam", "clipboard"],
                elem_id="transfer-content",
            )
            styles = gr.File(
                label="Style image(s)",
                file_count="multiple",
                file_types=["image"],
                elem_id="transfer-styles",
            )
        with gr.Column():
            result = gr.Image(
                label="Result", type="filepath", interactive=False, elem_id="transfer-result"
            )
            downloads = gr.File(label="Download", file_count="multiple", interactive=False)
    with gr.Row():
        method = gr.Dropdown(METHODS, value="adain", label="Method", elem_id="transfer-method")
        preserve = gr.Dropdown(list(PRESERVE_COLOR), value="none", label="Preserve colour")
        size = gr.Slider(0, 2048, value=0, step=16, label="Size (long side; 0: as uploaded)")
    with gr.Accordion("Method settings", open=True):
        with gr.Row():
            alpha = gr.Slider(0, 1, value=1.0, step=0.05, label="α (content–style trade-off)")
            style_weights = gr.Textbox(label="Style weights / blend (e.g. 0.7, 0.3)")
            style_weight = gr.Slider(2, 10, value=6, step=0.5, label="Gatys style weight (10^x)")
        with gr.Row():
            steps = gr.Slider(
                1, 1000, value=200, step=1, label="Steps (Gatys, StyleID)", elem_id="transfer-steps"
            )
            seed = gr.Number(value=0, precision=0, label="Seed")
        with gr.Row():
            model_file = gr.Textbox(
                label="Model file (Johnson/AdaIN/WCT .safetensors or .onnx, on this machine)",
                elem_id="transfer-model",
            )
            weights = gr.Textbox(
                label="Weights file or folder (instead of the download)", elem_id="transfer-weights"
            )
            diffusion_model = gr.Textbox(label="Diffusion model (StyleID)", value=settings.model)
    cli = gr.Textbox(label="Equivalent command", interactive=False, elem_id="transfer-command")
    status = status_line("transfer")
    run_controls(
        "transfer",
        stylize,
        [session_state, content, styles, method, model_file, weights, alpha, style_weights,
         preserve, size, steps, seed, style_weight, diffusion_model],
        [result, downloads, cli, status],
        session_state,
        status,
        concurrency_id="transfer",
    )  # fmt: skip
