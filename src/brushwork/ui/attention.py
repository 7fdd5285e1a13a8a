"""The Attention maps tab: a prompt, its words, and one DAAM overlay per word.

:func:`attend` calls what ``brushwork attend`` calls
(:func:`~brushwork.diffusion.pipelines.generate_with_maps`, then
:mod:`brushwork.diffusion.maps` for heat maps, masks, overlays and the sheet); the maps
stay in the session so that :func:`rethreshold` redraws the masks without generating.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from brushwork.errors import ConfigError
from brushwork.ui.common import (
    Job,
    Session,
    command,
    job_folder,
    readable_errors,
    stream,
    words,
)

#: Words not suggested (articles, prepositions).
STOP_WORDS = frozenset(
    "a an the of in on at by with and or to for from as is are its his her their".split()  # noqa: SIM905
)


def slug(word: str) -> str:
    """A file-name-safe form of a word (the CLI's overlay_<slug>.png)."""
    from brushwork.cli.attend import slug as cli_slug

    return cli_slug(word)


@readable_errors
def suggest_words(session: Session, model: str, prompt: str) -> Any:
    """The prompt's words as its tokenizer splits them (for the word picker).

    Returns a Gradio update of the suggestions' choices (stop words left out).
    """
    import gradio as gr

    from brushwork.diffusion.pipelines import text_stream
    from brushwork.diffusion.tokens import prompt_tokens
    from brushwork.ui.models import pipeline

    if not (prompt or "").strip():
        return gr.update(choices=[], value=[])
    pipe = pipeline(session, model)
    text = text_stream(pipe)
    tokens = prompt_tokens(text.tokenizer, prompt, stream=text)
    found: list[str] = []
    current = ""
    for piece, starts in zip(tokens.pieces(), tokens.word_starts(), strict=True):
        if starts and current:
            found.append(current)
            current = ""
        current += piece
    if current:
        found.append(current)
    suggestions = []
    for word in found:
        at = prompt.lower().find(word.lower())
        spelled = prompt[at : at + len(word)] if at >= 0 else word  # the prompt's case
        if word.isalnum() and word.lower() not in STOP_WORDS and spelled not in suggestions:
            suggestions.append(spelled)
    return gr.update(choices=suggestions, value=[])


def chosen_words(selected: list[str] | None) -> str:
    """The suggestion boxes ticked -> the words box ("cat, hat")."""
    return ", ".join(selected or [])


@readable_errors
def attend(
    session: Session,
    model: str,
    prompt: str,
    word_text: str,
    steps: int = 30,
    seed: int = 0,
    size: int = 0,
    guidance_scale: float = 7.5,
    threshold: float = 0.4,
    opacity: float = 0.5,
    progress: Any = None,
) -> Iterator[tuple[Any, ...]]:
    """Generate ``prompt`` and the maps of ``word_text``'s words.

    Yields (image, overlays, sheet, masks, files, command, status): ``overlays`` and
    ``masks`` are galleries of (path, word), one per word; ``files`` the image, sheet
    and raw maps (maps.safetensors + maps.json) to download.
    """
    from brushwork.diffusion.pipelines import generate_with_maps, user_errors
    from brushwork.ui.models import model_name, pipeline

    prompt = (prompt or "").strip()
    chosen = words(word_text)
    if not prompt:
        raise ConfigError("type a prompt first")
    if not chosen:
        raise ConfigError("no words: type them separated by commas, or tick suggested ones")
    side = int(size or 0) or None
    if side is not None and side % 8:
        raise ConfigError(f"size must be a multiple of 8, got {side}")
    cli = command(
        "attend", prompt, "--words", chosen, "--model", model_name(session, model),
        "--steps", int(steps), "--seed", int(seed), ["--size", side] if side else None,
        "--guidance-scale", f"{float(guidance_scale):g}", "--threshold", f"{threshold:g}",
        "-o", "maps/",
    )  # fmt: skip
    yield None, [], None, [], [], cli, "loading the model…"
    pipe = pipeline(session, model)

    def work(job: Job):
        def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            job.step(step + 1, int(steps), "generating")
            return kwargs

        with user_errors():
            return generate_with_maps(
                pipe,
                prompt,
                chosen,
                num_inference_steps=int(steps),
                guidance_scale=float(guidance_scale),
                height=side,
                width=side,
                seeds=[int(seed)],
                callback_on_step_end=on_step,
            )

    result = yield from stream(work, session, progress)
    folder = job_folder("attention")
    session.results["attention"] = {"result": result, "folder": folder, "opacity": opacity}
    image, overlays, sheet, files = _write_pictures(result, folder, float(opacity))
    masks = rethreshold(session, threshold)
    files.append(str(_write_maps(result, folder, threshold)))
    files.append(str(folder / "maps.json"))
    yield image, overlays, sheet, masks, files, cli, f"{len(chosen)} word maps"


def _write_pictures(result: Any, folder, opacity: float):
    from brushwork.diffusion.maps import overlay, sheet
    from brushwork.image import save_image

    maps = result.maps[0]
    image = result.images[0]
    heat = maps.heatmaps()
    image_file = save_image(image, folder / "image.png")
    overlays, pictures = [], []
    for word, word_heat in zip(maps.words, heat, strict=True):
        picture = overlay(image, word_heat, alpha=opacity)
        pictures.append(picture)
        path = save_image(picture, folder / f"overlay_{slug(word)}.png")
        overlays.append((str(path), word))
    sheet_file = save_image(sheet([image, *pictures], ["image", *maps.words]), folder / "sheet.png")
    return str(image_file), overlays, str(sheet_file), [str(image_file), str(sheet_file)]


def _write_maps(result: Any, folder, threshold: float):
    """maps.safetensors (word_maps, token_maps) and maps.json, as ``brushwork attend``."""
    from safetensors.torch import save_file

    from brushwork.atomic import atomic_path, write_text_atomic

    maps = result.maps[0]
    meta = {
        "prompt": maps.prompt,
        "words": maps.words,
        "token_positions": maps.positions,
        "image_size": list(maps.image_size),
        "threshold": threshold,
        "note": "word_maps: (words, h, w) raw DAAM maps; token_maps: (tokens, h, w)",
    }
    tensors = {
        "word_maps": maps.maps.contiguous(),
        "token_maps": result.token_maps[0].contiguous(),
    }
    target = folder / "maps.safetensors"
    with atomic_path(target) as temporary:
        save_file(tensors, str(temporary), metadata={"brushwork": json.dumps(meta)})
    write_text_atomic(folder / "maps.json", json.dumps(meta, indent=2))
    return target


@readable_errors
def rethreshold(session: Session, threshold: float) -> list[tuple[str, str]]:
    """The masks of the last maps at ``threshold``, without generating again."""
    from brushwork.diffusion.maps import binarize
    from brushwork.image import save_image

    last = session.results.get("attention")
    if last is None:
        return []
    maps = last["result"].maps[0]
    masks = binarize(maps.heatmaps(), [float(threshold)], "fixed")[0]
    out = []
    for word, mask in zip(maps.words, masks, strict=True):
        path = save_image(mask[None].float(), last["folder"] / f"mask_{slug(word)}.png")
        out.append((str(path), f"{word} > {float(threshold):g}"))
    return out


def build(session_state: Any, settings: Any) -> None:
    """The tab's widgets and events."""
    import gradio as gr

    from brushwork.ui.layout import run_controls, status_line

    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(
                label="Prompt",
                value="a giraffe in the style of a painting",
                elem_id="attention-prompt",
            )
            model = gr.Textbox(label="Model (Hub id or folder)", value=settings.model)
            suggest = gr.Button(
                "Suggest words from the prompt's tokens", elem_id="attention-suggest"
            )
            suggested = gr.CheckboxGroup(
                [], label="Words in the prompt (tick to use)", elem_id="attention-suggested"
            )
            chosen = gr.Textbox(
                label="Words (comma-separated; phrases allowed)", elem_id="attention-words"
            )
            with gr.Row():
                steps = gr.Slider(1, 100, value=30, step=1, label="Steps")
                seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                size = gr.Slider(0, 1536, value=0, step=8, label="Size (0: the model's)")
                guidance = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance scale")
                opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity")
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", interactive=False)
            overlays = gr.Gallery(
                label="Overlay per word (click to enlarge)",
                columns=4,
                elem_id="attention-overlays",
            )
            threshold = gr.Slider(
                0, 1, value=0.4, step=0.05, label="Mask threshold", elem_id="attention-threshold"
            )
            masks = gr.Gallery(label="Masks", columns=4, elem_id="attention-masks")
            sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False)
            files = gr.File(label="Download (image, sheet, raw maps)", file_count="multiple")
    cli = gr.Textbox(label="Equivalent command", interactive=False)
    status = status_line("attention")
    suggest.click(suggest_words, [session_state, model, prompt], [suggested])
    suggested.input(chosen_words, [suggested], [chosen], queue=False)
    threshold.release(rethreshold, [session_state, threshold], [masks])
    run_controls(
        "attention",
        attend,
        [session_state, model, prompt, chosen, steps, seed, size, guidance, threshold, opacity],
        [image, overlays, sheet, masks, files, cli, status],
        session_state,
        status,
        concurrency_id="diffusion",
        label="Generate with maps",
    )
