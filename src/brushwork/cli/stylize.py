"""``brushwork stylize``: run a trained feed-forward model on images or folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.cli import options, stylize_controlnet, stylize_diffusion

EPILOG = """examples:
  brushwork stylize photo.jpg --model starry.safetensors -o out.png
  brushwork stylize photos/ --model starry.onnx -o stylised/            # a folder in, a folder out
  brushwork stylize photo.jpg --model adain.safetensors --style a.jpg --alpha 0.7 -o out.png
  brushwork stylize photo.jpg --method adain --style a.jpg b.jpg --style-weights 0.7,0.3 -o out.png
  brushwork stylize photo.jpg --method adain --style sky.jpg ground.jpg \\
            --mask sky.png ground.png -o out.png                      # a style per region
  brushwork stylize photo.jpg --method adain --weights adain-files/ --style a.jpg -o out.png
  brushwork stylize photo.jpg --model wct.safetensors --style a.jpg --alpha 0.6 -o out.png
  brushwork stylize big.jpg --model starry.safetensors --tile 1024 -o out.png
  brushwork stylize day.jpg --method wct2 --style dusk.jpg -o dusk_look.png   # photorealistic
  brushwork stylize day.jpg --method photowct --style dusk.jpg --smooth -o out.png
  brushwork stylize day.jpg --method wct2 --style dusk.jpg \
            --content-mask day_seg.png --style-mask dusk_seg.png -o out.png   # sky to sky

--method adain without --model uses the published AdaIN weights (downloaded on first use, or
--weights: a folder with vgg_normalised.pth and decoder.pth, or the decoder file).
--preserve-color: luminance keeps the content's colours for every method; histogram and
mean-cov match the style's colours to the content first (AdaIN, WCT) or match the output's
colours to the content (Johnson, whose style is in its weights).
--method wct2 / photowct use their published weights (downloaded on first use, or --weights:
the folder or file); --smooth (exact, or fast) and the label maps are for these two.
"""


#: One line for ``brushwork --help``.
HELP = "stylise images with a feed-forward network (Johnson, AdaIN, WCT, WCT², PhotoWCT, ONNX)"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights", **stylize_controlnet.WEIGHT_FLAGS}

#: The photorealistic ``--method`` values (brushwork.transfer.stylize.PHOTOREAL_METHODS).
PHOTOREAL = ("wct2", "photowct")

#: Largest relative difference of aspect ratio between a mask and the content.
MASK_ASPECT_TOLERANCE = 0.02


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stylize",
        help=HELP,
        description="Stylise an image or a folder of images with a feed-forward model.",
        epilog=EPILOG + stylize_controlnet.EPILOG + stylize_diffusion.EPILOG,
    )
    p.add_argument("input", help="image file or folder of images")
    options.add_output(p, what="output image, or folder for a folder")
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="model file (.safetensors/.onnx); diffusion methods: Hub id or folder",
    )
    p.add_argument(
        "--method",
        choices=(
            "johnson",
            "adain",
            "wct",
            *PHOTOREAL,
            *stylize_controlnet.METHODS,
            *stylize_diffusion.METHODS,
        ),
        default=None,
    )
    options.add_weights(
        p,
        what="published AdaIN/WCT²/PhotoWCT files (folder or file) or WCT decoders, no --model",
    )
    options.add_styles(p, what="style image(s) for AdaIN/WCT")
    p.add_argument(
        "--style-size", type=options.count(1), default=512, metavar="N", help="style long side"
    )
    p.add_argument(
        "--alpha", type=options.fraction, default=1.0, help="content–style trade-off (AdaIN/WCT)"
    )
    options.add_preserve_color(p)
    options.add_label_masks(p)
    options.add_smooth(p)
    options.add_size(p, default=None)
    p.add_argument(
        "--tile", type=options.count(16), default=None, help="tile side for large images"
    )
    p.add_argument("--tile-overlap", type=options.count(0), default=64, help="tile overlap")
    options.add_process_size(p)
    options.add_device(p)
    options.add_precision(p, default="fp32", what="network precision")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile a Johnson or AdaIN network: slow first image, faster later ones of "
        "that size",
    )
    options.add_memory_limit(p)
    options.add_quiet(p)
    options.add_regions(p)
    stylize_controlnet.add_arguments(p)
    stylize_diffusion.add_arguments(p)
    return p


def _pairs(args: argparse.Namespace) -> tuple[list[tuple[Path, Path]], Path | None]:
    """(input, output) files, and the output folder to create (folder mode) or ``None``.

    Nothing is created here: the folder is made only after every check passed.
    """
    from brushwork.errors import OutputPathError
    from brushwork.image import check_output_path
    from brushwork.resources import check_folder_writable
    from brushwork.transfer.data import list_images

    source = Path(args.input)
    if source.is_dir():
        files = list_images(source, what="input folder")
        out_dir = Path(args.output)
        if out_dir.suffix:
            raise OutputPathError(
                f"input {source} is a folder, so --output must be a folder, got '{out_dir}'"
            )
        check_folder_writable(out_dir)
        pairs = [(f, out_dir / f.relative_to(source).with_suffix(".png")) for f in files]
        for given, target in pairs:
            if target.exists() and target.resolve() == given.resolve():
                raise OutputPathError(
                    f"output '{target}' would overwrite the input '{given}'; "
                    "choose another output folder"
                )
        return pairs, out_dir
    labels = [m for m in (args.content_mask, args.style_mask) if m]
    inputs = [source, *(args.style or []), *(args.mask or []), *labels]
    return [(source, check_output_path(args.output, inputs=inputs))], None


def _image_sizes(pairs: list[tuple[Path, Path]], first) -> list[tuple[int, int]]:
    """(height, width) of every input: the loaded first image, the others' headers."""
    from PIL import Image

    sizes = [tuple(first.shape[-2:])]
    for path, _target in pairs[1:]:
        try:
            with Image.open(path) as img:
                sizes.append((img.height, img.width))
        except (OSError, ValueError):
            continue  # load_image reports it when its turn comes
    return sizes


