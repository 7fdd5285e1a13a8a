"""``brushwork attend``: the attention map of each word, of a generated or an existing image.

Two modes: a positional prompt generates an image and records its maps (DAAM);
``--image`` with ``--caption`` maps an existing image (encode, noise to ``--timesteps``,
one denoiser call each: :func:`brushwork.diffusion.image_maps.maps_of_image`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from brushwork.cli import options

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

EPILOG = f"""examples:
  brushwork attend "a giraffe in the Analytical Cubism style" --words giraffe "Analytical Cubism" \\
          --model stabilityai/stable-diffusion-xl-base-1.0 --steps 30 --seed 7 -o giraffe/
  brushwork attend "a cat and a dog" --words cat dog --threshold 0.5 --quantile -o pets/
  brushwork attend "a cat" --words cat --size 512x768 --precision fp32 -o cat/
  brushwork attend --image photo.jpg --caption "a cow on a hill at dusk" --words cow hill dusk \\
          --model stabilityai/stable-diffusion-3.5-medium -o photo_maps/
  brushwork attend --image photo.jpg --caption "a cow on a hill" --words cow \\
          --timesteps 250,500,750 --text-stream t5 --normalisation joint -o cow/

give either a prompt (generate an image and map it) or --image with --caption (map an
existing image: it is encoded with the model's VAE, noised to each of --timesteps and run
through the denoiser once per timestep with the caption). --timesteps are values of the
denoiser's timestep input, not step indices: UNets 0..999, SD3/Flux 0 < t <= 1000 (noise
sigma = t/1000); unset: five over the middle half of the schedule.

writes into the output folder: image.png, overlay_<word>.png and mask_<word>.png per word,
sheet.png (image and overlays side by side), and the raw maps (maps.safetensors or
maps.npy, with maps.json describing them). The folder is created only once the maps
are ready; a failing run leaves nothing behind.

