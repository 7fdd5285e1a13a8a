"""Latency of the feed-forward methods and training throughput (CPU, batch 1).

Real-size architectures with seeded random weights: Johnson's transformer net
(PyTorch fp32/bf16, bf16 with torch.compile, onnxruntime fp32 and int8), AdaIN (VGG-19
to relu4_1 + decoder; PyTorch fp32/bf16, onnxruntime int8) and WCT (five levels,
relu5_1 … relu1_1), at 256, 512 and 1024 px squares; training images/s at 256 px
(Johnson with the VGG-16 loss network, batch 4; AdaIN batch 8). The int8 models are
calibrated on random images (the speed does not depend on it; their accuracy cannot be
judged with random weights, whose AdaIN output is mostly saturated).
The style's features are computed once (the Stylizer caches them), so the
latency is that of one content image. Each configuration runs in its own
subprocess so that none warms or pollutes the caches of another.

    python benchmarks/feedforward.py                      # everything, a table
    python benchmarks/feedforward.py --quick --json       # 256/512 only, one repeat
    python benchmarks/feedforward.py --only johnson-ort adain-bf16 --sizes 512

Targets on a 2-core CPU at 512 px through the fastest path: Johnson ≤ 0.25 s,
AdaIN ≤ 0.5 s, WCT ≤ 3 s.
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

TARGETS_512 = {"johnson": 0.25, "adain": 0.5, "wct": 3.0}
LATENCY = (
    "johnson-torch",
    "johnson-bf16",
    "johnson-compiled",
    "johnson-ort",
    "johnson-int8",
    "adain-torch",
    "adain-bf16",
    "adain-int8",
    "wct-torch",
    "wct-bf16",
)
TRAINING = ("train-johnson", "train-adain")


def _calibration_images() -> list:
    """Random images for the int8 exports (their own generator: the weights stay as seeded)."""
    import torch

    generator = torch.Generator().manual_seed(7)
    return [torch.rand(3, 256, 256, generator=generator) for _ in range(4)]


def _stylizer(name: str, size: int):
    import torch

    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import TransformerNet, reinitialise
    from brushwork.transfer.stylize import (
        AdaINStylizer,
        JohnsonStylizer,
        OnnxStylizer,
        WCTStylizer,
    )
    from brushwork.transfer.wct import WCTModel

    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    method, backend = name.split("-")
    dtype = torch.bfloat16 if backend in ("bf16", "compiled") else torch.float32
    style = torch.rand(3, 512, 512, generator=g)
    if method == "johnson":
        net = TransformerNet(generator=g)
        if backend == "int8":
            from brushwork.transfer.onnx_export import export_onnx

            path = os.path.join(tempfile.mkdtemp(), "johnson-int8.onnx")
            export_onnx(net, path, int8=True, calibration=_calibration_images())
            return OnnxStylizer(path, device=cpu), JohnsonStylizer(net, device=cpu)
        if backend == "ort":
            from brushwork.transfer.onnx_export import export_onnx

            path = os.path.join(tempfile.mkdtemp(), "johnson.onnx")
            export_onnx(net, path)
            return OnnxStylizer(path, device=cpu), JohnsonStylizer(net, device=cpu)
        ref = JohnsonStylizer(net, device=cpu) if dtype != torch.float32 else None
        compiled = backend == "compiled"
        return JohnsonStylizer(net, device=cpu, dtype=dtype, compile=compiled), ref
    if method == "adain":
        model = AdaINModel()
        reinitialise(model, g)
        if backend == "int8":
            from brushwork.transfer.onnx_export import export_onnx, open_session
            from brushwork.transfer.stylize import OnnxAdaINStylizer

            path = os.path.join(tempfile.mkdtemp(), "adain-int8.onnx")
            export_onnx(model, path, int8=True, calibration=_calibration_images())
            stylizer = OnnxAdaINStylizer(open_session(path), styles=[style], alpha=1.0, device=cpu)
            ref = AdaINStylizer(model, styles=[style], style_weights=None, alpha=1.0, device=cpu)
            return stylizer, ref
        ref = None
        if dtype != torch.float32:
            ref = AdaINStylizer(model, styles=[style], style_weights=None, alpha=1.0, device=cpu)
        return AdaINStylizer(
            model, styles=[style], style_weights=None, alpha=1.0, device=cpu, dtype=dtype
        ), ref
    model = WCTModel()
    reinitialise(model, g)
    return WCTStylizer(
        model, styles=[style], style_weights=None, alpha=0.6, device=cpu, dtype=dtype
    ), None


def _latency(name: str, size: int, repeats: int) -> dict:
    import torch

    stylizer, reference = _stylizer(name, size)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    began = time.perf_counter()
    out = stylizer(image)  # warm-up (oneDNN primitives, ORT allocations, torch.compile)
    first_call = time.perf_counter() - began
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        stylizer(image)
        times.append(time.perf_counter() - began)
    result = {
        "config": name,
        "size": size,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "first_call_s": first_call,
        "repeats": repeats,
    }
    if reference is not None:
        result["max_abs_diff_vs_fp32"] = float((out - reference(image)).abs().max())
    return result


def _training(name: str, steps: int) -> dict:
    import torch

    from brushwork.encoders import VGGEncoder
    from brushwork.losses import content_loss, gram_loss, gram_matrix
    from brushwork.transfer.adain import AdaINModel, AdaINSettings, adain_loss
    from brushwork.transfer.johnson import TransformerNet, reinitialise

    g = torch.Generator().manual_seed(0)
    if name == "train-johnson":
        batch = 4
        net, vgg = TransformerNet(generator=g), VGGEncoder("vgg16", generator=g)
        style_layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
        with torch.no_grad():
            grams = {
                k: gram_matrix(v)
                for k, v in vgg(torch.rand(1, 3, 256, 256, generator=g), style_layers).items()
            }
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step() -> None:
            x = torch.rand(batch, 3, 256, 256, generator=g)
            out = net(x)
            feats = vgg(out, style_layers)
            with torch.no_grad():
                target = vgg(x, ["relu2_2"])["relu2_2"]
            loss = 1e5 * content_loss(feats["relu2_2"], target) + 1e10 * sum(
                gram_loss(feats[k], grams[k].expand(batch, -1, -1)) for k in style_layers
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    else:
        batch = 8
        model = AdaINModel()
        reinitialise(model, g)
        optimizer = torch.optim.Adam(model.decoder.parameters(), lr=1e-4)
        settings = AdaINSettings()

        def step() -> None:
            c = torch.rand(batch, 3, 256, 256, generator=g)
            s = torch.rand(batch, 3, 256, 256, generator=g)
            loss = adain_loss(model, c, s, settings)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    step()  # warm-up
    began = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - began
    return {
        "config": name,
        "size": 256,
        "batch": batch,
        "steps": steps,
        "images_per_s": steps * batch / seconds,
    }


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.worker in TRAINING:
        result = _training(args.worker, args.train_steps)
    else:
        result = _latency(args.worker, args.size, args.repeats)
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


def _run(config: str, size: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        config,
        "--size",
        str(size),
        "--repeats",
        str(args.repeats),
        "--train-steps",
        str(args.train_steps),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        return {"config": config, "size": size, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--only", nargs="+", default=None, choices=(*LATENCY, *TRAINING))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--quick", action="store_true", help="256 and 512 px, one repeat")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.quick:
        args.sizes, args.repeats, args.train_steps = [256, 512], 1, 1
    configs = args.only or [*LATENCY, *TRAINING]
    results = []
    for config in configs:
        sizes = [256] if config in TRAINING else args.sizes
        for size in sizes:
            results.append(_run(config, size, args))
            if not args.json:
                print(_row(results[-1]), flush=True)
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=1))
    else:
        print(_summary(results))


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['config']:<15} {r['size']:>5}  failed: {r['error']}"
    if "images_per_s" in r:
        return (
            f"{r['config']:<15} {r['size']:>5}  {r['images_per_s']:8.2f} images/s "
            f"(batch {r['batch']})"
        )
    target = TARGETS_512.get(r["config"].split("-")[0]) if r["size"] == 512 else None
    mark = "" if target is None else (" ok" if r["median_s"] <= target else f" > {target} s")
    diff = r.get("max_abs_diff_vs_fp32")
    extra = f"  max|Δ| vs fp32 {diff:.2e}" if diff is not None else ""
    return (
        f"{r['config']:<15} {r['size']:>5}  median {r['median_s']:7.3f} s  "
        f"min {r['min_s']:7.3f} s  first {r['first_call_s']:6.2f} s{mark}{extra}"
    )


def _summary(results: list[dict]) -> str:
    lines = ["", "fastest path at 512 px:"]
    for method, target in TARGETS_512.items():
        times = [
            (r["median_s"], r["config"])
            for r in results
            if r.get("size") == 512 and r["config"].startswith(method) and "median_s" in r
        ]
        if times:
            best, config = min(times)
            verdict = "meets" if best <= target else "misses"
            lines.append(f"  {method:<8} {best:6.3f} s ({config}) {verdict} the {target} s target")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
