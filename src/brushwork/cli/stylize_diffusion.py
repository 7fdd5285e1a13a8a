"""``brushwork stylize --method styleid``: restyle a photo with StyleID (training-free).

Parses the StyleID flags, checks everything a user can get wrong before the model loads,
then calls :func:`brushwork.diffusion.styleid.stylize_styleid` and saves the result.
``stylize.py`` adds these flags with :func:`add_arguments` and hands every method in
:data:`METHODS` to :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from brushwork.cli import options

#: The ``--method`` values this module runs.
METHODS = ("styleid",)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

EPILOG = f"""
StyleID (--method styleid, Chung et al. 2024): the photo and the --style image are
DDIM-inverted, then the photo is denoised with the style's keys and values in the
decoder's self-attention (--gamma: share of the photo's own queries, --temperature:
attention sharpness) from its inverted latent with the style's statistics. No prompt,
no training. --model: a Stable Diffusion 1.x/2.x/XL id or folder (default
{DEFAULT_MODEL});
--size: the long side it works at (default: the model's own; sides rounded to the
multiple the model needs; the result is resized back to the photo's size); --steps:
DDIM steps of the inversions and the denoising (default 50).
  brushwork stylize photo.jpg --method styleid --style starry.jpg -o out.png
  brushwork stylize photo.jpg --method styleid --style starry.jpg --gamma 0.3 -o out.png
"""

#: Feed-forward or other diffusion methods' flags StyleID does not read.
_NOT_FOR_STYLEID = (
    ("--mask", "mask"),
    ("--tile", "tile"),
    ("--prompt", "prompt"),
    ("--negative-prompt", "negative_prompt"),
    ("--guidance-scale", "guidance_scale"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """StyleID's flags, in their own group of ``stylize``'s parser."""
    from brushwork.cli.stylize_controlnet import add_shared_diffusion_arguments
    from brushwork.diffusion.styleid import StyleIDSettings

    d = StyleIDSettings()
    g = parser.add_argument_group("StyleID (--method styleid)")
    add_shared_diffusion_arguments(g)  # --steps, --seed, ... (added once for all methods)
    g.add_argument(
        "--gamma",
        type=options.fraction,
        default=d.gamma,
        help="query preservation: share of the photo's own queries, 0–1 (default: "
        "%(default)s; lower: more style)",
    )
    g.add_argument(
        "--temperature",
        type=options.positive_float,
        default=d.temperature,
        help="attention temperature T > 0 (default: %(default)s)",
    )
    g.add_argument(
        "--injection-steps",
        type=options.count(0),
        default=None,
        metavar="N",
        help="inject the style during the first N denoising steps only (default: all)",
    )
    g.add_argument(
        "--no-init-adain",
        dest="init_adain",
        action="store_false",
        help="start from the photo's inverted latent as it is (default: AdaIN to the style's)",
    )


def _check(args: argparse.Namespace) -> None:
    from pathlib import Path

    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.diffusion.sizes import guess_family
    from brushwork.errors import ConfigError

    if Path(args.input).is_dir():
        raise ConfigError("--method styleid stylises one photo; give an image file, not a folder")
    if not args.style or len(args.style) != 1:
        raise ConfigError(f"--method styleid needs one --style image, got {len(args.style or [])}")
    for flag, dest in _NOT_FOR_STYLEID:
        if getattr(args, dest, None) not in (None, False):
            raise ConfigError(f"{flag} is not used by --method styleid")
    steps = args.steps or 50
    if args.injection_steps is not None and args.injection_steps > steps:
        raise ConfigError(
            f"--injection-steps {args.injection_steps} is more than the {steps} --steps"
        )
    model = args.model or DEFAULT_MODEL
    check_model_folder(model)
    family = guess_family(model)
    if family not in ("sd", "sdxl"):
        raise ConfigError(
            f"--method styleid needs a Stable Diffusion UNet model (1.x, 2.x or XL); "
            f"{model} looks like {family.upper()}"
        )


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import check_run_memory, load_checked_pipeline
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.editing import fit_image, latent_multiple
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.sizes import default_side
    from brushwork.diffusion.styleid import StyleIDSettings, feature_bytes, stylize_styleid
    from brushwork.image import check_output_path, load_image, resize_to, save_image
    from brushwork.resources import check_memory

    _check(args)
    settings = StyleIDSettings(
        gamma=args.gamma,
        temperature=args.temperature,
        steps=args.steps or StyleIDSettings.steps,
        injection_steps=args.injection_steps,
        init_adain=args.init_adain,
        seed=args.seed,
    )
    settings.validate()
    output = check_output_path(args.output, inputs=[args.input, args.style[0]])
    content = load_image(args.input)
    style = load_image(args.style[0])
    model = args.model or DEFAULT_MODEL
    side = args.size or default_side(model)
    height, width = _fitted(content.shape[-2:], side)
    device = check_run_memory(args, model, height, width, what="StyleID", batch=2)
    pipe = load_checked_pipeline(args, model, None, None, "--size")
    long_side = args.size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    multiple = latent_multiple(pipe)
    fitted = fit_image(content, multiple=multiple, long_side=long_side)
    fitted_style = fit_image(style, multiple=multiple, long_side=long_side)
    factor = pipe.vae_scale_factor
    cache = feature_bytes(
        pipe.unet,
        (fitted.shape[-2] // factor, fitted.shape[-1] // factor),
        (fitted_style.shape[-2] // factor, fitted_style.shape[-1] // factor),
        steps=len(settings.injected),
    )
    check_memory(cache, device, what="StyleID's feature cache", limit_gib=args.memory_limit)
    with step_progress(enabled=not args.quiet) as progress, user_errors("StyleID"):
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                label = "inversion" if phase == "inversion" else "StyleID"
                tasks[phase] = progress.add_task(label, total=total, loss="–")
            progress.update(tasks[phase], completed=done, total=total)

        result = stylize_styleid(
            pipe,
            fitted,
            fitted_style,
            gamma=settings.gamma,
            temperature=settings.temperature,
            steps=settings.steps,
            seed=settings.seed,
            injection_steps=settings.injection_steps,
            init_adain=settings.init_adain,
            callback=update,
        )
    h, w = content.shape[-2:]
    image = result.image
    if tuple(image.shape[-2:]) != (h, w):
        image = resize_to(image, h, w)
    save_image(image, output)
    if not args.quiet:
        mh, mw = result.image.shape[-2:]
        at = f" (stylised at {mw}×{mh}, resized to {w}×{h})" if (mh, mw) != (h, w) else ""
        print(f"saved {output}{at} in {result.seconds:.1f} s", file=sys.stderr)
    return 0


def _fitted(size: Any, long_side: int) -> tuple[int, int]:
    """(height, width) after scaling the long side to ``long_side`` (for the memory check)."""
    h, w = int(size[0]), int(size[1])
    scale = long_side / max(h, w)
    return max(8, round(h * scale)), max(8, round(w * scale))
