"""``brushwork attend``: generate an image and the attention map of each word (DAAM)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from brushwork.choices import DEVICE_CHOICES

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

EPILOG = f"""examples:
  brushwork attend "a giraffe in the Analytical Cubism style" --words giraffe "Analytical Cubism" \\
          --model stabilityai/stable-diffusion-xl-base-1.0 --steps 30 --seed 7 -o giraffe/
  brushwork attend "a cat and a dog" --words cat dog --threshold 0.5 --quantile -o pets/

writes into the output folder: image.png, overlay_<word>.png and mask_<word>.png per word,
sheet.png (image and overlays side by side), and the raw maps (maps.safetensors or
maps.npy, with maps.json describing them).

The model ({DEFAULT_MODEL} unless --model is given) is downloaded from the
Hugging Face Hub on first use; offline, pass a local folder written by save_pretrained.
"""

MAP_FORMATS = ("safetensors", "npy")


#: One line for ``brushwork --help``.
HELP = "word attribution maps from cross-attention (DAAM)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.diffusion.attention import BLOCK_KINDS
    from brushwork.diffusion.maps import COLORMAPS
    from brushwork.diffusion.tokens import TOKEN_RULES

    p = subparsers.add_parser(
        "attend",
        help=HELP,
        description="Generate an image with Stable Diffusion 1.x/2.x/XL and show where each "
        "word of the prompt acts: DAAM maps from the text cross-attention (Tang et al. 2023).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", help="the prompt")
    p.add_argument(
        "--words", nargs="+", required=True, metavar="WORD", help="words or phrases of the prompt"
    )
    p.add_argument("-o", "--output", required=True, help="output folder")

    g = p.add_argument_group("generation")
    g.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder (%(default)s)")
    g.add_argument("--steps", type=int, default=30, help="denoising steps (%(default)s)")
    g.add_argument("--guidance-scale", type=float, default=None, help="default: the pipeline's own")
    g.add_argument("--negative-prompt", default=None)
    g.add_argument("--height", type=int, default=None, help="default: the model's size")
    g.add_argument("--width", type=int, default=None, help="default: the model's size")
    g.add_argument("--seed", type=int, default=0, help="(%(default)s)")
    g.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    g.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="model weights (auto: float16 on CUDA, else float32); maps are always float32",
    )

    m = p.add_argument_group("maps")
    m.add_argument(
        "--rule",
        choices=TOKEN_RULES,
        default="mean",
        help="a word of several tokens: mean of its tokens (DAAM) or first token only",
    )
    m.add_argument(
        "--occurrence",
        type=int,
        default=None,
        help="use only this occurrence (0-based) of a repeated word; default: all",
    )
    m.add_argument(
        "--blocks",
        default="down,up",
        help=f"UNet parts to record, from {','.join(BLOCK_KINDS)} (%(default)s, as DAAM)",
    )
    m.add_argument(
        "--factors",
        default=None,
        metavar="F,...",
        help="only layers whose maps are F times smaller than the grid (1 = full size); "
        "default: all",
    )
    m.add_argument(
        "--record-steps",
        default=None,
        metavar="START:END",
        help="record only denoising steps START..END-1 (0-based); default: all",
    )
    m.add_argument("--threshold", type=float, default=0.4, help="mask threshold (%(default)s)")
    m.add_argument(
        "--quantile",
        action="store_true",
        help="threshold each map at its own quantile instead of a fixed value",
    )
    m.add_argument("--colormap", choices=COLORMAPS, default="jet")
    m.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (%(default)s)")
    m.add_argument("--format", choices=MAP_FORMATS, default="safetensors", help="raw maps file")
    m.add_argument(
        "--keep-layers",
        action="store_true",
        help="also save each layer's maps (summed over steps)",
    )
    m.add_argument("--keep-steps", action="store_true", help="also save each step's maps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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
    import torch

    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.attention import RecordingSettings
    from brushwork.diffusion.maps import binarize, overlay, sheet
    from brushwork.diffusion.pipelines import generate_with_maps, load_pipeline
    from brushwork.diffusion.tokens import prompt_tokens, word_positions
    from brushwork.errors import ConfigError, OutputPathError
    from brushwork.image import save_image

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out} exists and is not a folder")
    if not out.parent.is_dir():
        raise OutputPathError(f"the folder {out.parent} does not exist")
    if args.steps < 1:
        raise ConfigError(f"--steps must be ≥ 1, got {args.steps}")
    if not 0 <= args.alpha <= 1:
        raise ConfigError(f"--alpha must be in [0, 1], got {args.alpha}")
    blocks = tuple(b.strip() for b in args.blocks.split(",") if b.strip())
    settings = RecordingSettings(
        blocks=blocks,
        factors=_ints(args.factors, "--factors"),
        steps=_step_range(args.record_steps, args.steps),
        keep_per_layer=args.keep_layers,
        keep_per_step=args.keep_steps,
    )
    settings.validate()

    pipe = load_pipeline(args.model, dtype=args.dtype, device=args.device)
    tokens = prompt_tokens(pipe.tokenizer, args.prompt)
    for word in args.words:  # before generating: a bad word costs nothing
        word_positions(pipe.tokenizer, tokens, word, occurrence=args.occurrence, rule=args.rule)

    progress = step_progress(enabled=not args.quiet)
    with progress:
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
            height=args.height,
            width=args.width,
            seeds=[args.seed],
            negative_prompt=args.negative_prompt,
            settings=settings,
            rule=args.rule,
            occurrence=args.occurrence,
            callback_on_step_end=on_step,
        )
    maps = result.maps[0]
    image = result.images[0]
    heat = maps.heatmaps()
    mode = "quantile" if args.quantile else "fixed"
    masks = binarize(heat, [args.threshold], mode)[0]

    out.mkdir(exist_ok=True)
    save_image(image, out / "image.png")
    overlays = []
    for word, word_heat, mask in zip(maps.words, heat, masks, strict=True):
        picture = overlay(image, word_heat, alpha=args.alpha, colormap=args.colormap)
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
        "prompt": args.prompt,
        "words": maps.words,
        "token_positions": maps.positions,
        "tokens": ["<start>", *tokens.pieces()[: tokens.limit], "<end>"],
        "model": args.model,
        "steps": args.steps,
        "seed": args.seed,
        "guidance_scale": args.guidance_scale,
        "image_size": list(maps.image_size),
        "rule": args.rule,
        "blocks": list(blocks),
        "recorded_steps": result.extra.get("steps_recorded"),
        "layers": list(result.extra.get("layer_maps", {})),
        "threshold": args.threshold,
        "threshold_mode": mode,
        "note": "word_maps: (words, h, w) raw DAAM maps (sum over steps, mean over layers and "
        "heads); token_maps: (tokens, h, w). Heat maps = bicubic resize to image_size, then "
        "per-map (m - min) / (max - min + 1e-8).",
    }
    _write_maps(out, tensors, meta, args.format)
    if not args.quiet:
        print(f"wrote {out}/ (image.png, sheet.png, {len(maps.words)} overlays and masks)",
              file=sys.stderr)  # fmt: skip
    return 0


def _write_maps(folder: Path, tensors: dict, meta: dict, fmt: str) -> None:
    """Raw maps and their description, each file written atomically."""
    import numpy as np
    from safetensors.torch import save_file

    from brushwork.atomic import atomic_path

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
    atomic("maps.json", lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
