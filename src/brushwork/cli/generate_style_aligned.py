"""``brushwork generate PROMPT... --style-aligned``: one style across a set of prompts.

Parses the StyleAligned flags, calls :mod:`brushwork.diffusion.style_aligned` and writes
one image per prompt into the output folder. ``generate.py`` adds the flags with
:func:`add_arguments` and hands the run to :func:`run` when :func:`wanted`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any

from brushwork.cli import options

SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = f"""
--style-aligned (StyleAligned, Hertz et al. 2024): the prompts are generated in one batch
whose images share self-attention with the first, so all take its style; -o is a folder
(00-<prompt>.png, 01-...). --reference PHOTO --reference-prompt TEXT: the style of a given
image instead (DDIM inversion of the photo, which then plays the first image's part).
Default model: {SDXL_MODEL} (the paper's); 50 steps.
  brushwork generate "a cat, flat design" "a dog, flat design" --style-aligned -o set/
  brushwork generate "a man eating pizza" --style-aligned --reference bed.jpg \\
          --reference-prompt "a man laying in a bed, medieval painting" -o set/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("StyleAligned (one style across the prompts)")
    g.add_argument(
        "--style-aligned", action="store_true", help="share the first image's style (one batch)"
    )
    g.add_argument(
        "--reference", default=None, metavar="IMAGE", help="take the style of this image instead"
    )
    g.add_argument("--reference-prompt", default=None, help="what the --reference image shows")
    g.add_argument(
        "--shared-score-scale",
        type=options.non_negative_float,
        default=None,
        help="factor on the reference's keys (default: 1; < 1 weakens the reference)",
    )
    g.add_argument(
        "--shared-score-shift",
        type=_finite,
        default=None,
        help="added to the reference's attention logits (default: 0; log 2 with --reference)",
    )


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def wanted(args: argparse.Namespace) -> bool:
    return bool(args.style_aligned or args.reference or args.reference_prompt)


def _check(args: argparse.Namespace) -> None:
    from brushwork.errors import ConfigError

    if not args.style_aligned:
        raise ConfigError("--reference / --reference-prompt are for --style-aligned")
    if args.style or args.saliency_guided:
        raise ConfigError("--style-aligned takes neither --style nor --saliency-guided")
    if bool(args.reference) != bool(args.reference_prompt):
        raise ConfigError("--reference IMAGE needs --reference-prompt TEXT (what it shows)")
    if Path(args.output).suffix:
        raise ConfigError(
            f"--style-aligned writes one image per prompt: -o must be a folder, got '{args.output}'"
        )


def slug(text: str, length: int = 40) -> str:
    """A file-name part for a prompt: lowercase words joined by dashes."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:length].strip("-") or "image"


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
        load_checked_pipeline,
        side_by_side,
    )
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.editing import check_prompt, fit_image, latent_multiple
    from brushwork.diffusion.sizes import default_side
    from brushwork.diffusion.style_aligned import (
        StyleAlignedSettings,
        generate_style_aligned,
        style_aligned_from_image,
    )
    from brushwork.image import load_image, save_image
    from brushwork.resources import check_folder_writable

    _check(args)
    prompts = list(args.prompt)
    height, width, flag = generated_sides(args)
    steps = args.steps or 50
    reference = load_image(args.reference) if args.reference else None
    out_dir = check_folder_writable(args.output)
    model = args.model or SDXL_MODEL
    check_model_folder(model)
    check_sides_for_model(model, height, width, flag)
    batch = len(prompts) + (reference is not None)
    check_run_memory(args, model, height, width, what="StyleAligned", batch=batch)
    pipe = load_checked_pipeline(args, model, height, width, flag)
    for prompt in [*prompts, *([args.reference_prompt] if reference is not None else [])]:
        check_prompt(pipe.tokenizer, prompt)
    changes: dict[str, Any] = {}
    if args.shared_score_scale is not None:
        changes["shared_score_scale"] = args.shared_score_scale
    if args.shared_score_shift is not None:
        changes["shared_score_shift"] = args.shared_score_shift
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("StyleAligned", total=steps, loss="–")
        callback = lambda step, total: progress.update(task, completed=step)  # noqa: E731
        if reference is None:
            result = generate_style_aligned(
                pipe,
                prompts,
                settings=StyleAlignedSettings(**changes),
                steps=steps,
                guidance_scale=args.guidance_scale,
                height=height,
                width=width,
                seed=args.seed,
                negative_prompt=args.negative_prompt,
                callback=callback,
            )
        else:
            long_side = max(height or 0, width or 0) or default_side(model)
            multiple = math.lcm(8, latent_multiple(pipe))  # the pipelines need 8 at least
            photo = fit_image(reference, multiple=multiple, long_side=long_side)
            result = style_aligned_from_image(
                pipe,
                photo,
                args.reference_prompt,
                prompts,
                settings=StyleAlignedSettings.for_reference_image(**changes),
                steps=steps,
                guidance_scale=args.guidance_scale,
                seed=args.seed,
                negative_prompt=args.negative_prompt,
                callback=callback,
            )
    _check_finite(result.images)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (prompt, image) in enumerate(zip(result.prompts, result.images, strict=True)):
        written.append(save_image(image, out_dir / f"{index:02d}-{slug(prompt)}.png"))
    if args.sheet:
        panels = ([reference] if reference is not None else []) + list(result.images)
        save_image(side_by_side(panels), out_dir / "sheet.png")
    if not args.quiet:
        print(f"saved {len(written)} images in {out_dir} ({result.seconds:.1f} s)", file=sys.stderr)
    return 0


def _check_finite(images: Any) -> None:
    import torch

    from brushwork.errors import OptimisationError

    if not torch.isfinite(images).all():
        raise OptimisationError(
            "the generated images have NaNs (float16 VAEs overflow, SDXL's in particular): "
            "run with --precision fp32"
        )
