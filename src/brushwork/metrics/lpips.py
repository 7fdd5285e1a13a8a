"""LPIPS perceptual distance (Zhang et al. 2018), v0.1, AlexNet and VGG-16 variants.

The trunk's activations at five layers are unit-normalised along channels,
their squared differences are weighted per channel by the learned linear layers
(``lin0 … lin4``, published in richzhang/PerceptualSimilarity as
``weights/v0.1/alex.pth`` / ``vgg.pth``), averaged over space and summed over
layers. LPIPS's input scaling layer (shift −0.030, −0.088, −0.188; scale 0.458,
0.448, 0.450 on [−1, 1] input) is exactly ImageNet mean/std normalisation of
[0, 1] input, which the trunks here apply.

Trunks are torchvision's ``features`` in its layout: AlexNet (``alexnet-owt-7be5be79.pth``;
relu1…relu5) and VGG-16 (``vgg16-397923af.pth``, via :class:`brushwork.encoders.VGGEncoder`;
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).

Example::

    metric = load_lpips("alex")
    d = metric(result, content)        # (B,), 0 for identical images
"""

from __future__ import annotations

import os

import torch
from torch import nn

from brushwork.encoders import IMAGENET_MEAN, IMAGENET_STD, VGGEncoder, load_features
from brushwork.errors import ConfigError, ImageError, WeightsError

__all__ = [
    "LPIPS",
    "LPIPS_NETS",
    "AlexNetFeatures",
    "gray_lpips",
    "load_lpips",
    "lpips_distance",
    "luminance",
]

LPIPS_NETS = ("alex", "vgg")
#: Channels of the five compared layers.
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
#: Registry names: linear-layer file and trunk file per net.
LINEAR_WEIGHTS = {"alex": "lpips-alex", "vgg": "lpips-vgg"}
TRUNK_WEIGHTS = {"alex": "alexnet", "vgg": "vgg16"}
_EPS = 1e-10


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet ``features`` (index for index); returns relu1 … relu5.

    Input (B, 3, H, W) RGB in [0, 1], ImageNet-normalised inside.
    """

    #: Indices of the ReLUs whose outputs LPIPS compares.
    TAPS = (1, 4, 7, 9, 11)

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.arch = "alexnet"
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Five activations (B, C_l, H_l, W_l)."""
        x = (image - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features[: self.TAPS[-1] + 1]):
            x = layer(x)
            if index in self.TAPS:
                out.append(x)
        return out


class _Linear(nn.Module):
    """One LPIPS linear layer, keyed like the published file (``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Index 0 is a Dropout in training; it has no parameters and is a no-op here.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between images in [0, 1].

    Args:
        net: ``"alex"`` or ``"vgg"``.
        trunk: the feature network (random weights unless loaded; see :func:`load_lpips`).
        generator: seeds the random linear weights (non-negative, as trained).
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        trunk: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ConfigError(f"unknown LPIPS network '{net}' (valid: {', '.join(LPIPS_NETS)})")
        self.net = net
        if trunk is None:
            trunk = (
                AlexNetFeatures(generator=generator)
                if net == "alex"
                else VGGEncoder("vgg16", generator=generator)
            )
        self.trunk = trunk
        for i, c in enumerate(CHANNELS[net]):
            layer = _Linear(c)
            nn.init.uniform_(layer.model[1].weight, 0.0, 1.0 / c, generator=generator)
            setattr(self, f"lin{i}", layer)
        self.requires_grad_(False)
        self.eval()

    def linear_state_dict(self) -> dict[str, torch.Tensor]:
        """The linear layers in the published file's layout (``lin0.model.1.weight`` …)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("lin")}

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        if self.net == "alex":
            return self.trunk(image)
        feats = self.trunk(image, VGG_LAYERS)
        return [feats[name] for name in VGG_LAYERS]

    def forward(self, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(B,) LPIPS distance between two (B, 3, H, W) batches in [0, 1]."""
        if image.shape != reference.shape:
            raise ImageError(
                f"LPIPS needs two images of one size; got {tuple(image.shape)} and "
                f"{tuple(reference.shape)}"
            )
        if min(image.shape[-2:]) < 16:
            raise ImageError(
                f"images of {image.shape[-2]}×{image.shape[-1]} px are too small for LPIPS "
                "(at least 16 px a side)"
            )
        both = self._features(torch.cat([image, reference]).float())
        total = torch.zeros(image.shape[0], device=image.device)
        for i, feat in enumerate(both):
            feat = feat.float()
            a, b = feat.chunk(2)
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            weighted = getattr(self, f"lin{i}").model((a - b).pow(2))
            total = total + weighted.mean(dim=(1, 2, 3))
        return total


def lpips_distance(metric: LPIPS, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Functional form: ``metric(image, reference)`` for (C, H, W) or (B, C, H, W) input."""
    if image.dim() == 3:
        return metric(image[None], reference[None])[0]
    return metric(image, reference)


#: ITU-R BT.601 luma weights (torchvision's Grayscale / PIL's ``convert("L")``).
LUMA = (0.299, 0.587, 0.114)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 3, H, W): the BT.601 luma replicated to three channels."""
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def gray_lpips(metric: LPIPS, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) LPIPS of the luminances, StyleID's ``LPIPS_gray`` content distance.

    StyleID's evaluation feeds 1-channel ``Grayscale()`` images to LPIPS, whose input
    scaling broadcasts them to three channels: the same as the luma replicated here.
    """
    return metric(luminance(image.float()), luminance(reference.float()))


