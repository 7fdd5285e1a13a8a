"""``brushwork generate``: text-to-image, saliency-guided (SGOOL) or with a style image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from brushwork.choices import DEVICE_CHOICES

SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = f"""examples:
  brushwork generate "a lighthouse at dusk" -o lighthouse.png
  brushwork generate "a lighthouse at dusk" --saliency-guided --iterations 20 -o lighthouse.png
  brushwork generate "a cat" --style-image starry.jpg --style-only -o cat.png
  brushwork generate "a cat" --style-image starry.jpg --style-layout --style-scale 0.8 -o cat.png

--saliency-guided optimises the initial latent so that the whole image and its salient
region (spectral-residual saliency, or --saliency onnx --saliency-weights FILE for a
learned detector such as TranSalNet exported to ONNX) match the prompt under CLIP
(our reading of SGOOL, Wang et al. 2024). --sheet also writes <output>_sheet.png:
un-optimised image | result | saliency map of the result.

--style-image uses IP-Adapter (h94/IP-Adapter) with InstantStyle's block targeting:
--style-only injects the image into the style blocks only, --style-layout into the
style and layout blocks, neither into every block (plain IP-Adapter). The block
presets need SDXL ({SDXL_MODEL}, the default with --style-image); the sheet shows
style image | result.

