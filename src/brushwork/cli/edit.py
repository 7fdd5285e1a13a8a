"""``brushwork edit``: text-guided image editing with CDS (default) or DDS.

Also the option helpers shared by the diffusion commands (attend, edit, generate,
study run): device and precision, generated sizes, the memory check, the output folder.
"""

from __future__ import annotations

import argparse
import sys

from brushwork.cli import options
from brushwork.cli.diffusion_common import (
    add_device_precision,
    check_model_folder,
    check_run_memory,
    load_checked_pipeline,
    parse_ints,
    progress_callback,
    require_min_side,
    sheet_path,
    side_by_side,
)

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
    require_min_side(m, "size")
    m.add_argument(
        "--keep-size",
        action="store_true",
        help="refuse images whose size the model cannot take instead of resizing them",
    )
    add_device_precision(m)
    p.add_argument("--sheet", action="store_true", help="also save input | result side by side")
    options.add_quiet(p)
    return p


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
