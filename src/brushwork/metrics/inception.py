"""Inception-v3 feature extractor in torchvision's parameter layout (no torchvision needed).

Two variants, both returning the 2048-d average-pool features:

* ``"fid"`` — the TensorFlow FID Inception ported by pytorch-fid
  (``pt_inception-2015-12-05-6726825d.pth``): the input is resized to 299×299
  (bilinear, ``align_corners=False``) and scaled from [0, 1] to [-1, 1]; the
  average pools inside the Inception blocks leave out the zero padding
  (``count_include_pad=False``) and the last block (Mixed_7c) max-pools its pool
  branch — the ``FIDInceptionA/C/E_1/E_2`` patches of pytorch-fid.
* ``"art"`` — ArtFID's art-fine-tuned Inception (``art_inception.pth``,
  Wright & Ommer 2022): torchvision's plain Inception-v3 blocks (padding counted
  in the average pools, average pool in Mixed_7c). As in the art_fid reference
  (``art_fid`` 0.0.2), images go in at their own size as [0, 1] tensors, with no
  resizing and no normalisation (the network ends in an adaptive average pool).

Parameter names are torchvision's (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ...), so the published files load by key;
``fc.*`` and ``AuxLogits.*`` entries in a file are ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError, ImageError, WeightsError

__all__ = ["INCEPTION_VARIANTS", "InceptionFeatures", "load_inception_state"]

INCEPTION_VARIANTS = ("fid", "art")
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """Convolution (no bias) + batch norm (eps 0.001) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor, tf_style: bool) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not tf_style)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, tf_style: bool) -> None:
        super().__init__()
        self.tf_style = tf_style
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x, self.tf_style))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, tf_style: bool) -> None:
        super().__init__()
        self.tf_style = tf_style
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = layer(d)
        bp = self.branch_pool(_avg_pool(x, self.tf_style))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool``: "avg" (torchvision), "avg_tf" (FIDInceptionE_1) or "max" (FIDInceptionE_2)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = _avg_pool(x, self.pool == "avg_tf")
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class InceptionFeatures(nn.Module):
    """Inception-v3 up to the final average pool: (B, 3, H, W) in [0, 1] -> (B, 2048).

    Args:
        variant: ``"fid"`` (pytorch-fid's TF Inception) or ``"art"`` (ArtFID's).
        input_size: side the input is resized to; ``None`` keeps each image's size.
            Default: 299 for ``"fid"`` (comparable scores), ``None`` for ``"art"`` (as
            the art_fid reference). A smaller size (at least 75) only for quick checks.
        generator: seeds the random initial weights (tests, benchmarks).
    """

    def __init__(
        self,
        variant: str = "fid",
        *,
        input_size: int | str | None = "default",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if variant not in INCEPTION_VARIANTS:
            raise ConfigError(
                f"unknown Inception variant '{variant}' (valid: {', '.join(INCEPTION_VARIANTS)})"
            )
        if input_size == "default":
            input_size = 299 if variant == "fid" else None
        if input_size is not None and int(input_size) < 75:
            raise ConfigError(f"Inception needs inputs of at least 75 px, got {input_size}")
        self.variant = variant
        self.input_size: int | None = None if input_size is None else int(input_size)
        tf = variant == "fid"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32, tf)
        self.Mixed_5c = InceptionA(256, 64, tf)
        self.Mixed_5d = InceptionA(288, 64, tf)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128, tf)
        self.Mixed_6c = InceptionC(768, 160, tf)
        self.Mixed_6d = InceptionC(768, 160, tf)
        self.Mixed_6e = InceptionC(768, 192, tf)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg_tf" if tf else "avg")
        self.Mixed_7c = InceptionE(2048, "max" if tf else "avg")
        self._init_weights(generator)
        self.requires_grad_(False)
        self.eval()

    def _init_weights(self, generator: torch.Generator | None) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always in eval mode (batch norm uses its running statistics)."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 2048) pool features (float32)."""
        x = images.float()
        if self.input_size is not None:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        if min(x.shape[-2:]) < 75:
            raise ImageError(
                f"images of {x.shape[-2]}×{x.shape[-1]} px are too small for Inception-v3 "
                "(at least 75 px a side)"
            )
        if self.variant == "fid":
            x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception_state(
    model: InceptionFeatures, state: dict[str, torch.Tensor], *, source: str
) -> None:
    """Copy the trunk tensors of a torchvision-layout Inception state dict into ``model``.

    ``fc.*`` and ``AuxLogits.*`` are ignored; ``num_batches_tracked`` may be absent.

    Raises:
        WeightsError: a trunk tensor is missing or has the wrong shape.
    """
    expected = model.state_dict()
    problems = []
    chosen = {}
    for key, tensor in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                chosen[key] = tensor
                continue
            problems.append(f"missing {key}")
        elif tuple(state[key].shape) != tuple(tensor.shape):
            problems.append(
                f"{key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
        else:
            chosen[key] = state[key]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; … ({len(problems)} problems)" if len(problems) > 3 else ""
        )
        raise WeightsError(
            f"{source} does not hold Inception-v3 weights in torchvision's layout: {shown}"
        )
    model.load_state_dict(chosen, strict=True)
