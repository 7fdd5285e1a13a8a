"""Cost of one StyleID stylisation: brushwork's styleid_latents vs a plain re-statement of
the reference code's loop (Chung et al. 2024, github.com/jiwoogit/StyleID, run_styleid.py
with the LDM ``CrossAttention`` and ``DDIMSampler``).

A real-size Stable Diffusion 1.5 UNet (published config) with seeded random weights —
the cost does not depend on what the weights learned — at 512 px (64×64 latents), with a
random 77×768 embedding for the empty prompt and random content and style latents (the
text encoder and the VAE run once per image for both and are not measured). One
stylisation = DDIM inversion of the content and of the style + the injected denoising,
``--steps`` DDIM steps each (the paper: 50; a 2-core CPU needs about half a minute per
UNet row at 512 px, so the default here is reduced; the per-step figures scale).
Each configuration runs in its own process; the report gives seconds per phase and per
step, the process's peak RSS, the peak above the RSS once the model is built (what one
stylisation adds), the features kept, and the largest difference between the two
results' final latents (same algorithm, same timesteps: they must agree).

The reference loop, re-stated plainly ("reference"):
  * every attention layer explicit, as LDM's ``CrossAttention``: ``einsum`` logits, the
    temperature and scale multiplied in, softmax, ``einsum`` with the values, and the
    probabilities kept on the module (``self.attn``) until its next call;
  * q, k and v (heads split, fp32) of the six injected layers kept at every step for both
    images (``feat_maps``), each image's set deep-copied after its inversion
    (``copy.deepcopy(feat_maps)``), then merged (content q, style k and v);
  * the two inversions one after the other, one row each.
Not re-stated: the reference's timestep mismatch (it starts from the latent inverted to
t = 999 and denoises from t = 961); both here use brushwork's schedule so that the
outputs can be compared.
brushwork ("ours"): the model's own fused attention (SDPA) everywhere, the injected
layers' *inputs* kept for the content and the style in the model dtype (a third of the
reference's features before its copies); on a CPU the two inversions run one after the
other (a batch of two measured slower per row), on a GPU in one batch.

    flock /work/notes/bench.lock python benchmarks/diffusion_style.py        # 512 px, 2 steps
    python benchmarks/diffusion_style.py --steps 3 --size 384 --json out.json

Target: ours ≥ 1.5× faster and ≤ 1/3 of the reference's peak memory above the model, at
equal output.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from editing import (  # benchmarks/editing.py: the same SD 1.5 UNet and memory readings
    _peak_mb,
    _rss_mb,
)
from editing import build_unet as sd15_unet

CONFIGS = ("ours", "reference")
GAMMA, TEMPERATURE = 0.75, 1.5


def build_unet(device: str):
    """SD 1.5's UNet (published config) with seeded random weights, frozen."""
    return sd15_unet(device).requires_grad_(False)


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


class _EmptyPromptTokenizer:
    """Stands in for the CLIP tokenizer: the only prompt here is the empty one."""

    model_max_length = 77

    def __call__(self, prompt: str, **kwargs):
        return SimpleNamespace(input_ids=[])


def _pipe(unet, text):
    """The parts of a pipeline brushwork's inversion reads (no text encoder, no VAE)."""
    return SimpleNamespace(
        unet=unet,
        scheduler=_scheduler(),
        tokenizer=_EmptyPromptTokenizer(),
        vae=SimpleNamespace(config=SimpleNamespace(block_out_channels=[128, 256, 512, 512])),
        encode_prompt=lambda *args, **kwargs: (text, text),
    )


# --------------------------------------------------------------------------- ours
def run_ours(unet, text, content, style, steps: int, timer) -> tuple:
    from brushwork.diffusion.styleid import StyleIDSettings, styleid_latents

    pipe = _pipe(unet, text)
    settings = StyleIDSettings(gamma=GAMMA, temperature=TEMPERATURE, steps=steps)
    run = styleid_latents(
        pipe, content, style, settings, callback=lambda phase, done, total: timer(phase)
    )
    return run.latent, run.feature_bytes, run.layers


