"""Video style transfer speed on CPU: feed-forward frames/s at 480p with and without
flow stabilisation, Gatys video seconds/frame at a small size, and warping errors.

    python benchmarks/video.py                 # table
    python benchmarks/video.py --json          # JSON
    python benchmarks/video.py --frames 4 --gatys-size 64   # quick check
    python benchmarks/video.py --part sharpness --sharp-frames 32 --sheet strip.png

The sharpness part (issue 21) renders a panning synthetic clip with Gatys video
twice, with the earlier behaviour (``keep_detail=False``) and the default, and
prints per-frame sharpness (mean absolute gradient, 0-255 scale) of the input and
both outputs, the last/first ratio and the warping error, and for each output the
warping error of the input clip blurred to that output's mean sharpness
(``consistent_floor``: a blurred video scores lower however steady it is) and the ratio
error/floor, which compares outputs of different sharpness; ``--sheet`` writes the
first, middle and last frames of input, before and after as one PNG.

The feed-forward network is the real-size Johnson TransformerNet (issue 3) with
seeded random weights (the speed does not depend on the weights). The VGG-19 of the
Gatys path is real-size with random weights. The input is a synthetic 852x480 video
(a multiple of 4, as the network needs) of a textured square moving over a texture.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _texture(h: int, w: int, seed: int, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).random((h, w, 3))
    smooth = np.stack([gaussian_filter(noise[..., c], sigma) for c in range(3)], -1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def synthetic_video(folder: Path, frames: int, width: int = 852, height: int = 480) -> Path:
    from brushwork.video.io import write_video

    background = _texture(height, width, 1, 4.0)
    square = _texture(height // 3, height // 3, 2, 2.0)
    side = square.shape[0]

    def generate():
        for t in range(frames):
            frame = background.copy()
            x, y = 40 + 6 * t, 60 + 2 * t
            frame[y : y + side, x : x + side] = square
            yield frame

    return write_video(generate(), folder / "clip.mp4", fps=25).path


def johnson_net() -> torch.nn.Module:
    from brushwork.transfer.johnson import TransformerNet

    torch.manual_seed(0)
    return TransformerNet().eval()


def feedforward(source: Path, out: Path, stable: float) -> dict[str, float]:
    from brushwork.video import FeedForwardVideo, render_video

    net = johnson_net()

    def stylizer(images: torch.Tensor) -> torch.Tensor:
        return net(images).clamp(0, 1)

    start = time.perf_counter()
    result = render_video(source, out, FeedForwardVideo(stylizer, stable=stable), measure=False)
    seconds = time.perf_counter() - start
    from brushwork.flow import warping_error
    from brushwork.video import iter_frames

    error = warping_error(iter_frames(source), iter_frames(result.output))
    return {"fps": result.frames / seconds, "warping_error": error}


def gatys_video(
    source: Path, out: Path, size: int, steps: int, passes: int = 1
) -> dict[str, float]:
    from brushwork.encoders import VGGEncoder
    from brushwork.transfer.gatys import GatysSettings
    from brushwork.video import GatysVideo, GatysVideoSettings, render_video

    vgg = VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0))
    style = torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))
    image = GatysSettings(size=None, steps=steps, pyramid="off")
    settings = GatysVideoSettings(image=image, passes=passes)
    method = GatysVideo(style, settings=settings, encoder=vgg, device="cpu")
    start = time.perf_counter()
    result = render_video(source, out, method, size=size)
    seconds = time.perf_counter() - start
    return {"seconds_per_frame": seconds / result.frames, "warping_error": result.warping_error}


def panning_frames(count: int, width: int, height: int) -> list[torch.Tensor]:
    """A sharp texture panning by (0.7, 0.3) px a frame with a square moving over it.

    Rendered at 4x and area-downsampled, so the motion is truly sub-pixel and the
    input stays equally sharp in every frame. Returns (3, H, W) frames in [0, 1].
    """
    import torch.nn.functional as F

    scale = 4
    big_h, big_w = (height + count) * scale, (width + count) * scale
    background = torch.from_numpy(_texture(big_h, big_w, 3, 3.0)).permute(2, 0, 1).float() / 255
    side = height // 3 * scale
    square = torch.from_numpy(_texture(side, side, 4, 2.5)).permute(2, 0, 1).float() / 255
    frames = []
    for t in range(count):
        y0, x0 = round(0.3 * t * scale), round(0.7 * t * scale)
        frame = background[:, y0 : y0 + height * scale, x0 : x0 + width * scale].clone()
        sy, sx = (10 + t) * scale // 2, (12 + 3 * t) * scale // 2
        sx = sx % (width * scale - side)
        frame[:, sy : sy + side, sx : sx + side] = square
        frames.append(F.avg_pool2d(frame[None], scale)[0])
    return frames


def sharpness_run(frames, size, steps, later_steps, keep_detail, flows):
    """Gatys video over ``frames`` (random-weight VGG-19): outputs, seconds, warping error
    (measured with ``flows``, the input's (forward, backward) flow per frame pair)."""
    from brushwork.encoders import VGGEncoder
    from brushwork.metrics.warping import warping_error
    from brushwork.transfer.gatys import GatysSettings
    from brushwork.video import GatysVideo, GatysVideoSettings
    from brushwork.video.io import frame_to_uint8, uint8_to_frame

    vgg = VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0))
    style_array = _texture(size, size, 5, 1.5)
    style = torch.from_numpy(style_array).permute(2, 0, 1).float() / 255
    image = GatysSettings(size=None, steps=steps, precision="fp32")
    settings = GatysVideoSettings(image=image, later_steps=later_steps, keep_detail=keep_detail)
    method = GatysVideo(style, settings=settings, encoder=vgg, device="cpu")
    outputs, history = [], []
    start = time.perf_counter()
    for frame in frames:
        out = uint8_to_frame(frame_to_uint8(method.stylise(frame, history)))  # 8-bit, as saved
        history = [(frame, out)]
        outputs.append(out)
    seconds = time.perf_counter() - start
    return outputs, seconds, warping_error(frames, outputs, flows=flows).mean


