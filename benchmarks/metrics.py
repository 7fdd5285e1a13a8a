"""Time the evaluation metrics at real sizes (random weights; no downloads).

Prints a table of milliseconds per image (or per call) and, with --json, the same
figures as JSON. Example::

    python benchmarks/metrics.py --size 512 --images 8 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from brushwork.devices import resolve_device
from brushwork.encoders import VGGEncoder
from brushwork.metrics.fid import fid_from_features
from brushwork.metrics.inception import InceptionFeatures
from brushwork.metrics.lpips import LPIPS
from brushwork.metrics.ssim import ssim
from brushwork.metrics.style import color_histogram_distance, gram_style_loss


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--images", type=int, default=4, help="batch size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(args.images, 3, args.size, args.size, generator=g).to(device)
    b = torch.rand(args.images, 3, args.size, args.size, generator=g).to(device)
    n = args.images
    rows: dict[str, float] = {}
    with torch.no_grad():
        rows["ssim"] = _time(lambda: ssim(a, b), args.repeats, device) / n
        lp = LPIPS("alex", generator=g).to(device)
        rows["lpips_alex"] = _time(lambda: lp(a, b), args.repeats, device) / n
        lpv = LPIPS("vgg", generator=g).to(device)
        rows["lpips_vgg"] = _time(lambda: lpv(a, b), args.repeats, device) / n
        vgg = VGGEncoder("vgg19", generator=g).to(device)
        rows["gram_loss_vgg19"] = (
            _time(lambda: gram_style_loss(vgg, a, b), args.repeats, device) / n
        )
        rows["histogram"] = (
            _time(
                lambda: [color_histogram_distance(x, y) for x, y in zip(a, b, strict=True)],
                args.repeats,
                device,
            )
            / n
        )
        inc = InceptionFeatures("fid", generator=g).to(device)
        rows["inception_fid_299"] = _time(lambda: inc(a), args.repeats, device) / n
        art = InceptionFeatures("art", generator=g).to(device)
        rows[f"inception_art_{args.size}"] = _time(lambda: art(a), args.repeats, device) / n
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(800, 2048)), rng.normal(size=(800, 2048))
    rows["frechet_2048d_800_per_call"] = _time(lambda: fid_from_features(f1, f2), 1, device) * n
    if args.json:
        print(
            json.dumps({"device": str(device), "size": args.size, "ms_per_image": rows}, indent=2)
        )
        return
    print(f"device {device}, {args.size}×{args.size} px, batch {n}")
    print(f"{'metric':32} {'ms/image':>10}")
    for name, ms in rows.items():
        value = ms / n if name.endswith("per_call") else ms
        print(f"{name:32} {value:10.1f}")


if __name__ == "__main__":
    main()
