"""Photorealistic style transfer: WCT², PhotoWCT and the smoothing step (CPU, batch 1).

Real-size architectures with seeded random weights in the published layouts (WCT² cat5:
VGG-19 Haar encoder to relu4_1 + cat5 decoder; ``wct2sum``: the published ``sum``
decoder, a third of cat5's convolutions; PhotoWCT: e1…e4 + d1…d4), through the
Stylizer (``load_stylizer``'s class; the style's statistics are computed once and cached,
so the time is that of one content image). Smoothing: the closed-form matting solve
(exact) and the guided filter (fast) of a stylised-looking image guided by a content
image. Every configuration runs in its own subprocess; its peak resident memory
(``ru_maxrss``, which includes Python and torch, ≈0.4 GB) is reported beside the time.

    python benchmarks/photoreal.py                         # 512 and 1024, a table
    python benchmarks/photoreal.py --sizes 512 --repeats 1

Targets (issue 18): WCT² at 512² ≤ 2 s through the fastest path; exact smoothing at
512² ≤ 5 s and ≤ 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = (
    "wct2-fp32",
    "wct2sum-fp32",
    "wct2-bf16",
    "wct2sum-bf16",
    "photowct-fp32",
    "photowct-bf16",
    "smooth-exact",
    "smooth-fast",
)


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def _scene(size: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    waves = [0.5 + 0.35 * torch.sin(6.28 * (a * x + b * y)) for a, b in ((2, 1), (1, 3), (3, 2))]
    return (torch.stack(waves) + 0.05 * torch.randn(3, size, size, generator=gen)).clamp(0, 1)


def _network(name: str, size: int, repeats: int) -> dict:
    import torch

    from brushwork.transfer.photowct import PhotoWCTModel
    from brushwork.transfer.stylize import PhotorealStylizer
    from brushwork.transfer.wct2 import WCT2Model

    method, precision = name.split("-")
    torch.manual_seed(0)
    if method.startswith("wct2"):
        model = WCT2Model("sum" if method == "wct2sum" else "cat5")
        method = "wct2"
    else:
        model = PhotoWCTModel()
    for module in model.modules():  # He-scaled random weights (activations stay in range)
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    stylizer = PhotorealStylizer(
        model.eval(),
        method=method,
        styles=[_scene(512, 1)],
        style_weights=None,
        alpha=1.0,
        device=torch.device("cpu"),
        dtype=dtype,
    )
    image = _scene(size, 2)[None]
    began = time.perf_counter()
    stylizer(image)  # warm-up (oneDNN primitives)
    first = time.perf_counter() - began
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        stylizer(image)
        times.append(time.perf_counter() - began)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        stylizer(image)
    return {
        "median_s": statistics.median(times),
        "first_call_s": first,
        "repeats": repeats,
        "gflop": counter.get_total_flops() / 1e9,
    }


def _smoothing(name: str, size: int, repeats: int) -> dict:
    import torch

    from brushwork.transfer.smoothing import smooth

    guide = _scene(size, 3)
    noisy = guide + 0.1 * torch.randn(guide.shape, generator=torch.Generator().manual_seed(4))
    mode = name.split("-")[1]
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        smooth(noisy.clamp(0, 1), guide, mode)
        times.append(time.perf_counter() - began)
    return {"median_s": statistics.median(times), "repeats": repeats}


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.worker.startswith("smooth"):
        result = _smoothing(args.worker, args.size, args.repeats)
    else:
        result = _network(args.worker, args.size, args.repeats)
    result.update(config=args.worker, size=args.size, threads=torch.get_num_threads())
    result["peak_rss_gb"] = _rss_gb()
    print(json.dumps(result))


def _run(config: str, size: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", config, "--size", str(size)]
    command += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"config": config, "size": size, "error": f"timed out after {args.timeout} s"}
    if done.returncode != 0:
        return {"config": config, "size": size, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--only", nargs="+", default=None, choices=CONFIGS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--exact-max-size",
        type=int,
        default=512,
        help="largest side for the exact smoothing (its LU factor grows faster than the pixels)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    results = []
    for size in args.sizes:
        for config in args.only or CONFIGS:
            if config == "smooth-exact" and size > args.exact_max_size:
                continue
            results.append(_run(config, size, args))
            print(_row(results[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
        return None
    print("| config | size | median s | first call s | GFLOP | peak RSS GB | repeats | threads |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(_row(r))
    return None


def _row(r: dict) -> str:
    if "error" in r:
        return f"| {r['config']} | {r['size']} | error: {r['error']} | | | | | |"
    first = f"{r['first_call_s']:.2f}" if "first_call_s" in r else "–"
    gflop = f"{r['gflop']:.0f}" if "gflop" in r else "–"
    return (
        f"| {r['config']} | {r['size']} | {r['median_s']:.2f} | {first} | {gflop} | "
        f"{r['peak_rss_gb']:.2f} | {r['repeats']} | {r['threads']} |"
    )


if __name__ == "__main__":
    main()
