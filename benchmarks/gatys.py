"""Speed, memory and final loss of brushwork's Gatys against the textbook loop.

Both use the same real-size VGG-19 with seeded random weights (the cost of a
network does not depend on what its weights learned), the same content and
style images (scikit-image's astronaut and coffee) and the same objective:
content relu4_2, Gram style relu1_1…relu5_1, style weight 1e6.

* plain: the textbook loop of ``plain_gatys.py`` — float32, the whole VGG
  ``features`` on every evaluation, full resolution from the first step, L-BFGS
  with ``--plain-steps`` evaluations (default: as many as the default run takes at
  full resolution, so both do the same full-resolution work, as the issue asks),
  with the same strong-Wolfe line search as ours, so that only the speed-ups differ
  (``--plain-no-line-search`` for the bare textbook optimiser).
* brushwork: ``brushwork.transfer.gatys`` with its default settings.
* brushwork-fp32: the same schedule with ``precision="fp32"``, to show that
  bf16 convolutions do not hurt the result.

The final loss of every result is computed the same way: the image as saved
(clamped to [0, 1]), full resolution, float32, the whole network. Each run is
a fresh subprocess so that its peak memory (RSS on CPU, allocated on CUDA) is
its own.

    python benchmarks/gatys.py                      # 512 px, plain steps = our full-res steps
    python benchmarks/gatys.py --size 256 --plain-steps 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brushwork.devices import resolve_precision
from brushwork.encoders import VGGEncoder
from brushwork.transfer import GatysSettings, gatys
from brushwork.transfer.gatys import _Objective
from plain_gatys import get_features as plain_features
from plain_gatys import gram, plain_gatys, textbook_loss, textbook_vgg19

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_WEIGHT = 1e6
WANTED = set(CONTENT_LAYERS) | set(STYLE_LAYERS)


def images(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Content (1, 3, size, size) and style (1, 3, h, size) in [0, 1]."""
    from skimage import data

    def load(array, long_side):
        x = torch.from_numpy(array).permute(2, 0, 1).float().div(255)[None]
        h, w = x.shape[-2:]
        scale = long_side / max(h, w)
        size_hw = (round(h * scale), round(w * scale))
        return F.interpolate(x, size=size_hw, mode="bilinear", antialias=True).clamp(0, 1)

    return load(data.astronaut(), size).to(device), load(data.coffee(), size).to(device)


def random_vgg19(device: torch.device) -> VGGEncoder:
    return VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0)).to(device)


def reference_loss(encoder: VGGEncoder, content, style, image) -> float:
    """The objective in float32 at full resolution, computed by the textbook code."""
    model, names = textbook_vgg19(encoder.state_dict())
    model = model.to(content.device)
    with torch.no_grad():
        content_targets, style_grams = targets(model, names, content, style)
        feats = plain_features(model, names, image.clamp(0, 1), WANTED)
        return float(loss_of(feats, content_targets, style_grams))


def targets(model, names, content, style) -> tuple[dict, dict]:
    """Content features and style Gram matrices of the benchmark's objective."""
    with torch.no_grad():
        content_targets = plain_features(model, names, content, WANTED)
        style_feats = plain_features(model, names, style, WANTED)
    return content_targets, {n: gram(f) for n, f in style_feats.items()}


