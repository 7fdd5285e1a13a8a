"""Video style transfer speed on CPU: feed-forward frames/s at 480p with and without
flow stabilisation, Gatys video seconds/frame at a small size, and warping errors.

    python benchmarks/video.py                 # table
    python benchmarks/video.py --json          # JSON
    python benchmarks/video.py --frames 4 --gatys-size 64   # quick check

The feed-forward network is the real-size Johnson TransformerNet (issue 3) with
seeded random weights (the speed does not depend on the weights). The VGG-19 of the
Gatys path is real-size with random weights. The input is a synthetic 852x480 video
(a multiple of 4, as the network needs) of a textured square moving over a texture.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--gatys-size", type=int, default=128)
    parser.add_argument("--gatys-steps", type=int, default=40, help="first frame; later: half")
    parser.add_argument("--gatys-frames", type=int, default=6)
    parser.add_argument("--gatys-passes", type=int, default=3, help="for the multi-pass row")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
