"""Cost of recording word maps on transformer backbones (SD3.5, Flux.1), side by side
with the published attention-map-diffusers package in the same run.

Real-size denoisers with seeded random weights (the cost does not depend on what the
weights learned):

* ``sd35``: SD3.5-medium's transformer (24 joint blocks, 24 heads × 64, dual attention in
  blocks 0–12, RMS QK-norm), CFG on (the batch holds both halves);
* ``flux``: a Flux.1-dev transformer at real width (24 heads × 128, guidance embedding)
  with 2 double-stream and 4 single-stream blocks instead of 19 and 38 (stated in the
  table: recording cost per block is what is compared).

The text encoders are one-layer models of the real output widths (CLIP-L/G, T5-XXL's
4096): they run before the denoiser and do not change the recording cost. Generation
stops at the latents (no VAE decode). Each configuration runs in its own process,
interleaved (plain, brushwork, attention-map-diffusers, plain, ...) and repeated.

    python benchmarks/attention_mmdit.py --family sd35 --size 512 --steps 2 --batches 1 4
    python benchmarks/attention_mmdit.py --family flux --dtype bfloat16
    python benchmarks/attention_mmdit.py --family sd35 --tiny          # a quick smoke run
    pip install --no-deps attention-map-diffusers==1.0.0 ftfy          # the peer (its
        # torchvision dependency is only for saving PNGs, which is not measured)

Prints one row per (family, prompts per call, method): median seconds, ratio to plain
(wall and process CPU time), the share of the run spent in brushwork's recorder, peak
memory (process RSS on CPU, allocator peak on CUDA) and its excess over plain.
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

from attention import _peak_memory_mib  # benchmarks/attention.py: the same measurement

PROMPTS = [
    "a giraffe painting in the cubist style",
    "a cat in the style of a dog painting",
    "a dog painting in the giraffe style",
    "a painting of a cat with giraffe style",
]
METHODS = ("plain", "brushwork", "amd")
TESTS = Path(__file__).resolve().parents[1] / "tests" / "diffusion"


def _clip(hidden: int, projection: int, tokenizer_vocab: int, *, with_projection: bool = True):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        hidden_size=hidden, intermediate_size=4 * hidden, num_attention_heads=max(1, hidden // 64),
        num_hidden_layers=1, vocab_size=tokenizer_vocab, max_position_embeddings=77,
        projection_dim=projection,
    )  # fmt: skip
    model = CLIPTextModelWithProjection if with_projection else CLIPTextModel  # Flux: pooled
    return model(config).eval()


def _t5(d_model: int, vocab: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        d_model=d_model, d_ff=256, d_kv=64, num_heads=4, num_layers=1, vocab_size=vocab,
        dropout_rate=0.0, relative_attention_num_buckets=8,
    )  # fmt: skip
    return T5EncoderModel(config).eval()


def build_pipeline(family: str, dtype: str, device: str, tiny: bool):
    """A pipeline whose denoiser has the real architecture (or a tiny one for --tiny)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    sys.path.insert(0, str(TESTS))
    from tiny_sd import tiny_tokenizer
    from tiny_t5 import tiny_t5_tokenizer

    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp())
    clip_tokenizer = tiny_tokenizer(folder / "clip")
    t5_tokenizer = tiny_t5_tokenizer(max_length=256)
    vocab = len(clip_tokenizer)
    vae = AutoencoderKL(  # small (it never runs: output stops at the latents), 8× factor
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=16, layers_per_block=1,
        norm_num_groups=4,
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    width = 256 if tiny else 4096
    if family == "sd35":
        heads, layers = (4, 3) if tiny else (24, 24)
        transformer = SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, num_layers=layers,
            attention_head_dim=64 if not tiny else 16, num_attention_heads=heads,
            joint_attention_dim=width, caption_projection_dim=heads * (64 if not tiny else 16),
            pooled_projection_dim=2048 if not tiny else 64, out_channels=16,
            pos_embed_max_size=384 if not tiny else 96, qk_norm="rms_norm",
            dual_attention_layers=tuple(range(13 if not tiny else 1)),
        )  # fmt: skip
        clip_l, clip_g = (32, 32) if tiny else (768, 1280)
        pipe = StableDiffusion3Pipeline(
            transformer=transformer, scheduler=scheduler, vae=vae,
            text_encoder=_clip(clip_l, clip_l, vocab), tokenizer=clip_tokenizer,
            text_encoder_2=_clip(clip_g, clip_g, vocab), tokenizer_2=clip_tokenizer,
            text_encoder_3=_t5(width, len(t5_tokenizer)), tokenizer_3=t5_tokenizer,
        )  # fmt: skip
    else:
        heads, double, single = (2, 1, 1) if tiny else (24, 2, 4)
        head_dim = 16 if tiny else 128
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=double, num_single_layers=single,
            attention_head_dim=head_dim, num_attention_heads=heads, joint_attention_dim=width,
            pooled_projection_dim=768 if not tiny else 32, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56) if not tiny else (4, 6, 6),
        )  # fmt: skip
        pipe = FluxPipeline(
            transformer=transformer, scheduler=scheduler, vae=vae,
            text_encoder=_clip(
                768 if not tiny else 32, 768 if not tiny else 32, vocab, with_projection=False
            ),
            tokenizer=clip_tokenizer, text_encoder_2=_t5(width, len(t5_tokenizer)),
            tokenizer_2=t5_tokenizer,
        )  # fmt: skip
    pipe = pipe.to(device=device, dtype=getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _capture(method: str, pipe, prompts: list[str]):
    """The recording context of ``method`` (``None`` for plain)."""
    if method == "brushwork":
        from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
        from brushwork.diffusion.pipelines import text_stream
        from brushwork.diffusion.tokens import prompt_tokens

        stream = text_stream(pipe)
        ends = [prompt_tokens(stream.tokenizer, p, stream=stream).end for p in prompts]
        return AttentionRecorder(pipe, RecordingSettings(max_tokens=max(ends)))
    if method == "amd":
        from attention_map_diffusers import AttentionCapture

        return AttentionCapture(pipe, relations="image->text", timesteps="all", offload=None)
    return None


def run_one(args: argparse.Namespace) -> dict:
    """One configuration in this process: build, warm up, generate once, measure."""
    import contextlib

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = build_pipeline(args.family, args.dtype, args.device, args.tiny)
    prompts = (PROMPTS * args.batch)[: args.batch]
    call = dict(
        prompt=prompts, num_inference_steps=args.steps, height=args.size, width=args.size,
        output_type="latent", max_sequence_length=args.text_tokens,
    )  # fmt: skip
    if args.family == "sd35":
        call["guidance_scale"] = 4.5
    with torch.inference_mode():
        pipe(**{**call, "num_inference_steps": 1})  # warm-up
        capture = _capture(args.method, pipe, prompts)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start, cpu_start = time.perf_counter(), time.process_time()
        with capture if capture is not None else contextlib.nullcontext():
            generators = [torch.Generator(args.device).manual_seed(i) for i in range(args.batch)]
            pipe(**call, generator=generators)
            if args.method == "brushwork":
                capture.token_maps()
        if args.method == "amd":
            capture.compute()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "recorder_seconds": getattr(capture, "seconds", 0.0) if capture is not None else 0.0,
        "peak_mib": _peak_memory_mib(args.device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("sd35", "flux"), default="sd35")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, default=256, help="T5 max_sequence_length")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny models: a smoke run")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args)))
        return
    methods = [m for m in args.methods if m != "amd" or _has_amd()]
    if "amd" in args.methods and "amd" not in methods:
        print("attention-map-diffusers is not installed: its rows are left out", file=sys.stderr)

    base = [sys.executable, __file__, "--child", "--family", args.family, "--device",
            args.device, "--dtype", args.dtype, "--size", str(args.size), "--steps",
            str(args.steps), "--text-tokens", str(args.text_tokens), "--threads",
            str(args.threads)] + (["--tiny"] if args.tiny else [])  # fmt: skip
    runs: dict[tuple[int, str], list[dict]] = {}
    for repeat in range(args.repeats):
        for batch in args.batches:
            for method in methods:
                command = [*base, "--batch", str(batch), "--method", method]
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
                if done.returncode != 0:
                    sys.exit(f"{method} run failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                runs.setdefault((batch, method), []).append(result)
                print(f"  repeat {repeat}: {batch} prompt(s), {method}: {result['seconds']:.2f} s,"
                      f" peak {result['peak_mib']:.0f} MiB", file=sys.stderr)  # fmt: skip

    rows = []
    for batch in args.batches:
        plain = runs[(batch, "plain")]
        for method in methods:
            done = runs[(batch, method)]
            ratios = [r["seconds"] / p["seconds"] for p, r in zip(plain, done, strict=True)]
            cpu = [r["cpu_seconds"] / p["cpu_seconds"] for p, r in zip(plain, done, strict=True)]
            peak = statistics.median(r["peak_mib"] for r in done)
            rows.append({
                "prompts_per_call": batch, "method": method,
                "seconds": statistics.median(r["seconds"] for r in done),
                "time_ratio": statistics.median(ratios), "time_ratios": ratios,
                "cpu_time_ratio": statistics.median(cpu),
                "recorder_share": statistics.median(r["recorder_seconds"] / r["seconds"]
                                                    for r in done),
                "peak_mib": peak,
                "extra_peak_mib": peak - statistics.median(p["peak_mib"] for p in plain),
            })  # fmt: skip
    blocks = {"sd35": "24 joint blocks (real)", "flux": "2 double + 4 single blocks (real width)"}
    print(
        f"word-map recording on {args.family} ({'tiny' if args.tiny else blocks[args.family]}), "
        f"{args.size}px, {args.steps} steps, {args.dtype} on {args.device}, "
        f"{args.repeats} repeats"
    )
    print("| prompts/call | method | s | wall ratio | wall ratios | CPU ratio | in recorder | "
          "peak MiB | extra MiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompts_per_call']} | {r['method']} | {r['seconds']:.2f} | "
              f"{r['time_ratio']:.3f} | {' '.join(f'{x:.3f}' for x in r['time_ratios'])} | "
              f"{r['cpu_time_ratio']:.3f} | {100 * r['recorder_share']:.2f} % | "
              f"{r['peak_mib']:.0f} | {r['extra_peak_mib']:+.0f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


def _has_amd() -> bool:
    import importlib.util

    return importlib.util.find_spec("attention_map_diffusers") is not None


if __name__ == "__main__":
    main()
