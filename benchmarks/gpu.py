"""Every CUDA path of brushwork measured in one call (≤ 8 minutes), one table, one JSON.

Sections (each in its own process, each with its own time budget, so one slow part
cannot eat the others; a section over budget is reported as such):

* ``gatys-512``, ``gatys-1024``: the default Gatys run against the textbook loop (fp32,
  full resolution, 300 L-BFGS evaluations), both scored on the same full-resolution fp32
  objective; the time at which the default first reaches the textbook's final loss
  (``benchmarks/gatys.py``'s :func:`time_to_quality`). Targets 0.4 s and 1.2 s.
* ``feedforward``: Johnson, AdaIN and WCT at 1024 px (bf16 autocast, channels_last),
  median latency of one image.
* ``daam``: DAAM recording overhead on an SDXL-size UNet at 1024², 4 prompts per call,
  fp16, recorded against plain (``benchmarks/attention.py``'s pipeline and runner,
  interleaved); also the study's prompts/s with recording at the same steps and its
  metric pass per prompt. Target overhead ≤ 3 %.

All use seeded random weights at the published sizes (cost does not depend on what the
weights learned). CUDA settings: cudnn.benchmark, TF32 matmuls, channels_last for the
convolutional nets, autocast bf16/fp16, fused SDPA attention (diffusers' default
processor), ``torch.cuda.synchronize`` around every timing; ``--compile`` adds
torch.compile where the library supports it.

    python benchmarks/gpu.py                       # on the GPU, ≤ 8 min, writes gpu.json
    python benchmarks/gpu.py --dry-run             # every section on CPU at a tiny size
    python benchmarks/gpu.py --sections gatys-512,daam --json out.json
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = ("gatys-512", "gatys-1024", "feedforward", "daam")
#: Seconds each section may take on the GPU (sum ≤ 8 minutes with start-up slack).
BUDGETS = {"gatys-512": 60, "gatys-1024": 120, "feedforward": 60, "daam": 200}
TARGETS = {
    "gatys-512 reaches textbook loss (s)": ("≤", 0.4),
    "gatys-1024 reaches textbook loss (s)": ("≤", 1.2),
    "DAAM recording overhead (%)": ("≤", 3.0),
}


def _setup(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def section_gatys(args: argparse.Namespace, size: int) -> list[dict]:
    import torch

    from brushwork.transfer import GatysSettings
    from gatys import images, random_vgg19, time_to_quality

    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = random_vgg19(device).to(memory_format=torch.channels_last)
    content, style = images(size, device)
    settings = GatysSettings(size=size, steps=args.gatys_steps) if args.gatys_steps else None
    # Warm-up at the same size (cuDNN autotuning, allocator) outside the timings.
    time_to_quality(
        encoder, content, style, plain_steps=2, settings=GatysSettings(size=size, steps=3)
    )
    result = time_to_quality(
        encoder, content, style, plain_steps=args.plain_steps, settings=settings
    )
    name = args.section
    return [
        {"figure": f"{name} textbook loop (s)", "value": result["plain_s"],
         "note": f"{result['plain_evaluations']} evals, loss {result['target_loss']:.4g}"},
        {"figure": f"{name} default run (s)", "value": result["ours_s"],
         "note": f"{result['schedule']}, best loss {result['ours_final_loss']:.4g}"},
        {"figure": f"{name} reaches textbook loss (s)", "value": result["reached_s"],
         "note": "never" if result["reached_s"] is None
         else f"{result['time_ratio']:.3f} × textbook time"},
    ]  # fmt: skip


def section_feedforward(args: argparse.Namespace) -> list[dict]:
    import torch

    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import TransformerNet, reinitialise
    from brushwork.transfer.stylize import AdaINStylizer, JohnsonStylizer, WCTStylizer
    from brushwork.transfer.wct import WCTModel

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    size = args.ff_size
    g = torch.Generator().manual_seed(0)
    style = torch.rand(3, size, size, generator=g)
    image = torch.rand(1, 3, size, size, generator=g)
    adain, wct = AdaINModel(), WCTModel()
    reinitialise(adain, g)
    reinitialise(wct, g)
    common = {"styles": [style], "style_weights": None, "device": device, "dtype": dtype}
    stylizers = {
        "johnson": JohnsonStylizer(
            TransformerNet(generator=g), device=device, dtype=dtype, compile=args.compile
        ),
        "adain": AdaINStylizer(adain, alpha=1.0, **common),
        "wct": WCTStylizer(wct, alpha=0.6, **common),
    }
    rows = []
    for name, stylizer in stylizers.items():
        with torch.inference_mode():
            stylizer(image)  # warm-up: cuDNN autotuning, compile
            times = []
            for _ in range(args.repeats):
                _sync(args.device)
                began = time.perf_counter()
                stylizer(image)
                _sync(args.device)
                times.append(time.perf_counter() - began)
        rows.append(
            {"figure": f"{name} {size} px (s)", "value": statistics.median(times),
             "note": f"{str(dtype).removeprefix('torch.')}, median of {args.repeats}"}
        )  # fmt: skip
    return rows


def section_daam(args: argparse.Namespace) -> list[dict]:
    """Plain and recorded generation, interleaved in this process, on one pipeline."""
    import torch

    from attention import PROMPTS
    from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
    from brushwork.diffusion.tokens import prompt_tokens

    if args.dry_run:
        sys.path.insert(0, str(HERE.parent / "tests" / "diffusion"))
        from tiny_sd import build_sdxl_pipeline

        pipe = build_sdxl_pipeline(Path(tempfile.mkdtemp()))
    else:
        from attention import build_pipeline

        pipe = build_pipeline("sdxl", "float16", args.device)
        pipe.unet.to(memory_format=torch.channels_last)
    batch, size = 4, args.daam_size
    prompts = (PROMPTS * batch)[:batch]
    settings = RecordingSettings(
        max_tokens=max(prompt_tokens(pipe.tokenizer, p).length for p in prompts)
    )
    recorder = AttentionRecorder(pipe, settings)

    def generate(steps: int) -> float:
        generators = [torch.Generator(args.device).manual_seed(i) for i in range(batch)]
        _sync(args.device)
        began = time.perf_counter()
        pipe(
            prompts, num_inference_steps=steps, guidance_scale=7.5, height=size, width=size,
            generator=generators, output_type="latent",
        )  # fmt: skip
        _sync(args.device)
        return time.perf_counter() - began

    plain, recorded = [], []
    with torch.inference_mode():
        generate(1)  # warm-up
        for _ in range(args.repeats):
            plain.append(generate(args.daam_steps))
            recorder.install()
            recorder.reset()
            recorded.append(generate(args.daam_steps))
            recorder.restore()
    ratios = [r / p for p, r in zip(plain, recorded, strict=True)]
    overhead = 100 * (statistics.median(ratios) - 1)
    recorded_s = statistics.median(recorded)
    metric_s = _metric_pass_seconds(size, args)
    return [
        {"figure": "DAAM plain generation (s)", "value": statistics.median(plain),
         "note": f"sdxl{' (tiny)' if args.dry_run else ''} {size}², {batch} prompts, "
                 f"{args.daam_steps} steps, {pipe.unet.dtype}"},
        {"figure": "DAAM recorded generation (s)", "value": recorded_s, "note": "same"},
        {"figure": "DAAM recording overhead (%)", "value": overhead,
         "note": "ratios " + " ".join(f"{x:.3f}" for x in ratios)},
        {"figure": "study prompts/s with recording", "value": batch / recorded_s,
         "note": f"{args.daam_steps} steps; metric pass {metric_s:.4f} s/prompt"},
    ]  # fmt: skip


def _metric_pass_seconds(size: int, args: argparse.Namespace) -> float:
    """Median seconds of the study's vectorised metric pass for one prompt (10 words)."""
    from brushwork.experiments.metrics import prompt_metrics
    from study import _maps

    maps = _maps(10, size, args.device)
    prompt_metrics(maps, 4, 7)  # warm-up
    times = []
    for _ in range(args.repeats):
        _sync(args.device)
        began = time.perf_counter()
        prompt_metrics(maps, 4, 7)
        _sync(args.device)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run_section(args: argparse.Namespace) -> list[dict]:
    _setup(args.device)
    if args.section.startswith("gatys-"):
        size = int(args.section.removeprefix("gatys-"))
        # The textbook loop runs VGG-19 to pool5: 64 px is the smallest sensible size.
        return section_gatys(args, max(args.tiny, 64) if args.dry_run else size)
    if args.section == "feedforward":
        return section_feedforward(args)
    return section_daam(args)


