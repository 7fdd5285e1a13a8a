"""``brushwork video``: style transfer for videos with temporal consistency."""

from __future__ import annotations

import argparse
import sys

from brushwork.cli import options
from brushwork.cli.argtypes import ints

EPILOG = """examples:
  brushwork video clip.mp4 --style starry.jpg -o clip_starry.mp4          # Gatys + temporal loss
  brushwork video clip.mp4 --model starry.safetensors -o out.mp4          # feed-forward + flow
  brushwork video clip.mp4 --model adain.safetensors --style a.jpg --stable 0.8 -o out.mp4
  brushwork video clip.mp4 --method wct2 --style dusk.jpg -o dusk.mp4     # photorealistic
  brushwork video clip.mp4 --style starry.jpg -o out.mp4 --resume         # continue a render
  brushwork video clip.mp4 --style starry.jpg -o out.mp4 --passes 5       # multi-pass (Ruder §3.3)

Outputs: .mp4 .m4v .mov .mkv .avi (H.264), .webm (VP9), .gif, or a path without a
suffix for a folder of PNG frames. Audio is copied, frame rate and count kept.
Finished frames are kept in .<output>.frames/ until the video is written, so
--resume continues an interrupted render; a run stopped before its first frame (or
refused by a check) leaves no such folder.
--preserve-color: as in `brushwork transfer` (Gatys) and `brushwork stylize` (--model).
"""


#: One line for ``brushwork --help``.
HELP = "video style transfer with temporal consistency"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights"}

#: The feed-forward methods (as `brushwork stylize`'s); the photorealistic ones smooth.
PHOTOREAL_METHODS = ("wct2", "photowct")
FEEDFORWARD_METHODS = ("johnson", "adain", "wct", *PHOTOREAL_METHODS)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.flow import FLOW_METHODS

    p = subparsers.add_parser(
        "video",
        help=HELP,
        description="Stylise a video, GIF or folder of frames. With --style only: Gatys "
        "optimisation with Ruder et al.'s temporal loss. With --model: a feed-forward "
        "network per frame, blended with the flow-warped previous output.",
        epilog=EPILOG,
    )
    p.add_argument("input", help="video file, GIF or folder of frames")
    options.add_output(p, what="output video, .gif or folder")
    options.add_styles(p)
    p.add_argument("--model", default=None, metavar="PATH", help="feed-forward model file")
    options.add_size(p, default=None)
    p._option_string_actions["--size"].help = "long side of the frames (default: the input's)"
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow method")
    p.add_argument("--resume", action="store_true", help="continue an interrupted render")
    options.add_device(p)
    options.add_precision(
        p,
        what="network precision",
        auto="Gatys: bf16 where the device computes it fast, else fp32; --model: fp32",
    )
    options.add_preserve_color(p)
    options.add_memory_limit(p)
    p.add_argument("--no-warping-error", action="store_true", help="skip the final measurement")
    options.add_quiet(p)

    g = p.add_argument_group("feed-forward (--model, or --method with published weights)")
    g.add_argument(
        "--method",
        choices=FEEDFORWARD_METHODS,
        default=None,
        help="a feed-forward method, as in `brushwork stylize`: adain, wct2 or photowct "
        "without --model use the published weights (downloaded on first use, or --weights)",
    )
    options.add_smooth(g)
    g.add_argument("--stable", type=options.fraction, default=0.8, help="flow blending strength")
    g.add_argument("--alpha", type=options.fraction, default=1.0, help="AdaIN/WCT style strength")
    g.add_argument(
        "--compile", action="store_true", help="torch.compile a Johnson network (~30 %% faster)"
    )

    g = p.add_argument_group("Gatys + temporal loss (--style without --model)")
    options.add_steps(g, default=80, what="steps for the first frame (over all its levels)")
    g.add_argument(
        "--later-steps",
        type=options.count(1),
        default=None,
        metavar="N",
        help="steps per later frame (default: half of --steps)",
    )
    g.add_argument(
        "--temporal-weight",
        type=options.non_negative_float,
        default=4e3,
        help="temporal loss weight",
    )
    g.add_argument("--content-weight", type=options.non_negative_float, default=1.0)
    g.add_argument("--style-weight", type=options.non_negative_float, default=1e6)
    g.add_argument(
        "--long-term",
        type=ints,
        default=(1,),
        help="previous frames in the temporal loss, e.g. 1,2,4 (default: 1)",
    )
    g.add_argument(
        "--passes",
        type=options.count(1),
        default=1,
        help="sweeps over the video; more than 1 adds refining passes in alternating "
        "directions (multi-pass mode)",
    )
    g.add_argument(
        "--pass-steps",
        type=options.count(1),
        default=None,
        metavar="N",
        help="steps per frame in a refining pass (default: as --later-steps)",
    )
    g.add_argument(
        "--pass-blend",
        type=options.fraction,
        default=0.5,
        help="share of the warped neighbour a refining pass starts from",
    )
    g.add_argument(
        "--keep-detail",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="re-inject the detail each warp of the previous frame loses, start uncovered "
        "pixels from the frame, and optimise later frames at full resolution "
        "(--no-keep-detail: the earlier behaviour, which blurs frame after frame)",
    )
    options.add_weights(g, what="VGG encoder")
    options.add_seed(g)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.devices import resolve_device, resolve_precision
    from brushwork.errors import ConfigError
    from brushwork.image import load_image
    from brushwork.video.io import check_video_output, probe_video
    from brushwork.video.render import render_video

    info = probe_video(args.input)  # a bad input fails before any network is loaded
    check_video_output(args.output, inputs=[args.input])
    styles = [load_image(path) for path in args.style or []]
    feedforward = args.model is not None or args.method is not None
    if not feedforward and not styles:
        raise ConfigError("give --style STYLE.jpg (Gatys) or --model MODEL (feed-forward)")
    if args.smooth and args.method not in PHOTOREAL_METHODS:
        raise ConfigError("--smooth is for --method wct2 or photowct")
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 pixels, got {args.size}")
    device = resolve_device(args.device)
    resolve_precision(args.precision, device)  # fp16 on the CPU is refused here
    frame_size = _frame_size(info, args.size)
    if feedforward:
        _check_feedforward_memory(args, frame_size, styles, device)
        method = _feedforward(args, styles)
    else:
        settings = _gatys_settings(args)
        _check_gatys_memory(args, settings, frame_size, styles, device)
        method = _gatys(args, settings, styles)

    from brushwork.cli.progress import step_progress

    with step_progress(enabled=not args.quiet, unit="frame", loss=False) as bar:
        task = bar.add_task("video", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, total=total, completed=done)

        result = render_video(
            args.input,
            args.output,
            method,
            size=args.size,
            resume=args.resume,
            measure=not args.no_warping_error,
            flow=args.flow,
            progress=progress,
        )
    if not args.quiet:
        print(
            f"wrote {result.output} ({result.frames} frames at {float(result.info.fps):.3g} fps, "
            f"{result.seconds:.1f} s"
            + (f", resumed at frame {result.resumed_from + 1}" if result.resumed_from else "")
            + ")",
            file=sys.stderr,
        )
        if result.note:
            print(f"note: {result.note}", file=sys.stderr)
    if result.warping_error is not None:
        print(f"warping error: {result.warping_error:.6f}")
    return 0


