"""Cost of one CDS iteration: brushwork's Editor vs a plain re-implementation of the
published loop (Nam et al. 2024, github.com/HyelinNAM/ContrastiveDenoisingScore).

A real-size Stable Diffusion 1.5 UNet (published config) with seeded random weights —
the cost does not depend on what the weights learned — at 512 px (64×64 latent), with
random 77×768 text embeddings (the text encoder and VAE run once per edit and are not
part of the iteration). Each configuration runs in its own process for a few
iterations; the report gives seconds per iteration (median after the first, which
includes warm-up), peak process memory (RSS high-water mark) after each iteration and
the RSS still held after each iteration (what the loop keeps).

The published loop, re-implemented plainly ("published"):
  * every attention processor replaced by an explicit one (softmax(QKᵀ)V in bmm's),
  * every self-attention weight marked ``requires_grad`` (weight gradients computed),
  * the decoder self-attention features of every iteration kept (``sa_attn[t]``),
  * the gradient pass on [unconditional, conditional] target rows (only the conditional
    one is used), separate backward passes for the DDS and CUT terms.
brushwork ("ours"): the model's own fused attention, decoder ``attn1`` outputs of the
current call only, no weight gradients, a 3-row no-gradient call plus a 1-row gradient
pass whose prediction is reused for the DDS term.

    python benchmarks/editing.py                     # CPU, 512 px, 3 iterations each
    python benchmarks/editing.py --size 256 --iterations 2 --json out.json
    python benchmarks/editing.py --device cuda

Target: ours ≥ 1.3× faster per iteration, and memory that does not grow with iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

CONFIGS = ("ours", "published")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_unet(device: str):
    """SD 1.5's UNet (published config) with seeded random weights."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    return unet.to(device).eval()


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


# --------------------------------------------------------------------------- ours
def run_ours(unet, texts, z_src, iterations: int, record) -> None:
    import torch

    from brushwork.diffusion.editing import Editor, EditSettings, TextCondition
    from brushwork.diffusion.editing_features import SelfAttentionFeatures

    pipe = SimpleNamespace(unet=unet, scheduler=_scheduler(), vae_scale_factor=8)
    src_c, src_u, trg_c, trg_u = (TextCondition(t) for t in texts)
    settings = EditSettings(iterations=iterations)
    editor = Editor(pipe, (src_c, src_u), (trg_c, trg_u), settings)
    z_trg = z_src.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([z_trg], lr=settings.learning_rate)
    with SelfAttentionFeatures(unet) as features:
        for _ in range(iterations):
            start = time.perf_counter()
            t, eps = editor.sample_noise(z_src)
            optimizer.zero_grad(set_to_none=True)
            dds, cut, _ = editor.losses(z_src, z_trg, t, eps, features=features)
            (settings.dds_weight * dds + settings.cut_weight * cut).backward()
            optimizer.step()
            record(time.perf_counter() - start)


