"""The benchmark command is its own benchmark: how much of a run is the harness?

Runs ``brushwork benchmark``'s library entry (:func:`brushwork.benchmark.runner.
benchmark_folder`: checks, store, jobs, images, scores, report) on 4 contents × 4 styles
at 256 px with Gatys (reduced steps), AdaIN, WCT and Johnson, all with seeded random
weights at their real sizes (VGG-19 in torchvision's layout, brushwork model files for
the others; no download), metrics ssim, histogram, content_loss and gram_loss (the same
random VGG-19). Prints the per-method table, the wall time and where it went; the
harness's own share (everything except loading and running the methods, loading the
metric networks and scoring) is the target (≤ 5 %).

    python benchmarks/benchmark_harness.py [--steps 10] [--size 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _image(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 8), rng.uniform(1, 8), rng.uniform(0, 6.28)
        wave = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.08 * rng.standard_normal((size, size)))
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).astype(np.uint8)


def _folder(folder: Path, count: int, seed: int, size: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(_image(seed + i, size)).save(folder / f"{folder.name}{i}.png")
    return folder


def _vgg19_file(path: Path) -> Path:
    """VGG-19 features in torchvision's layout, He-scaled random weights."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
    cfg += [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    generator = torch.Generator().manual_seed(0)
    state, index, channels = {}, 0, 3
    for item in cfg:
        if item == "M":
            index += 1
            continue
        fan_in = channels * 9
        state[f"features.{index}.weight"] = (
            torch.randn((int(item), channels, 3, 3), generator=generator) * (2.0 / fan_in) ** 0.5
        )
        state[f"features.{index}.bias"] = torch.zeros(int(item))
        channels, index = int(item), index + 2
    torch.save(state, path)
    return path


def _models(root: Path) -> dict[str, Path]:
    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import TransformerNet
    from brushwork.transfer.modelfile import save_model
    from brushwork.transfer.wct import WCTModel

    torch.manual_seed(0)
    return {
        "vgg": _vgg19_file(root / "vgg19-random.pth"),
        "adain": save_model(root / "adain-random.safetensors", AdaINModel()),
        "wct": save_model(root / "wct-random.safetensors", WCTModel()),
        "johnson": save_model(root / "johnson-random.safetensors", TransformerNet()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=4, help="contents and styles each")
    parser.add_argument("--steps", type=int, default=10, help="Gatys steps (reduced)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from brushwork.benchmark.methods import MethodSettings, parse_methods
    from brushwork.benchmark.protocol import folder_inputs
    from brushwork.benchmark.runner import BenchmarkSettings, benchmark_folder
    from brushwork.benchmark.tables import load_benchmark, summary_rows
    from brushwork.metrics.evaluation import NetworkSettings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        contents = _folder(root / "content", args.count, 0, args.size)
        styles = _folder(root / "style", args.count, 100, args.size)
        files = _models(root)
        methods = (
            f"gatys:{files['vgg']},adain:{files['adain']},wct:{files['wct']},"
            f"johnson:{files['johnson']}"
        )
        settings = BenchmarkSettings(
            methods=tuple(parse_methods(methods)),
            method=MethodSettings(size=args.size, seed=0, steps=args.steps, device="cpu"),
            metrics=("ssim", "histogram", "content_loss", "gram_loss"),
            networks=NetworkSettings(vgg_weights=str(files["vgg"])),
        )
        began = time.perf_counter()
        summary, _ = benchmark_folder(root / "bench", settings, folder_inputs(contents, styles))
        outer = time.perf_counter() - began
        data = load_benchmark(root / "bench")
        rows = summary_rows(data)

    print(
        f"benchmark harness: {args.count} contents × {args.count} styles, {args.size} px, "
        f"gatys {args.steps} steps, CPU threads {torch.get_num_threads()}"
    )
    metrics = ("ssim", "histogram", "content_loss", "gram_loss")
    header = f"{'method':<24}{'done':>5}{'s/image':>9}{'peak MiB':>10}" + "".join(
        f"{m:>14}" for m in metrics
    )
    print(header)
    for r in rows:
        line = f"{r['method']:<24}{r['done']:>5}{r['seconds_per_image']:>9.3f}"
        line += f"{r['peak_mib_median']:>10.1f}" + "".join(f"{r[m]:>14.4g}" for m in metrics)
        print(line)
    parts = {
        "methods (run)": summary.method_seconds,
        "methods (load)": summary.load_seconds,
        "metrics (load)": summary.metric_load_seconds,
        "metrics (score)": summary.score_seconds + summary.set_score_seconds,
        "harness (incl. report)": summary.overhead_seconds,
        "  of which report": summary.report_seconds,
    }
    print(f"\nwall time {summary.wall_seconds:.1f} s (outside the call: {outer:.1f} s)")
    for name, seconds in parts.items():
        print(f"{name:<24}{seconds:>9.2f} s {seconds / summary.wall_seconds:>7.1%}")
    share = summary.overhead_share
    verdict = "met" if share <= 0.05 else "MISSED"
    print(f"\nharness overhead {share:.2%} of the run (target ≤ 5 %): {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps({"parts": parts, "wall": summary.wall_seconds, "share": share,
                        "rows": rows}, indent=2, default=str)
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