def write_sheet(path: Path, rows: list[list[torch.Tensor]]) -> None:
    """First, middle and last frame of each row side by side, rows stacked, as one PNG."""
    from PIL import Image

    picks = lambda frames: [frames[0], frames[len(frames) // 2], frames[-1]]  # noqa: E731
    grid = torch.cat([torch.cat(picks(frames), dim=2) for frames in rows], dim=1)
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    image.resize((image.width * 2, image.height * 2), Image.NEAREST).save(path)


def sharpness_part(args) -> dict:
    from brushwork.flow import optical_flow
    from brushwork.metrics.warping import consistent_floor
    from brushwork.video.detail import mean_abs_gradient

    height = args.sharp_size * 9 // 16 // 4 * 4
    frames = panning_frames(args.sharp_frames, args.sharp_size, height)
    # The input's flows, once: for both outputs' warping errors and their floors.
    flows = [(optical_flow(a, b), optical_flow(b, a)) for a, b in itertools.pairwise(frames)]
    runs = {}
    variants = ("before", "after") if args.variant == "both" else (args.variant,)
    for name, keep in (("before", False), ("after", True)):
        if name not in variants:
            continue
        runs[name] = sharpness_run(
            frames, args.sharp_size, args.sharp_steps, args.sharp_later, keep, flows
        )
    table = {
        "input": [mean_abs_gradient(f) for f in frames],
        **{name: [mean_abs_gradient(f) for f in run[0]] for name, run in runs.items()},
    }
    if args.sheet:
        write_sheet(Path(args.sheet), [frames, *(run[0] for run in runs.values())])
    # What a video that follows the motion exactly scores at each output's sharpness.
    floors = {
        name: consistent_floor(frames, sum(values) / len(values), flows=flows)
        for name, values in table.items()
        if name != "input"
    }
    return {
        "size": f"{args.sharp_size}x{height}",
        "steps": [args.sharp_steps, args.sharp_later],
        "sharpness": table,
        "seconds": {name: run[1] for name, run in runs.items()},
        "warping_error": {name: run[2] for name, run in runs.items()},
        "consistent_floor": floors,
    }


def print_sharpness(info: dict) -> None:
    table = info["sharpness"]
    print(f"Gatys video sharpness, {info['size']} px, steps {info['steps']} (first, later),")
    print("random-weight VGG-19, fp32; mean absolute gradient on the 0-255 scale")
    header = f"{'frame':>10}" + "".join(f"{name:>10}" for name in table)
    print(header)
    for t, values in enumerate(zip(*table.values(), strict=True)):
        print(f"{t:>10}" + "".join(f"{v:>10.2f}" for v in values))
    print(header)
    ratios = [table[k][-1] / table[k][0] for k in table]
    print(f"{'last/first':>10}" + "".join(f"{r:>10.3f}" for r in ratios))
    errors, seconds = info["warping_error"], info["seconds"]
    print(f"{'warp error':>10}{'':>10}" + "".join(f"{errors[k]:>10.5f}" for k in errors))
    print(f"{'seconds':>10}{'':>10}" + "".join(f"{seconds[k]:>10.1f}" for k in seconds))
    floors = info.get("consistent_floor", {})
    if floors:  # the input clip blurred to each output's mean sharpness (consistent_floor)
        print(f"{'floor':>10}{'':>10}" + "".join(f"{floors[k]:>10.5f}" for k in floors))
        print(
            f"{'err/floor':>10}{'':>10}"
            + "".join(f"{errors[k] / floors[k]:>10.3f}" for k in floors)
        )
    if "before" in errors and "after" in errors:
        print(f"warping error after/before: {errors['after'] / errors['before']:.3f}")
        if "before" in floors and "after" in floors:
            normalised = (errors["after"] / floors["after"]) / (errors["before"] / floors["before"])
            print(f"at equal sharpness (error/floor), after/before: {normalised:.3f}")


def combine(paths: list[str]) -> dict:
    """Merge the JSON of separate ``--variant`` runs (same clip and settings)."""
    infos = [json.loads(Path(p).read_text()) for p in paths]
    merged = infos[0]
    for info in infos[1:]:
        if info["sharpness"]["input"] != merged["sharpness"]["input"]:
            raise SystemExit("the runs to combine used different clips")
        for key in ("sharpness", "seconds", "warping_error", "consistent_floor"):
            merged.setdefault(key, {}).update(info.get(key, {}))
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--gatys-size", type=int, default=128)
    parser.add_argument("--gatys-steps", type=int, default=40, help="first frame; later: half")
    parser.add_argument("--gatys-frames", type=int, default=6)
    parser.add_argument("--gatys-passes", type=int, default=3, help="for the multi-pass row")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--part", choices=("all", "speed", "sharpness"), default="all")
    parser.add_argument("--sharp-frames", type=int, default=32)
    parser.add_argument("--sharp-size", type=int, default=160, help="long side")
    parser.add_argument("--sharp-steps", type=int, default=80, help="first frame (CLI default)")
    parser.add_argument("--sharp-later", type=int, default=40, help="later frames (CLI default)")
    parser.add_argument("--sheet", default=None, help="PNG of first/middle/last frames")
    parser.add_argument("--variant", choices=("both", "before", "after"), default="both")
    parser.add_argument("--save", default=None, help="also write the sharpness JSON here")
    parser.add_argument("--combine", nargs="+", default=None, help="merge --save files")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.combine:
        print_sharpness(combine(args.combine))
        return
    if args.part in ("all", "sharpness"):
        sharp = sharpness_part(args)
        if args.save:
            Path(args.save).write_text(json.dumps(sharp, indent=2))
        if args.json:
            print(json.dumps(sharp, indent=2))
        else:
            print_sharpness(sharp)
        if args.part == "sharpness":
            return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = synthetic_video(folder, args.frames)
        rows["feed-forward 480p, per frame"] = feedforward(source, folder / "a.mp4", 0.0)
        rows["feed-forward 480p, stable 0.8"] = feedforward(source, folder / "b.mp4", 0.8)
        from brushwork.video.io import iter_frames, write_video

        frames = (f for i, f in enumerate(iter_frames(source)) if i < args.gatys_frames)
        gatys_source = write_video(frames, folder / "short.mp4", fps=25).path
        rows[f"gatys video {args.gatys_size} px"] = gatys_video(
            gatys_source, folder / "c.mp4", args.gatys_size, args.gatys_steps
        )
        if args.gatys_passes > 1:
            name = f"gatys video {args.gatys_size} px, {args.gatys_passes} passes"
            rows[name] = gatys_video(
                gatys_source,
                folder / "d.mp4",
                args.gatys_size,
                args.gatys_steps,
                passes=args.gatys_passes,
            )
    info = {"threads": torch.get_num_threads(), "frames": args.frames, "results": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"CPU threads: {info['threads']}")
    print(f"{'path':<34}{'frames/s':>10}{'s/frame':>10}{'warping error':>16}")
    for name, row in rows.items():
        fps = row.get("fps") or 1 / row["seconds_per_frame"]
        print(f"{name:<34}{fps:>10.2f}{1 / fps:>10.2f}{row['warping_error']:>16.5f}")


if __name__ == "__main__":
    main()