# --------------------------------------------------------------------------- published
class ExplicitProcessor:
    """The published code's processor: explicit attention, keeps ``attn.hs``."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        import torch

        query = attn.to_q(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(attn.head_to_batch_dim(query), key)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        attn.hs = out[2:3] if out.shape[0] == 4 else out[1:2]
        return out


def run_published(unet, texts, z_src, iterations: int, record) -> None:
    import torch

    from brushwork.diffusion.patchnce import cut_loss

    scheduler = _scheduler()
    for name, param in unet.named_parameters():
        param.requires_grad = "attn1" in name
    unet.set_attn_processor(ExplicitProcessor())
    layers = [
        (name, module)
        for name, module in unet.named_modules()
        if type(module).__name__ == "Attention" and "attn1" in name and "up" in name
    ]
    src_c, src_u, trg_c, trg_u = texts
    embeds = torch.cat([src_u, trg_u, src_c, trg_c])
    trg_embeds = torch.cat([trg_u, trg_c])
    z_trg = z_src.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([z_trg], lr=0.1)
    sa_attn: dict[int, dict[str, torch.Tensor]] = {}
    gen = torch.Generator().manual_seed(0)
    h, w = z_src.shape[-2:]

    def feature_map(tokens):
        side = int(tokens.shape[1] ** 0.5)
        return tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2)

    for i in range(iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        t = torch.randint(50, 949, (1,), generator=gen)
        eps = torch.randn(z_src.shape, generator=gen).to(z_src.device)
        with torch.no_grad():
            zt_src = scheduler.add_noise(z_src, eps, t)
            zt_trg = scheduler.add_noise(z_trg, eps, t)
            latent = torch.cat([zt_src, zt_trg] * 2)
            e = unet(latent, torch.cat([t] * 4).to(z_src.device), embeds).sample
            e_u, e_c = e.chunk(2)
            e = e_u + 7.5 * (e_c - e_u)
            e_src, e_trg = e.chunk(2)
            grad = e_trg - e_src
            sa_attn[i] = {name: m.hs.detach().cpu() for name, m in layers}
        loss = (z_trg * grad.clone()).sum() / (h * w)
        (2000 * loss).backward()
        zt_trg = scheduler.add_noise(z_trg, eps, t)
        unet(torch.cat([zt_trg] * 2), torch.cat([t] * 2).to(z_src.device), trg_embeds)
        cut = 0
        for name, m in layers:
            ref = feature_map(sa_attn[i][name].to(z_src.device))
            cut = cut + cut_loss(ref, feature_map(m.hs), generator=gen)
        (3.0 * cut).backward()
        optimizer.step()
        record(time.perf_counter() - start)


# --------------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    unet = build_unet(args.device)
    unet.requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    texts = [torch.randn(1, 77, 768, generator=gen).to(args.device) for _ in range(4)]
    latent = args.size // 8
    z_src = torch.randn(1, 4, latent, latent, generator=gen).to(args.device)
    cuda = args.device.startswith("cuda")
    times: list[float] = []
    peaks: list[float] = []
    held: list[float] = []

    def record(seconds: float) -> None:
        if cuda:
            torch.cuda.synchronize()
            peaks.append(torch.cuda.max_memory_allocated() / 2**20)
            held.append(torch.cuda.memory_allocated() / 2**20)
        else:
            peaks.append(_peak_mb())
            held.append(_rss_mb())
        times.append(seconds)

    run = run_ours if args.worker == "ours" else run_published
    run(unet, texts, z_src, args.iterations, record)
    print(json.dumps({"config": args.worker, "seconds": times, "peak_mb": peaks, "held_mb": held}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in px (%(default)s)")
    parser.add_argument("--iterations", type=int, default=3, help="per configuration")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    results = {}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for config in args.configs:
        cmd = [sys.executable, __file__, "--worker", config, "--size", str(args.size),
               "--iterations", str(args.iterations), "--device", args.device,
               "--threads", str(args.threads)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"{config} failed:\n{out.stderr[-3000:]}")
        results[config] = json.loads(out.stdout.strip().splitlines()[-1])
    unit = "allocated" if args.device.startswith("cuda") else "RSS"
    print(f"CDS iteration, SD 1.5 UNet (random weights), {args.size} px, {args.device}")
    print(f"{'config':<10} {'s/iter':>8} {'peak MB per iteration':<30} {unit + ' held MB':<30}")
    for config, r in results.items():
        steady = r["seconds"][1:] or r["seconds"]
        r["median_s"] = statistics.median(steady)
        peaks = " ".join(f"{p:.0f}" for p in r["peak_mb"])
        held = " ".join(f"{p:.0f}" for p in r["held_mb"])
        print(f"{config:<10} {r['median_s']:>8.2f} {peaks:<30} {held:<30}")
    if {"ours", "published"} <= set(results):
        speed = results["published"]["median_s"] / results["ours"]["median_s"]
        ours, pub = results["ours"], results["published"]
        first = 1 if len(ours["held_mb"]) >= 3 else 0  # after the warm-up iteration
        growth_ours = ours["held_mb"][-1] - ours["held_mb"][first]
        growth_pub = pub["held_mb"][-1] - pub["held_mb"][first]
        print(
            f"speed-up: {speed:.2f}× (target ≥ 1.3×); peak memory ours/published: "
            f"{ours['peak_mb'][-1]:.0f}/{pub['peak_mb'][-1]:.0f} MB; held memory growth "
            f"from iteration {first + 1} on: ours {growth_ours:+.0f} MB, "
            f"published {growth_pub:+.0f} MB"
        )
        results["speedup"] = speed
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
