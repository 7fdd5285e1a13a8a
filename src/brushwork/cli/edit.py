"""``brushwork edit``: text-guided image editing with CDS (default) or DDS.

Also the option helpers shared by the diffusion commands (attend, edit, generate,
study run): device and precision, generated sizes, the memory check, the output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from brushwork.cli import options

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

#: No registry weight file: the pipeline comes from --model (a hub id or folder).
WEIGHT_FLAGS: dict[str, str] = {}

EPILOG = f"""examples:
  brushwork edit cat.png --source "a cat" --target "a pig" -o pig.png
  brushwork edit cat.png --source "a cat" --target "a pig" --method dds -o pig_dds.png
  brushwork edit cat.png --source "a cat" --target "a cow" --iterations 100 --sheet -o cow.png

The model edits the image at its own size: the long side becomes the model's size
(512 px for SD 1.5, --size to change) and both sides are rounded to the multiple the VAE
and UNet need (64 px for SD). The result is resized back to the input's exact size, so
input and edit stay a pair of the same size and aspect ratio. --keep-size refuses
inputs the model cannot take as they are instead of resizing them. --sheet also writes
<output>_sheet.png (input | result).

The model ({DEFAULT_MODEL} unless --model is given) is downloaded from the Hugging Face
Hub on first use; offline, pass a local folder written by save_pretrained.
"""

#: The smallest side a diffusion command takes (one latent cell).
MIN_SIDE = 8

#: One line for ``brushwork --help``.
HELP = "edit an image toward a text prompt (Contrastive Denoising Score / DDS)"


# --------------------------------------------------------------------------- shared helpers


def add_device_precision(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--device``, ``--precision`` (auto: fp16 on CUDA, else fp32; ``--dtype``: old name)."""
    options.add_device(group)
    options.add_precision(
        group,
        what="model weights (maps, latents and losses stay fp32)",
        auto="fp16 on CUDA, else fp32",
        dtype_alias=True,
    )
    options.add_memory_limit(group)


def _at_least_min_side(parse: Any) -> Any:
    def checked(text: str) -> Any:
        value = parse(text)
        sides = value if isinstance(value, tuple) else (value,)
        if any(side is not None and side < MIN_SIDE for side in sides):
            raise argparse.ArgumentTypeError(f"sides must be {MIN_SIDE} px or more, got '{text}'")
        return value

    return checked