# --------------------------------------------------------------------------- reference
class _LdmAttention:
    """LDM's ``CrossAttention.forward`` as a processor (explicit, ``self.attn`` kept)."""

    def __init__(self, state, name: str) -> None:
        self.state, self.name = state, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        import torch

        state = self.state
        h = attn.heads
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states

        def split(t):
            b, n, _ = t.shape
            return t.view(b, n, h, -1).permute(0, 2, 1, 3).reshape(b * h, n, -1)

        injected = state.mode == "inject" and self.name in state.layers
        q = split(attn.to_q(hidden_states))
        if injected:
            feats = state.feat_maps[state.step]
            q = feats[f"{self.name}_q"] * GAMMA + q * (1.0 - GAMMA)
            k, v = feats[f"{self.name}_k"], feats[f"{self.name}_v"]
        else:
            k, v = split(attn.to_k(context)), split(attn.to_v(context))
        if state.mode == "capture" and self.name in state.layers:
            cur = state.feat_maps[state.step]
            cur[f"{self.name}_q"], cur[f"{self.name}_k"], cur[f"{self.name}_v"] = q, k, v
        sim = torch.einsum("bid,bjd->bij", q, k)
        if injected:
            sim *= TEMPERATURE
        sim *= attn.scale
        probs = sim.softmax(dim=-1)
        attn.kept_probs = probs  # LDM: self.attn = attn
        out = torch.einsum("bij,bjd->bid", probs, v)
        b = hidden_states.shape[0]
        out = (
            out.view(b, h, -1, out.shape[-1]).permute(0, 2, 1, 3).reshape(b, -1, h * out.shape[-1])
        )
        return attn.to_out[1](attn.to_out[0](out))


def run_reference(unet, text, content, style, steps: int, timer) -> tuple:
    import torch

    from brushwork.diffusion.inversion import ddim_step, make_schedule
    from brushwork.diffusion.styleid import adain_latent, default_styleid_layers

    schedule = make_schedule(_pipe(unet, text), steps)
    layers = [layer.name for layer in default_styleid_layers(unet)]
    state = SimpleNamespace(mode="off", step=0, layers=set(layers), feat_maps=None)
    unet.set_attn_processor(
        {key: _LdmAttention(state, key.removesuffix(".processor")) for key in unet.attn_processors}
    )

    def eps(x, j):
        with torch.no_grad():
            return unet(x, schedule.timesteps[j], encoder_hidden_states=text).sample.float()

    def invert(z0):
        state.mode = "capture"
        x = z0
        for j in range(steps - 1, -1, -1):
            state.step = j
            x = ddim_step(x, eps(x, j), schedule.alphas[j + 1], schedule.alphas[j])
            timer("inversion")
        state.mode = "off"
        return x

    state.feat_maps = [{} for _ in range(steps)]
    style_z = invert(style)
    style_feats = copy.deepcopy(state.feat_maps)
    content_z = invert(content)
    content_feats = copy.deepcopy(state.feat_maps)
    merged = [{} for _ in range(steps)]
    for j in range(steps):
        for key in content_feats[j]:
            merged[j][key] = (content_feats if key.endswith("_q") else style_feats)[j][key]
    state.feat_maps = merged
    kept = sum(t.numel() * t.element_size() for f in (style_feats, content_feats) for d in f
               for t in d.values())  # fmt: skip
    x = adain_latent(content_z, style_z)
    state.mode = "inject"
    for j in range(steps):
        state.step = j
        x = ddim_step(x, eps(x, j), schedule.alphas[j], schedule.alphas[j + 1])
        timer("stylisation")
    return x, kept, layers