def load_lpips(
    net: str = "alex",
    *,
    linear_weights: str | os.PathLike[str] | None = None,
    trunk_weights: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    download: bool = True,
) -> LPIPS:
    """LPIPS with the published linear layers and ImageNet trunk.

    Args:
        net: ``"alex"`` (the usual choice, and ArtFID's) or ``"vgg"``.
        linear_weights: LPIPS ``alex.pth`` / ``vgg.pth`` (``None``: registry lookup).
        trunk_weights: torchvision ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``.

    Raises:
        WeightsError: a file is missing, fails its hash check, or has the wrong layout.
    """
    from brushwork import weights as store

    if net not in LPIPS_NETS:
        raise ConfigError(f"unknown LPIPS network '{net}' (valid: {', '.join(LPIPS_NETS)})")
    trunk_name = TRUNK_WEIGHTS[net]
    published = trunk_weights is None or (
        os.path.basename(str(trunk_weights)) == store.get(trunk_name).filename
    )
    trunk_state = store.load_state_dict(
        trunk_name, path=trunk_weights, download=download, verify_hash=published
    )
    trunk: nn.Module
    if net == "alex":
        trunk = AlexNetFeatures()
        _load_alexnet(trunk, trunk_state, source=str(trunk_weights or trunk_name))
    else:
        trunk = VGGEncoder("vgg16")
        load_features(trunk, trunk_state, source=str(trunk_weights or trunk_name))
    metric = LPIPS(net, trunk=trunk)
    lin_name = LINEAR_WEIGHTS[net]
    published = linear_weights is None or (
        os.path.basename(str(linear_weights)) == store.get(lin_name).filename
    )
    lin_state = store.load_state_dict(
        lin_name, path=linear_weights, download=download, verify_hash=published
    )
    _load_linear(metric, lin_state, source=str(linear_weights or lin_name))
    return metric.to(device) if device is not None else metric


def _check_state(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], *, source: str, what: str
) -> dict[str, torch.Tensor]:
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
        raise WeightsError(f"{source} does not hold {what}: {shown}")
    return {key: state[key].float() for key in expected}


def _load_alexnet(trunk: AlexNetFeatures, state: dict[str, torch.Tensor], *, source: str) -> None:
    expected = trunk.state_dict()
    trunk.load_state_dict(
        _check_state(expected, state, source=source, what="AlexNet weights in torchvision's layout")
    )


def _load_linear(metric: LPIPS, state: dict[str, torch.Tensor], *, source: str) -> None:
    expected = metric.linear_state_dict()
    chosen = _check_state(
        expected, state, source=source, what=f"LPIPS v0.1 linear layers for '{metric.net}'"
    )
    metric.load_state_dict(chosen, strict=False)
