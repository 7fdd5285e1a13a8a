"""``brushwork lora train|info``: train a style LoRA, describe a LoRA file.

Also the helpers the generating commands use for ``--lora FILE[:SCALE]``
(:func:`read_lora_flags` before the pipeline loads, :func:`use_loras` after).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from brushwork.cli import options

SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

EPILOG = f"""examples:
  brushwork lora train --images my_style/ --trigger "in sks style" \\
          --model {SDXL_MODEL} --rank 16 --steps 1000 -o my_style.safetensors
  brushwork lora train --images one_painting.jpg --trigger "in sks style" --b-lora style \\
          -o blora_style.safetensors        # B-LoRA: SDXL's style block only
  brushwork lora train ... --checkpoint-every 100 --resume my_style.safetensors.ckpt
  brushwork lora info my_style.safetensors
  brushwork generate "a lighthouse in sks style" --lora my_style.safetensors:0.8 -o out.png

--images: folders (searched recursively) and/or image files. Captions: a .txt of the same
name beside an image (the trigger phrase is put in front unless it is there), else the
trigger phrase alone. Non-square images go to resolution buckets of about --size² pixels.
A resumable checkpoint is written to OUTPUT.ckpt every --checkpoint-every steps and at
the end; --resume continues it exactly (same seed and options: the same LoRA as one
uninterrupted run). --sample-steps writes sample images to OUTPUT_samples/.
Default model: {SD_MODEL} ({SDXL_MODEL} with --b-lora).
"""

#: No registry weight file: the pipeline comes from --model.
WEIGHT_FLAGS: dict[str, str] = {}

#: One line for ``brushwork --help``.
HELP = "train a style LoRA (SD 1.x/2.x, SDXL, Flux.1; B-LoRA) or describe a LoRA file"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.main import ArgumentParser
    from brushwork.diffusion.lora.targets import B_LORA_PARTS
    from brushwork.diffusion.lora.training import LoraSettings

    p = subparsers.add_parser(
        "lora",
        help=HELP,
        description="Style LoRAs: learn a style from a handful of images; describe a file.",
        epilog=EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=ArgumentParser)
    actions.required = True
    d = LoraSettings()

    t = actions.add_parser(
        "train",
        help="train a LoRA on a folder or a few images",
        description="Train a LoRA on the attention layers of a diffusion model "
        "(optionally the text encoders), or B-LoRA's style/content blocks of SDXL.",
        epilog=EPILOG,
    )
    t.add_argument(
        "--images",
        nargs="+",
        required=True,
        metavar="PATH",
        help="training images: folders and/or image files",
    )
    t.add_argument("--trigger", default=None, help="trigger phrase, e.g. 'in sks style'")
    options.add_output(t, what="LoRA file (.safetensors)")
    options.add_model(t, default=None, what=f"base model: Hub id or folder (default: {SD_MODEL})")
    lora = t.add_argument_group("LoRA")
    lora.add_argument("--rank", type=options.count(1), default=d.rank, metavar="N", help="rank r")
    lora.add_argument(
        "--alpha",
        type=options.positive_float,
        default=None,
        help="LoRA alpha (default: the rank, i.e. scale 1)",
    )
    lora.add_argument(
        "--b-lora",
        choices=B_LORA_PARTS,
        default=None,
        help="B-LoRA (SDXL): train only the style block (up_blocks.0.attentions.1), the "
        "content block (up_blocks.0.attentions.0) or both",
    )
    lora.add_argument(
        "--train-text-encoder", action="store_true", help="also train LoRA layers on CLIP"
    )
    run = t.add_argument_group("training")
    options.add_steps(run, default=d.steps, what="optimiser steps")
    run.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=options.positive_float,
        default=d.learning_rate,
        help="AdamW learning rate",
    )
    run.add_argument("--batch-size", type=options.count(1), default=d.batch_size, metavar="N")
    options.add_size(
        run,
        default=None,
        what="training resolution: the square bucket's side in pixels (others: same area); "
        "unset: the model's own size",
    )
    run.add_argument(
        "--no-buckets", action="store_true", help="centre-crop every image to a square"
    )
    run.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (less memory, slower steps)",
    )
    run.add_argument(
        "--no-latent-cache",
        action="store_true",
        help="run the VAE every step instead of once per image (same result, slower)",
    )
    options.add_seed(run)
    run.add_argument(
        "--checkpoint-every",
        type=options.count(1),
        default=None,
        metavar="N",
        help="write OUTPUT.ckpt every N steps (default: at the end only)",
    )
    run.add_argument("--resume", default=None, metavar="CKPT", help="checkpoint to continue")
    run.add_argument(
        "--sample-steps",
        default=None,
        metavar="N,...",
        help="make a sample image after these steps (into OUTPUT_samples/)",
    )
    run.add_argument(
        "--sample-prompt", default=None, help="prompt of the samples (default: the first caption)"
    )
    options.add_device(t)
    options.add_precision(
        t,
        what="frozen weights (LoRA weights stay fp32; half precision runs under autocast)",
        auto="bf16 on CUDA GPUs that have it, fp16 on other GPUs, fp32 on the CPU",
    )
    options.add_memory_limit(t)
    options.add_quiet(t)
    t.set_defaults(_parser=t)

    i = actions.add_parser("info", help="describe a LoRA file (base model, rank, blocks, ...)")
    i.add_argument("file", metavar="FILE", help="LoRA file (.safetensors)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(_parser=i)
    return p


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        return _info(args)
    return _train(args)


def _info(args: argparse.Namespace) -> int:
    from brushwork.diffusion.lora.files import describe, read_lora

    facts = describe(read_lora(args.file))
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
        return 0
    for key in ("file", "layout", "base_model", "family", "rank", "alpha", "target_modules",
                "components", "layers", "b_lora", "trigger", "steps", "resolution",
                "brushwork_version", "parameters"):  # fmt: skip
        value = facts[key]
        if value not in (None, "", []):
            print(f"{key:18} {value if not isinstance(value, list) else ', '.join(value)}")
    print("blocks:")
    for block, layers in facts["blocks"].items():
        print(f"  {block:44} {layers} layers")
    return 0


def _check_output(path: str) -> Path:
    from brushwork.errors import OutputPathError
    from brushwork.resources import probe_writable

    output = Path(path)
    if output.suffix.lower() != ".safetensors":
        raise OutputPathError(f"the LoRA file must end in .safetensors, got '{output}'")
    if output.is_dir():
        raise OutputPathError(f"the LoRA file {output} is a folder")
    if not output.parent.is_dir():
        raise OutputPathError(f"folder {output.parent} does not exist; create it first")
    probe_writable(output.parent, "LoRA file")
    return output


def training_dtype(precision: str, device: Any) -> str:
    """``--precision`` of ``lora train`` -> the pipeline dtype name (auto: see --help)."""
    import torch

    from brushwork.errors import ConfigError

    if precision == "auto":
        if device.type == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 training is not supported on the CPU; use bf16 or fp32")
    return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]


def _train(args: argparse.Namespace) -> int:
    from brushwork.cli.diffusion_common import check_model_folder, check_run_memory, parse_ints
    from brushwork.diffusion.lora.data import caption_for, collect_images, load_training_set
    from brushwork.diffusion.lora.files import save_lora
    from brushwork.diffusion.lora.training import LoraSettings, size_multiple
    from brushwork.diffusion.pipelines import load_pipeline
    from brushwork.diffusion.sizes import default_side, guess_family
    from brushwork.errors import ConfigError, WeightsError
    from brushwork.image import load_image
    from brushwork.resources import check_folder_writable

    output = _check_output(args.output)
    samples_dir = output.with_name(output.stem + "_samples")
    settings = LoraSettings(
        rank=args.rank,
        alpha=args.alpha,
        steps=args.steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        seed=args.seed,
        b_lora=args.b_lora,
        train_text_encoder=args.train_text_encoder,
        gradient_checkpointing=args.gradient_checkpointing,
        cache_latents=not args.no_latent_cache,
        checkpoint_every=args.checkpoint_every or 0,
        sample_steps=parse_ints(args.sample_steps, "--sample-steps") if args.sample_steps else (),
        sample_prompt=args.sample_prompt,
    )
    settings.validate()
    if settings.sample_steps:
        check_folder_writable(samples_dir, "samples folder")
    for image in collect_images(args.images):  # bad images and captions: before loading
        caption_for(image, args.trigger)
        load_image(image)
    model = args.model or (SDXL_MODEL if args.b_lora else SD_MODEL)
    check_model_folder(model)
    family = guess_family(model)
    if family not in ("sd", "sdxl", "flux"):
        raise ConfigError(
            f"LoRA training supports SD 1.x/2.x, SDXL and Flux.1; {model} is {family}"
        )
    if args.b_lora and family != "sdxl":
        raise ConfigError(
            f"--b-lora trains SDXL's blocks (up_blocks.0.attentions.0/1); {model} is not SDXL"
        )
    resolution = args.size or default_side(model)
    device = check_run_memory(
        args,
        model,
        resolution,
        resolution,
        what="LoRA training",
        batch=args.batch_size,
        backward=True,
    )
    if args.resume is not None and not Path(args.resume).expanduser().is_file():
        raise WeightsError(f"checkpoint {args.resume} does not exist; check the --resume path")
    pipe = load_pipeline(model, dtype=training_dtype(args.precision, device), device=args.device)
    data = load_training_set(
        args.images,
        trigger=args.trigger,
        resolution=resolution,
        multiple=size_multiple(pipe),
        buckets=not args.no_buckets,
    )
    checkpoint = output.with_name(output.name + ".ckpt")
    result = _run_training(args, pipe, data, settings, model, checkpoint, samples_dir)
    save_lora(output, result.tensors, result.info)
    if not args.quiet:
        last = f"{result.losses[-1]:.4g}" if result.losses else "–"
        print(
            f"saved {output} (rank {settings.rank}, {settings.steps} steps, last loss {last}; "
            f"checkpoint {checkpoint})",
            file=sys.stderr,
        )
    return 0


def _run_training(
    args: argparse.Namespace,
    pipe: Any,
    data: Any,
    settings: Any,
    model: str,
    checkpoint: Path,
    samples_dir: Path,
) -> Any:
    from brushwork.cli.progress import step_progress
    from brushwork.diffusion.lora.training import train_lora
    from brushwork.image import save_image

    with step_progress(enabled=not args.quiet) as progress:
        task = progress.add_task("training LoRA", total=settings.steps, loss="–")

        def on_step(step: Any) -> None:
            progress.update(task, completed=step.step, loss=f"{step.loss:.4g}")
            if step.samples is not None:
                samples_dir.mkdir(parents=True, exist_ok=True)
                save_image(step.samples[0], samples_dir / f"step_{step.step:06d}.png")

        return train_lora(
            pipe,
            data,
            settings,
            base_model=model,
            trigger=args.trigger,
            checkpoint_path=checkpoint,
            resume=args.resume,
            callback=on_step,
        )


# --------------------------------------------------------------------------- --lora


def _specs(args: argparse.Namespace) -> list[Any]:
    from brushwork.diffusion.lora.files import LoraSpec

    return [LoraSpec(Path(path), scale, part) for path, scale, part in args.lora or []]


def read_lora_flags(args: argparse.Namespace) -> list[Any]:
    """Read the ``--lora`` files (missing or damaged ones fail here, before loading)."""
    if not getattr(args, "lora", None):
        return []
    from brushwork.diffusion.lora.files import read_specs

    return read_specs(_specs(args))


def use_loras(args: argparse.Namespace, pipe: Any, files: list[Any] | None = None) -> Any:
    """Load the ``--lora`` files into ``pipe`` for the rest of the command (fused with
    ``--fuse-lora``); a LoRA of another base model is a one-line error."""
    if not getattr(args, "lora", None):
        return None
    from brushwork.diffusion.lora.files import load_loras

    return load_loras(pipe, _specs(args), fuse=bool(args.fuse_lora), files=files)
