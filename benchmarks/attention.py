"""Cost of recording DAAM word maps: time and peak memory, with and without recording.

A real-size Stable Diffusion 1.5 pipeline (UNet, CLIP ViT-L text encoder, VAE at their
published sizes) with seeded random weights — the cost does not depend on what the
weights learned. Each configuration runs in its own process; runs are interleaved
(plain, recorded, plain, recorded, ...) and repeated, so each ratio compares runs
taken close together. Generation stops at the latents (no VAE decode), which makes
the recording overhead a larger share than end to end.

    python benchmarks/attention.py                        # CPU, 512 px, 2 steps, 1 and 4 prompts
    python benchmarks/attention.py --device cuda --model sdxl --size 1024 --dtype float16 \\
        --steps 30 --batches 1 4
    python benchmarks/attention.py --json results.json

Prints one row per configuration: median seconds, recorded/plain ratios of wall time
and of process CPU time (the latter is steadier on a shared machine), the share of the
recorded run spent inside the recorder (timed directly), peak memory (process RSS on
CPU, allocator peak on CUDA) and its difference to plain, and the time to turn the
recorded buffers into word maps at image size, per prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "a giraffe painting in the cubist style",
    "a cat in the style of a dog painting",
    "a dog painting in the giraffe style",
    "a painting of a cat with giraffe style",
]
WORDS = [["giraffe", "cubist"], ["cat", "dog"], ["dog", "giraffe"], ["cat", "giraffe"]]


def build_pipeline(model: str, dtype: str, device: str):
    """A real-size SD 1.5 or SDXL pipeline with seeded random weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "diffusion"))
    from tiny_sd import tiny_tokenizer  # a real CLIP BPE tokenizer with a small vocabulary

    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    clip_l = CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
        vocab_size=49408, max_position_embeddings=77, projection_dim=768,
    )  # fmt: skip
    if model == "sd15":
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=CLIPTextModel(clip_l), tokenizer=tokenizer, unet=unet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )  # fmt: skip
    else:
        clip_g = CLIPTextConfig(
            hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
            num_hidden_layers=32, vocab_size=49408, max_position_embeddings=77,
            projection_dim=1280, hidden_act="gelu",
        )  # fmt: skip
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            cross_attention_dim=2048,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=CLIPTextModel(clip_l),
            text_encoder_2=CLIPTextModelWithProjection(clip_g), tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
        )  # fmt: skip
    pipe = pipe.to(device=device, dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _peak_memory_mib(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(args: argparse.Namespace) -> dict:
    """One configuration in this process: build, warm up, generate once, measure."""
    import torch

    from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
    from brushwork.diffusion.maps import word_maps
    from brushwork.diffusion.tokens import prompt_tokens

    torch.set_num_threads(args.threads) if args.threads else None
    pipe = build_pipeline(args.model, args.dtype, args.device)
    prompts = (PROMPTS * args.batch)[: args.batch]
    words = (WORDS * args.batch)[: args.batch]
    size = args.size

    def generate(steps: int):
        generators = [torch.Generator(args.device).manual_seed(i) for i in range(args.batch)]
        return pipe(
            prompts, num_inference_steps=steps, guidance_scale=args.guidance, height=size,
            width=size, generator=generators, output_type="latent",
        ).images  # fmt: skip

    settings = RecordingSettings(
        max_tokens=max(prompt_tokens(pipe.tokenizer, p).length for p in prompts)
    )
    recorder = AttentionRecorder(pipe, settings) if args.record else None
    with torch.inference_mode():
        if recorder:
            recorder.install()
        generate(1)  # warm-up: first-call allocations and kernel selection
        if recorder:
            recorder.reset()
            recorder.seconds = 0.0
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start, cpu_start = time.perf_counter(), time.process_time()
        generate(args.steps)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        peak = _peak_memory_mib(args.device)
        map_seconds = None
        if recorder:
            start = time.perf_counter()
            tokens = recorder.token_maps()
            for i in range(args.batch):
                maps = word_maps(
                    tokens[i], pipe.tokenizer, prompts[i], words[i], image_size=(size, size)
                )
                maps.heatmaps()
            map_seconds = (time.perf_counter() - start) / args.batch
            recorder.restore()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "recorder_seconds": recorder.seconds if recorder else 0.0,
        "peak_mib": peak,
        "map_seconds_per_prompt": map_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args)))
        return

    runs: dict[tuple[int, bool], list[dict]] = {}
    base = [sys.executable, __file__, "--child", "--model", args.model, "--device", args.device,
            "--dtype", args.dtype, "--size", str(args.size), "--steps", str(args.steps),
            "--guidance", str(args.guidance), "--threads", str(args.threads)]  # fmt: skip
    for repeat in range(args.repeats):
        for batch in args.batches:
            for record in (False, True):
                command = [*base, "--batch", str(batch)] + (["--record"] if record else [])
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                if done.returncode != 0:
                    sys.exit(f"run failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                runs.setdefault((batch, record), []).append(result)
                label = "recorded" if record else "plain"
                print(f"  repeat {repeat}: {batch} prompt(s), {label}: {result['seconds']:.2f} s,"
                      f" peak {result['peak_mib']:.0f} MiB", file=sys.stderr)  # fmt: skip

    rows = []
    for batch in args.batches:
        plain, recorded = runs[(batch, False)], runs[(batch, True)]
        ratios = [r["seconds"] / p["seconds"] for p, r in zip(plain, recorded, strict=True)]
        cpu_ratios = [
            r["cpu_seconds"] / p["cpu_seconds"] for p, r in zip(plain, recorded, strict=True)
        ]
        row = {
            "prompts_per_call": batch,
            "plain_s": statistics.median(p["seconds"] for p in plain),
            "recorded_s": statistics.median(r["seconds"] for r in recorded),
            "time_ratio_median": statistics.median(ratios),
            "time_ratios": ratios,
            "cpu_time_ratio_median": statistics.median(cpu_ratios),
            "recorder_share": statistics.median(
                r["recorder_seconds"] / r["seconds"] for r in recorded
            ),
            "plain_peak_mib": statistics.median(p["peak_mib"] for p in plain),
            "recorded_peak_mib": statistics.median(r["peak_mib"] for r in recorded),
            "map_s_per_prompt": statistics.median(r["map_seconds_per_prompt"] for r in recorded),
        }
        row["extra_peak_mib"] = row["recorded_peak_mib"] - row["plain_peak_mib"]
        rows.append(row)

    title = (
        f"DAAM recording cost: {args.model} {args.size}px, {args.steps} steps, "
        f"guidance {args.guidance}, {args.dtype} on {args.device}, {args.repeats} repeats"
    )
    print(title)
    header = ("prompts/call", "plain s", "recorded s", "wall ratio (median)", "wall ratios",
              "CPU-time ratio", "recorder share", "peak plain MiB", "extra MiB",
              "maps s/prompt")  # fmt: skip
    print(" | ".join(header))
    for r in rows:
        print(" | ".join([
            str(r["prompts_per_call"]), f"{r['plain_s']:.2f}", f"{r['recorded_s']:.2f}",
            f"{r['time_ratio_median']:.3f}", " ".join(f"{x:.3f}" for x in r["time_ratios"]),
            f"{r['cpu_time_ratio_median']:.3f}", f"{100 * r['recorder_share']:.2f} %",
            f"{r['plain_peak_mib']:.0f}", f"{r['extra_peak_mib']:+.0f}",
            f"{r['map_s_per_prompt']:.4f}",
        ]))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