# --------------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    unet = build_unet(args.device)
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(1, 77, 768, generator=gen).to(args.device)
    side = args.size // 8
    content = torch.randn(1, 4, side, side, generator=gen).to(args.device)
    style = (torch.randn(1, 4, side, side, generator=gen) * 0.7 + 0.2).to(args.device)
    base_rss = _rss_mb()
    calls: dict[str, list[float]] = {"inversion": [], "stylisation": []}
    last = [time.perf_counter()]

    def timer(phase: str) -> None:
        now = time.perf_counter()
        calls[phase].append(now - last[0])
        last[0] = now

    began = time.perf_counter()
    run = run_ours if args.worker == "ours" else run_reference
    latent, kept_bytes, layers = run(unet, text, content, style, args.steps, timer)
    total = time.perf_counter() - began
    torch.save(latent.cpu(), args.out)
    print(json.dumps({
        "config": args.worker, "seconds": total, "calls": calls, "peak_mb": _peak_mb(),
        "base_mb": base_rss, "kept_mb": kept_bytes / 2**20, "layers": layers,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in px (%(default)s)")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps (paper: 50)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    results = {}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    latents = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            out = str(Path(tmp) / f"{config}.pt")
            cmd = [sys.executable, __file__, "--worker", config, "--size", str(args.size),
                   "--steps", str(args.steps), "--device", args.device,
                   "--threads", str(args.threads), "--out", out]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                sys.exit(f"{config} failed:\n{done.stderr[-3000:]}")
            results[config] = json.loads(done.stdout.strip().splitlines()[-1])
            latents[config] = torch.load(out, weights_only=True)
    n = args.steps
    print(f"StyleID, SD 1.5 UNet (random weights), {args.size} px, {args.device}, {n} DDIM "
          f"steps per inversion and for the denoising (paper: 50)")  # fmt: skip
    head = ("config", "total s", "s/inv step", "s/sty step", "median s/call inv, sty",
            "s @50 steps", "peak MB", "above model MB", "features MB")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for config, r in results.items():
        inv = sum(r["calls"]["inversion"]) / n  # both images, per step
        sty = sum(r["calls"]["stylisation"]) / n
        r["above_mb"] = r["peak_mb"] - r["base_mb"]
        r["at_50"] = 50 * (inv + sty)
        r["medians"] = {k: statistics.median(v) for k, v in r["calls"].items()}
        r["median_total"] = sum(len(r["calls"][k]) * m for k, m in r["medians"].items())
        r["min_total"] = sum(len(v) * min(v) for v in r["calls"].values())
        medians = f"{r['medians']['inversion']:.1f}, {r['medians']['stylisation']:.1f}"
        row = (config, f"{r['seconds']:.1f}", f"{inv:.1f}", f"{sty:.1f}", medians,
               f"{r['at_50']:.0f}", f"{r['peak_mb']:.0f}", f"{r['above_mb']:.0f}",
               f"{r['kept_mb']:.0f}")  # fmt: skip
        print("| " + " | ".join(row) + " |")
    if {"ours", "reference"} <= set(results):
        ours, ref = results["ours"], results["reference"]
        a, b = latents["ours"], latents["reference"]
        diff = float((a - b).abs().max())
        scale = float(b.abs().max())
        speed = ref["seconds"] / ours["seconds"]
        robust = ref["median_total"] / ours["median_total"]
        fastest = ref["min_total"] / ours["min_total"]
        memory = ours["above_mb"] / ref["above_mb"]
        print(
            f"speed-up {speed:.2f}× in total, {robust:.2f}× from the per-call medians, "
            f"{fastest:.2f}× from the per-call minima (target ≥ 1.5×); peak above the model "
            f"ours/reference "
            f"{memory:.2f} (target ≤ 0.33); features kept {ours['kept_mb']:.0f} vs "
            f"{ref['kept_mb']:.0f} MB (+ the reference's deep copies); final latents: max |Δ| "
            f"{diff:.2e} of max |z| {scale:.2f}"
        )
        results["speedup"], results["speedup_medians"] = speed, robust
        results["speedup_minima"] = fastest
        results["memory_ratio"], results["max_diff"] = memory, diff
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