def loss_of(feats, content_targets, style_grams) -> torch.Tensor:
    return textbook_loss(
        feats,
        content_targets,
        style_grams,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        content_weight=1.0,
        style_weight=STYLE_WEIGHT,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_evaluations(evaluate, device: torch.device, repeats: int) -> float:
    """Median seconds of one forward+backward evaluation."""
    evaluate()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        evaluate()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_to_quality(
    encoder: VGGEncoder,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    plain_steps: int = 300,
    settings: GatysSettings | None = None,
    plain_curve: list[tuple[float, float]] | None = None,
) -> dict:
    """The textbook loop's loss-versus-time curve, then brushwork's on the same objective.

    Every point of both curves is the full-resolution float32 textbook loss of the image
    at that evaluation (brushwork's full-size-level images are kept during the run and
    scored afterwards, outside its timing; its coarse levels have no full-size image).
    Returns both curves as (seconds, loss) lists, the textbook's final loss, the time at
    which brushwork first reaches it (``None``: never) and the ratio of the times.
    ``plain_curve``: the textbook's curve from an earlier run of the same size on the same
    machine (its ``--json``), instead of running it again (≈ 20 min at 512 px on 2 cores).
    """
    device = content.device
    model, names = textbook_vgg19(encoder.state_dict())
    model = model.to(device)
    if plain_curve is not None:
        plain_times = [seconds for seconds, _loss in plain_curve]
        plain_losses = [loss for _seconds, loss in plain_curve]
    else:
        plain_times, plain_losses = _textbook_curve(model, names, content, style, plain_steps)
    plain_s = plain_times[-1]
    target = min(plain_losses)
    settings = settings or GatysSettings(size=max(content.shape[-2:]))
    snapshots: list[tuple[float, torch.Tensor]] = []
    full = tuple(content.shape[-2:])

    def callback(info):
        if tuple(info.image.shape[-2:]) == full:
            sync(device)
            snapshots.append((time.perf_counter() - start, info.image.detach().clone()))

    sync(device)
    start = time.perf_counter()
    out = gatys(
        content[0], style[0], settings=settings, encoder=encoder, device=device, callback=callback
    )
    sync(device)
    ours_s = time.perf_counter() - start
    content_targets, style_grams = targets(model, names, content, style)
    curve = []
    with torch.no_grad():
        for seconds, image in snapshots:
            feats = plain_features(model, names, image.clamp(0, 1), WANTED)
            curve.append((seconds, float(loss_of(feats, content_targets, style_grams))))
    reached = next((seconds for seconds, loss in curve if loss <= target), None)
    return {
        "plain_curve": list(zip(plain_times, plain_losses, strict=True)),
        "ours_curve": curve,
        "plain_s": plain_s,
        "plain_evaluations": len(plain_losses),
        "target_loss": target,
        "ours_s": ours_s,
        "ours_evaluations": len(out.losses),
        "ours_final_loss": min((loss for _s, loss in curve), default=float("nan")),
        "schedule": " → ".join(f"{max(h, w)}px × {n}" for h, w, n in out.levels),
        "reached_s": reached,
        "time_ratio": None if reached is None else reached / plain_s,
    }


def _textbook_curve(model, names, content, style, steps: int) -> tuple[list, list]:
    """(seconds, loss) after each of the textbook loop's ``steps`` evaluations."""
    device = content.device
    times: list[float] = []
    sync(device)
    start = time.perf_counter()

    def on_step(_count):
        sync(device)
        times.append(time.perf_counter() - start)

    _image, losses = plain_gatys(
        model, names, content, style, steps=steps, content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS, content_weight=1.0, style_weight=STYLE_WEIGHT, on_step=on_step,
    )  # fmt: skip
    return times, losses


def plot_curves(result: dict, path: Path, title: str) -> None:
    """Write both loss-versus-time curves as a PNG: the loss (log), and beside it the
    excess over the textbook's final loss, L / L_final − 1 (log), where the curves that
    look merged in the first panel are told apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (whole, excess) = plt.subplots(1, 2, figsize=(11, 4.5))
    target = result["target_loss"]
    for key, label in (("plain_curve", "textbook loop"), ("ours_curve", "brushwork default")):
        if result[key]:
            seconds, losses = zip(*result[key], strict=True)
            whole.plot(seconds, losses, label=label)
            above = [(t, loss / target - 1) for t, loss in zip(seconds, losses, strict=True)]
            above = [(t, e) for t, e in above if e > 0]
            if above:
                excess.plot(*zip(*above, strict=True), label=label)
    whole.axhline(target, color="grey", linestyle="--", label="textbook final")
    whole.set_yscale("log")
    whole.set_xlabel("seconds")
    whole.set_ylabel("full-resolution fp32 loss")
    whole.set_title(title)
    whole.legend()
    excess.set_yscale("log")
    excess.set_xlabel("seconds")
    excess.set_ylabel("loss / textbook final − 1")
    excess.set_title("above the textbook's final loss")
    excess.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def worker(args: argparse.Namespace) -> dict:
    """One measured configuration, in its own process."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = random_vgg19(device)
    content, style = images(args.size, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result: dict = {"config": args.worker}

    if args.worker == "plain":
        model, names = textbook_vgg19(encoder.state_dict())
        model = model.to(device)
        content_targets, style_grams = targets(model, names, content, style)
        pixels = content.clone().requires_grad_(True)

        def evaluate():
            feats = plain_features(model, names, pixels.clamp(0, 1), WANTED)
            loss_of(feats, content_targets, style_grams).backward()

        result["step_s"] = time_evaluations(evaluate, device, args.repeats)
        sync(device)
        start = time.perf_counter()
        image, losses = plain_gatys(
            model,
            names,
            content,
            style,
            steps=args.plain_steps,
            content_layers=CONTENT_LAYERS,
            style_layers=STYLE_LAYERS,
            content_weight=1.0,
            style_weight=STYLE_WEIGHT,
            line_search=not args.plain_no_line_search,
        )
        sync(device)
        result["run_s"] = time.perf_counter() - start
        result["full_res_steps"] = len(losses)
        result["schedule"] = f"{args.size}px × {len(losses)}"
    else:
        precision = "fp32" if args.worker == "brushwork-fp32" else "auto"
        settings = GatysSettings(size=args.size, precision=precision)

        objective = _Objective(
            encoder,
            encoder.check_layers(dict.fromkeys(CONTENT_LAYERS + STYLE_LAYERS)),
            content=content,
            styles=[style],
            masks=None,
            settings=settings,
            dtype=resolve_precision(settings.precision, device),
        )
        pixels = content.clone().requires_grad_(True)
        result["step_s"] = time_evaluations(
            lambda: objective(pixels)[0].backward(), device, args.repeats
        )
        sync(device)
        start = time.perf_counter()
        out = gatys(content[0], style[0], settings=settings, encoder=encoder, device=device)
        sync(device)
        result["run_s"] = time.perf_counter() - start
        image = out.image[None].to(device)
        result["full_res_steps"] = out.levels[-1][2]
        result["schedule"] = " → ".join(f"{max(h, w)}px × {n}" for h, w, n in out.levels)
        result["precision"] = out.precision
    result["final_loss"] = reference_loss(encoder, content, style, image)
    if device.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--plain-steps",
        type=int,
        default=GatysSettings().steps,
        help="the plain loop's evaluations (default: as many as the default run's "
        "full-resolution steps, the issue's comparison)",
    )
    parser.add_argument("--plain-no-line-search", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations per config")
    parser.add_argument(
        "--configs", default="plain,brushwork,brushwork-fp32", help="comma-separated subset"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--time-to-quality",
        action="store_true",
        help="instead: the textbook loop's loss-versus-time curve (--plain-steps, use 300) and "
        "the default run's, the time at which it first reaches the textbook's final loss",
    )
    parser.add_argument("--plot", type=Path, default=Path("gatys-time-to-quality.png"))
    parser.add_argument(
        "--plain-curve",
        type=Path,
        default=None,
        help="with --time-to-quality: reuse the textbook curve of an earlier --json (same "
        "size, same machine) instead of running the textbook loop again",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_to_quality:
        run_time_to_quality(args)
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return

    rows = []
    for config in args.configs.split(","):
        command = [sys.executable, __file__, "--worker", config, *_forwarded(args)]
        print(f"running {config} …", file=sys.stderr, flush=True)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "device": args.device, "rows": rows}))


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = ["--size", str(args.size), "--plain-steps", str(args.plain_steps)]
    out += ["--device", args.device, "--repeats", str(args.repeats)]
    return out + (["--plain-no-line-search"] if args.plain_no_line_search else [])


