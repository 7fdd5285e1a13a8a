"""``brushwork regions``: the region masks of an image from its caption's words.

Also the helpers that read ``--caption``/``--region``/``--mask`` for ``transfer``,
``stylize`` and ``generate`` (:func:`read_region_flags`, :func:`regions_for_image`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.cli import options

EPILOG = """examples:
  brushwork regions photo.jpg --caption "a cow on a hill under the sky" \\
          --words cow hill sky -o masks/
  brushwork transfer photo.jpg --caption "a cow on a hill under the sky" \\
          --region cow=rembrandt.jpg --region sky=cubism.jpg --region rest=photo -o out.png
  brushwork transfer photo.jpg --caption "a cow on a hill under the sky" \\
          --region cow=rembrandt.jpg --mask cow=masks/mask_cow.png -o out.png   # an edited mask

writes into the output folder mask_<word>.png per word and mask_rest.png (soft masks,
white = the word's; at every pixel the masks sum to 1), overlay.png (the image with one
colour per region) and sheet.png (image, overlay, each mask). A mask edited in any paint
program goes back with --mask WORD=FILE.
"""

#: One line for ``brushwork --help``.
HELP = "region masks of an image from the words of its caption (for regional style)"

#: Region colours of the overlay (rest: grey).
COLOURS = ((0.9, 0.2, 0.2), (0.2, 0.5, 0.95), (0.2, 0.8, 0.3), (0.95, 0.75, 0.1),
           (0.7, 0.3, 0.9), (0.1, 0.8, 0.8), (0.95, 0.5, 0.7), (0.6, 0.4, 0.2))  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.diffusion_common import add_device_precision

    p = subparsers.add_parser(
        "regions",
        help=HELP,
        description="Map the caption's words on an image and turn the maps into soft "
        "region masks (one per word, and rest), to check them before a regional transfer.",
        epilog=EPILOG,
    )
    p.add_argument("image", help="the image")
    p.add_argument("--caption", required=True, metavar="TEXT", help="what the image shows")
    p.add_argument("--words", nargs="+", required=True, metavar="WORD", help="caption words")
    options.add_output(p, what="output folder")
    options.add_model(p, default=options.MAPS_MODEL)
    options.add_size(p, default=None, what="long side of the model input (default: the model's)")
    options.add_seed(p)
    add_device_precision(p)
    options.add_rule(p)
    options.add_region_mask_options(p.add_argument_group("masks"))
    options.add_quiet(p)
    return p


def mask_settings(args: argparse.Namespace):
    from brushwork.regional.masks import MaskSettings

    settings = MaskSettings(
        temperature=args.region_temperature,
        threshold=args.region_threshold,
        feather=args.region_feather,
        min_area=args.region_min_area,
    )
    settings.validate()
    return settings


@dataclass
class RegionFlags:
    """What ``--caption``/``--region``/``--mask`` asked for, checked.

    Attributes:
        specs: the region specs (empty: no regional style).
        word_masks: word -> mask file (edited masks).
        plain_masks: ``--mask`` files without ``WORD=`` (one per style, the old form).
        styles: style path -> (3, H, W) image, every region's style loaded.
    """

    specs: list = field(default_factory=list)
    word_masks: dict[str, str] = field(default_factory=dict)
    plain_masks: list[str] = field(default_factory=list)
    styles: dict[str, Any] = field(default_factory=dict)

    @property
    def wanted(self) -> bool:
        return bool(self.specs)

    @property
    def inputs(self) -> list[str]:
        return [*self.styles, *self.word_masks.values()]


def read_region_flags(args: argparse.Namespace, *, caption: str | None = None) -> RegionFlags:
    """Parse and check the region flags before any model loads (one-line errors).

    ``caption``: the text the words must be in (default ``args.caption``; ``generate``
    passes its prompt).
    """
    from brushwork.errors import ConfigError
    from brushwork.image import load_image
    from brushwork.regional.spec import (
        check_in_caption,
        check_specs,
        is_word_mask,
        parse_mask_spec,
        parse_region_spec,
        style_targets,
    )

    flags = RegionFlags()
    for value in getattr(args, "mask", None) or []:
        if is_word_mask(value):
            word, path = parse_mask_spec(value)
            if word.lower() in {w.lower() for w in flags.word_masks}:
                raise ConfigError(f"two --mask files for '{word}'; give one mask per word")
            flags.word_masks[word] = path
        else:
            flags.plain_masks.append(value)
    caption = caption if caption is not None else getattr(args, "caption", None)
    if not args.region:
        if flags.word_masks:
            raise ConfigError("--mask WORD=FILE is for regional style: give --region WORD=STYLE")
        if getattr(args, "caption", None):
            raise ConfigError("--caption is for regional style: give --region WORD=STYLE too")
        return flags
    if flags.plain_masks:
        raise ConfigError(
            "--region masks come from the caption's words; give edited masks as --mask "
            f"WORD=FILE, not '{flags.plain_masks[0]}'"
        )
    if getattr(args, "style", None):
        raise ConfigError(
            "--region gives each region its style; name the rest with --region rest=STYLE "
            "instead of --style"
        )
    flags.specs = check_specs([parse_region_spec(v) for v in args.region], caption=None)
    words = [w for s in flags.specs if not s.is_rest for w in s.words]
    unmapped = [w for w in words if w.lower() not in {k.lower() for k in flags.word_masks}]
    if unmapped and not caption:
        raise ConfigError(
            f"--region needs --caption TEXT (what the image shows) to map '{unmapped[0]}'"
        )
    if caption:
        check_in_caption(words, caption)
    wanted = {w.lower() for w in words}
    for word in flags.word_masks:
        if word.lower() not in wanted:
            raise ConfigError(f"--mask {word}=… names no --region word ({', '.join(words)})")
    for path in style_targets(flags.specs):
        flags.styles[path] = load_image(path)
    for path in flags.word_masks.values():
        from brushwork.image import load_mask

        load_mask(path)
    return flags


def _given_masks(flags: RegionFlags, size: tuple[int, int]) -> dict[str, Any]:
    from brushwork.image import load_mask, resize_to
    from brushwork.transfer.regions import check_aspect

    given = {}
    for word, path in flags.word_masks.items():
        mask = load_mask(path)
        check_aspect(tuple(mask.shape[-2:]), size, what=f"mask {path}")
        given[word] = resize_to(mask, *size)[0]
    return given


def regions_for_image(args: argparse.Namespace, flags: RegionFlags, image: Any):
    """The :class:`~brushwork.regional.masks.RegionMasks` of ``image`` (3, H, W).

    Loads ``--maps-model`` only when a region word has no edited mask.
    """
    from brushwork.diffusion.pipelines import load_pipeline, user_errors
    from brushwork.regional.of_image import region_words, regions_of_image

    size = (int(image.shape[-2]), int(image.shape[-1]))
    given = _given_masks(flags, size)
    words = region_words(flags.specs)
    pipe = None
    if any(w.lower() not in {k.lower() for k in given} for w in words):
        pipe = load_pipeline(args.maps_model, dtype="auto", device=args.device)
    with user_errors():
        return regions_of_image(
            pipe,
            image,
            args.caption,
            flags.specs,
            given=given,
            settings=mask_settings(args),
            seed=args.seed,
        )


def overlay_regions(image: Any, weights: Any) -> Any:
    """(3, H, W): ``image`` tinted with one colour per mask row (the last, rest: none)."""
    import torch

    colours = torch.tensor([*COLOURS * (1 + len(weights) // len(COLOURS))][: len(weights) - 1])
    tint = torch.einsum("rhw,rc->chw", weights[:-1].float(), colours.float())
    claimed = weights[:-1].sum(0, keepdim=True).clamp(0, 1)
    return (image.float() * (1 - 0.55 * claimed) + 0.55 * tint).clamp(0, 1)


def run(args: argparse.Namespace) -> int:
    from brushwork.cli.attend import slug
    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.diffusion.maps import sheet
    from brushwork.diffusion.pipelines import load_pipeline, user_errors
    from brushwork.errors import ConfigError
    from brushwork.image import load_image
    from brushwork.regional.of_image import word_weights_of_image
    from brushwork.regional.spec import REST, check_in_caption
    from brushwork.resources import check_folder_writable

    settings = mask_settings(args)
    if any(w.lower() == REST for w in args.words):
        raise ConfigError("'rest' is the name of what no word claims; it cannot be a word")
    if len({w.lower() for w in args.words}) != len(args.words):
        raise ConfigError("a word is given twice in --words")
    check_in_caption(args.words, args.caption, what="word")
    image = load_image(args.image)
    out = check_folder_writable(args.output)
    check_model_folder(args.model)
    pipe = load_pipeline(args.model, dtype=args.precision, device=args.device)
    side = args.size if args.size is not None else None
    with user_errors():
        weights = word_weights_of_image(
            pipe, image, args.caption, args.words, settings=settings, seed=args.seed,
            side=side, rule=args.rule,
        )  # fmt: skip
    names = [*args.words, REST]
    tinted = overlay_regions(image, weights)
    tiles = [image, tinted, *[w[None].expand(3, -1, -1) for w in weights]]
    _write(out, names, weights, tinted, sheet(tiles, ["image", "regions", *names]), slug)
    if not args.quiet:
        print(f"wrote {out}/ (mask_<word>.png for {', '.join(names)}, overlay.png, sheet.png)",
              file=sys.stderr)  # fmt: skip
    return 0


def _write(out: Path, names, weights, tinted, picture, slug) -> None:
    """Every file of the folder (atomically); the folder only after the work succeeded."""
    import shutil

    from brushwork.image import save_image

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, weight in zip(names, weights, strict=True):
            save_image(weight[None].clamp(0, 1), out / f"mask_{slug(name)}.png")
        save_image(tinted, out / "overlay.png")
        save_image(picture, out / "sheet.png")
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