def _frame_size(info, size: int | None) -> tuple[int, int]:
    """(height, width) of the processed frames."""
    if size is None:
        return info.height, info.width
    scale = size / max(info.height, info.width)
    return max(1, round(info.height * scale)), max(1, round(info.width * scale))


def _what(frame_size: tuple[int, int]) -> str:
    return f"video at {frame_size[1]}×{frame_size[0]} px per frame"


def _check_feedforward_memory(args, frame_size, styles, device) -> None:
    from brushwork.resources import check_memory
    from brushwork.transfer.stylize import estimate_memory, model_method

    need = estimate_memory(
        model_method(args.model, args.method),
        frame_size,
        style_sizes=[tuple(s.shape[-2:]) for s in styles],
        smooth=args.smooth,
        dtype_bytes=2 if _feedforward_precision(args.precision) in ("bf16", "fp16") else 4,
    )
    check_memory(need, device, what=_what(frame_size), limit_gib=args.memory_limit)


def _check_gatys_memory(args, settings, frame_size, styles, device) -> None:
    from brushwork.resources import check_memory
    from brushwork.video.gatys_video import estimate_memory

    style_sizes = [tuple(s.shape[-2:]) for s in styles]
    need = estimate_memory(frame_size, settings, style_sizes=style_sizes)
    check_memory(need, device, what=_what(frame_size), limit_gib=args.memory_limit)


def _feedforward(args: argparse.Namespace, styles):
    from brushwork.transfer.stylize import load_stylizer
    from brushwork.video.feedforward_video import FeedForwardVideo

    stylizer = load_stylizer(
        args.model,
        method=args.method,
        weights=args.weights,
        smooth=args.smooth,
        styles=styles or None,
        style_weights=args.style_weights,
        alpha=args.alpha,
        preserve_color=args.preserve_color,
        device=args.device,
        precision=_feedforward_precision(args.precision),
        compile=args.compile,
    )
    return FeedForwardVideo(
        stylizer,
        stable=args.stable,
        flow=args.flow,
        device="cpu",  # the stylizer moves frames to its own device and back
        description={
            "model": None if args.model is None else str(args.model),
            "method": args.method,
            "smooth": args.smooth,
            "styles": list(args.style or []),
            "alpha": args.alpha,
            "preserve_color": args.preserve_color,
            "precision": _feedforward_precision(args.precision),
        },
    )


def _feedforward_precision(name: str) -> str:
    """``auto`` means fp32 for feed-forward networks (bit-for-bit as before)."""
    return "fp32" if name == "auto" else name


def _gatys_settings(args: argparse.Namespace):
    from brushwork.transfer.gatys import GatysSettings
    from brushwork.video.gatys_video import GatysVideoSettings

    settings = GatysVideoSettings(
        image=GatysSettings(
            size=None,
            steps=args.steps,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            style_blend=args.style_weights,
            preserve_color=args.preserve_color,
            precision=args.precision,
            seed=args.seed,
        ),
        later_steps=args.later_steps,
        temporal_weight=args.temporal_weight,
        long_term=args.long_term,
        flow=args.flow,
        passes=args.passes,
        pass_steps=args.pass_steps,
        pass_blend=args.pass_blend,
        keep_detail=args.keep_detail,
    )
    settings.validate()
    settings.image.validate(num_styles=len(args.style or []))
    return settings


def _gatys(args: argparse.Namespace, settings, styles):
    from brushwork.video.gatys_video import GatysVideo

    return GatysVideo(styles, settings=settings, weights=args.weights, device=args.device)