def run_time_to_quality(args: argparse.Namespace) -> None:
    plain_curve = None
    if args.plain_curve:
        saved = json.loads(args.plain_curve.read_text())
        if saved.get("size") != args.size or saved.get("plain_steps", args.plain_steps) != (
            args.plain_steps
        ):
            raise SystemExit(
                f"{args.plain_curve} holds the textbook curve of "
                f"{saved.get('size', 'an unrecorded size')} px, "
                f"{saved.get('plain_steps', '?')} evaluations; this run is {args.size} px, "
                f"{args.plain_steps}: run the textbook loop again (leave out --plain-curve)"
            )
        plain_curve = saved["plain_curve"]
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = random_vgg19(device)
    content, style = images(args.size, device)
    result = time_to_quality(
        encoder, content, style, plain_steps=args.plain_steps, plain_curve=plain_curve
    )
    print(f"\nGatys time to quality, VGG-19 (random weights), {args.size} px, {args.device}")
    print("textbook loop (fp32, full resolution, L-BFGS) loss versus time:")
    for index in sorted({0, *range(9, len(result["plain_curve"]), 25), -1}):
        seconds, loss = result["plain_curve"][index]
        print(f"  eval {index % len(result['plain_curve']) + 1:>4}  {seconds:>8.2f} s  {loss:.5g}")
    print(f"brushwork default ({result['schedule']}), full-size level, same objective:")
    curve = result["ours_curve"]
    for index in sorted({0, *range(9, len(curve), 10), len(curve) - 1}) if curve else []:
        print(f"  {curve[index][0]:>8.2f} s  {curve[index][1]:.5g}")
    reached = result["reached_s"]
    print(f"textbook: {result['plain_evaluations']} evaluations, {result['plain_s']:.2f} s, "
          f"final loss {result['target_loss']:.5g}")  # fmt: skip
    print(f"brushwork: {result['ours_evaluations']} evaluations, {result['ours_s']:.2f} s, "
          f"best full-size loss {result['ours_final_loss']:.5g}")  # fmt: skip
    if reached is None:
        print("brushwork never reached the textbook's final loss (target: ≤ 0.25 of its time)")
    else:
        print(f"reaches it at {reached:.2f} s = {result['time_ratio']:.3f} × the textbook's "
              "time (target ≤ 0.25)")  # fmt: skip
    plot_curves(result, args.plot, f"Gatys {args.size} px, {args.device}")
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(
            json.dumps({**result, "size": args.size, "plain_steps": args.plain_steps})
        )


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    plain = next((r for r in rows if r["config"] == "plain"), None)
    print(f"\nGatys, VGG-19 (random weights), {args.size} px, device {args.device}")
    header = f"{'config':<16}{'s/step':>9}{'run s':>9}{'peak MiB':>10}{'final loss':>13}"
    header += f"{'step ×':>8}{'run ×':>8}  schedule"
    print(header)
    for r in rows:
        step_x = plain["step_s"] / r["step_s"] if plain else float("nan")
        run_x = plain["run_s"] / r["run_s"] if plain else float("nan")
        print(
            f"{r['config']:<16}{r['step_s']:>9.3f}{r['run_s']:>9.1f}{r['peak_mib']:>10.0f}"
            f"{r['final_loss']:>13.5g}{step_x:>8.2f}{run_x:>8.2f}  {r['schedule']}"
        )


if __name__ == "__main__":
    main()