def _child_command(args: argparse.Namespace, section: str) -> list[str]:
    command = [sys.executable, __file__, "--section", section, "--device", args.device]
    command += ["--repeats", str(args.repeats), "--plain-steps", str(args.plain_steps)]
    command += ["--gatys-steps", str(args.gatys_steps), "--ff-size", str(args.ff_size)]
    command += ["--daam-size", str(args.daam_size), "--daam-steps", str(args.daam_steps)]
    command += ["--tiny", str(args.tiny)]
    return (
        command + (["--dry-run"] if args.dry_run else []) + (["--compile"] if args.compile else [])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every section on CPU, tiny")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile", action="store_true", help="torch.compile where supported")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain-steps", type=int, default=300)
    parser.add_argument("--gatys-steps", type=int, default=0, help="0: the default schedule")
    parser.add_argument("--ff-size", type=int, default=1024)
    parser.add_argument("--daam-size", type=int, default=1024)
    parser.add_argument("--daam-steps", type=int, default=10)
    parser.add_argument("--budget-scale", type=float, default=1.0, help="× every section budget")
    parser.add_argument("--json", type=Path, default=Path("gpu.json"))
    parser.add_argument("--tiny", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--section", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.repeats, args.plain_steps, args.gatys_steps = "cpu", 1, 3, 3
        args.ff_size, args.daam_size, args.daam_steps = args.tiny, args.tiny, 1
    if args.section:
        print(json.dumps(run_section(args)))
        return
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA device here; use --dry-run to check the script on CPU")
    rows, status = [], {}
    began = time.perf_counter()
    for section in args.sections.split(","):
        if section not in SECTIONS:
            sys.exit(f"unknown section '{section}'; choose from {', '.join(SECTIONS)}")
        budget = BUDGETS[section] * args.budget_scale
        print(f"running {section} (budget {budget:.0f} s) …", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(
                _child_command(args, section), capture_output=True, text=True,
                timeout=budget, env=os.environ,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            status[section] = f"over its {budget:.0f} s budget"
            continue
        if done.returncode != 0:
            status[section] = "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
            print(done.stderr[-3000:], file=sys.stderr)
            continue
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        status[section] = "ok"
    total = time.perf_counter() - began
    print_table(rows, status, args, total)
    args.json.write_text(
        json.dumps({"device": args.device, "dry_run": args.dry_run, "seconds": total,
                    "sections": status, "rows": rows}, indent=2)
    )  # fmt: skip
    if any(value != "ok" for value in status.values()):
        sys.exit(1)


def print_table(rows: list[dict], status: dict, args: argparse.Namespace, total: float) -> None:
    import torch

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (dry run)"
    print(f"\nbrushwork GPU paths on {name}, {total:.0f} s in all")
    print(f"{'figure':<40}{'value':>10}  {'target':<8}{'met':<5}note")
    for row in rows:
        value = row["value"]
        target = TARGETS.get(row["figure"])
        text = "—" if value is None else f"{value:.4g}"
        target_text, met = "", ""
        if target:
            target_text = f"{target[0]} {target[1]:g}"
            met = "no" if value is None or value > target[1] else "yes"
        print(f"{row['figure']:<40}{text:>10}  {target_text:<8}{met:<5}{row['note']}")
    for section, state in status.items():
        if state != "ok":
            print(f"{section}: {state}")


if __name__ == "__main__":
    main()