def _scaled(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    height, width = size
    if not long_side:
        return height, width
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _masks(args: argparse.Namespace, styles, sizes: list[tuple[int, int]]):
    """The ``--mask`` images stacked as (1, S, H, W), checked against styles and inputs."""
    from brushwork.errors import ConfigError
    from brushwork.image import load_mask, resize_to

    if args.mask is None:
        return None
    if not styles or len(args.mask) != len(styles):
        raise ConfigError(
            f"{len(args.mask)} mask(s) given for {len(styles or [])} style image(s): --mask "
            "needs one mask per --style image"
        )
    import torch

    loaded = []
    for path in args.mask:
        mask = load_mask(path)
        mask_height, mask_width = mask.shape[-2:]
        for height, width in sizes:
            ratio = width / height
            if abs(mask_width / mask_height - ratio) > MASK_ASPECT_TOLERANCE * ratio:
                raise ConfigError(
                    f"mask {path} is {mask_width}×{mask_height} but the input image is "
                    f"{width}×{height}; a mask must have the input's aspect ratio"
                )
        loaded.append(mask)
    height, width = loaded[0].shape[-2:]
    return torch.cat([resize_to(m, height, width) for m in loaded])[None]


def run(args: argparse.Namespace) -> int:
    from brushwork.image import load_image
    from brushwork.resources import check_memory

    if args.method in stylize_controlnet.METHODS:
        return stylize_controlnet.run(args)
    if args.method in stylize_diffusion.METHODS:
        return stylize_diffusion.run(args)
    _refuse_diffusion_flags(args)
    from brushwork.cli.regions import read_region_flags

    regions = read_region_flags(args)
    args.mask = regions.plain_masks or None
    if regions.wanted:
        return _run_regional(args, regions)
    pairs, out_dir = _pairs(args)
    first = load_image(pairs[0][0])
    styles = [load_image(s) for s in args.style] if args.style else None
    sizes = _image_sizes(pairs, first)
    masks = _masks(args, styles, sizes)
    labels = _label_maps(args, pairs, first, styles)
    _check_memory(args, sizes, styles, check_memory)
    from brushwork.transfer.stylize import load_stylizer

    stylizer = load_stylizer(
        args.model,
        method=args.method,
        styles=styles,
        style_weights=args.style_weights,
        alpha=args.alpha,
        preserve_color=args.preserve_color,
        device=args.device,
        masks=masks,
        precision=args.precision,
        weights=args.weights,
        style_size=args.style_size,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        compile=args.compile,
        labels=labels,
        smooth=args.smooth,
        process_size=args.process_size,
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    _stylize_all(args, stylizer, pairs, first)
    return 0


def _refuse_diffusion_flags(args: argparse.Namespace) -> None:
    """The diffusion methods' flags, given to a feed-forward method, are an error."""
    from brushwork.errors import ConfigError

    for flag, value in (
        ("--lora", getattr(args, "lora", None)),
        ("--prompt", getattr(args, "prompt", None)),
        ("--negative-prompt", getattr(args, "negative_prompt", None)),
        ("--steps", getattr(args, "steps", None)),
        ("--guidance-scale", getattr(args, "guidance_scale", None)),
    ):
        if value is not None:
            raise ConfigError(
                f"{flag} is for the diffusion methods (--method styleid or controlnet), not "
                f"for {args.method or 'a feed-forward model'}"
            )


def _label_maps(args: argparse.Namespace, pairs, first, styles):
    """``--content-mask``/``--style-mask`` as LabelMaps, checked before any loading."""
    from brushwork.errors import ConfigError

    photoreal = args.method in PHOTOREAL
    if args.smooth and not photoreal:
        raise ConfigError("--smooth is for --method wct2 or photowct")
    if photoreal and len(styles or []) != 1:
        raise ConfigError(
            f"--method {args.method} takes one --style IMAGE, got {len(styles or [])}"
        )
    given = (args.content_mask is not None, args.style_mask is not None)
    if not any(given):
        return None
    if not photoreal:
        raise ConfigError(
            "--content-mask/--style-mask are for --method wct2 or photowct (AdaIN: --mask)"
        )
    if not all(given):
        raise ConfigError("give both --content-mask and --style-mask (one label map each)")
    if len(pairs) > 1 or Path(args.input).is_dir():
        raise ConfigError("--content-mask labels one content image; the input is a folder")
    from brushwork.transfer.regions import load_label_maps

    return load_label_maps(
        args.content_mask,
        args.style_mask,
        content_size=tuple(first.shape[-2:]),
        style_size=tuple(styles[0].shape[-2:]),
    )


def _check_memory(args, sizes, styles, check_memory) -> None:
    from brushwork.transfer.stylize import estimate_memory

    largest = max((_scaled(size, args.size) for size in sizes), key=lambda s: s[0] * s[1])
    style_sizes = [_scaled(tuple(s.shape[-2:]), args.style_size) for s in styles or []]
    need = estimate_memory(
        args.method,
        largest,
        style_sizes=style_sizes,
        tile=args.tile,
        dtype_bytes=2 if args.precision in ("bf16", "fp16") else 4,
        smooth=args.smooth,
    )
    what = f"stylising a {largest[1]}×{largest[0]} image"
    check_memory(need, _device(args.device), what=what, limit_gib=args.memory_limit)


def _device(name: str):
    from brushwork.devices import resolve_device

    return resolve_device(name)


def _stylize_all(args, stylizer, pairs: list[tuple[Path, Path]], first) -> None:
    import time

    from brushwork.image import load_image, resize_long_side, save_image

    for index, (source, target) in enumerate(pairs):
        image = first if index == 0 else load_image(source)
        if args.size:
            image = resize_long_side(image, args.size)
        began = time.perf_counter()
        out = stylizer(image[None])[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(out, target)
        if not args.quiet:
            print(f"saved {target} ({time.perf_counter() - began:.2f} s)", file=sys.stderr)


#: The feed-forward methods that take --region (brushwork.regional.apply).
REGIONAL_METHODS = ("adain", "wct", *PHOTOREAL)


def _run_regional(args: argparse.Namespace, regions) -> int:
    """``--region``: a style per region of one image (brushwork.regional.apply)."""
    import time

    from brushwork.cli.regions import regions_for_image
    from brushwork.errors import ConfigError
    from brushwork.image import check_output_path, load_image, resize_long_side, save_image
    from brushwork.regional.apply import regional_stylize
    from brushwork.resources import check_memory
    from brushwork.transfer.stylize import load_stylizer, model_method

    method = model_method(args.model, args.method)
    if method not in REGIONAL_METHODS:
        raise ConfigError(
            f"--region is for --method {', '.join(REGIONAL_METHODS)} (or their model files), "
            f"not {method or 'a Johnson model'}"
        )
    if Path(args.input).is_dir():
        raise ConfigError("--region maps the words of one image; the input is a folder")
    if args.content_mask or args.style_mask or args.tile:
        raise ConfigError("--region cannot be combined with --content-mask/--style-mask/--tile")
    image = load_image(args.input)
    output = check_output_path(args.output, inputs=[args.input, *regions.inputs])
    styles = list(regions.styles.values())
    if args.smooth and method not in PHOTOREAL:
        raise ConfigError("--smooth is for --method wct2 or photowct")
    _check_memory(args, [tuple(image.shape[-2:])], styles, check_memory)
    masks = regions_for_image(args, regions, image)
    if args.size:
        image = resize_long_side(image, args.size)

    def make_stylizer(style_images, style_masks):
        return load_stylizer(
            args.model, method=method, styles=style_images, alpha=args.alpha,
            preserve_color=args.preserve_color, device=args.device, masks=style_masks,
            precision=args.precision, weights=args.weights, style_size=args.style_size,
            smooth=args.smooth,
        )  # fmt: skip

    began = time.perf_counter()
    out = regional_stylize(image, regions.styles, masks, make_stylizer, method=method)
    save_image(out, output)
    if not args.quiet:
        print(f"saved {output} ({time.perf_counter() - began:.2f} s)", file=sys.stderr)
    return 0
