"""``brushwork edit``: text-guided image editing with CDS (default) or DDS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from brushwork.choices import DEVICE_CHOICES

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

EPILOG = f"""examples:
  brushwork edit cat.png --source "a cat" --target "a pig" -o pig.png
  brushwork edit cat.png --source "a cat" --target "a pig" --method dds -o pig_dds.png
  brushwork edit cat.png --source "a cat" --target "a cow" --iterations 100 --sheet -o cow.png

The image is resized so that its long side is the model's size (512 px for SD 1.5,
--size to change) and both sides are rounded to the multiple the VAE and UNet need
(64 px for SD); --keep-size refuses other sizes instead of resizing. The result has the
size the model saw. --sheet also writes <output>_sheet.png (input | result).

The model ({DEFAULT_MODEL} unless --model is given) is downloaded from the Hugging Face
Hub on first use; offline, pass a local folder written by save_pretrained.
"""


#: One line for ``brushwork --help``.
HELP = "edit an image toward a text prompt (Contrastive Denoising Score / DDS)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.diffusion.editing import METHODS, EditSettings

    d = EditSettings()
    p = subparsers.add_parser(
        "edit",
        help=HELP,
        description="Edit an image from a source prompt to a target prompt by score "
        "distillation: Contrastive Denoising Score (Nam et al. 2024, default) or Delta "
        "Denoising Score (Hertz et al. 2023), with Stable Diffusion.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", help="the image to edit")
    p.add_argument("--source", required=True, help='prompt describing the image ("a cat")')
    p.add_argument("--target", required=True, help='prompt of the wanted edit ("a pig")')
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    p.add_argument("--method", choices=METHODS, default=d.method, help="(%(default)s)")

    o = p.add_argument_group("optimisation (defaults: the published code)")
    o.add_argument("--iterations", type=int, default=d.iterations, help="(%(default)s)")
    o.add_argument("--t-min", type=int, default=d.t_min, help="(%(default)s)")
    o.add_argument("--t-max", type=int, default=d.t_max, help="(%(default)s, exclusive)")
    o.add_argument("--guidance-scale", type=float, default=d.guidance_scale, help="(%(default)s)")
    o.add_argument("--lr", type=float, default=d.learning_rate, help="SGD (%(default)s)")
    o.add_argument("--dds-weight", type=float, default=d.dds_weight, help="(%(default)s)")
    o.add_argument("--cut-weight", type=float, default=d.cut_weight, help="CDS (%(default)s)")
    o.add_argument(
        "--patch-sizes",
        default=",".join(map(str, d.patch_sizes)),
        help="CUT pooling sizes (%(default)s)",
    )
    o.add_argument("--patches", type=int, default=d.num_patches, help="(%(default)s)")
    o.add_argument("--temperature", type=float, default=d.temperature, help="(%(default)s)")
    o.add_argument("--seed", type=int, default=d.seed, help="(%(default)s)")

    m = p.add_argument_group("model")
    m.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder (%(default)s)")
    m.add_argument("--size", type=int, default=None, help="long side (default: the model's)")
    m.add_argument(
        "--keep-size",
        action="store_true",
        help="refuse images whose size the model cannot take instead of resizing them",
    )
    m.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    m.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="model weights (auto: float16 on CUDA, else float32); the latent is float32",
    )
    p.add_argument("--sheet", action="store_true", help="also save input | result side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
    from brushwork.errors import ConfigError

    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got '{text}'") from None
    if not values:
        raise ConfigError(f"{flag} is empty")
    return values


def sheet_path(output: Path) -> Path:
    """``cat.png`` -> ``cat_sheet.png`` (same folder, same type)."""
    return output.with_name(f"{output.stem}_sheet{output.suffix}")


def side_by_side(images: list[Any], *, gap: int = 8) -> Any:
    """(3, H, W) or (1, H, W) images in [0, 1] -> one (3, H, ΣW + gaps) sheet on white.

    Every panel is resized to the height of the first.
    """
    import torch

    from brushwork.image import resize_to

    height = int(images[0].shape[-2])
    panels = []
    for image in images:
        image = image.float().cpu()
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        h, w = image.shape[-2:]
        if h != height:
            image = resize_to(image, height, max(1, round(w * height / h)))
        panels.append(image)
        panels.append(torch.ones(3, height, gap))
    return torch.cat(panels[:-1], dim=2).clamp(0, 1)


def progress_callback(progress: Any, task: Any) -> Any:
    def update(step: int, total: int, loss: float) -> None:
        progress.update(task, completed=step, total=total, loss=f"{loss:.4g}")

    return update


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.editing import (
        EditSettings,
        check_prompt,
        edit_image,
        fit_image,
        latent_multiple,
    )
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.image import check_output_path, load_image, save_image

    output = check_output_path(args.output, inputs=[args.image])
    settings = replace(
        EditSettings(),
        method=args.method,
        iterations=args.iterations,
        t_min=args.t_min,
        t_max=args.t_max,
        guidance_scale=args.guidance_scale,
        learning_rate=args.lr,
        dds_weight=args.dds_weight,
        cut_weight=args.cut_weight,
        patch_sizes=parse_ints(args.patch_sizes, "--patch-sizes"),
        num_patches=args.patches,
        temperature=args.temperature,
        seed=args.seed,
    )
    settings.validate()
    image = load_image(args.image)
    pipe = load_pipeline(args.model, dtype=args.dtype, device=args.device)
    for prompt, what in ((args.source, "source prompt"), (args.target, "target prompt")):
        check_prompt(pipe.tokenizer, prompt, what=what)
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor
    long_side = args.size or native
    multiple = latent_multiple(pipe)
    fitted = fit_image(image, multiple=multiple, long_side=long_side, resize=not args.keep_size)
    if tuple(fitted.shape[-2:]) != tuple(image.shape[-2:]) and not args.quiet:
        h, w = image.shape[-2:]
        fh, fw = fitted.shape[-2:]
        print(
            f"resized the input from {w}×{h} to {fw}×{fh} (long side {long_side}, sides "
            f"multiples of {multiple}); --keep-size refuses instead",
            file=sys.stderr,
        )
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task(args.method.upper(), total=settings.iterations, loss="–")
        result = edit_image(
            pipe,
            fitted,
            args.source,
            args.target,
            settings=settings,
            callback=progress_callback(progress, task),
        )
    save_image(result.image, output)
    if args.sheet:
        save_image(side_by_side([fitted, result.image]), sheet_path(output))
    if not args.quiet:
        print(f"saved {output}", file=sys.stderr)
    return 0