def add_generated_size(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--size N|HxW`` (multiples of 8) and the deprecated ``--height``/``--width``."""
    options.add_size(
        group,
        default=None,
        exact=True,
        what="image size in pixels, N (N×N) or HxW (height×width), multiples of 8; "
        "unset: the model's own size, 512 for SD 1.5, 1024 for SDXL",
    )
    _require_min_side(group, "size")
    for side in ("height", "width"):
        options.add_deprecated(
            group, f"--{side}", dest=side, new="--size HxW", type=options.count(MIN_SIDE)
        )


def _require_min_side(group: Any, dest: str) -> None:
    container = getattr(group, "_group_actions", None) or group._actions
    action = next(a for a in container if a.dest == dest)
    action.type = _at_least_min_side(action.type)
    action.help = (action.help or "").replace(" (default: see below)", "")


def generated_sides(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    """(height, width, flag) from ``--size`` or the old ``--height``/``--width``.

    Checks the multiple-of-8 rule (before any model loads). ``None``: the model's size.
    """
    from brushwork.diffusion.sizes import check_sides
    from brushwork.errors import ConfigError

    old_height, old_width = getattr(args, "height", None), getattr(args, "width", None)
    if args.size is not None:
        if old_height is not None or old_width is not None:
            raise ConfigError("give --size HxW or the old --height/--width, not both")
        first, second = args.size
        height, width = first, (second if second is not None else first)
        check_sides(height, width, flag="--size")
        return height, width, "--size"
    check_sides(old_height, None, flag="--height")
    check_sides(None, old_width, flag="--width")
    return old_height, old_width, "--height/--width"


def check_model_folder(model: str) -> None:
    """A model given as a local path must be a folder (checked before any work)."""
    from brushwork.errors import WeightsError
    from brushwork.hub import looks_like_path

    if looks_like_path(model) and not Path(model).expanduser().is_dir():
        raise WeightsError(f"diffusion pipeline folder {Path(model).expanduser()} does not exist")


def check_sides_for_model(model: str, height: int | None, width: int | None, flag: str) -> None:
    """The model folder's own size rule (VAE factor, UNet minimum), read from its configs."""
    from brushwork.diffusion.sizes import check_sides, model_facts

    facts = model_facts(model)
    if facts is not None:
        check_sides(
            height,
            width,
            flag=flag,
            multiple=facts.vae_factor,
            minimum=facts.minimum,
            why="what this model's VAE and UNet need",
        )


def check_run_memory(
    args: argparse.Namespace,
    model: str,
    height: int | None,
    width: int | None,
    *,
    what: str,
    batch: int = 1,
    backward: bool = False,
) -> Any:
    """Resolve ``--device`` (one line if unavailable) and refuse sizes that cannot fit.

    Returns the torch device.
    """
    from brushwork.devices import resolve_device
    from brushwork.diffusion.pipelines import bytes_per_value
    from brushwork.diffusion.sizes import default_side, estimate_memory, guess_family
    from brushwork.resources import check_memory

    device = resolve_device(args.device)
    side = default_side(model)
    h, w = height or side, width or side
    need = estimate_memory(
        h,
        w,
        family=guess_family(model),
        bytes_per_value=bytes_per_value(args.precision, device.type),
        batch=batch,
        backward=backward,
    )
    check_memory(need, device, what=f"{what} at {h}x{w}", limit_gib=args.memory_limit)
    return device


def load_checked_pipeline(
    args: argparse.Namespace, model: str, height: int | None, width: int | None, flag: str
) -> Any:
    """Load the pipeline, then check the sizes against its own rule."""
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.diffusion.sizes import check_model_sides

    pipe = load_pipeline(model, dtype=args.precision, device=args.device)
    check_model_sides(pipe, height, width, flag)
    return pipe


# --------------------------------------------------------------------------- edit


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
    )
    p.add_argument("image", help="the image to edit")
    p.add_argument("--source", required=True, help='prompt describing the image ("a cat")')
    p.add_argument("--target", required=True, help='prompt of the wanted edit ("a pig")')
    options.add_output(p)
    p.add_argument("--method", choices=METHODS, default=d.method, help="edit method")

    o = p.add_argument_group("optimisation (defaults: the published code)")
    options.add_steps(o, default=d.iterations, what="optimisation iterations", flag="--iterations")
    o.add_argument("--t-min", type=options.count(0), default=d.t_min, help="smallest timestep")
    o.add_argument(
        "--t-max", type=options.count(1), default=d.t_max, help="largest timestep (exclusive)"
    )
    o.add_argument(
        "--guidance-scale",
        type=options.non_negative_float,
        default=d.guidance_scale,
        help="CFG scale",
    )
    o.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=options.positive_float,
        default=d.learning_rate,
        help="SGD learning rate",
    )
    o.add_argument(
        "--dds-weight", type=options.non_negative_float, default=d.dds_weight, help="DDS weight"
    )
    o.add_argument(
        "--cut-weight", type=options.non_negative_float, default=d.cut_weight, help="CDS weight"
    )
    o.add_argument(
        "--patch-sizes",
        default=",".join(map(str, d.patch_sizes)),
        help="CUT pooling sizes",
    )
    options.add_steps(o, default=d.num_patches, what="CUT patches", flag="--patches")
    o.add_argument(
        "--temperature", type=options.positive_float, default=d.temperature, help="CUT temperature"
    )
    options.add_seed(o, default=d.seed)

    m = p.add_argument_group("model")
    options.add_model(m, default=DEFAULT_MODEL)
    options.add_size(
        m, default=None, what="long side the model edits at; unset: the model's size, 512 for SD"
    )
    _require_min_side(m, "size")
    m.add_argument(
        "--keep-size",
        action="store_true",
        help="refuse images whose size the model cannot take instead of resizing them",
    )
    add_device_precision(m)
    p.add_argument("--sheet", action="store_true", help="also save input | result side by side")
    options.add_quiet(p)
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
    from brushwork.diffusion.editing import EditSettings, check_prompt, edit_keeping_size
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.image import check_output_path, load_image, save_image

    settings = replace(
        EditSettings(),
        method=args.method,
        iterations=args.iterations,
        t_min=args.t_min,
        t_max=args.t_max,
        guidance_scale=args.guidance_scale,
        learning_rate=args.learning_rate,
        dds_weight=args.dds_weight,
        cut_weight=args.cut_weight,
        patch_sizes=parse_ints(args.patch_sizes, "--patch-sizes"),
        num_patches=args.patches,
        temperature=args.temperature,
        seed=args.seed,
    )
    settings.validate()
    image = load_image(args.image)
    output = check_output_path(args.output, inputs=[args.image])
    check_model_folder(args.model)
    side = args.size or _model_side(args.model)
    h, w = image.shape[-2:]
    scale = side / max(h, w)
    check_run_memory(args, args.model, round(h * scale), round(w * scale), what="editing", batch=2)
    pipe = load_checked_pipeline(args, args.model, None, None, "--size")
    for prompt, what in ((args.source, "source prompt"), (args.target, "target prompt")):
        check_prompt(pipe.tokenizer, prompt, what=what)
    long_side = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    with step_progress(enabled=not args.quiet) as progress, user_errors("the edit"):
        task = progress.add_task(args.method.upper(), total=settings.iterations, loss="–")
        result = edit_keeping_size(
            pipe,
            image,
            args.source,
            args.target,
            long_side=long_side,
            resize=not args.keep_size,
            settings=settings,
            callback=progress_callback(progress, task),
        )
    save_image(result.image, output)
    if args.sheet:
        save_image(side_by_side([image, result.image]), sheet_path(output))
    if not args.quiet:
        mh, mw = result.model_size or (h, w)
        edited_at = f" (edited at {mw}×{mh}, resized back to {w}×{h})" if (mh, mw) != (h, w) else ""
        print(f"saved {output}{edited_at}", file=sys.stderr)
    return 0


def _model_side(model: str) -> int:
    from brushwork.diffusion.sizes import default_side

    return default_side(model)
