"""Regional style from words: the mask step's time and the regional transfer's overhead.

1. Mask step: word maps of an existing 512² image (``maps_of_image``: VAE encode, five
   UNet calls with the attention recorder) with SD 1.5's UNet, VAE and CLIP text encoder
   at their published sizes (seeded random weights; the tiny test tokenizer), then the
   masks (``word_masks``), on the CPU.
2. Overhead: Gatys at ``--size`` px, the real-size VGG-19 (random weights), unmasked with
   the two styles blended vs regional (Adam) (the same two styles, one region each, a third kept
   as the photo), same steps, interleaved repeats after one warm-up run;
   overhead = median(regional) / median(unmasked) − 1 (target ≤ 10 %).
3. The same for AdaIN at ``--adain-size`` (per-region statistics, one decoder pass).

    flock /work/notes/bench.lock python benchmarks/regional.py [--skip-maps] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "diffusion")]


def sd15_pipeline():
    """StableDiffusionPipeline of SD 1.5's sizes with seeded random weights."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from tiny_sd import tiny_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    from editing import build_unet

    unet = build_unet("cpu")
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    ).eval()
    torch.manual_seed(0)
    config = CLIPTextConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_attention_heads=12,
        num_hidden_layers=12,
        projection_dim=768,
    )  # SD 1.5's (ViT-L/14)
    text = CLIPTextModel(config).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=tiny_tokenizer(Path(tempfile.mkdtemp())),
        unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_mask_step(side: int) -> dict:
    from brushwork.diffusion.image_maps import maps_of_image
    from brushwork.regional.masks import word_masks

    pipe = sd15_pipeline()
    image = torch.rand(3, side, side, generator=torch.Generator().manual_seed(0))
    began = time.perf_counter()
    result = maps_of_image(pipe, image, "a cat and a dog", ["cat", "dog"], side=side)
    maps_s = time.perf_counter() - began
    began = time.perf_counter()
    weights = word_masks(result.maps[0].maps, (side, side))
    masks_s = time.perf_counter() - began
    assert torch.allclose(weights.sum(0), torch.ones(side, side), atol=1e-4)
    return {"side": side, "maps_s": maps_s, "masks_s": masks_s, "total_s": maps_s + masks_s}


def time_overhead(size: int, steps: int, repeats: int) -> dict:
    from brushwork.encoders import VGGEncoder
    from brushwork.regional.apply import regional_gatys
    from brushwork.regional.masks import RegionMasks
    from brushwork.transfer.gatys import GatysSettings, gatys

    encoder = VGGEncoder("vgg19", generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(3, size, size, generator=gen)
    styles = {"a.png": torch.rand(3, size, size, generator=gen),
              "b.png": torch.rand(3, size, size, generator=gen)}  # fmt: skip
    weights = torch.zeros(3, size, size)
    weights[0, :, : size // 3] = 1
    weights[1, :, size // 3 : 2 * size // 3] = 1
    weights[2] = 1 - weights[0] - weights[1]
    masks = RegionMasks(["cow", "sky", "rest"], weights, ["a.png", "b.png", "photo"])
    # Adam: one loss evaluation per step (L-BFGS's line search evaluates a varying number
    # of times per step, so its step times do not compare the per-evaluation cost).
    settings = GatysSettings(
        size=size, steps=steps, pyramid="off", precision="fp32", optimizer="adam"
    )
    both = [styles["a.png"], styles["b.png"]]
    gatys(content, both, settings=settings, encoder=encoder, device="cpu")  # warm-up
    plain, regional = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        gatys(content, both, settings=settings, encoder=encoder, device="cpu")
        plain.append(time.perf_counter() - began)
        began = time.perf_counter()
        regional_gatys(content, styles, masks, settings=settings, encoder=encoder, device="cpu")
        regional.append(time.perf_counter() - began)
    p, r = statistics.median(plain), statistics.median(regional)
    return {"size": size, "steps": steps, "repeats": repeats, "unmasked_s": p,
            "regional_s": r, "overhead": r / p - 1}  # fmt: skip


def time_adain_overhead(size: int, repeats: int) -> dict:
    """AdaIN (real-size, He-scaled random weights) at ``size`` px: two styles blended vs
    regional (per-region statistics, a third region kept as the photo); each run builds
    its stylizer (encodes the styles), as the CLI does."""
    from brushwork.regional.apply import regional_stylize
    from brushwork.regional.masks import RegionMasks
    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.stylize import AdaINStylizer

    torch.manual_seed(0)
    net = AdaINModel().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(3, size, size, generator=gen)
    styles = {"a.png": torch.rand(3, size, size, generator=gen),
              "b.png": torch.rand(3, size, size, generator=gen)}  # fmt: skip
    weights = torch.zeros(3, size, size)
    weights[0, :, : size // 3] = 1
    weights[1, :, size // 3 : 2 * size // 3] = 1
    weights[2] = 1 - weights[0] - weights[1]
    masks = RegionMasks(["cow", "sky", "rest"], weights, ["a.png", "b.png", "photo"])
    common = {"device": torch.device("cpu"), "dtype": torch.float32, "alpha": 1.0}

    def plain() -> None:
        both = [styles["a.png"], styles["b.png"]]
        AdaINStylizer(net, styles=both, style_weights=[0.5, 0.5], **common)(content[None])

    def regional() -> None:
        def make(images, region_masks):
            return AdaINStylizer(net, styles=images, style_weights=None, masks=region_masks,
                                 **common)  # fmt: skip

        regional_stylize(content, styles, masks, make, method="adain")

    plain(), regional()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "regional": []}
    for _ in range(repeats):
        for name, run in (("plain", plain), ("regional", regional)):
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    p, r = statistics.median(times["plain"]), statistics.median(times["regional"])
    return {"size": size, "repeats": repeats, "unmasked_s": p, "regional_s": r,
            "overhead": r / p - 1}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512, help="image side of the mask step")
    parser.add_argument("--size", type=int, default=256, help="transfer size")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--adain-size", type=int, default=512, help="AdaIN transfer size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-maps", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    out: dict = {"threads": torch.get_num_threads()}
    if not args.skip_transfer:
        o = out["overhead"] = time_overhead(args.size, args.steps, args.repeats)
        print("| transfer | size | steps | unmasked (median s) | regional (median s) | overhead |")
        print("|---|---|---|---|---|---|")
        cells = [f"{o['size']}²", str(o["steps"]), f"{o['unmasked_s']:.2f}",
                 f"{o['regional_s']:.2f}", f"{100 * o['overhead']:+.1f} %"]  # fmt: skip
        print("| Gatys: 2 regions + rest=photo vs 2 styles blended | " + " | ".join(cells) + " |")
        a = out["adain_overhead"] = time_adain_overhead(args.adain_size, 2 * args.repeats)
        cells = [f"{a['size']}²", "–", f"{a['unmasked_s']:.3f}", f"{a['regional_s']:.3f}",
                 f"{100 * a['overhead']:+.1f} %"]  # fmt: skip
        print("| AdaIN: the same regions vs 2 styles blended | " + " | ".join(cells) + " |")
    if not args.skip_maps:
        m = out["mask_step"] = time_mask_step(args.side)
        print("| mask step | side | maps (s) | masks (s) | total (s) |")
        print("|---|---|---|---|---|")
        print(f"| SD 1.5 size, 5 timesteps, CPU | {m['side']}² | {m['maps_s']:.1f} | "
              f"{m['masks_s']:.3f} | {m['total_s']:.1f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
