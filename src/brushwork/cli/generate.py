"""``brushwork generate``: text-to-image, saliency-guided (SGOOL) or with a style image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from brushwork.cli import generate_style_aligned, options

SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = f"""examples:
  brushwork generate "a lighthouse at dusk" -o lighthouse.png
  brushwork generate "a lighthouse at dusk" --saliency-guided --iterations 20 -o lighthouse.png
  brushwork generate "a cat" --style starry.jpg --style-only -o cat.png
  brushwork generate "a cat" --style starry.jpg --style-layout --ip-adapter-scale 0.8 -o cat.png
  brushwork generate "a cat" --size 768x512 --steps 30 --precision fp32 -o cat.png

--saliency-guided optimises the initial latent so that the whole image and its salient
region (spectral-residual saliency, or --saliency onnx --saliency-weights FILE for a
learned detector such as TranSalNet exported to ONNX) match the prompt under CLIP
(our reading of SGOOL, Wang et al. 2024). --sheet also writes <output>_sheet.png:
un-optimised image | result | saliency map of the result.

--size N or HxW: sides must be multiples of 8 (the VAE's factor); unset, the model's own
size. Sizes that cannot fit in memory are refused before loading (--memory-limit).

--style uses IP-Adapter (h94/IP-Adapter) with InstantStyle's block targeting:
--style-only injects the image into the style blocks only, --style-layout into the
style and layout blocks, neither into every block (plain IP-Adapter). The block
presets need SDXL ({SDXL_MODEL}, the default with --style); the sheet shows
style image | result.

Models are downloaded from the Hugging Face Hub on first use ({SD_MODEL} by default);
offline, pass local folders written by save_pretrained (--model, --clip-model,
--ip-adapter).

--lora FILE[:SCALE] applies a LoRA (brushwork lora train, diffusers or kohya layout);
repeat it to combine several; a LoRA of another base model is refused before generating.
"""


#: Missing-weights hints name these flags: the saliency detector's file, and the
#: published IP-Adapter (style_reference.IP_ADAPTER_REPO).
WEIGHT_FLAGS = {"*": "--saliency-weights", **options.IP_ADAPTER_WEIGHT_FLAGS}

#: One line for ``brushwork --help``.
HELP = "generate an image: plain, saliency-guided (SGOOL) or from a style image"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.diffusion_common import add_device_precision, add_generated_size
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
        epilog=EPILOG + generate_style_aligned.EPILOG,
    )
    p.add_argument("prompt", nargs="+", help="the prompt (several with --style-aligned)")
    options.add_output(p)

    g = p.add_argument_group("generation")
    options.add_model(g, default=None, what=f"diffusion model: Hub id or folder ({SD_MODEL}; "
                      f"{SDXL_MODEL} with --style)")  # fmt: skip
    options.add_steps(g, default=None, what="sampler steps; unset: 50, or 30 with --style")
    g.add_argument(
        "--guidance-scale", type=options.non_negative_float, default=7.5, help="CFG scale"
    )
    g.add_argument("--negative-prompt", default=None, help="what the image should not show")
    add_generated_size(g)
    options.add_seed(g)
    add_device_precision(g)
    options.add_lora(g)

    s = p.add_argument_group("saliency-guided optimisation (SGOOL)")
    s.add_argument("--saliency-guided", action="store_true", help="optimise the latent")
    options.add_steps(s, default=d.iterations, what="optimisation iterations", flag="--iterations")
    s.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=options.positive_float,
        default=d.learning_rate,
        help="learning rate of the latent",
    )
    s.add_argument("--optimizer", choices=OPTIMISERS, default=d.optimiser, help="optimizer")
    options.add_deprecated(
        s, "--optimiser", dest="optimizer", new="--optimizer", choices=OPTIMISERS
    )
    s.add_argument(
        "--saliency-weight",
        type=options.non_negative_float,
        default=d.saliency_weight,
        help="λ, weight of the salient view",
    )
    s.add_argument("--view", choices=VIEWS, default=d.view, help="salient view")
    s.add_argument("--saliency", choices=DETECTORS, default="spectral", help="saliency detector")
    options.add_weights(
        s, what="ONNX saliency detector (--saliency onnx)", flag="--saliency-weights"
    )
    s.add_argument("--optimise-text", action="store_true", help="also optimise the prompt")
    s.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="no gradient checkpointing (faster, memory grows with --steps)",
    )
    s.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="CLIP model: hub id or folder")

    r = p.add_argument_group("style reference (IP-Adapter / InstantStyle)")
    options.add_styles(r, what="the style reference image (one)", weights=False, several=False)
    options.add_deprecated(r, "--style-image", dest="style", new="--style", nargs=1)
    preset = r.add_mutually_exclusive_group()
    preset.add_argument("--style-only", action="store_true", help="style blocks only")
    preset.add_argument("--style-layout", action="store_true", help="style and layout blocks")
    r.add_argument(
        "--ip-adapter-scale",
        type=options.non_negative_float,
        default=1.0,
        help="IP-Adapter strength",
    )
    options.add_deprecated(
        r,
        "--style-scale",
        dest="ip_adapter_scale",
        new="--ip-adapter-scale",
        type=options.non_negative_float,
    )
    options.add_ip_adapter(r)
    options.add_regions(p, maps_model=False, per_style_masks=False)
    generate_style_aligned.add_arguments(p)
    p.add_argument("--sheet", action="store_true", help="also save a side-by-side sheet")
    options.add_quiet(p)
    return p


def _check_finite(image: Any) -> None:
    import torch

    from brushwork.errors import OptimisationError

    if not torch.isfinite(image).all():
        raise OptimisationError(
            "the generated image has NaNs (float16 VAEs overflow, SDXL's in particular): "
            "run with --precision fp32"
        )


def _check_combination(args: argparse.Namespace) -> None:
    from brushwork.errors import ConfigError

    if len(args.prompt) > 1:
        raise ConfigError(f"{len(args.prompt)} prompts given: several prompts need --style-aligned")
    args.prompt = args.prompt[0]
    if args.style and len(args.style) > 1:
        raise ConfigError(f"--style takes one reference image here, got {len(args.style)}")
    if args.style:
        args.style = args.style[0]
    if args.saliency_guided and args.style:
        raise ConfigError("choose one of --saliency-guided and --style")
    if (args.style_only or args.style_layout) and not args.style:
        raise ConfigError("--style-only / --style-layout need --style")
    if args.saliency_weights and not args.saliency_guided:
        raise ConfigError("--saliency-weights is for --saliency-guided")


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
        load_checked_pipeline,
        sheet_path,
        side_by_side,
    )
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.editing import check_prompt
    from brushwork.diffusion.pipelines import generate_image
    from brushwork.image import check_output_path, load_image, save_image

    if args.region or args.mask or args.caption:
        return _run_regional(args)
    if generate_style_aligned.wanted(args):
        return generate_style_aligned.run(args)
    _check_combination(args)
    height, width, flag = generated_sides(args)
    steps = args.steps or (30 if args.style else 50)
    style = load_image(args.style) if args.style else None
    output = check_output_path(args.output, inputs=[args.style] if args.style else [])
    model = args.model or (SDXL_MODEL if args.style else SD_MODEL)
    check_model_folder(model)
    check_sides_for_model(model, height, width, flag)
    detector = None
    if args.saliency_guided:
        from brushwork.diffusion.saliency import load_saliency_detector

        detector = load_saliency_detector(args.saliency, weights=args.saliency_weights)
    what = "SGOOL" if args.saliency_guided else "generating"
    check_run_memory(args, model, height, width, what=what, backward=args.saliency_guided)
    pipe = load_checked_pipeline(args, model, height, width, flag)
    check_prompt(pipe.tokenizer, args.prompt)

    if args.saliency_guided:
        return _run_sgool(args, pipe, steps, output, detector, (height, width))

    panels: list[Any] = []
    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("generating", total=steps, loss="–")
        if style is not None:
            image = _generate_with_style(args, pipe, style, steps, (height, width), progress, task)
            panels = [style, image]
        else:
            image = generate_image(
                pipe,
                args.prompt,
                steps=steps,
                guidance_scale=args.guidance_scale,
                negative_prompt=args.negative_prompt,
                height=height,
                width=width,
                seed=args.seed,
                callback=lambda: progress.advance(task),
            )
            panels = [image]
    _check_finite(image)
    save_image(image.clamp(0, 1), output)
    if args.sheet:
        save_image(side_by_side(panels), sheet_path(output))
    if not args.quiet:
        print(f"saved {output}", file=sys.stderr)
    return 0


def _generate_with_style(
    args: argparse.Namespace,
    pipe: Any,
    style: Any,
    steps: int,
    size: tuple[int | None, int | None],
    progress: Any,
    task: Any,
) -> Any:
    """IP-Adapter generation; ``style`` is (3, h, w) in [0, 1]. Returns (3, H, W)."""
    from PIL import Image

    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.style_reference import generate_with_style

    _load_adapter(args, pipe)
    array = (style.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    with user_errors():
        return generate_with_style(
            pipe,
            args.prompt,
            style_image=Image.fromarray(array),
            steps=steps,
            guidance_scale=args.guidance_scale,
            height=size[0],
            width=size[1],
            seed=args.seed,
            negative_prompt=args.negative_prompt,
            callback=lambda *_: progress.advance(task),
        )


def _load_adapter(args: argparse.Namespace, pipe: Any) -> None:
    """The IP-Adapter of --ip-adapter* loaded into ``pipe``, its --style-only/-layout preset set."""
    from brushwork.diffusion.pipelines import pipeline_family
    from brushwork.diffusion.style_reference import load_style_adapter, set_style_preset

    source = options.ip_adapter_source(args, pipeline_family(pipe))
    load_style_adapter(pipe, source)
    preset = "style" if args.style_only else "style+layout" if args.style_layout else "full"
    set_style_preset(pipe, preset, args.ip_adapter_scale)


def _run_regional(args: argparse.Namespace) -> int:
    """``--region``: each region's style through IP-Adapter masks (brushwork.regional.generate)."""
    from brushwork.cli.diffusion_common import (
        check_model_folder,
        check_run_memory,
        check_sides_for_model,
        generated_sides,
        load_checked_pipeline,
        sheet_path,
        side_by_side,
    )
    from brushwork.cli.progress import step_progress
    from brushwork.cli.regions import (
        _given_masks,
        mask_settings,
        overlay_regions,
        read_region_flags,
    )
    from brushwork.diffusion.editing import check_prompt
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.errors import ConfigError
    from brushwork.image import check_output_path, save_image
    from brushwork.regional.generate import generate_regional, regions_of_generation

    if args.caption:
        raise ConfigError("generate looks the --region words up in its prompt; drop --caption")
    if len(args.prompt) > 1 or args.style_aligned or args.saliency_guided:
        raise ConfigError(
            "--region generates one prompt, without --style-aligned/--saliency-guided"
        )
    args.prompt = args.prompt[0]
    regions = read_region_flags(args, caption=args.prompt)
    if not regions.wanted:
        raise ConfigError("--mask WORD=FILE is for regional style: give --region WORD=STYLE")
    settings = mask_settings(args)
    height, width, flag = generated_sides(args)
    steps = args.steps or 30
    output = check_output_path(args.output, inputs=regions.inputs)
    model = args.model or SDXL_MODEL
    check_model_folder(model)
    check_sides_for_model(model, height, width, flag)
    check_run_memory(args, model, height, width, what="generating")
    pipe = load_checked_pipeline(args, model, height, width, flag)
    check_prompt(pipe.tokenizer, args.prompt)
    common = dict(steps=steps, guidance_scale=args.guidance_scale, height=height, width=width,
                  seed=args.seed, negative_prompt=args.negative_prompt)  # fmt: skip
    side = pipe.default_sample_size * pipe.vae_scale_factor
    size = (height or side, width or side)
    with step_progress(enabled=not args.quiet) as progress, user_errors():
        task = progress.add_task("regions", total=2 * steps, loss="–")
        masks, first = regions_of_generation(pipe, args.prompt, regions.specs,
            given=_given_masks(regions, size), settings=settings, **common)  # fmt: skip
        progress.advance(task, steps)
        _load_adapter(args, pipe)
        result = generate_regional(pipe, args.prompt, masks, regions.styles,
            callback=lambda *_: progress.advance(task), **common)  # fmt: skip
    _check_finite(result.image)
    save_image(result.image, output)
    if args.sheet:
        panels = [
            p for p in (first, overlay_regions(result.image, result.masks.weights)) if p is not None
        ]
        save_image(side_by_side([*panels, result.image]), sheet_path(output))
    if not args.quiet:
        print(f"saved {output} (regions: {', '.join(masks.names)})", file=sys.stderr)
    return 0


def _run_sgool(
    args: argparse.Namespace,
    pipe: Any,
    steps: int,
    output: Any,
    detector: Any,
    size: tuple[int | None, int | None],
) -> int:
    from brushwork.cli.diffusion_common import progress_callback, sheet_path, side_by_side
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.pipelines import user_errors
    from brushwork.diffusion.sgool import SGOOLSettings, sgool
    from brushwork.image import save_image
    from brushwork.metrics.clip import load_clip

    settings = SGOOLSettings(
        iterations=args.iterations,
        steps=steps,
        guidance_scale=args.guidance_scale,
        saliency_weight=args.saliency_weight,
        learning_rate=args.learning_rate,
        optimiser=args.optimizer,
        optimise_text=args.optimise_text,
        view=args.view,
        checkpoint=not args.no_checkpoint,
        seed=args.seed,
    )
    settings.validate()
    clip = load_clip(args.clip_model, device=pipe.unet.device)
    with step_progress(enabled=not args.quiet) as progress, user_errors():
        task = progress.add_task("SGOOL", total=settings.iterations, loss="–")
        result = sgool(
            pipe,
            args.prompt,
            clip,
            settings=settings,
            detector=detector,
            height=size[0],
            width=size[1],
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