--size N or HxW: sides must be multiples of 8 (the VAE's factor); unset, the model's own
size. With --image, --size N is the long side the model sees (the image's aspect is kept;
the maps come back at the image's own size). Sizes that cannot fit in memory are refused
before loading (--memory-limit).

The model ({DEFAULT_MODEL} unless --model is given) is downloaded from the
Hugging Face Hub on first use; offline, pass a local folder written by save_pretrained.
"""

MAP_FORMATS = ("safetensors", "npy")

#: No registry weight file: the pipeline comes from --model (a hub id or folder).
WEIGHT_FLAGS: dict[str, str] = {}

#: One line for ``brushwork --help``.
HELP = "word attribution maps from text attention (DAAM), of a generated or an existing image"

#: Map methods: the image queries' attention to the text keys (DAAM), or ConceptAttention's
#: output-space maps (Flux.1; docs/concept-attention.md).
METHODS = ("cross-attention", "concept")
#: What maps.json says the raw maps are, per method.
TOKEN_NOTE = (
    "word_maps: (words, h, w) raw DAAM maps (sum over steps, mean over layers and heads); "
    "token_maps: (tokens, h, w), rows = text key positions (stream_offset + the stream's index)."
)
CONCEPT_NOTE = (
    "word_maps = token_maps: (concepts, h, w) ConceptAttention maps (softmax over the concepts "
    "of the image/concept attention-output products, mean over blocks and steps; each pixel "
    "sums to 1)."
)
#: Every block kind of every supported family (checked again against the model once loaded).
ALL_BLOCKS = ("down", "mid", "up", "joint", "single")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.diffusion_common import add_device_precision, add_generated_size
    from brushwork.diffusion.attention import CLAMP_ORDERS, NORMALISATIONS
    from brushwork.diffusion.maps import COLORMAPS

    p = subparsers.add_parser(
        "attend",
        help=HELP,
        description="Show where each word acts in an image: DAAM maps from the text attention "
        "(Tang et al. 2023) of Stable Diffusion 1.x/2.x/XL, SD3/3.5 or Flux.1, for an image "
        "generated from a prompt or an existing image with its caption.",
        epilog=EPILOG,
    )
    p.add_argument(
        "prompt", nargs="?", default=None, help="the prompt to generate (or use --image)"
    )
    p.add_argument(
        "--words",
        nargs="+",
        required=True,
        metavar="WORD",
        help="words or phrases of the prompt (or of --caption)",
    )
    options.add_output(p, what="output folder")

    i = p.add_argument_group("existing image (instead of a prompt)")
    i.add_argument("--image", default=None, metavar="FILE", help="the image to map")
    i.add_argument(
        "--caption", default=None, help="text describing --image; the words are looked up in it"
    )
    i.add_argument(
        "--timesteps",
        default=None,
        metavar="T,...",
        help="denoiser timestep values (not step indices) to noise --image to, one denoiser "
        "call each: UNets whole numbers 0..999, SD3/Flux 0 < t <= 1000 (sigma = t/1000); "
        "unset: five over the middle half of the schedule",
    )

    g = p.add_argument_group("generation")
    options.add_model(g, default=DEFAULT_MODEL)
    options.add_steps(g, default=30, what="denoising steps")
    g.add_argument(
        "--guidance-scale",
        type=options.non_negative_float,
        default=None,
        help="CFG scale; unset: the pipeline's own",
    )
    g.add_argument("--negative-prompt", default=None, help="what the image should not show")
    add_generated_size(g)
    options.add_seed(g)
    add_device_precision(g)
    options.add_lora(g)

    m = p.add_argument_group("maps")
    m.add_argument(
        "--method",
        choices=METHODS,
        default="cross-attention",
        help="how maps are made: cross-attention (the image queries' attention to the text "
        "keys, DAAM) or concept (ConceptAttention, Flux.1 only: softmax over the --words, "
        "which need not be in the prompt, of their similarity to the image in the attention "
        "output space)",
    )
    m.add_argument(
        "--normalisation",
        choices=NORMALISATIONS,
        default="text",
        help="text: softmax over the text keys only (what a UNet computes; comparable "
        "across models); joint: the joint softmax over text and image keys, text part "
        "(transformers; equal to text on UNets)",
    )
    m.add_argument(
        "--clamp",
        choices=CLAMP_ORDERS,
        default="after-steps",
        help="when upsampled coarse UNet maps are clamped at 0: once after the step sum "
        "(DAAM 0.2.0) or each step",
    )
    m.add_argument(
        "--text-stream",
        choices=("clip", "t5"),
        default=None,
        help="text encoder whose tokens the words are looked up in; unset: the model's "
        "first (UNets and SD3: clip; Flux: t5)",
    )
    options.add_rule(m)
    m.add_argument(
        "--occurrence",
        type=options.count(0),
        default=None,
        help="use only this occurrence (0-based) of a repeated word; unset: all",
    )
    m.add_argument(
        "--blocks",
        default=None,
        metavar="KIND,...",
        help=f"model parts to record, from {','.join(ALL_BLOCKS)} (UNets: down, mid, up; "
        "SD3: joint; Flux: joint, single); unset: the family's default (UNets down,up as "
        "DAAM; transformers all)",
    )
    m.add_argument(
        "--block-indices",
        default=None,
        metavar="I,...",
        help="transformer block numbers to record within the chosen parts (e.g. 10,11,12); "
        "unset: all",
    )
    m.add_argument(
        "--factors",
        default=None,
        metavar="F,...",
        help="only layers whose maps are F times smaller than the grid (1 = full size); unset: all",
    )
    m.add_argument(
        "--record-steps",
        default=None,
        metavar="START:END",
        help="record only denoising steps START..END-1 (0-based; generation only); unset: all",
    )
    m.add_argument("--threshold", type=options.fraction, default=0.4, help="mask threshold")
    m.add_argument(
        "--quantile",
        action="store_true",
        help="threshold each map at its own quantile instead of a fixed value",
    )
    m.add_argument("--colormap", choices=COLORMAPS, default="jet", help="overlay colours")
    m.add_argument(
        "--overlay-opacity", type=options.fraction, default=0.5, help="opacity of the heat map"
    )
    options.add_deprecated(
        m, "--alpha", dest="overlay_opacity", new="--overlay-opacity", type=options.fraction
    )
    m.add_argument("--format", choices=MAP_FORMATS, default="safetensors", help="raw maps file")
    m.add_argument(
        "--keep-layers",
        action="store_true",
        help="also save each layer's maps (summed over steps)",
    )
    m.add_argument(
        "--keep-steps", action="store_true", help="also save each step's (timestep's) maps"
    )
    options.add_quiet(p)
    return p


def _step_range(text: str | None, steps: int) -> tuple[int, ...] | None:
    from brushwork.errors import ConfigError

    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if not match:
        raise ConfigError(f"--record-steps expects START:END (e.g. 0:10), got '{text}'")
    start = int(match.group(1) or 0)
    end = int(match.group(2) or steps)
    if not 0 <= start < end <= steps:
        raise ConfigError(f"--record-steps {text} is empty or outside the {steps} steps")
    return tuple(range(start, end))


def _ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    from brushwork.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got '{text}'") from None


def _numbers(text: str | None, flag: str) -> list[float] | None:
    from brushwork.errors import ConfigError

    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated numbers, got '{text}'") from None
    if not values:
        raise ConfigError(f"{flag} is empty")
    return values


def slug(word: str) -> str:
    """A file-name-safe form of ``word``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", word).strip("_").lower() or "word"


def _check_mode(args: argparse.Namespace) -> None:
    """Exactly one of a prompt or --image with --caption; options of the other mode refused."""
    from brushwork.errors import ConfigError

    if args.image is None:
        if args.prompt is None and args.caption:
            raise ConfigError("--caption needs --image FILE: the image the caption describes")
        if args.prompt is None:
            raise ConfigError("give a prompt to generate, or --image FILE with --caption TEXT")
        wrong = [f for f, v in (("--caption", args.caption), ("--timesteps", args.timesteps)) if v]
        if wrong:
            raise ConfigError(
                f"{wrong[0]} is for --image; to map a generation give the prompt only"
            )
        return
    if args.prompt is not None:
        raise ConfigError(
            "give either a prompt (generate an image) or --image with --caption (map an "
            "existing image), not both"
        )
    if not args.caption:
        raise ConfigError("--image needs --caption: the text whose words are mapped")
    for flag, value in (
        ("--record-steps", args.record_steps),
        ("--negative-prompt", args.negative_prompt),
        ("--guidance-scale", args.guidance_scale),
        ("--height", getattr(args, "height", None)),
        ("--width", getattr(args, "width", None)),
    ):
        if value is not None:
            raise ConfigError(f"{flag} is for a generation; with --image choose --timesteps")
    if args.size is not None and args.size[1] is not None:
        raise ConfigError("with --image, --size is one number N (the long side): the image's "
                          "aspect is kept")  # fmt: skip


def _check_method(args: argparse.Namespace) -> None:
    """ConceptAttention: ≥ 2 concepts, and none of the token-map options."""
    from brushwork.diffusion.concept_attention import check_concepts
    from brushwork.errors import ConfigError

    if args.method != "concept":
        return
    check_concepts(args.words)
    for flag, value in (
        ("--text-stream", args.text_stream),
        ("--occurrence", args.occurrence),
        ("--blocks", args.blocks),
        ("--factors", args.factors),
        ("--keep-steps", args.keep_steps or None),
    ):
        if value is not None:
            raise ConfigError(f"{flag} is for --method cross-attention")


def _settings(args: argparse.Namespace) -> Any:
    """RecordingSettings from the flags; block names checked (again, per model, on load)."""
    from brushwork.diffusion.attention import RecordingSettings
    from brushwork.errors import ConfigError

    blocks = None
    if args.blocks is not None:
        blocks = tuple(b.strip() for b in args.blocks.split(",") if b.strip())
        bad = [b for b in blocks if b not in ALL_BLOCKS]
        if bad or not blocks:
            raise ConfigError(
                f"unknown block kind(s) {bad or '(none given)'} in --blocks: choose from "
                f"{', '.join(ALL_BLOCKS)}"
            )
    settings = RecordingSettings(
        blocks=blocks,
        indices=_ints(args.block_indices, "--block-indices"),
        factors=_ints(args.factors, "--factors"),
        steps=None if args.image else _step_range(args.record_steps, args.steps),
        keep_per_layer=args.keep_layers,
        keep_per_step=args.keep_steps,
        normalisation=args.normalisation,
        clamp=args.clamp,
    )
    RecordingSettings(**{**settings.__dict__, "blocks": None}).validate()
    return settings


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
    )
    from brushwork.resources import check_folder_writable

    _check_mode(args)
    _check_method(args)
    settings = _settings(args)
    image = None
    if args.image is not None:
        from brushwork.image import load_image

        image = load_image(args.image)
        timesteps = _numbers(args.timesteps, "--timesteps")
        side = args.size[0] if args.size is not None else None
        height = width = side
    else:
        timesteps = None
        height, width, flag = generated_sides(args)
    out = check_folder_writable(args.output)
    check_model_folder(args.model)
    if image is None:
        check_sides_for_model(args.model, height, width, flag)
    check_run_memory(args, args.model, height, width, what="attend")

    if image is not None:
        result, pipe = _map_image(args, image, timesteps, settings)
    else:
        result, pipe = _map_generation(args, height, width, flag, settings)
    meta = _meta(args, pipe, result, settings)
    words = _write_folder(out, result, meta, args)
    if not args.quiet:
        print(f"wrote {out}/ (image.png, sheet.png, {words} overlays and masks)",
              file=sys.stderr)  # fmt: skip
    return 0


def _map_image(
    args: argparse.Namespace, image: Any, timesteps: list[float] | None, settings: Any
) -> tuple[Any, Any]:
    from brushwork.cli.lora import read_lora_flags, use_loras
    from brushwork.diffusion.image_maps import maps_of_image
    from brushwork.diffusion.pipelines import load_pipeline, user_errors

    loras = read_lora_flags(args)
    pipe = load_pipeline(args.model, dtype=args.precision, device=args.device)
    use_loras(args, pipe, loras)
    side = args.size[0] if args.size is not None else None
    if args.method == "concept":
        from brushwork.diffusion.concept_attention import ConceptSettings, concept_maps_of_image

        concept = ConceptSettings(indices=settings.indices, keep_per_layer=settings.keep_per_layer)
        with user_errors():
            result = concept_maps_of_image(
                pipe, image, args.words, caption=args.caption, timesteps=timesteps,
                seed=args.seed, settings=concept, side=side,
            )  # fmt: skip
        return result, pipe
    with user_errors():
        result = maps_of_image(
            pipe,
            image,
            args.caption,
            args.words,
            timesteps=timesteps,
            seed=args.seed,
            settings=settings,
            rule=args.rule,
            occurrence=args.occurrence,
            stream=args.text_stream,
            side=side,
        )
    return result, pipe


def _map_generation(
    args: argparse.Namespace, height: Any, width: Any, flag: str, settings: Any
) -> tuple[Any, Any]:
    from brushwork.cli.lora import read_lora_flags, use_loras
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.pipelines import (
        generate_with_maps,
        load_pipeline,
        pipeline_family,
        user_errors,
    )

    loras = read_lora_flags(args)
    pipe = load_pipeline(args.model, dtype=args.precision, device=args.device)
    _check_loaded_sides(pipe, pipeline_family(pipe), height, width, flag)
    use_loras(args, pipe, loras)
    progress = step_progress(enabled=not args.quiet)
    with progress, user_errors():
        task = progress.add_task("generating", total=args.steps, loss="–")

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            progress.advance(task)
            return kwargs

        if args.method == "concept":
            result = _concept_maps(args, pipe, height, width, settings, on_step)
            return result, pipe
        result = generate_with_maps(
            pipe,
            args.prompt,
            args.words,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            height=height,
            width=width,
            seeds=[args.seed],
            negative_prompt=args.negative_prompt,
            settings=settings,
            rule=args.rule,
            occurrence=args.occurrence,
            stream=args.text_stream,
            callback_on_step_end=on_step,
        )
    return result, pipe


def _concept_maps(
    args: argparse.Namespace, pipe: Any, height: Any, width: Any, settings: Any, on_step: Any
) -> Any:
    """ConceptAttention maps of one generation (block indices and steps from the flags)."""
    from brushwork.diffusion.concept_attention import ConceptSettings, generate_with_concept_maps

    concept = ConceptSettings(
        indices=settings.indices, steps=settings.steps, keep_per_layer=settings.keep_per_layer
    )
    return generate_with_concept_maps(
        pipe,
        args.prompt,
        args.words,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        height=height,
        width=width,
        seeds=[args.seed],
        negative_prompt=args.negative_prompt,
        settings=concept,
        callback_on_step_end=on_step,
    )


def _check_loaded_sides(pipe: Any, family: str, height: Any, width: Any, flag: str) -> None:
    """The loaded model's size rule: UNets' VAE and UNet levels, transformers' patches."""
    from brushwork.diffusion.image_maps import size_multiple
    from brushwork.diffusion.sizes import check_model_sides, check_sides

    if family in ("sd", "sdxl"):
        check_model_sides(pipe, height, width, flag)
        return
    multiple = size_multiple(pipe)
    check_sides(height, width, flag=flag, multiple=multiple, minimum=multiple,
                why="what this model's VAE and patches need")  # fmt: skip


def _meta(args: argparse.Namespace, pipe: Any, result: Any, settings: Any) -> dict:
    """What maps.json records about the run (the rest is added by :func:`_write_outputs`)."""
    from brushwork.diffusion.backbones import backbone_for
    from brushwork.diffusion.pipelines import text_stream
    from brushwork.diffusion.tokens import prompt_tokens

    text = text_stream(pipe, args.text_stream)
    prompt = args.caption if args.image is not None else args.prompt
    tokens = prompt_tokens(text.tokenizer, prompt, stream=text)
    shown = ["<start>"] * tokens.start + tokens.pieces()[: tokens.limit] + ["<end>"]
    if args.image is not None:
        timesteps = [float(t) for t in result.extra["timesteps"]]
    else:  # the run's schedule (step i of recorded_steps is timesteps[i])
        timesteps = [float(t) for t in getattr(pipe.scheduler, "timesteps", [])]
    backbone = backbone_for(pipe)
    meta = {
        "mode": "image" if args.image is not None else "generate",
        "prompt": prompt,
        "tokens": shown,
        "model": args.model,
        "method": args.method,
        "normalisation": settings.normalisation,
        "clamp": settings.clamp,
        "stream": text.name,
        "stream_offset": text.offset,
        "timesteps": timesteps,
        "seed": args.seed,
        "rule": args.rule,
        "blocks": list(settings.blocks or backbone.default_blocks),
        "block_indices": list(settings.indices) if settings.indices is not None else None,
    }
    if args.method == "concept":  # concepts, not text positions; double-stream blocks only
        meta.update(normalisation=None, clamp=None, stream=None, stream_offset=None, rule=None)
        meta.update(blocks=["joint"], block_indices=list(result.extra["blocks"]))
    if args.image is not None:
        meta["image"] = str(args.image)
        meta["input_size"] = list(result.extra["input_size"])
    else:
        meta["steps"] = args.steps
        meta["guidance_scale"] = args.guidance_scale
    return meta


def _write_folder(out: Path, result: Any, meta: dict, args: argparse.Namespace) -> int:
    """Write every output into ``out``; on any failure remove what this run wrote.

    The folder is created here, after the work: a run that fails before leaves no folder.
    Returns the number of words.
    """
    import shutil

    created = not out.exists()
    before = set() if created else {path.name for path in out.iterdir()}
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_outputs(out, result, meta, args)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for path in out.iterdir():
                if path.name not in before and path.is_file():
                    path.unlink(missing_ok=True)
        raise
    return len(result.maps[0].words)


def _write_outputs(out: Path, result: Any, meta: dict, args: argparse.Namespace) -> None:
    """image.png, overlays, masks, sheet.png and the raw maps of one attend result."""
    import torch

    from brushwork.diffusion.maps import binarize, overlay, sheet
    from brushwork.image import save_image

    maps = result.maps[0]
    image = result.images[0]
    heat = maps.heatmaps()
    mode = "quantile" if args.quantile else "fixed"
    masks = binarize(heat, [args.threshold], mode)[0]
    save_image(image, out / "image.png")
    overlays = []
    for word, word_heat, mask in zip(maps.words, heat, masks, strict=True):
        picture = overlay(image, word_heat, alpha=args.overlay_opacity, colormap=args.colormap)
        overlays.append(picture)
        save_image(picture, out / f"overlay_{slug(word)}.png")
        save_image(mask[None].float(), out / f"mask_{slug(word)}.png")
    save_image(sheet([image, *overlays], ["image", *maps.words]), out / "sheet.png")

    tensors = {"word_maps": maps.maps, "token_maps": result.token_maps[0]}
    if args.keep_layers:
        # (layers, tokens, h, w) in the order of maps.json's "layers"
        layer_maps = result.extra["layer_maps"]
        tensors["layer_maps"] = torch.stack([m[0] for m in layer_maps.values()])
    if args.keep_steps:
        tensors["step_maps"] = result.extra["step_maps"][:, 0]
    meta = {
        **meta,
        "words": maps.words,
        "token_positions": maps.positions,
        "image_size": list(maps.image_size),
        "recorded_steps": result.extra.get("steps_recorded"),
        "layers": list(result.extra.get("layer_maps", {})),
        "threshold": args.threshold,
        "threshold_mode": mode,
        "note": CONCEPT_NOTE if args.method == "concept" else TOKEN_NOTE,
    }
    meta["note"] += (
        " Heat maps = bicubic resize to image_size, then per-map "
        "(m - min) / (max - min + 1e-8). timesteps: denoiser timestep values (mode image: "
        "one denoiser call per timestep on the noised image; generate: the run's schedule)."
    )
    _write_maps(out, tensors, meta, args.format)


def _write_maps(folder: Path, tensors: dict, meta: dict, fmt: str) -> None:
    """Raw maps and their description, each file written atomically."""
    import numpy as np
    from safetensors.torch import save_file

    from brushwork.atomic import atomic_path, write_text_atomic

    def atomic(name: str, write: Any) -> None:
        with atomic_path(folder / name) as tmp:
            write(str(tmp))

    if fmt == "safetensors":
        flat = {k: v.contiguous().float().cpu() for k, v in tensors.items()}
        atomic(
            "maps.safetensors",
            lambda p: save_file(flat, p, metadata={"brushwork": json.dumps(meta)}),
        )
    else:
        for key, value in tensors.items():

            def write_npy(p: str, value: Any = value) -> None:
                with open(p, "wb") as handle:
                    np.save(handle, value.float().cpu().numpy())

            atomic(f"{key}.npy", write_npy)
    write_text_atomic(folder / "maps.json", json.dumps(meta, indent=2))
