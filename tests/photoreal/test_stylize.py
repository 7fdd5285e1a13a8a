"""WCT² and PhotoWCT through load_stylizer (padding, tiles, bf16, labels, smoothing) and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from photoreal_testing import TINY_WIDTHS, save_png, scene
from PIL import Image

from brushwork.cli.main import main
from brushwork.transfer.photowct import PhotoWCTModel
from brushwork.transfer.regions import label_maps_from_arrays
from brushwork.transfer.stylize import PhotorealStylizer, estimate_memory
from brushwork.transfer.wct2 import WCT2Model


def _tiny(model, method: str, style: torch.Tensor, **kwargs) -> PhotorealStylizer:
    """A Stylizer around a real network of few channels (random weights)."""
    options = dict(styles=[style], style_weights=None, alpha=1.0, device=torch.device("cpu"))
    return PhotorealStylizer(model.eval(), method=method, **{**options, **kwargs})


def test_stylizers_pad_tile_and_run_in_bf16() -> None:
    content, style = scene(0, 26, 30)[None], scene(1, 24, 24)
    tiny = _tiny(WCT2Model(widths=TINY_WIDTHS), "wct2", style)
    out = tiny(content)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(tiny(content), out)  # deterministic
    tiled = _tiny(WCT2Model(widths=TINY_WIDTHS), "wct2", style, tile=16, tile_overlap=8)
    assert tiled(content).shape == content.shape
    low = _tiny(PhotoWCTModel(widths=TINY_WIDTHS), "photowct", style, dtype=torch.bfloat16)
    assert low(content).shape == content.shape


def test_photowct_stylizer_with_labels_and_smoothing() -> None:
    content, style = scene(2, 24, 24)[None], scene(3, 24, 24)
    halves = np.zeros((24, 24), np.int64)
    halves[:, 12:] = 1
    labels = label_maps_from_arrays(halves, halves)
    torch.manual_seed(0)
    model = PhotoWCTModel(widths=TINY_WIDTHS)
    plain = _tiny(model, "photowct", style)(content)
    regional = _tiny(model, "photowct", style, labels=labels)(content)
    smoothed = _tiny(model, "photowct", style, labels=labels, smooth="fast")(content)
    assert (regional - plain).abs().max() > 1e-3
    assert smoothed.shape == content.shape
    energy = lambda x: float((x.diff(dim=-1) ** 2).mean())  # noqa: E731
    assert energy(smoothed) < energy(regional)


def test_memory_estimate_counts_the_smoothing() -> None:
    base = estimate_memory("photowct", (512, 512))
    assert estimate_memory("photowct", (512, 512), smooth="exact") - base > 1.5e9
    assert estimate_memory("wct2", (512, 512)) > estimate_memory("wct", (512, 512)) - 2**28


def test_cli_wct2_with_label_maps_and_smoothing(wct2_dir: Path, tmp_path: Path) -> None:
    content = save_png(scene(4, 24, 32), tmp_path / "day.png")
    style = save_png(scene(5, 24, 32), tmp_path / "dusk.png")
    seg = np.zeros((12, 16, 3), np.uint8)
    seg[:6] = (135, 206, 235)
    seg[6:] = (90, 90, 90)
    content_seg = save_png(seg, tmp_path / "day_seg.png")
    style_seg = save_png(seg, tmp_path / "dusk_seg.png")
    out = tmp_path / "out.png"
    argv = ["stylize", str(content), "--method", "wct2", "--weights", str(wct2_dir)]
    argv += ["--style", str(style), "--content-mask", str(content_seg)]
    argv += ["--style-mask", str(style_seg), "--smooth", "-o", str(out), "--device", "cpu", "-q"]
    assert main(argv) == 0
    with Image.open(out) as img:
        assert img.size == (32, 24)


def test_video_frames_through_the_feed_forward_video_method() -> None:
    from brushwork.video import FeedForwardVideo

    style = scene(6, 24, 24)
    method = FeedForwardVideo(_tiny(WCT2Model(widths=TINY_WIDTHS), "wct2", style), stable=0.5)
    first = scene(7, 24, 32)
    second = torch.roll(first, 2, dims=-1)
    out1 = method.stylise(first, [])
    out2 = method.stylise(second, [(first, out1)])
    assert out1.shape == first.shape and out2.shape == second.shape


def test_cli_video_with_a_photorealistic_method(wct2_dir: Path, tmp_path: Path, capsys) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "video"))
    from video_synth import moving_square_frames, write_video

    from brushwork.video import probe_video

    clip = write_video(tmp_path / "clip.mp4", moving_square_frames(count=4))
    style = save_png(scene(5, 24, 32), tmp_path / "dusk.png")
    out = tmp_path / "out.mp4"
    argv = ["video", str(clip), "--method", "wct2", "--weights", str(wct2_dir),
            "--style", str(style), "--smooth", "fast", "--size", "24", "-o", str(out),
            "--device", "cpu", "-q"]  # fmt: skip
    assert main(argv) == 0
    assert probe_video(out).frame_count == 4
    assert "warping error:" in capsys.readouterr().out
    bad = ["video", str(clip), "--method", "adain", "--smooth", "--style", str(style),
           "-o", str(tmp_path / "bad.mp4")]  # fmt: skip
    assert main(bad) == 1
    assert "--smooth is for --method wct2 or photowct" in capsys.readouterr().err
    assert not (tmp_path / "bad.mp4").exists()
