"""Cost of one LoRA training step: brushwork's trainer vs the textbook peft + diffusers loop.

Stable Diffusion 1.5 at its published sizes (UNet, VAE, CLIP ViT-L/14 text encoder; seeded
random weights: the cost does not depend on what the weights learned), 512² images,
batch 1, on the CPU. Each configuration runs in its own process for a few steps; the
report gives seconds per step (median after the first, which includes warm-up), the peak
process memory (RSS high-water mark, model building included) and the loss of the last
step.

The textbook loop ("textbook") is diffusers' ``train_text_to_image_lora.py`` reduced to
its training step: ``unet.add_adapter(LoraConfig(...))`` on to_q/to_k/to_v/to_out.0, the VAE
encoding the batch and the text encoder embedding the captions in every step, AdamW, norm
clipping. For a fair loss comparison it draws its latent sample, noise and timesteps from
the same seeded generators as brushwork and starts from the same LoRA weights, so both
should reach the same loss after the same steps.

brushwork ("ours"): :class:`brushwork.diffusion.lora.LoraTrainer` (latents and prompt
embeddings computed once; optionally gradient checkpointing, or no latent cache).

    python benchmarks/lora.py                           # every configuration, 3 steps
    python benchmarks/lora.py --configs textbook-r16 ours-r16 --steps 3 --json out.json
    python benchmarks/lora.py --size 256                # smaller images

Target: ours ≥ 1.3× faster per step or ≥ 30 % less peak memory, at equal loss.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from editing import _peak_mb  # benchmarks/editing.py: the same SD 1.5 UNet and peak reading
from editing import build_unet as sd15_unet

CONFIGS = {
    "textbook-r16": dict(kind="textbook", rank=16),
    "textbook-r16-gc": dict(kind="textbook", rank=16, gc=True),
    "ours-r4": dict(kind="ours", rank=4),
    "ours-r16": dict(kind="ours", rank=16),
    "ours-r64": dict(kind="ours", rank=64),
    "ours-r16-gc": dict(kind="ours", rank=16, gc=True),
    "ours-r16-nocache": dict(kind="ours", rank=16, cache=False),
}
TRIGGER = "a painting in sks style"


def build_pipeline(folder: Path):
    """SD 1.5 (published component configs) with seeded random weights."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "diffusion"))
    from tiny_sd import tiny_tokenizer  # a real CLIP BPE tokenizer, small vocabulary

    unet = sd15_unet("cpu").train()  # seeded with 0, as a fresh module (train mode)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            vocab_size=49408,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(folder / "tokenizer"),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _data(folder: Path, size: int):
    import torch

    from brushwork.diffusion.lora import load_training_set
    from brushwork.image import save_image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, size, size, generator=generator), images / "style.png")
    return load_training_set([images], trigger=TRIGGER, resolution=size, multiple=64)


def run_ours(pipe, data, spec: dict, steps: int) -> tuple[list[float], list[float]]:
    from brushwork.diffusion.lora import LoraSettings, LoraTrainer

    settings = LoraSettings(
        rank=spec["rank"],
        steps=steps,
        gradient_checkpointing=spec.get("gc", False),
        cache_latents=spec.get("cache", True),
    )
    trainer = LoraTrainer(pipe, data, settings)  # encodes the image and caption once
    times, losses = [], []
    for _ in range(steps):
        began = time.perf_counter()
        losses.append(trainer.step())
        times.append(time.perf_counter() - began)
    return times, losses


def run_textbook(pipe, data, spec: dict, steps: int) -> tuple[list[float], list[float]]:
    """diffusers' train_text_to_image_lora.py training step, plainly."""
    import math

    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig

    from brushwork.transfer.data import step_generator

    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    rank = spec["rank"]
    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
    )
    if spec.get("gc"):
        unet.enable_gradient_checkpointing()
    # The same starting LoRA as brushwork's (kaiming-uniform A from the seed, B = 0), so the
    # losses can be compared.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if ".lora_A." in name:
                bound = 1.0 / math.sqrt(param.shape[1])
                param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)
            elif ".lora_B." in name:
                param.zero_()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    image = data.images[0]
    pixel_values = (image.pixels[None] * 2 - 1).to(unet.device)
    input_ids = pipe.tokenizer(
        [image.caption],
        max_length=pipe.tokenizer.model_max_length,
        padding="max_length",
        truncation=True,
        return_tensors="pt",
    ).input_ids
    unet.train()
    times, losses = [], []
    for step in range(steps):
        began = time.perf_counter()
        gen = step_generator(0, step, stream=11)  # brushwork's seeding, for equal losses
        dist = vae.encode(pixel_values).latent_dist
        eps = torch.randn(dist.mean.shape, generator=gen)
        latents = (dist.mean + dist.std * eps) * vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=gen)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,),
                                  generator=gen)  # fmt: skip
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        encoder_hidden_states = text_encoder(input_ids, return_dict=False)[0]
        model_pred = unet(noisy, timesteps, encoder_hidden_states, return_dict=False)[0]
        loss = F.mse_loss(model_pred.float(), noise.float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - began)
    return times, losses


def child(name: str, steps: int, size: int, threads: int) -> dict:
    import tempfile

    import torch

    torch.set_num_threads(threads)
    spec = CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pipe = build_pipeline(folder)
        data = _data(folder, size)
        run = run_ours if spec["kind"] == "ours" else run_textbook
        times, losses = run(pipe, data, spec, steps)
    later = times[1:] or times
    return {
        "config": name,
        "steps": steps,
        "size": size,
        "s_per_step": statistics.median(later),
        "first_step_s": times[0],
        "peak_mib": _peak_mb(),
        "losses": losses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration")
    parser.add_argument("--size", type=int, default=512, help="image side (multiple of 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.size, args.threads)))
        return 0
    results = []
    for name in args.configs:
        command = [sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                   "--size", str(args.size), "--threads", str(args.threads)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done {name}: {results[-1]['s_per_step']:.2f} s/step", file=sys.stderr, flush=True)
    base = next((r for r in results if r["config"] == "textbook-r16"), None)
    print(f"\nSD 1.5 (published sizes, random weights), {args.size}², batch 1, CPU, "
          f"{args.threads} threads, {args.steps} steps per configuration "
          "(median after the first)")  # fmt: skip
    print("| config | s/step | × vs textbook-r16 | peak MiB | peak vs textbook | last loss |")
    print("|---|---|---|---|---|---|")
    for r in results:
        speed = f"{base['s_per_step'] / r['s_per_step']:.2f}×" if base else "–"
        memory = f"{100 * (r['peak_mib'] / base['peak_mib'] - 1):+.0f} %" if base else "–"
        print(f"| {r['config']} | {r['s_per_step']:.2f} | {speed} | {r['peak_mib']:.0f} | "
              f"{memory} | {r['losses'][-1]:.6f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
