"""``brushwork attend``: generate an image and the attention map of each word (DAAM)."""

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

writes into the output folder: image.png, overlay_<word>.png and mask_<word>.png per word,
sheet.png (image and overlays side by side), and the raw maps (maps.safetensors or
maps.npy, with maps.json describing them). The folder is created only once the maps
are ready; a failing run leaves nothing behind.

--size N or HxW: sides must be multiples of 8 (the VAE's factor); unset, the model's own
size. Sizes that cannot fit in memory are refused before loading (--memory-limit).

The model ({DEFAULT_MODEL} unless --model is given) is downloaded from the
Hugging Face Hub on first use; offline, pass a local folder written by save_pretrained.
"""

MAP_FORMATS = ("safetensors", "npy")

#: No registry weight file: the pipeline comes from --model (a hub id or folder).
WEIGHT_FLAGS: dict[str, str] = {}

#: One line for ``brushwork --help``.
HELP = "word attribution maps from cross-attention (DAAM)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.diffusion_common import add_device_precision, add_generated_size
    from brushwork.diffusion.attention import BLOCK_KINDS
    from brushwork.diffusion.maps import COLORMAPS

    p = subparsers.add_parser(
        "attend",
        help=HELP,
        description="Generate an image with Stable Diffusion 1.x/2.x/XL and show where each "
        "word of the prompt acts: DAAM maps from the text cross-attention (Tang et al. 2023).",
        epilog=EPILOG,
    )
    p.add_argument("prompt", help="the prompt")
    p.add_argument(
        "--words", nargs="+", required=True, metavar="WORD", help="words or phrases of the prompt"
    )
    options.add_output(p, what="output folder")

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

    m = p.add_argument_group("maps")
    options.add_rule(m)
    m.add_argument(
        "--occurrence",
        type=options.count(0),
        default=None,
        help="use only this occurrence (0-based) of a repeated word; unset: all",
    )
    m.add_argument(
        "--blocks",
        default="down,up",
        help=f"UNet parts to record, from {','.join(BLOCK_KINDS)} (default: %(default)s, as DAAM)",
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
        help="record only denoising steps START..END-1 (0-based); unset: all",
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
    m.add_argument("--keep-steps", action="store_true", help="also save each step's maps")
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


def slug(word: str) -> str:
    """A file-name-safe form of ``word``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", word).strip("_").lower() or "word"


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
        load_checked_pipeline,
    )
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.attention import RecordingSettings
    from brushwork.diffusion.pipelines import generate_with_maps, user_errors
    from brushwork.diffusion.tokens import prompt_tokens, word_positions
    from brushwork.resources import check_folder_writable

    blocks = tuple(b.strip() for b in args.blocks.split(",") if b.strip())
    settings = RecordingSettings(
        blocks=blocks,
        factors=_ints(args.factors, "--factors"),
        steps=_step_range(args.record_steps, args.steps),
        keep_per_layer=args.keep_layers,
        keep_per_step=args.keep_steps,
    )
    settings.validate()
    height, width, flag = generated_sides(args)
    out = check_folder_writable(args.output)
    check_model_folder(args.model)
    check_sides_for_model(args.model, height, width, flag)
    check_run_memory(args, args.model, height, width, what="attend")

    pipe = load_checked_pipeline(args, args.model, height, width, flag)
    tokens = prompt_tokens(pipe.tokenizer, args.prompt)
    for word in args.words:  # before generating: a bad word costs nothing
        word_positions(pipe.tokenizer, tokens, word, occurrence=args.occurrence, rule=args.rule)

    progress = step_progress(enabled=not args.quiet)
    with progress, user_errors():
        task = progress.add_task("generating", total=args.steps, loss="–")

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            progress.advance(task)
            return kwargs

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
            callback_on_step_end=on_step,
        )
    meta = {
        "prompt": args.prompt,
        "tokens": ["<start>", *tokens.pieces()[: tokens.limit], "<end>"],
        "model": args.model,
        "steps": args.steps,
        "seed": args.seed,
        "guidance_scale": args.guidance_scale,
        "rule": args.rule,
        "blocks": list(blocks),
    }
    words = _write_folder(out, result, meta, args)
    if not args.quiet:
        print(f"wrote {out}/ (image.png, sheet.png, {words} overlays and masks)",
              file=sys.stderr)  # fmt: skip
    return 0


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
        "note": "word_maps: (words, h, w) raw DAAM maps (sum over steps, mean over layers and "
        "heads); token_maps: (tokens, h, w). Heat maps = bicubic resize to image_size, then "
        "per-map (m - min) / (max - min + 1e-8).",
    }
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