Models are downloaded from the Hugging Face Hub on first use ({SD_MODEL} by default);
offline, pass local folders written by save_pretrained (--model, --clip-model,
--ip-adapter).
"""


#: One line for ``brushwork --help``.
HELP = "generate an image: plain, saliency-guided (SGOOL) or from a style image"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.diffusion.saliency import DETECTORS
    from brushwork.diffusion.sgool import OPTIMISERS, VIEWS, SGOOLSettings
    from brushwork.metrics.clip import DEFAULT_CLIP_MODEL

    d = SGOOLSettings()
    p = subparsers.add_parser(
        "generate",
        help=HELP,
        description="Generate an image with Stable Diffusion: plain, with saliency-guided "
        "latent optimisation (SGOOL), or in the style of a reference image "
        "(IP-Adapter / InstantStyle).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", help="the prompt")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")

    g = p.add_argument_group("generation")
    g.add_argument("--model", default=None, help=f"hub id or folder ({SD_MODEL}; SDXL with "
                   "--style-image)")  # fmt: skip
    g.add_argument("--steps", type=int, default=None, help="sampler steps (50; 30 with a style)")
    g.add_argument("--guidance-scale", type=float, default=7.5, help="(%(default)s)")
    g.add_argument("--negative-prompt", default=None)
    g.add_argument("--height", type=int, default=None, help="default: the model's size")
    g.add_argument("--width", type=int, default=None, help="default: the model's size")
    g.add_argument("--seed", type=int, default=0, help="(%(default)s)")
    g.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    g.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="model weights (auto: float16 on CUDA, else float32)",
    )

    s = p.add_argument_group("saliency-guided optimisation (SGOOL)")
    s.add_argument("--saliency-guided", action="store_true", help="optimise the latent")
    s.add_argument("--iterations", type=int, default=d.iterations, help="(%(default)s)")
    s.add_argument("--lr", type=float, default=d.learning_rate, help="(%(default)s)")
    s.add_argument("--optimiser", choices=OPTIMISERS, default=d.optimiser)
    s.add_argument(
        "--saliency-weight", type=float, default=d.saliency_weight, help="λ (%(default)s)"
    )
    s.add_argument("--view", choices=VIEWS, default=d.view, help="salient view (%(default)s)")
    s.add_argument("--saliency", choices=DETECTORS, default="spectral", help="(%(default)s)")
    s.add_argument("--saliency-weights", default=None, help="ONNX file of a learned detector")
    s.add_argument("--optimise-text", action="store_true", help="also optimise the prompt")
    s.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="no gradient checkpointing (faster, memory grows with --steps)",
    )
    s.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="(%(default)s)")

    r = p.add_argument_group("style reference (IP-Adapter / InstantStyle)")
    r.add_argument("--style-image", default=None, help="the style reference image")
    preset = r.add_mutually_exclusive_group()
    preset.add_argument("--style-only", action="store_true", help="style blocks only")
    preset.add_argument("--style-layout", action="store_true", help="style and layout blocks")
    r.add_argument("--style-scale", type=float, default=1.0, help="(%(default)s)")
    r.add_argument("--ip-adapter", default=None, help="repo or folder (h94/IP-Adapter)")
    r.add_argument("--ip-adapter-subfolder", default=None, help="(sdxl_models / models)")
    r.add_argument("--ip-adapter-weight", default=None, help="weight file name")
    p.add_argument("--sheet", action="store_true", help="also save a side-by-side sheet")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _check_finite(image: Any) -> None:
    import torch

    from brushwork.errors import OptimisationError

    if not torch.isfinite(image).all():
        raise OptimisationError(
            "the generated image has NaNs (float16 VAEs overflow, SDXL's in particular): "
            "run with --dtype float32"
        )


def run(args: argparse.Namespace) -> int:
    import torch

    from brushwork.cli.edit import sheet_path, side_by_side
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.editing import check_prompt
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.errors import ConfigError
    from brushwork.image import check_output_path, load_image, save_image

    inputs = [args.style_image] if args.style_image else []
    output = check_output_path(args.output, inputs=inputs)
    if args.saliency_guided and args.style_image:
        raise ConfigError("choose one of --saliency-guided and --style-image")
    if (args.style_only or args.style_layout) and not args.style_image:
        raise ConfigError("--style-only / --style-layout need --style-image")
    if args.saliency_weights and not args.saliency_guided:
        raise ConfigError("--saliency-weights is for --saliency-guided")
    steps = args.steps or (30 if args.style_image else 50)
    if steps < 1:
        raise ConfigError(f"--steps must be ≥ 1, got {steps}")
    for side, flag in ((args.height, "--height"), (args.width, "--width")):
        if side is not None and side < 1:
            raise ConfigError(f"{flag} must be ≥ 1, got {side}")
    style = None
    if args.style_image:
        style = load_image(args.style_image)
    model = args.model or (SDXL_MODEL if args.style_image else SD_MODEL)
    pipe = load_pipeline(model, dtype=args.dtype, device=args.device)
    check_prompt(pipe.tokenizer, args.prompt)
    _check_size(pipe, args.height, args.width)

    if args.saliency_guided:
        return _run_sgool(args, pipe, steps, output)

    panels: list[Any] = []
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("generating", total=steps, loss="–")
        if style is not None:
            from PIL import Image

            from brushwork.diffusion.pipelines import pipeline_family
            from brushwork.diffusion.style_reference import (
                AdapterSource,
                default_adapter,
                generate_with_style,
                load_style_adapter,
                set_style_preset,
            )

            source = default_adapter(pipeline_family(pipe))
            source = AdapterSource(
                repo=args.ip_adapter or source.repo,
                subfolder=_given(args.ip_adapter_subfolder, source.subfolder),
                weight_name=args.ip_adapter_weight or source.weight_name,
                image_encoder_folder=source.image_encoder_folder,
            )
            load_style_adapter(pipe, source)
            preset = "style" if args.style_only else "style+layout" if args.style_layout else "full"
            set_style_preset(pipe, preset, args.style_scale)
            array = (style.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
            image = generate_with_style(
                pipe,
                args.prompt,
                style_image=Image.fromarray(array),
                steps=steps,
                guidance_scale=args.guidance_scale,
                height=args.height,
                width=args.width,
                seed=args.seed,
                negative_prompt=args.negative_prompt,
                callback=lambda *_: progress.advance(task),
            )
            panels = [style, image]
        else:

            def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
                progress.advance(task)
                return kwargs

            image = pipe(
                args.prompt,
                num_inference_steps=steps,
                guidance_scale=args.guidance_scale,
                negative_prompt=args.negative_prompt,
                height=args.height,
                width=args.width,
                generator=torch.Generator("cpu").manual_seed(args.seed),
                output_type="pt",
                callback_on_step_end=on_step,
            ).images[0]
            image = image.float().cpu()
            panels = [image]
    _check_finite(image)
    save_image(image.clamp(0, 1), output)
    if args.sheet:
        save_image(side_by_side(panels), sheet_path(output))
    if not args.quiet:
        print(f"saved {output}", file=sys.stderr)
    return 0


def _given(value: str | None, default: str) -> str:
    """``value`` unless it was not given (an empty string is a given value)."""
    return default if value is None else value


def _check_size(pipe: Any, height: int | None, width: int | None) -> None:
    from brushwork.diffusion.editing import latent_multiple
    from brushwork.errors import ConfigError

    multiple = latent_multiple(pipe)
    for side, flag in ((height, "--height"), (width, "--width")):
        if side is not None and side % multiple:
            raise ConfigError(
                f"{flag} {side} is not a multiple of {multiple}, which this model needs "
                f"(brushwork does not resize generated images): use e.g. "
                f"{max(multiple, round(side / multiple) * multiple)}"
            )


def _run_sgool(args: argparse.Namespace, pipe: Any, steps: int, output: Any) -> int:
    from brushwork.cli.edit import progress_callback, sheet_path, side_by_side
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.saliency import load_saliency_detector
    from brushwork.diffusion.sgool import SGOOLSettings, sgool
    from brushwork.image import save_image
    from brushwork.metrics.clip import load_clip

    settings = SGOOLSettings(
        iterations=args.iterations,
        steps=steps,
        guidance_scale=args.guidance_scale,
        saliency_weight=args.saliency_weight,
        learning_rate=args.lr,
        optimiser=args.optimiser,
        optimise_text=args.optimise_text,
        view=args.view,
        checkpoint=not args.no_checkpoint,
        seed=args.seed,
    )
    settings.validate()
    detector = load_saliency_detector(args.saliency, weights=args.saliency_weights)
    clip = load_clip(args.clip_model, device=pipe.unet.device)
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("SGOOL", total=settings.iterations, loss="–")
        result = sgool(
            pipe,
            args.prompt,
            clip,
            settings=settings,
            detector=detector,
            height=args.height,
            width=args.width,
            callback=progress_callback(progress, task),
        )
    save_image(result.image, output)
    if args.sheet:
        panels = [result.initial_image, result.image, result.saliency]
        save_image(side_by_side(panels), sheet_path(output))
    if not args.quiet:
        whole0, sal0 = result.scores[0]
        whole1, sal1 = result.scores[-1]
        print(
            f"CLIP similarity to the prompt: whole {whole0:.3f} -> {whole1:.3f}, salient "
            f"{sal0:.3f} -> {sal1:.3f}; saved {output}",
            file=sys.stderr,
        )
    return 0
