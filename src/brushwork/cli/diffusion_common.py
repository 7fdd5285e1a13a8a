"""What the diffusion commands (attend, edit, generate, study) share on the command line.

Their device/precision/memory options, the generated ``--size N|HxW`` (multiples of 8,
with the deprecated ``--height``/``--width``), the checks of sizes, model folder and
memory made before a pipeline loads, and the sheet and progress helpers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from brushwork.cli import options

#: The smallest side a diffusion command takes (one latent cell).
MIN_SIDE = 8


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
    require_min_side(group, "size")
    for side in ("height", "width"):
        options.add_deprecated(
            group, f"--{side}", dest=side, new="--size HxW", type=options.count(MIN_SIDE)
        )


def require_min_side(group: Any, dest: str) -> None:
    container = getattr(group, "_group_actions", None) or group._actions
    action = next(a for a in container if a.dest == dest)
    action.type = _at_least_min_side(action.type)


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
    """The model's own size rule, before loading: a folder's configs (VAE factor and UNet
    minimum, or VAE factor × patch for transformers), or the published rule of a hub id
    named SD3/Flux (multiples of 16)."""
    from brushwork.diffusion.sizes import check_sides_for, known_facts

    facts = known_facts(model)
    if facts is not None:
        check_sides_for(facts, height, width, flag)


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

    The estimate is :func:`~brushwork.diffusion.sizes.estimate_model_memory` (UNet or
    transformer formula, a folder's own configs and safetensors parameter count).
    Returns the torch device.
    """
    from brushwork.devices import resolve_device
    from brushwork.diffusion.pipelines import bytes_per_value
    from brushwork.diffusion.sizes import default_side, estimate_model_memory
    from brushwork.resources import check_memory

    device = resolve_device(args.device)
    side = default_side(model)
    h, w = height or side, width or side
    need = estimate_model_memory(
        model,
        h,
        w,
        bytes_per_value=bytes_per_value(args.precision, device.type),
        batch=batch,
        backward=backward,
    )
    check_memory(need, device, what=f"{what} at {h}x{w}", limit_gib=args.memory_limit)
    return device


def load_checked_pipeline(
    args: argparse.Namespace, model: str, height: int | None, width: int | None, flag: str
) -> Any:
    """Load the pipeline, then check the sizes against its own rule; ``--lora`` files (if
    the command has the flag) are read before and loaded after."""
    from brushwork.cli.lora import read_lora_flags, use_loras
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.diffusion.sizes import check_model_sides

    loras = read_lora_flags(args)
    pipe = load_pipeline(model, dtype=args.precision, device=args.device)
    check_model_sides(pipe, height, width, flag)
    use_loras(args, pipe, loras)
    return pipe


# --------------------------------------------------------------------------- edit


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
