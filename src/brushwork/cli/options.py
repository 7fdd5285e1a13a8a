"""Option groups shared by every subcommand: one spelling, one set of values, one meaning.

Every command builds its common flags from the ``add_*`` functions here, so that
``--device``, ``--precision``, ``--size``, ``--steps``, ``--seed``, ``-q``, ``-o``,
``--weights``, ``--style``/``--style-weights``, ``--preserve-color``, ``--model`` and
``--rule`` are spelled, valued, defaulted and documented the same way everywhere.

The values:

* ``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
* ``--precision``: ``auto``, ``fp32``, ``bf16``, ``fp16``; the aliases ``float32``,
  ``bfloat16``, ``float16`` and ``half`` are accepted and mean the same.
* ``--size``: the long side of the output in pixels, or ``HxW`` (height × width)
  where a command can produce an exact size.
* counts (``--steps``, ``--iterations``, ...) are whole numbers ≥ 1 unless a command
  documents what 0 means.

Old spellings keep working for one release and print a one-line deprecation warning
(see :class:`DeprecatedAlias`). This module imports neither torch nor any heavy
package: building a parser stays fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from brushwork.choices import DEFAULT_SMOOTH, DEVICE_CHOICES, PRECISION_CHOICES, SMOOTH_CHOICES

__all__ = [
    "PRECISION_ALIASES",
    "PRESERVE_COLOR_CHOICES",
    "TOKEN_RULES",
    "DeprecatedAlias",
    "HelpFormatter",
    "add_deprecated",
    "add_device",
    "add_lora",
    "add_memory_limit",
    "add_model",
    "add_output",
    "add_precision",
    "add_preserve_color",
    "add_quiet",
    "add_region_mask_options",
    "add_regions",
    "add_rule",
    "add_seed",
    "add_size",
    "add_steps",
    "add_styles",
    "add_weights",
    "count",
    "device_name",
    "fraction",
    "lora_spec",
    "non_negative_float",
    "parse_size",
    "positive_float",
    "precision_name",
    "size_spec",
]

#: Every spelling ``--precision`` accepts -> its canonical name.
PRECISION_ALIASES: dict[str, str] = {
    "auto": "auto",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
}

#: Colour preservation, the same four choices in every command that stylises.
PRESERVE_COLOR_CHOICES = ("none", "luminance", "histogram", "mean-cov")

#: How a word of several tokens is mapped: mean of its tokens (DAAM) or first token.
TOKEN_RULES = ("mean", "first")

_DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")
_SIZE_PATTERN = re.compile(r"\s*(\d+)\s*(?:[x×X]\s*(\d+))?\s*")


# --------------------------------------------------------------------------- value types


def precision_name(text: str) -> str:
    """argparse type of ``--precision``: any alias -> ``auto|fp32|bf16|fp16``."""
    name = PRECISION_ALIASES.get(text.strip().lower())
    if name is None:
        raise argparse.ArgumentTypeError(
            f"unknown precision '{text}' (valid: {', '.join(PRECISION_CHOICES)}; "
            "also float32, bfloat16, float16, half)"
        )
    return name


def device_name(text: str) -> str:
    """argparse type of ``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    name = text.strip().lower()
    if not _DEVICE_PATTERN.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"unknown device '{text}' "
            f"(valid: {', '.join(DEVICE_CHOICES)}, or cuda:N such as cuda:1)"
        )
    return name


def count(minimum: int = 1) -> Callable[[str], int]:
    """argparse type: a whole number ≥ ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = f"count≥{minimum}"
    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def parse_size(text: str) -> tuple[int, int | None]:
    """``"512"`` -> ``(512, None)`` (long side); ``"768x1024"`` -> ``(768, 1024)`` (H, W).

    Raises:
        ValueError: not of the form ``N`` or ``HxW`` with positive whole numbers.
    """
    match = _SIZE_PATTERN.fullmatch(str(text))
    if not match:
        raise ValueError(f"expected N (long side) or HxW such as 768x1024, got '{text}'")
    first, second = int(match.group(1)), match.group(2)
    if first < 1 or (second is not None and int(second) < 1):
        raise ValueError(f"sizes must be 1 pixel or more, got '{text}'")
    return first, (int(second) if second is not None else None)


def size_spec(text: str) -> tuple[int, int | None]:
    """argparse type of ``--size``: see :func:`parse_size`."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# --------------------------------------------------------------------------- help


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks and shows every option's default in ``--help``.

    A default is added unless the help already mentions it, or it is ``None``/``False``
    (an option that is off unless given).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.help is argparse.SUPPRESS or "default" in text:
            return text
        if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


