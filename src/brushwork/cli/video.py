"""``brushwork video``: style transfer for videos with temporal consistency."""

from __future__ import annotations

import argparse
import sys

from brushwork.choices import DEVICE_CHOICES
from brushwork.cli.argtypes import ints

EPILOG = """examples:
  brushwork video clip.mp4 --style starry.jpg -o clip_starry.mp4          # Gatys + temporal loss
  brushwork video clip.mp4 --model starry.safetensors -o out.mp4          # feed-forward + flow
  brushwork video clip.mp4 --model adain.safetensors --style a.jpg --stable 0.8 -o out.mp4
  brushwork video clip.mp4 --style starry.jpg -o out.mp4 --resume         # continue a render
  brushwork video clip.mp4 --style starry.jpg -o out.mp4 --passes 5       # multi-pass (Ruder §3.3)

Outputs: .mp4 .m4v .mov .mkv .avi (H.264), .webm (VP9), .gif, or a path without a
suffix for a folder of PNG frames. Audio is copied, frame rate and count kept.
Finished frames are kept in .<output>.frames/ until the video is written, so
--resume continues an interrupted render.
"""


#: One line for ``brushwork --help``.
HELP = "video style transfer with temporal consistency"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.flow import FLOW_METHODS

    p = subparsers.add_parser(
        "video",
        help=HELP,
        description="Stylise a video, GIF or folder of frames. With --style only: Gatys "
        "optimisation with Ruder et al.'s temporal loss. With --model: a feed-forward "
        "network per frame, blended with the flow-warped previous output.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="video file, GIF or folder of frames")
    p.add_argument("-o", "--output", required=True, help="output video, .gif or folder")
    p.add_argument("--style", action="append", default=None, help="style image (repeatable)")
    p.add_argument("--model", default=None, help="feed-forward model (.safetensors / .onnx)")
    p.add_argument("--size", type=int, default=None, help="long side of the frames (input's)")
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow method")
    p.add_argument("--resume", action="store_true", help="continue an interrupted render")
    p.add_argument("--device", default="auto", help="|".join(DEVICE_CHOICES))
    p.add_argument("--no-warping-error", action="store_true", help="skip the final measurement")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    g = p.add_argument_group("feed-forward (--model)")
    g.add_argument("--stable", type=float, default=0.8, help="flow blending strength 0..1 (0.8)")
    g.add_argument("--alpha", type=float, default=1.0, help="AdaIN/WCT style strength (1)")
    g.add_argument("--preserve-color", action="store_true", help="keep the frames' colours")
    g.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="network dtype")
    g.add_argument(
        "--compile", action="store_true", help="torch.compile a Johnson network (~30 %% faster)"
    )

    g = p.add_argument_group("Gatys + temporal loss (--style without --model)")
    g.add_argument("--steps", type=int, default=80, help="steps for the first frame (80)")
    g.add_argument("--later-steps", type=int, default=None, help="steps per later frame (half)")
    g.add_argument("--temporal-weight", type=float, default=4e3, help="temporal loss weight")
    g.add_argument("--content-weight", type=float, default=1.0)
    g.add_argument("--style-weight", type=float, default=1e6)
    g.add_argument(
        "--long-term",
        type=ints,
        default=(1,),
        help="previous frames in the temporal loss, e.g. 1,2,4 (1)",
    )
    g.add_argument(
        "--passes",
        type=int,
        default=1,
        help="sweeps over the video; more than 1 adds refining passes in alternating "
        "directions (multi-pass mode) (1)",
    )
    g.add_argument(
        "--pass-steps", type=int, default=None, help="steps per frame in a refining pass"
    )
    g.add_argument(
        "--pass-blend",
        type=float,
        default=0.5,
        help="share of the warped neighbour a refining pass starts from (0.5)",
    )
    g.add_argument("--weights", default=None, metavar="PATH", help="VGG weight file")
    g.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.image import load_image
    from brushwork.video.io import check_video_output, probe_video
    from brushwork.video.render import render_video

    probe_video(args.input)  # a bad input fails before any network is loaded
    check_video_output(args.output, inputs=[args.input])
    styles = [load_image(path) for path in args.style or []]
    if args.model is not None:
        method = _feedforward(args, styles)
    elif styles:
        method = _gatys(args, styles)
    else:
        raise ConfigError("give --style STYLE.jpg (Gatys) or --model MODEL (feed-forward)")

    with _frame_progress(enabled=not args.quiet) as bar:
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


def _feedforward(args: argparse.Namespace, styles):
    from brushwork.errors import ConfigError
    from brushwork.video.feedforward_video import FeedForwardVideo

    try:
        from brushwork.transfer.stylize import load_stylizer
    except ImportError as error:
        raise ConfigError(
            f"feed-forward video needs brushwork.transfer.stylize, which is not available "
            f"({error}); use --style without --model for Gatys video"
        ) from None
    stylizer = load_stylizer(
        args.model,
        styles=styles or None,
        alpha=args.alpha,
        preserve_color=args.preserve_color,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
    )
    return FeedForwardVideo(
        stylizer,
        stable=args.stable,
        flow=args.flow,
        device="cpu",  # the stylizer moves frames to its own device and back
        description={
            "model": str(args.model),
            "styles": list(args.style or []),
            "alpha": args.alpha,
            "preserve_color": args.preserve_color,
            "precision": args.precision,
        },
    )


def _gatys(args: argparse.Namespace, styles):
    from brushwork.transfer.gatys import GatysSettings
    from brushwork.video.gatys_video import GatysVideo, GatysVideoSettings

    settings = GatysVideoSettings(
        image=GatysSettings(
            size=None,
            steps=args.steps,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            seed=args.seed,
        ),
        later_steps=args.later_steps,
        temporal_weight=args.temporal_weight,
        long_term=args.long_term,
        flow=args.flow,
        passes=args.passes,
        pass_steps=args.pass_steps,
        pass_blend=args.pass_blend,
    )
    return GatysVideo(styles, settings=settings, weights=args.weights, device=args.device)


def _frame_progress(*, enabled: bool):
    """A progress bar with frame count, frames/s, elapsed time and ETA (on stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class FrameRate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                return Text("– frames/s", style="progress.data.speed")
            if speed >= 1:
                return Text(f"{speed:.2f} frames/s", style="progress.data.speed")
            return Text(f"{1 / speed:.1f} s/frame", style="progress.data.speed")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        FrameRate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
