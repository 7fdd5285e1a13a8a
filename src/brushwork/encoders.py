"""VGG feature encoders with named layers.

The networks match torchvision's ``vgg16`` / ``vgg19`` ``features`` part index
for index, so the published ImageNet weight files load directly (keys
``features.<i>.weight`` / ``features.<i>.bias``). Layers are named the way the
style-transfer literature names them: ``conv1_1``, ``relu1_1``, …, ``pool1``, …

Example::

    encoder = load_vgg_encoder("vgg19")                 # pretrained, downloaded on first use
    feats = encoder(image, ["relu1_1", "relu4_2"])      # image: (B, 3, H, W) RGB in [0, 1]
    feats["relu4_2"].shape                               # (B, 512, H/8, W/8)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from brushwork.errors import ConfigError, WeightsError

#: Convolution widths per block (blocks are separated by a pooling layer).
VGG_BLOCKS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(arch: str = "vgg19") -> list[str]:
    """Names of the ``features`` layers of ``arch`` in order (index = torchvision index)."""
    blocks = _blocks(arch)
    names = []
    for block, widths in enumerate(blocks, start=1):
        for conv in range(1, len(widths) + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return names


def _blocks(arch: str) -> tuple[tuple[int, ...], ...]:
    if arch not in VGG_BLOCKS:
        raise ConfigError(unknown_name_message("encoder", arch, VGG_BLOCKS))
    return VGG_BLOCKS[arch]


def unknown_name_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """ "unknown KIND 'NAME'; did you mean 'X'? (valid: ...)" for error messages."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'{hint} (valid: {', '.join(valid)})"


class VGGEncoder(nn.Module):
    """A frozen VGG-16/19 that returns the activations of named layers.

    ImageNet normalisation happens inside: inputs are RGB in [0, 1]. The forward
    pass stops at the deepest requested layer. Weights are randomly initialised
    as torchvision does (Kaiming normal, fan-out) until a state dict is loaded;
    use :func:`load_vgg_encoder` for the pretrained network.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``.
        pooling: ``"max"`` (standard) or ``"avg"`` (Gatys et al. 2016).
        generator: random generator for the initial weights (for reproducible
            random-weight networks in tests and benchmarks).
    """

    def __init__(
        self,
        arch: str = "vgg19",
        *,
        pooling: str = "max",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ConfigError(unknown_name_message("pooling", pooling, ("max", "avg")))
        self.arch = arch
        self.pooling = pooling
        self.layer_names = vgg_layer_names(arch)
        self.layer_index = {name: i for i, name in enumerate(self.layer_names)}
        layers: list[nn.Module] = []
        channels = 3
        for widths in _blocks(arch):
            for width in widths:
                conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
                nn.init.kaiming_normal_(
                    conv.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                nn.init.zeros_(conv.bias)
                # Not in-place: a requested conv output must survive the ReLU after it.
                layers += [conv, nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGEncoder:
        """The encoder is always in eval mode (it is a fixed feature extractor)."""
        return super().train(False)

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        """Return ``layers`` as a list, raising ConfigError naming any unknown layer."""
        layers = list(layers)
        for name in layers:
            if name not in self.layer_index:
                raise ConfigError(
                    unknown_name_message(f"{self.arch} layer", name, self.layer_names)
                )
        return layers

    def min_input_size(self, layers: Iterable[str]) -> int:
        """Smallest height/width for which every layer in ``layers`` is at least 1 px."""
        deepest = max(self.layer_index[name] for name in self.check_layers(layers))
        pools = sum(1 for name in self.layer_names[:deepest] if name.startswith("pool"))
        return 2**pools

    def forward(
        self, image: torch.Tensor, layers: Sequence[str], *, exact_input: bool = False
    ) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for ``image``.

        Args:
            image: (B, 3, H, W) RGB in [0, 1].
            layers: layer names such as ``"relu4_2"``; the network runs only up
                to the deepest of them.
            exact_input: under autocast, run the first convolution in float32 all the
                same. Its input is the image itself, which bf16 rounds to steps of
                1/128–1/512 of the normalised range: too coarse for an optimiser that
                moves pixels by less (Gatys at 512 px stalled at 4× the fp32 loss).

        Returns:
            dict layer name -> (B, C, H', W') activation.
        """
        wanted = set(self.check_layers(layers))
        if not wanted:
            return {}
        deepest = max(self.layer_index[name] for name in wanted)
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs = {}
        for index in range(deepest + 1):
            if index == 0 and exact_input and torch.is_autocast_enabled(x.device.type):
                with torch.autocast(x.device.type, enabled=False):
                    x = self.features[0](x.float())
            else:
                x = self.features[index](x)
            name = self.layer_names[index]
            if name in wanted:
                outputs[name] = x
        return outputs


def load_vgg_encoder(
    arch: str = "vgg19",
    *,
    weights: str | os.PathLike | None = None,
    pooling: str = "max",
    device: torch.device | str | None = None,
    download: bool = True,
    progress: bool = True,
) -> VGGEncoder:
    """A VGG encoder with the published ImageNet weights.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``.
        weights: path to a weight file in torchvision's layout; ``None`` finds
            the published file (see :mod:`brushwork.weights`), downloading it
            on first use unless ``download`` is false. Files under the published
            name are hash-checked; others only for their keys and shapes.
        pooling: ``"max"`` or ``"avg"``.
        device: where to put the network.

    Raises:
        WeightsError: the file is missing, fails its hash check, or does not
            hold VGG weights of this architecture.
    """
    from brushwork import weights as weight_store

    encoder = VGGEncoder(arch, pooling=pooling)
    # A file under the published name must be the published file; a file of the
    # user's own (converted, fine-tuned) is only checked for the architecture.
    published = weights is None or Path(weights).name == weight_store.get(arch).filename
    state = weight_store.load_state_dict(
        arch, path=weights, download=download, progress=progress, verify_hash=published
    )
    load_features(encoder, state, source=str(weights or arch))
    return encoder.to(device) if device is not None else encoder


def load_features(encoder: VGGEncoder, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Copy the ``features.*`` tensors of a torchvision-layout state dict into ``encoder``."""
    expected = encoder.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in state:
            problems.append(f"missing {key}")
        elif tuple(state[key].shape) != tuple(tensor.shape):
            problems.append(
                f"{key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; … ({len(problems)} problems)" if len(problems) > 3 else ""
        )
        raise WeightsError(
            f"{source} does not hold {encoder.arch.upper()} weights "
            f"in torchvision's layout: {shown}"
        )
    features = {key: state[key] for key in expected}
    encoder.load_state_dict(features, strict=True)