# --------------------------------------------------------------------------- deprecations


class DeprecatedAlias(argparse.Action):
    """An old spelling of a flag: stores into the new flag's ``dest`` and warns once.

    Use through :func:`add_deprecated`; ``--help`` does not list it.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        print(
            f"warning: {option_string} is deprecated and will be removed in the next release; "
            f"use {self.new}",
            file=sys.stderr,
        )
        if self.nargs == 0:
            values = self.const
        setattr(namespace, self.dest, values)


def add_deprecated(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    old: str,
    *,
    dest: str,
    new: str,
    **kwargs: Any,
) -> None:
    """Accept ``old`` as a hidden, warning alias of the flag ``new`` (same ``dest``)."""
    parser.add_argument(
        old, dest=dest, action=DeprecatedAlias, new=new, help=argparse.SUPPRESS, **kwargs
    )


# --------------------------------------------------------------------------- groups


def add_output(
    parser: argparse.ArgumentParser,
    what: str = "output image (.png, .jpg, .webp)",
    *,
    required: bool = True,
) -> None:
    """``-o/--output`` (required unless ``required=False``: a parser whose nested action
    has its own ``-o``, e.g. ``benchmark`` and ``benchmark report``; the command then
    checks it)."""
    parser.add_argument("-o", "--output", required=required, metavar="PATH", help=what)


def add_quiet(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``-q/--quiet``: no progress and no third-party messages (``--no-progress``: alias)."""
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no library warnings; errors are still printed",
    )
    add_deprecated(parser, "--no-progress", dest="quiet", new="-q/--quiet", nargs=0, const=True)


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device auto|cpu|cuda|cuda:N|mps``."""
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        metavar="DEVICE",
        help="auto, cpu, cuda, cuda:N or mps (default: %(default)s: CUDA, then MPS, then CPU)",
    )


def add_precision(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    default: str = "auto",
    what: str = "compute precision",
    auto: str = "bf16 where the device computes it fast, else fp32",
    dtype_alias: bool = False,
) -> None:
    """``--precision auto|fp32|bf16|fp16`` (aliases accepted); ``--dtype`` as old spelling."""
    parser.add_argument(
        "--precision",
        type=precision_name,
        default=default,
        metavar="{auto,fp32,bf16,fp16}",
        help=f"{what} (default: %(default)s; auto: {auto})",
    )
    if dtype_alias:
        add_deprecated(parser, "--dtype", dest="precision", new="--precision", type=precision_name)


def add_seed(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int = 0) -> None:
    """``--seed N``: the same seed gives the same result."""
    parser.add_argument(
        "--seed", type=int, default=default, help="random seed (default: %(default)s)"
    )


def add_steps(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    default: int | None,
    what: str = "steps",
    minimum: int = 1,
    flag: str = "--steps",
) -> None:
    """``--steps N`` (a count ≥ ``minimum``); the help says ``what`` is counted."""
    parser.add_argument(
        flag,
        type=count(minimum),
        default=default,
        metavar="N",
        help=f"{what} (default: %(default)s)",
    )


def add_size(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    default: str | None,
    what: str = "long side of the output in pixels",
    exact: bool = False,
) -> None:
    """``--size N`` (long side) or, where ``exact``, also ``--size HxW``.

    The parsed value is ``(first, second)`` from :func:`parse_size`, or the default.
    """
    forms = "N or HxW" if exact else "N"
    parsed: tuple[int, int | None] | int | None = None
    if default is not None:
        parsed = parse_size(default) if exact else parse_size(default)[0]
    parser.add_argument(
        "--size",
        type=size_spec if exact else _long_side,
        default=parsed,
        metavar=forms,
        help=f"{what} (default: {default})" if default is not None else what,
    )


def _long_side(text: str) -> int:
    first, second = size_spec(text)
    if second is not None:
        raise argparse.ArgumentTypeError(
            f"expected one number (the long side), got '{text}'; the aspect ratio is kept"
        )
    return first


def add_process_size(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--process-size N``: run a feed-forward network at a long side of at most N, upscale."""
    parser.add_argument(
        "--process-size",
        type=count(16),
        default=None,
        metavar="N",
        help="run the network with the long side at most N px and upscale its output "
        "(bicubic) to the image's size: faster, softer (default: full size)",
    )


