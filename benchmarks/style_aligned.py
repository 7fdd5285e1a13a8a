"""Cost of StyleAligned: time and peak memory against plain generation and the reference code.

A real-size Stable Diffusion 1.5 pipeline with seeded random weights (built by
benchmarks/attention.py), one batch of prompts with classifier-free guidance, stopped at
the latents (no VAE decode). Three configurations, each in its own process (so the peak
RSS is its own), interleaved and repeated:

* ``plain``: the pipeline as it is (no sharing);
* ``brushwork``: :class:`brushwork.diffusion.style_aligned.StyleAligned` (defaults);
* ``reference``: a plain re-statement of the authors' ``sa_handler.SharedAttentionProcessor``
  (github.com/google/style-aligned, defaults of their SDXL notebook): every row, the
  reference included, AdaIN-ed and attending to its own and the reference's keys.

The two StyleAligned runs must agree: their final latents are compared (max |Δ|).

    python benchmarks/style_aligned.py                 # CPU, 512 px, 2 steps, 4 prompts
    python benchmarks/style_aligned.py --size 256 --steps 2 --batch 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = [
    "a toy train. macro photo. 3d game asset",
    "a toy airplane. macro photo. 3d game asset",
    "a toy bicycle. macro photo. 3d game asset",
    "a toy car. macro photo. 3d game asset",
    "a toy boat. macro photo. 3d game asset",
]


def _reference_processor():
    """The authors' shared-attention processor, re-stated (their defaults)."""
    import torch
    import torch.nn.functional as F

    def expand_first(feat):
        b = feat.shape[0]
        style = torch.stack((feat[0], feat[b // 2])).unsqueeze(1)
        return style.expand(2, b // 2, *feat.shape[1:]).reshape(*feat.shape)

    def adain(feat):
        mean = feat.mean(dim=-2, keepdim=True)
        std = (feat.var(dim=-2, keepdim=True) + 1e-5).sqrt()
        return (feat - mean) / std * expand_first(std) + expand_first(mean)

    class Shared:
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                     **kwargs):  # fmt: skip
            b = hidden_states.shape[0]
            q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
            heads = attn.heads
            q, k, v = (
                t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v)
            )
            q, k = adain(q), adain(k)
            k = torch.cat((k, expand_first(k)), dim=-2)
            v = torch.cat((v, expand_first(v)), dim=-2)
            out = F.scaled_dot_product_attention(q, k, v)
            out = out.transpose(1, 2).reshape(b, -1, heads * out.shape[-1]).to(q.dtype)
            return attn.to_out[1](attn.to_out[0](out))

    return Shared


def run_one(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from attention import _peak_memory_mib, build_pipeline
    from brushwork.diffusion.style_aligned import StyleAligned

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = build_pipeline("sd15", "float32", "cpu")
    prompts = (PROMPTS * args.batch)[: args.batch]

    def generate(steps: int):
        generators = [torch.Generator().manual_seed(i) for i in range(args.batch)]
        return pipe(
            prompts, num_inference_steps=steps, guidance_scale=7.5, height=args.size,
            width=args.size, generator=generators, output_type="latent",
        ).images  # fmt: skip

    original = dict(pipe.unet.attn_processors)
    patch = None
    if args.config == "brushwork":
        patch = StyleAligned(pipe)
        patch.install()
    elif args.config == "reference":
        shared = _reference_processor()()
        pipe.unet.set_attn_processor(
            {k: (shared if k.endswith("attn1.processor") else p) for k, p in original.items()}
        )
    with torch.inference_mode():
        generate(1)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        latents = generate(args.steps)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if patch is not None:
        patch.restore()
    torch.save(latents, args.latents)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": _peak_memory_mib("cpu")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--latents", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_one(args)))
        return
    configs = ("plain", "brushwork", "reference")
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    folder = Path(tempfile.mkdtemp())
    for _ in range(args.repeats):
        for config in configs:
            command = [sys.executable, __file__, "--config", config, "--size", str(args.size),
                       "--steps", str(args.steps), "--batch", str(args.batch),
                       "--threads", str(args.threads),
                       "--latents", str(folder / f"{config}.pt")]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[config].append(json.loads(out.strip().splitlines()[-1]))
    import torch

    ours, theirs = (
        torch.load(folder / f"{c}.pt", weights_only=True) for c in ("brushwork", "reference")
    )
    plain = torch.load(folder / "plain.pt", weights_only=True)
    diff = float((ours - theirs).abs().max())
    ref_diff = float((ours[0] - plain[0]).abs().max())

    def median(config: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[config])

    print(f"SD 1.5 UNet (random weights), CPU, {args.size}², {args.batch} prompts with CFG, "
          f"{args.steps} steps (+1 warm-up), latents only, {args.repeats} run(s) each")  # fmt: skip
    print("| config | seconds | × plain | CPU s | peak RSS MiB | Δ peak vs plain MiB |")
    print("|---|---|---|---|---|---|")
    base_s, base_m = median("plain", "seconds"), median("plain", "peak_mib")
    for config in configs:
        s, m = median(config, "seconds"), median(config, "peak_mib")
        print(f"| {config} | {s:.2f} | {s / base_s:.2f} | {median(config, 'cpu_seconds'):.1f} "
              f"| {m:.0f} | {m - base_m:+.0f} |")  # fmt: skip
    print(f"max |latents(brushwork) − latents(reference)| = {diff:.2e}; "
          f"reference image vs plain: {ref_diff:.2e}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "max_diff": diff}, indent=2))


if __name__ == "__main__":
    main()
