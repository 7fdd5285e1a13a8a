"""``brushwork stylize --method controlnet``: a photo's layout, a style image's style.

Parses the ControlNet flags, then calls :mod:`brushwork.diffusion.controlnet_style`
(control image, ControlNet pipeline, IP-Adapter/InstantStyle) and saves the result.
``stylize.py`` adds these flags with :func:`add_arguments` and hands every method in
:data:`METHODS` to :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from brushwork.cli import options

#: The ``--method`` values this module runs.
METHODS = ("controlnet",)

#: Registry name -> the flag that gives a local copy (missing-weights hints).
WEIGHT_FLAGS = {
    **{
        f"controlnet-{control}-{family}": "--controlnet"
        for control in ("canny", "depth", "lineart")
        for family in ("sd15", "sdxl")
    },
    "dpt-hybrid-midas": "--annotator",
    "lineart-annotator": "--annotator",
    **options.IP_ADAPTER_WEIGHT_FLAGS,
}

SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

EPILOG = """
ControlNet (--method controlnet): the photo's Canny edges, depth (--annotator: a
transformers depth model, default Intel/dpt-hybrid-midas) or line art (--annotator: a
folder or repo with sk_model.pth, default lllyasviel/Annotators) steer a Stable Diffusion
1.5 or SDXL ControlNet (--controlnet: Hub id or folder; default the published one for the
model), and --style enters through IP-Adapter: InstantStyle's style blocks on SDXL
(--style-layout: also the layout blocks), every block on SD 1.5. --model is the
diffusion model (default stable-diffusion-v1-5/stable-diffusion-v1-5), --size the long
side (default: the model's own size).
  brushwork stylize photo.jpg --method controlnet --control canny --style starry.jpg \\
            --model stabilityai/stable-diffusion-xl-base-1.0 -o out.png
"""


def _add(group: Any, *flags: str, **kwargs: Any) -> None:
    """Add an option unless another diffusion method of ``stylize`` already did."""
    with contextlib.suppress(argparse.ArgumentError):
        group.add_argument(*flags, **kwargs)


def add_shared_diffusion_arguments(group: Any) -> None:
    """The flags every diffusion method of ``stylize`` reads (added once, by whichever
    method comes first): ``--prompt``, ``--negative-prompt``, ``--steps``,
    ``--guidance-scale``, ``--seed``, ``--lora``/``--fuse-lora``. Defaults are ``None``
    (each method has its own)."""
    _add(group, "--prompt", default=None, help="what the photo shows (diffusion methods)")
    _add(group, "--negative-prompt", default=None, help="what the result should not show")
    _add(
        group,
        "--steps",
        type=options.count(1),
        default=None,
        metavar="N",
        help="sampler steps (diffusion methods; default: the method's)",
    )
    _add(
        group,
        "--guidance-scale",
        type=options.non_negative_float,
        default=None,
        help="classifier-free guidance scale (default: the method's)",
    )
    _add(group, "--seed", type=int, default=0, help="random seed (default: %(default)s)")
    with contextlib.suppress(argparse.ArgumentError):
        options.add_lora(group)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ControlNet method's flags, in their own group of ``stylize``'s parser."""
    from brushwork.diffusion.controlnet_style import CONTROLS, ControlStyleSettings

    d = ControlStyleSettings()
    g = parser.add_argument_group("diffusion methods (--method controlnet)")
    add_shared_diffusion_arguments(g)
    g.add_argument("--control", choices=CONTROLS, default="canny", help="structure from the photo")
    g.add_argument(
        "--control-scale",
        type=options.non_negative_float,
        default=d.control_scale,
        help="ControlNet strength (default: %(default)s; 0: no ControlNet)",
    )
    g.add_argument("--controlnet", default=None, metavar="ID|FOLDER", help="ControlNet model")
    g.add_argument(
        "--annotator", default=None, metavar="ID|FOLDER", help="depth / line-art annotator model"
    )
    g.add_argument(
        "--canny-thresholds",
        type=_thresholds,
        default=(d.canny_low, d.canny_high),
        metavar="LOW,HIGH",
        help="Canny hysteresis thresholds, 0–255 (default: 100,200)",
    )
    preset = g.add_mutually_exclusive_group()
    preset.add_argument("--style-only", action="store_true", help="style blocks (SDXL default)")
    preset.add_argument("--style-layout", action="store_true", help="style and layout blocks")
    g.add_argument(
        "--ip-adapter-scale",
        type=options.non_negative_float,
        default=1.0,
        help="IP-Adapter strength (default: %(default)s)",
    )
    options.add_ip_adapter(g)


def _thresholds(text: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        low, high = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH (two integers), got '{text}'"
        ) from None
    if not 0 <= low <= high <= 255:
        raise argparse.ArgumentTypeError(f"need 0 ≤ LOW ≤ HIGH ≤ 255, got '{text}'")
    return low, high


def _check(args: argparse.Namespace) -> None:
    from pathlib import Path

    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.errors import ConfigError, WeightsError
    from brushwork.hub import looks_like_path

    if Path(args.input).is_dir():
        raise ConfigError(
            "--method controlnet stylises one photo; give an image file, not a folder"
        )
    if not args.style or len(args.style) != 1:
        raise ConfigError(
            f"--method controlnet needs one --style image, got {len(args.style or [])}"
        )
    feed_forward = (
        ("--mask", args.mask),
        ("--tile", args.tile),
        ("--style-weights", args.style_weights),
        ("--preserve-color", args.preserve_color != "none"),
        ("--alpha", args.alpha != 1.0),
    )
    for flag, value in feed_forward:
        if value:
            raise ConfigError(f"{flag} is for the feed-forward methods, not --method controlnet")
    if args.control == "canny" and args.annotator:
        raise ConfigError("--annotator is for --control depth or lineart (canny needs none)")
    check_model_folder(args.model or SD_MODEL)
    for flag, value in (("--controlnet", args.controlnet), ("--annotator", args.annotator)):
        if value and looks_like_path(value) and not Path(value).expanduser().exists():
            raise WeightsError(f"{flag} {Path(value).expanduser()} does not exist")


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from brushwork.cli.diffusion_common import check_run_memory
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.controlnet_style import (
        ControlStyleSettings,
        control_image,
        controlnet_pipeline,
        load_annotator,
        load_controlnet,
        stylize_with_controlnet,
    )
    from brushwork.diffusion.editing import check_prompt, fit_image
    from brushwork.diffusion.pipelines import load_pipeline, pipeline_family
    from brushwork.diffusion.sizes import default_side, guess_family
    from brushwork.image import check_output_path, load_image, save_image

    _check(args)
    content = load_image(args.input)
    style = load_image(args.style[0])
    output = check_output_path(args.output, inputs=[args.input, args.style[0]])
    model = args.model or SD_MODEL
    low, high = args.canny_thresholds
    settings = ControlStyleSettings(
        prompt=args.prompt or "",
        control_scale=args.control_scale,
        steps=args.steps or ControlStyleSettings.steps,
        guidance_scale=(
            ControlStyleSettings.guidance_scale
            if args.guidance_scale is None
            else args.guidance_scale
        ),
        seed=args.seed,
        negative_prompt=args.negative_prompt,
        canny_low=low,
        canny_high=high,
    )
    settings.validate()
    long_side = args.size or default_side(model)
    height, width = _fitted_sides(content.shape[-2:], long_side)
    device = check_run_memory(args, model, height, width, what="ControlNet stylisation")
    dtype = _dtype(args.precision, device)
    from brushwork.cli.lora import read_lora_flags, use_loras

    loras = read_lora_flags(args)  # missing or damaged files fail before any model loads
    controlnet = load_controlnet(guess_family(model), args.control, args.controlnet, dtype=dtype)
    annotator = load_annotator(args.control, args.annotator, device=device)
    pipe = load_pipeline(model, dtype=args.precision, device=args.device)
    use_loras(args, pipe, loras)
    check_prompt(pipe.tokenizer, settings.prompt)
    pipe = controlnet_pipeline(pipe, controlnet.to(pipe.device))
    _load_style(args, pipe, pipeline_family(pipe))
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    content = fit_image(content, multiple=factor, long_side=long_side)
    hint = control_image(content, args.control, annotator, settings=settings)
    array = (style.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("ControlNet", total=settings.steps, loss="–")
        result = stylize_with_controlnet(
            pipe,
            hint,
            style_image=Image.fromarray(array),
            settings=settings,
            callback=lambda step, total: progress.update(task, completed=step),
        )
    save_image(result.image, output)
    if not args.quiet:
        print(f"saved {output} ({result.seconds:.1f} s)", file=sys.stderr)
    return 0


def _fitted_sides(size: Any, long_side: int) -> tuple[int, int]:
    """(height, width) after scaling the long side to ``long_side`` (for the memory check)."""
    h, w = int(size[0]), int(size[1])
    scale = long_side / max(h, w)
    return max(8, round(h * scale)), max(8, round(w * scale))


def _dtype(precision: str, device: Any) -> Any:
    from brushwork.diffusion.pipelines import DTYPES, dtype_name

    name = dtype_name(precision)
    if name == "auto":
        name = "float16" if device.type == "cuda" else "float32"
    return DTYPES[name]


def _load_style(args: argparse.Namespace, pipe: Any, family: str) -> None:
    from brushwork.diffusion.style_reference import load_style_adapter, set_style_preset

    source = options.ip_adapter_source(args, family)
    load_style_adapter(pipe, source)
    if args.style_layout:
        preset = "style+layout"
    elif args.style_only or family == "sdxl":
        preset = "style"  # InstantStyle: the style blocks only
    else:
        preset = "full"  # SD 1.x: InstantStyle defines no block choice
    set_style_preset(pipe, preset, args.ip_adapter_scale)