def add_memory_limit(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--memory-limit GIB``: the memory a run may plan to use (0: no check)."""
    parser.add_argument(
        "--memory-limit",
        type=non_negative_float,
        default=None,
        metavar="GIB",
        help="refuse before starting if the estimated memory exceeds this many GiB "
        "(default: the device's available memory; 0: no check)",
    )


def add_weights(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    what: str = "pretrained network",
    flag: str = "--weights",
) -> None:
    """``--weights PATH``: a local copy of the weight file the command would download."""
    parser.add_argument(
        flag,
        default=None,
        metavar="PATH",
        help=f"local file of the {what} (default: the cache; downloaded on first use)",
    )


def add_styles(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    required: bool = False,
    what: str = "style image(s)",
    weights: bool = True,
    several: bool = True,
) -> None:
    """``--style A [B ...]`` (repeatable) and ``--style-weights 0.7,0.3``.

    The style list lands in ``args.style`` (``None`` when not given); weights in
    ``args.style_weights``.
    """
    from brushwork.cli.argtypes import floats

    parser.add_argument(
        "--style",
        nargs="+",
        action="extend",
        required=required,
        default=None,
        metavar="IMAGE",
        help=f"{what}; several styles: --style A B or --style A --style B" if several else what,
    )
    if weights:
        parser.add_argument(
            "--style-weights",
            type=floats,
            default=None,
            metavar="W,...",
            help="one weight per style, e.g. 0.7,0.3 (default: equal)",
        )
        add_deprecated(
            parser, "--style-blend", dest="style_weights", new="--style-weights", type=floats
        )


def add_preserve_color(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    choices: Sequence[str] = PRESERVE_COLOR_CHOICES,
) -> None:
    """``--preserve-color none|luminance|histogram|mean-cov`` (bare flag: luminance)."""
    parser.add_argument(
        "--preserve-color",
        nargs="?",
        choices=tuple(choices),
        const="luminance",
        default="none",
        help="keep the content's colours: luminance-only transfer, or match the style's "
        "colours to the content by histogram or mean/covariance "
        "(default: %(default)s; the bare flag means luminance)",
    )


def add_smooth(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--smooth [exact|fast]``: photorealistic smoothing (bare flag: DEFAULT_SMOOTH)."""
    parser.add_argument(
        "--smooth",
        nargs="?",
        choices=SMOOTH_CHOICES,
        const=DEFAULT_SMOOTH,
        default=None,
        help="smooth the result guided by the content (PhotoWCT's step): exact = the "
        f"closed-form matting solve, fast = guided filter (the bare flag means {DEFAULT_SMOOTH})",
    )


def add_label_masks(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--content-mask PATH --style-mask PATH``: semantic label maps (region to region)."""
    parser.add_argument(
        "--content-mask",
        default=None,
        metavar="PNG",
        help="label map of the content (one-channel labels or flat colours); with --style-mask",
    )
    parser.add_argument(
        "--style-mask",
        default=None,
        metavar="PNG",
        help="label map of the style: each content region takes the style's region of the "
        "same label (labels the style lacks: the whole style)",
    )


def add_model(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    default: str | None,
    what: str = "diffusion model: Hub id or local folder",
) -> None:
    """``--model ID|FOLDER`` for the diffusion commands."""
    parser.add_argument(
        "--model",
        default=default,
        metavar="ID|FOLDER",
        help=f"{what} (default: {default})" if default else what,
    )


#: What ``@PART`` after a ``--lora`` file may name: one block of a B-LoRA.
LORA_PARTS = ("style", "content")


def lora_spec(text: str) -> tuple[str, float, str | None]:
    """argparse type of ``--lora``: ``FILE[:SCALE][@style|@content]`` -> (file, scale, part).

    The scale is the text after the last ``:`` when it is a number (default 1).
    """
    spec, part = str(text).strip(), None
    head, at, tail = spec.rpartition("@")
    if at and tail in LORA_PARTS:
        spec, part = head, tail
    path, colon, scale_text = spec.rpartition(":")
    scale = 1.0
    if colon and path:
        try:
            scale = _number(scale_text)
        except argparse.ArgumentTypeError:
            path, scale = spec, 1.0
    else:
        path = spec
    if not path:
        raise argparse.ArgumentTypeError(f"expected FILE[:SCALE], got '{text}'")
    return path, scale, part


def add_lora(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--lora FILE[:SCALE]`` (repeatable) and ``--fuse-lora``.

    ``args.lora``: a list of (file, scale, part) or ``None``.
    """
    parser.add_argument(
        "--lora",
        type=lora_spec,
        action="append",
        default=None,
        metavar="FILE[:SCALE]",
        help="apply a LoRA (.safetensors) at SCALE (default 1); repeat to combine several; "
        "FILE@style or FILE:0.8@content applies one block of a B-LoRA",
    )
    parser.add_argument(
        "--fuse-lora",
        action="store_true",
        help="merge the LoRA weights into the model for the run (faster steps)",
    )


def add_rule(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--rule mean|first``: how a word of several tokens is mapped."""
    parser.add_argument(
        "--rule",
        choices=TOKEN_RULES,
        default="mean",
        help="a word of several tokens: mean of its tokens' maps (DAAM) or the first "
        "token's (default: %(default)s)",
    )


#: The diffusion model that maps the caption's words on an existing image (regions).
MAPS_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


#: The missing-weights hint of the IP-Adapter download: its repository -> the flag that
#: takes a local copy (the key is ``diffusion.style_reference.IP_ADAPTER_REPO``, not
#: imported here so that the command line starts without the diffusion modules).
IP_ADAPTER_WEIGHT_FLAGS = {"h94/IP-Adapter": "--ip-adapter"}


def add_ip_adapter(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Where the IP-Adapter weights come from (``adapter_source``'s three overrides)."""
    parser.add_argument(
        "--ip-adapter",
        default=None,
        help="hub repo, folder or .safetensors file (default: h94/IP-Adapter)",
    )
    parser.add_argument(
        "--ip-adapter-subfolder", default=None, help="default: sdxl_models (SDXL) / models"
    )
    parser.add_argument("--ip-adapter-weight", default=None, help="weight file name")


def ip_adapter_source(args: argparse.Namespace, family: str) -> Any:
    """The :class:`AdapterSource` of the ``--ip-adapter*`` flags for pipeline ``family``."""
    from brushwork.diffusion.style_reference import adapter_source

    return adapter_source(
        family, args.ip_adapter, args.ip_adapter_subfolder, args.ip_adapter_weight
    )


def add_regions(
    parser: argparse.ArgumentParser,
    *,
    maps_model: bool = True,
    per_style_masks: bool = True,
) -> argparse._ArgumentGroup:
    """Regional style from words: ``--caption``, ``--region``, ``--mask`` and the mask options.

    ``--region WORDS=STYLE`` (repeatable; ``rest=photo``/``rest=STYLE`` for what no word
    claims) lands in ``args.region`` as strings; ``--mask`` takes ``WORD=PNG`` (an edited
    region mask) and, where ``per_style_masks``, also plain files (one mask per
    ``--style``). ``maps_model``: offer ``--maps-model`` (commands that map an existing
    image; ``generate`` maps its own generation).
    """
    g = parser.add_argument_group("regional style from words (brushwork regions shows the masks)")
    g.add_argument(
        "--caption",
        default=None,
        metavar="TEXT",
        help="what the image shows; the --region words are looked up in it",
    )
    g.add_argument(
        "--region",
        action="append",
        default=None,
        metavar="WORDS=STYLE",
        help='a region and its style: cow=rembrandt.jpg, "hill,sky"=monet.jpg; rest=photo '
        "(the default) keeps the image where no word is, rest=STYLE styles it; repeat",
    )
    plain = "one mask per --style (regional style), or " if per_style_masks else ""
    g.add_argument(
        "--mask",
        nargs="+",
        action="extend",
        default=None,
        metavar="MASK",
        help=f"{plain}WORD=PNG: an edited mask of a region word (e.g. from brushwork regions) "
        "used instead of its word map",
    )
    if maps_model:
        g.add_argument(
            "--maps-model",
            default=MAPS_MODEL,
            metavar="ID|FOLDER",
            help="diffusion model that maps the words on the image (default: %(default)s)",
        )
    add_region_mask_options(g)
    return g


def add_region_mask_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """How word maps become region masks (``brushwork.regional.masks.MaskSettings``)."""
    g = parser
    g.add_argument(
        "--region-temperature",
        type=positive_float,
        default=0.1,
        help="softness of the competition between words (small: hard edges)",
    )
    g.add_argument(
        "--region-threshold",
        type=fraction,
        default=0.4,
        help="map strength (0..1) a word needs to claim a pixel from rest",
    )
    g.add_argument(
        "--region-feather",
        type=fraction,
        default=0.01,
        metavar="FRACTION",
        help="edge blur, as a fraction of the long side (0: none)",
    )
    g.add_argument(
        "--region-min-area",
        type=fraction,
        default=0.005,
        metavar="FRACTION",
        help="pieces of a region smaller than this share of the image are dropped",
    )
