"""``brushwork train johnson|adain|wct``: train feed-forward style transfer networks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brushwork.cli import options

EPILOG = """examples:
  brushwork train johnson --style starry.jpg --content-dir coco/train2014 -o starry.safetensors
  brushwork train adain --content-dir coco/ --style-dir wikiart/ -o adain.safetensors
  brushwork train wct --content-dir coco/ -o wct.safetensors
  brushwork train johnson ... --resume starry.safetensors.ckpt      # continue a run

A resumable checkpoint is written to OUTPUT.ckpt every --checkpoint-every steps.
--weights PATH: the loss network's weights (Johnson: VGG-16 in torchvision's layout;
AdaIN/WCT: the published vgg_normalised.pth); by default the cache, downloaded on first use.
"""


#: One line for ``brushwork --help``.
HELP = "train a feed-forward network (Johnson, AdaIN, WCT decoders)"

#: The option that gives each weight file this command uses (for missing-weights hints).
WEIGHT_FLAGS = {"*": "--weights"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from brushwork.cli.main import ArgumentParser
    from brushwork.transfer.adain import AdaINSettings
    from brushwork.transfer.johnson import ARCHES, JohnsonConfig, JohnsonSettings
    from brushwork.transfer.wct import WCTSettings

    p = subparsers.add_parser(
        "train",
        help=HELP,
        description="Train a feed-forward style transfer network.",
        epilog=EPILOG,
    )
    methods = p.add_subparsers(dest="method", metavar="METHOD", parser_class=ArgumentParser)
    methods.required = True

    def common(sub: argparse.ArgumentParser, d, weights: str, old_weights: str) -> None:
        options.add_output(sub, what="model file (.safetensors)")
        options.add_steps(sub, default=getattr(d, "steps", None), what="optimiser steps")
        sub.add_argument("--batch-size", type=options.count(1), default=d.batch_size, metavar="N")
        sub.add_argument(
            "--learning-rate",
            "--lr",
            dest="learning_rate",
            type=options.positive_float,
            default=d.learning_rate,
            help="Adam learning rate",
        )
        sub.add_argument(
            "--crop-size",
            type=options.count(16),
            default=d.image_size,
            metavar="N",
            help="side of the square training crops",
        )
        options.add_deprecated(
            sub, "--image-size", dest="crop_size", new="--crop-size", type=options.count(16)
        )
        sub.add_argument(
            "--checkpoint-every", type=options.count(1), default=d.checkpoint_every, metavar="N"
        )
        sub.add_argument("--resume", default=None, metavar="CKPT", help="checkpoint to resume")
        options.add_weights(sub, what=weights)
        options.add_deprecated(sub, old_weights, dest="weights", new="--weights")
        options.add_seed(sub, default=d.seed)
        options.add_device(sub)
        options.add_memory_limit(sub)
        options.add_quiet(sub)
        sub.set_defaults(_parser=sub)

    j, jc = JohnsonSettings(), JohnsonConfig()
    sub = methods.add_parser("johnson", help="one network per style (Johnson et al. 2016)")
    options.add_styles(sub, required=True, what="style image (one)", weights=False, several=False)
    sub.add_argument("--content-dir", required=True, help="folder of content images (MS-COCO)")
    common(sub, j, "VGG-16 loss network (torchvision layout)", "--vgg-weights")
    sub.add_argument(
        "--epochs", type=options.count(1), default=j.epochs, help="used when --steps is not given"
    )
    sub.add_argument("--content-weight", type=options.non_negative_float, default=j.content_weight)
    sub.add_argument("--style-weight", type=options.non_negative_float, default=j.style_weight)
    sub.add_argument("--tv-weight", type=options.non_negative_float, default=j.tv_weight)
    sub.add_argument(
        "--style-size",
        type=options.count(16),
        default=None,
        help="style long side (default: as is)",
    )
    sub.add_argument(
        "--arch",
        choices=ARCHES,
        default="standard",
        help="network shape: standard (Johnson's, 1.7 M parameters) or light (32 channels "
        "throughout, 0.12 M; several times faster); stored in the model file",
    )
    sub.add_argument(
        "--channels",
        type=options.count(1),
        default=None,
        help=f"width of the first layer (default: the arch's, standard {jc.channels})",
    )
    sub.add_argument(
        "--residual-blocks",
        type=options.count(1),
        default=None,
        help=f"residual blocks (default: the arch's, standard {jc.residual_blocks})",
    )
    sub.add_argument(
        "--separable",
        action="store_true",
        help="depthwise-separable residual blocks (fewer parameters; faster in onnxruntime)",
    )

    a = AdaINSettings()
    sub = methods.add_parser("adain", help="arbitrary style decoder (Huang & Belongie 2017)")
    sub.add_argument("--content-dir", required=True, help="folder of content images (MS-COCO)")
    sub.add_argument("--style-dir", required=True, help="folder of style images (WikiArt)")
    common(sub, a, "normalised VGG-19 encoder (vgg_normalised.pth)", "--encoder-weights")
    sub.add_argument(
        "--resize", type=options.count(16), default=a.resize, help="shorter side before cropping"
    )
    sub.add_argument("--lr-decay", type=options.non_negative_float, default=a.lr_decay)
    sub.add_argument("--style-weight", type=options.non_negative_float, default=a.style_weight)
    sub.add_argument("--content-weight", type=options.non_negative_float, default=a.content_weight)

    w = WCTSettings()
    sub = methods.add_parser("wct", help="WCT reconstruction decoders (Li et al. 2017)")
    sub.add_argument("--content-dir", required=True, help="folder of training images")
    common(sub, w, "normalised VGG-19 encoder (vgg_normalised.pth)", "--encoder-weights")
    sub.add_argument(
        "--resize", type=options.count(16), default=w.resize, help="shorter side before cropping"
    )
    sub.add_argument("--levels", default="5,4,3,2,1", help="decoder levels (relu{k}_1)")
    sub.add_argument("--feature-weight", type=options.non_negative_float, default=w.feature_weight)
    return p


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import OutputPathError
    from brushwork.resources import probe_writable
    from brushwork.transfer import modelfile

    output = Path(args.output)
    if output.suffix.lower() != ".safetensors":
        raise OutputPathError(f"the model file must end in .safetensors, got '{output}'")
    if not output.parent.is_dir():
        raise OutputPathError(f"folder {output.parent} does not exist; create it first")
    if output.is_dir():
        raise OutputPathError(f"the model file {output} is a folder")
    probe_writable(output.parent, "model file")
    from brushwork.devices import resolve_device
    from brushwork.resources import check_memory
    from brushwork.transfer.training import estimate_training_memory

    check_memory(
        estimate_training_memory(args.crop_size, args.batch_size),
        resolve_device(args.device),
        what=f"training on {args.crop_size} px crops in batches of {args.batch_size}",
        limit_gib=args.memory_limit,
    )
    checkpoint = output.with_name(output.name + ".ckpt")
    style = _one_style(args) if args.method == "johnson" else None

    with _progress(args) as callback:
        if args.method == "johnson":
            from brushwork.transfer.johnson import JohnsonConfig, JohnsonSettings, train_johnson

            settings = JohnsonSettings(
                image_size=args.crop_size,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                epochs=args.epochs,
                steps=args.steps,
                content_weight=args.content_weight,
                style_weight=args.style_weight,
                tv_weight=args.tv_weight,
                style_size=args.style_size,
                checkpoint_every=args.checkpoint_every,
                seed=args.seed,
                config=JohnsonConfig.preset(args.arch, **_shape_overrides(args)),
            )
            model, result = train_johnson(
                style,
                content_dir=args.content_dir,
                settings=settings,
                vgg_weights=args.weights,
                device=args.device,
                checkpoint_path=checkpoint,
                resume=args.resume,
                callback=callback,
            )
            digest = modelfile.file_sha256(args.style[0])
        elif args.method == "adain":
            from brushwork.transfer.adain import (
                AdaINModel,
                AdaINSettings,
                load_published_encoder,
                train_adain,
            )

            settings = AdaINSettings(
                resize=args.resize,
                image_size=args.crop_size,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                lr_decay=args.lr_decay,
                steps=args.steps,
                content_weight=args.content_weight,
                style_weight=args.style_weight,
                checkpoint_every=args.checkpoint_every,
                seed=args.seed,
            )
            settings.validate()
            base = AdaINModel()
            base.encoder = load_published_encoder(path=args.weights)
            base.encoder.requires_grad_(False)
            model, result = train_adain(
                content_dir=args.content_dir,
                style_dir=args.style_dir,
                settings=settings,
                model=base,
                device=args.device,
                checkpoint_path=checkpoint,
                resume=args.resume,
                callback=callback,
            )
            digest = None
        else:
            from brushwork.transfer.adain import EncoderConfig, load_published_encoder
            from brushwork.transfer.wct import WCTConfig, WCTModel, WCTSettings, train_wct

            settings = WCTSettings(
                resize=args.resize,
                image_size=args.crop_size,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                steps=args.steps,
                feature_weight=args.feature_weight,
                checkpoint_every=args.checkpoint_every,
                seed=args.seed,
            )
            settings.validate()
            levels = tuple(int(k) for k in args.levels.split(",") if k.strip())
            if not levels:
                from brushwork.errors import ConfigError

                raise ConfigError("--levels needs at least one level, e.g. 5,4,3,2,1")
            encoder = EncoderConfig(level=max(levels))
            base = WCTModel(WCTConfig(encoder=encoder, levels=levels))
            base.encoder = load_published_encoder(base.config.encoder, path=args.weights)
            base.encoder.requires_grad_(False)
            model, result = train_wct(
                image_dir=args.content_dir,
                settings=settings,
                model=base,
                device=args.device,
                checkpoint_path=checkpoint,
                resume=args.resume,
                callback=callback,
            )
            digest = None
    modelfile.save_model(output, model.cpu(), settings=settings.to_json(), style_sha256=digest)
    if not args.quiet:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
        print(f"saved {output} after {result.steps} steps ({losses})", file=sys.stderr)
    return 0


def _shape_overrides(args: argparse.Namespace) -> dict:
    """``--channels``, ``--residual-blocks``, ``--separable`` where given (else the preset's)."""
    names = ("channels", "residual_blocks")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return {**given, "separable": True} if args.separable else given


def _one_style(args: argparse.Namespace):
    """The one style image of a Johnson network, loaded (a missing file fails here)."""
    from brushwork.errors import ConfigError
    from brushwork.image import load_image

    if len(args.style) != 1:
        raise ConfigError(
            f"a Johnson network learns one style; {len(args.style)} --style images were given"
        )
    return load_image(args.style[0])


class _progress:
    """Context manager yielding the training callback (a rich bar, or nothing when quiet)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.enabled = not args.quiet
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from brushwork.cli.progress import step_progress

        self.bar = step_progress(enabled=True)
        self.bar.__enter__()
        task = self.bar.add_task("train", total=None, loss="–")

        def callback(info) -> None:
            parts = " ".join(f"{k} {v:.3g}" for k, v in info.losses.items())
            saved = " · checkpoint saved" if info.checkpoint else ""
            self.bar.update(
                task,
                total=info.total_steps,
                completed=info.step,
                loss=f"{parts} · {info.images_per_second:.1f} img/s{saved}",
            )

        return callback

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
