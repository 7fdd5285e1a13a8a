"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017).

X. Huang, S. Belongie, *Arbitrary Style Transfer in Real-time with Adaptive
Instance Normalization*, ICCV 2017.

The encoder is VGG-19 up to relu4_1 in the "normalised VGG" layout of the
reference implementations (a 1×1 input convolution, reflection padding, max
pooling with ``ceil_mode``), the decoder its mirror with nearest upsampling.
Both are ``nn.Sequential`` with the reference's layer order, so the published
``vgg_normalised.pth`` and ``decoder.pth`` (naoto0804/pytorch-AdaIN) load key for
key; see :func:`load_published_adain`. The encoder can also be built from
torchvision's VGG-19 (:func:`encoder_from_torchvision`).

Example::

    model = load_published_adain()                       # downloads 94 MiB on first use
    out = model.stylize(content, [style], alpha=0.8)     # (B, 3, H, W) in [0, 1]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.losses import content_loss, mean_std, mean_std_loss, resize_mask
from brushwork.transfer.data import ImageFolder
from brushwork.transfer.training import TrainResult, TrainStep, train_loop

#: Convolutions per VGG-19 block.
VGG19_CONVS = (2, 2, 4, 4, 4)
#: Widths of VGG-19's blocks.
VGG19_WIDTHS = (64, 128, 256, 512, 512)
#: The 1×1 convolution of the normalised VGG maps RGB [0, 1] to the Caffe input:
#: BGR order, scaled to [0, 255], ImageNet mean subtracted.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of a normalised-VGG encoder / mirror decoder pair.

    Attributes:
        level: deepest layer ``relu{level}_1`` (1 … 5); 4 for AdaIN.
        widths: channels of the five VGG blocks (VGG-19: 64, 128, 256, 512, 512;
            tests use a few channels).
        padding: ``"reflect"`` (the normalised VGG) or ``"zeros"`` (torchvision's).
    """

    level: int = 4
    widths: tuple[int, ...] = VGG19_WIDTHS
    padding: str = "reflect"

    def validate(self) -> None:
        """ConfigError on an impossible level, widths or padding."""
        if not 1 <= self.level <= 5:
            raise ConfigError(f"encoder level must be 1 … 5 (relu1_1 … relu5_1), got {self.level}")
        if len(self.widths) != 5 or any(w < 1 for w in self.widths):
            raise ConfigError(f"encoder widths must be 5 positive numbers, got {self.widths}")
        if self.padding not in ("reflect", "zeros"):
            raise ConfigError(f"padding must be 'reflect' or 'zeros', got {self.padding!r}")

    @property
    def channels(self) -> int:
        """Channels of the deepest feature map."""
        return self.widths[self.level - 1]

    def to_json(self) -> dict:
        """Plain JSON values."""
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data


def _pad(config: EncoderConfig) -> nn.Module:
    return nn.ReflectionPad2d(1) if config.padding == "reflect" else nn.ZeroPad2d(1)


class NormalisedVGG(nn.Sequential):
    """VGG-19 up to ``relu{level}_1`` in the layout of ``vgg_normalised.pth``.

    Index 0 is a 1×1 convolution that turns RGB in [0, 1] into the network's input
    space; then (pad, conv 3×3, ReLU) per convolution and max pooling (ceil mode)
    between blocks. :attr:`taps` maps ``"relu{k}_1"`` to its index.

    Input (B, 3, H, W) RGB in [0, 1]; :meth:`features` returns the relu{k}_1 maps.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        config = config or EncoderConfig()
        config.validate()
        layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
        taps: dict[str, int] = {}
        cin = 3
        for block in range(config.level):
            width = config.widths[block]
            if block > 0:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            convs = 1 if block == config.level - 1 else VGG19_CONVS[block]
            for k in range(convs):
                layers += [_pad(config), nn.Conv2d(cin, width, 3), nn.ReLU(inplace=True)]
                cin = width
                if k == 0:
                    taps[f"relu{block + 1}_1"] = len(layers) - 1
        super().__init__(*layers)
        self.config = config
        self.taps = taps
        _set_caffe_input(self[0])

    def features(
        self, images: torch.Tensor, levels: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """relu{k}_1 maps for k in ``levels`` (default 1 … level), in that order.

        Args:
            images: (B, 3, H, W) RGB in [0, 1].

        Returns:
            list of (B, C_k, H / 2^(k-1), W / 2^(k-1)) maps (rounded up).
        """
        wanted = list(levels or range(1, self.config.level + 1))
        stops = {self.taps[f"relu{k}_1"]: k for k in wanted}
        last = max(stops)
        found: dict[int, torch.Tensor] = {}
        x = images
        for index, layer in enumerate(self):
            x = layer(x)
            if index in stops:
                found[stops[index]] = x
            if index == last:
                break
        return [found[k] for k in wanted]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> relu{level}_1 features."""
        return super().forward(images)


def _set_caffe_input(conv: nn.Conv2d) -> None:
    """The reference's 1×1 input conv: RGB [0, 1] -> BGR [0, 255] minus the Caffe mean."""
    with torch.no_grad():
        conv.weight.zero_()
        for out_c, in_c in ((0, 2), (1, 1), (2, 0)):
            conv.weight[out_c, in_c, 0, 0] = 255.0
        conv.bias.copy_(-torch.tensor(CAFFE_MEAN_BGR))


class MirrorDecoder(nn.Sequential):
    """Decoder from relu{level}_1 back to RGB, mirroring :class:`NormalisedVGG`.

    Layer order as the reference decoder (pad, conv, ReLU; nearest ×2 upsampling
    where the encoder pooled; the last conv has no ReLU), so for level 4 the keys
    equal those of the published ``decoder.pth``. Output is on the [0, 1] scale,
    unclamped.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        config = config or EncoderConfig()
        config.validate()
        layers: list[nn.Module] = []
        cin = config.channels
        for block in range(config.level - 1, -1, -1):
            convs = 1 if block == config.level - 1 else VGG19_CONVS[block]
            width = config.widths[block]
            for k in range(convs):
                last_of_block = k == convs - 1
                cout = (config.widths[block - 1] if block > 0 else 3) if last_of_block else width
                layers += [_pad(config), nn.Conv2d(cin, cout, 3)]
                cin = cout
                if not (block == 0 and last_of_block):
                    layers.append(nn.ReLU(inplace=True))
            if block > 0:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        super().__init__(*layers)
        self.config = config


def adain(content: torch.Tensor, style: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN(x, y) = σ(y) (x − μ(x)) / σ(x) + μ(y), per sample and channel.

    Args:
        content: (B, C, H, W) features.
        style: (B or 1, C, H', W') features.

    Returns:
        (B, C, H, W) with the style's channel means and standard deviations
        (float32, biased std with ``eps`` as in :func:`brushwork.losses.mean_std`).
    """
    c_mean, c_std = mean_std(content, eps)
    s_mean, s_std = mean_std(style, eps)
    normalised = (content.float() - c_mean[..., None, None]) / c_std[..., None, None]
    return normalised * s_std[..., None, None] + s_mean[..., None, None]


def masked_adain(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    masks: torch.Tensor,
    *,
    eps: float = 1e-5,
) -> torch.Tensor:
    """AdaIN with a different style per region.

    Each region's content statistics are computed inside its (soft) mask, the
    region is normalised with them and given style ``i``'s statistics; the
    results are blended with the masks (normalised to sum to 1; pixels outside
    every mask keep the content features).

    Args:
        content: (B, C, H, W) features.
        styles: one (1 or B, C, H', W') feature map per region.
        masks: (B or 1, R, H'', W'') masks in [0, 1], R = len(styles); resized to (H, W).

    Returns:
        (B, C, H, W) float32.
    """
    if masks.shape[1] != len(styles):
        raise ConfigError(f"got {len(styles)} styles but {masks.shape[1]} masks; give one each")
    b, _c, h, w = content.shape
    m = resize_mask(masks.float(), (h, w)).expand(b, -1, -1, -1)
    total = m.sum(dim=1, keepdim=True)
    x = content.float()
    out = torch.zeros_like(x)
    for i, style in enumerate(styles):
        mi = m[:, i : i + 1]
        area = mi.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
        mu = (x * mi).sum(dim=(2, 3), keepdim=True) / area
        var = ((x - mu).square() * mi).sum(dim=(2, 3), keepdim=True) / area
        s_mean, s_std = mean_std(style, eps)
        region = (x - mu) / (var + eps).sqrt() * s_std[..., None, None] + s_mean[..., None, None]
        out = out + region * mi
    covered = total.clamp_min(1e-8)
    return torch.where(total > 1e-6, out / covered, x)


@dataclass(frozen=True)
class AdaINConfig:
    """Architecture of an AdaIN model: its encoder/decoder shape (level 4 = relu4_1)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def to_json(self) -> dict:
        """Plain JSON values."""
        return {"encoder": self.encoder.to_json()}

    @staticmethod
    def from_json(data: dict) -> AdaINConfig:
        """Inverse of :meth:`to_json`."""
        enc = dict(data["encoder"])
        enc["widths"] = tuple(enc["widths"])
        return AdaINConfig(EncoderConfig(**enc))


class AdaINModel(nn.Module):
    """Frozen normalised-VGG encoder + trainable mirror decoder."""

    def __init__(self, config: AdaINConfig | None = None) -> None:
        super().__init__()
        self.config = config or AdaINConfig()
        self.encoder = NormalisedVGG(self.config.encoder)
        self.decoder = MirrorDecoder(self.config.encoder)
        self.encoder.requires_grad_(False)

    def style_features(self, style: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) style images -> (B, C, h, w) deepest features."""
        return self.encoder(style)

    def stylize(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        style_weights: Sequence[float] | None = None,
        alpha: float = 1.0,
        masks: torch.Tensor | None = None,
        encoded: bool = False,
    ) -> torch.Tensor:
        """Stylise a batch.

        Args:
            content: (B, 3, H, W) in [0, 1].
            styles: style images, each (1 or B, 3, H', W') in [0, 1]; with
                ``encoded``, their features (1 or B, C, h, w) from :attr:`encoder`.
            style_weights: interpolation weights (normalised to sum 1; default equal).
            alpha: 0 = content reconstruction, 1 = full style.
            masks: (1 or B, len(styles), H, W) regions, one per style (no interpolation).

        Returns:
            (B, 3, H', W') decoder output, unclamped (H', W' = H, W rounded up to 8).
        """
        check_alpha(alpha)
        if not styles:
            raise ConfigError("AdaIN needs at least one style image (--style)")
        feats = self.encoder(content)
        style_feats = list(styles) if encoded else [self.encoder(s) for s in styles]
        if masks is not None:
            target = masked_adain(feats, style_feats, masks)
        else:
            weights = normalise_weights(style_weights, len(style_feats))
            target = sum(w * adain(feats, s) for w, s in zip(weights, style_feats, strict=True))
        mixed = alpha * target + (1 - alpha) * feats.float()
        return self.decoder(mixed.to(feats.dtype))


def check_alpha(alpha: float) -> None:
    """ConfigError unless 0 ≤ alpha ≤ 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")


def normalise_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Style interpolation weights scaled to sum 1 (equal when ``None``)."""
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ConfigError(f"got {count} styles but {len(weights)} style weights; give one each")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"style weights must be ≥ 0 with a positive sum, got {weights}")
    total = sum(weights)
    return [w / total for w in weights]


# --------------------------------------------------------------------------- weights


def load_encoder_state(
    encoder: NormalisedVGG, state: dict[str, torch.Tensor], *, source: str
) -> None:
    """Load a ``vgg_normalised.pth``-layout state dict (extra deeper keys are ignored)."""
    _load_prefix(encoder, state, source=source, what="normalised VGG-19 encoder")


def load_decoder_state(
    decoder: MirrorDecoder, state: dict[str, torch.Tensor], *, source: str
) -> None:
    """Load a ``decoder.pth``-layout state dict (keys ``<index>.weight|bias``)."""
    _load_prefix(decoder, state, source=source, what=f"level-{decoder.config.level} decoder")


def _load_prefix(module: nn.Module, state: dict[str, torch.Tensor], *, source: str, what: str):
    expected = module.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in state:
            problems.append(f"missing {key}")
        elif tuple(state[key].shape) != tuple(tensor.shape):
            problems.append(f"{key} is {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; … ({len(problems)})" if len(problems) > 3 else "")
        raise WeightsError(f"{source} does not hold the weights of a {what}: {shown}")
    module.load_state_dict({k: state[k].float() for k in expected})


def encoder_from_torchvision(
    config: EncoderConfig | None = None,
    *,
    weights: str | os.PathLike | None = None,
    download: bool = True,
) -> NormalisedVGG:
    """A :class:`NormalisedVGG` with torchvision's VGG-19 ImageNet weights.

    The ImageNet normalisation goes into the 1×1 input convolution and the
    padding is zeros (as torchvision's network was trained).
    """
    from brushwork import encoders

    base = config or EncoderConfig()
    config = EncoderConfig(level=base.level, widths=VGG19_WIDTHS, padding="zeros")
    vgg = encoders.load_vgg_encoder("vgg19", weights=weights, download=download, progress=True)
    encoder = NormalisedVGG(config)
    convs = [m for m in vgg.features if isinstance(m, nn.Conv2d)]
    ours = [m for m in encoder if isinstance(m, nn.Conv2d)][1:]
    with torch.no_grad():
        for mine, theirs in zip(ours, convs, strict=False):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        first = encoder[0]
        first.weight.zero_()
        mean, std = torch.tensor(encoders.IMAGENET_MEAN), torch.tensor(encoders.IMAGENET_STD)
        for ch in range(3):
            first.weight[ch, ch, 0, 0] = 1.0 / std[ch]
        first.bias.copy_(-mean / std)
    return encoder


def load_published_encoder(
    config: EncoderConfig | None = None,
    *,
    path: str | os.PathLike | None = None,
    download: bool = True,
) -> NormalisedVGG:
    """The normalised VGG-19 of the AdaIN/WCT authors (``vgg_normalised.pth``)."""
    from brushwork import weights as store

    config = config or EncoderConfig()
    if config.widths != VGG19_WIDTHS or config.padding != "reflect":
        raise ConfigError("the published normalised VGG has VGG-19 widths and reflection padding")
    # A file under the published name must be the published file (hash-checked);
    # a file of the user's own (converted, fine-tuned) is checked for keys and shapes.
    published = path is None or Path(path).name == store.get("adain-vgg-normalised").filename
    state = store.load_state_dict(
        "adain-vgg-normalised", path=path, download=download, verify_hash=published
    )
    encoder = NormalisedVGG(config)
    load_encoder_state(encoder, state, source=str(path or "vgg_normalised.pth"))
    return encoder


def load_published_adain(
    *,
    encoder_path: str | os.PathLike | None = None,
    decoder_path: str | os.PathLike | None = None,
    download: bool = True,
) -> AdaINModel:
    """AdaIN with the published encoder and decoder (naoto0804/pytorch-AdaIN, v0.0.0)."""
    from brushwork import weights as store

    model = AdaINModel()
    model.encoder = load_published_encoder(path=encoder_path, download=download)
    published = (
        decoder_path is None or Path(decoder_path).name == store.get("adain-decoder").filename
    )
    state = store.load_state_dict(
        "adain-decoder", path=decoder_path, download=download, verify_hash=published
    )
    load_decoder_state(model.decoder, state, source=str(decoder_path or "decoder.pth"))
    model.encoder.requires_grad_(False)
    return model.eval()


# --------------------------------------------------------------------------- training


@dataclass
class AdaINSettings:
    """Training settings (defaults: Huang & Belongie 2017 / the reference code).

    Attributes:
        resize: shorter side images are resized to before cropping.
        image_size: side of the random square crops.
        batch_size: content/style pairs per step.
        learning_rate: Adam's initial learning rate.
        lr_decay: lr_t = lr / (1 + lr_decay · t).
        steps: optimiser steps.
        content_weight, style_weight: loss weights (1 and 10).
        checkpoint_every: resumable checkpoint interval.
        seed: seed of the decoder's initial weights and of the batches.
    """

    resize: int = 512
    image_size: int = 256
    batch_size: int = 8
    learning_rate: float = 1e-4
    lr_decay: float = 5e-5
    steps: int = 160_000
    content_weight: float = 1.0
    style_weight: float = 10.0
    checkpoint_every: int = 1000
    seed: int = 0

    def validate(self) -> None:
        """ConfigError for values that cannot work."""
        for name in ("resize", "image_size", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.lr_decay < 0:
            raise ConfigError("learning_rate must be positive and lr_decay 0 or more")
        if self.content_weight < 0 or self.style_weight < 0:
            raise ConfigError("loss weights must be 0 or more")

    def to_json(self) -> dict:
        """Plain JSON values."""
        return asdict(self)


def adain_loss(
    model: AdaINModel, content: torch.Tensor, style: torch.Tensor, settings: AdaINSettings
) -> dict[str, torch.Tensor]:
    """Content loss to the AdaIN target at the deepest layer + style mean/std loss at each level."""
    levels = range(1, model.config.encoder.level + 1)
    with torch.no_grad():
        style_feats = model.encoder.features(style, levels)
        target = adain(model.encoder(content), style_feats[-1])
    output = model.decoder(target)
    out_feats = model.encoder.features(output, levels)
    c = content_loss(out_feats[-1], target)
    s = sum(mean_std_loss(o, t) for o, t in zip(out_feats, style_feats, strict=True))
    parts = {"content": settings.content_weight * c, "style": settings.style_weight * s}
    parts["total"] = parts["content"] + parts["style"]
    return parts


def train_adain(
    *,
    content_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    settings: AdaINSettings | None = None,
    model: AdaINModel | None = None,
    device: str | torch.device = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[TrainStep], None] | None = None,
) -> tuple[AdaINModel, TrainResult]:
    """Train the AdaIN decoder on a content folder and a style folder.

    Args:
        model: encoder + initial decoder; ``None`` uses the published normalised
            VGG-19 and a freshly initialised decoder (seeded).

    Returns:
        The trained model (eval mode) and a :class:`TrainResult`.
    """
    from brushwork.devices import resolve_device
    from brushwork.transfer.johnson import reinitialise

    settings = settings or AdaINSettings()
    settings.validate()
    dev = resolve_device(device)
    content = ImageFolder(
        content_dir, resize=settings.resize, crop=settings.image_size, what="content folder"
    )
    styles = ImageFolder(
        style_dir, resize=settings.resize, crop=settings.image_size, what="style folder"
    )
    if model is None:
        model = AdaINModel()
        model.encoder = load_published_encoder()
        model.encoder.requires_grad_(False)
    reinitialise(model.decoder, torch.Generator().manual_seed(settings.seed))
    model = model.to(dev)
    model.encoder.eval()
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=settings.learning_rate)

    def loss_fn(step: int) -> dict[str, torch.Tensor]:
        c = content.batch(step=step, batch_size=settings.batch_size, seed=settings.seed, stream=0)
        s = styles.batch(step=step, batch_size=settings.batch_size, seed=settings.seed, stream=1)
        return adain_loss(model, c.to(dev), s.to(dev), settings)

    result = train_loop(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        steps=settings.steps,
        batch_size=settings.batch_size,
        config={"architecture": "adain", **model.config.to_json()},
        lr_fn=lambda t: settings.learning_rate / (1.0 + settings.lr_decay * t),
        checkpoint_every=settings.checkpoint_every,
        checkpoint_path=checkpoint_path,
        resume=resume,
        callback=callback,
    )
    return model, result
