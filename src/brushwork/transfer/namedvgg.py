"""The normalised VGG-19 (to relu4_1) with the photorealistic reference codes' layer names.

PhotoWCT (``NVIDIA/FastPhotoStyle`` ``models.py``) and WCT² (``clovaai/WCT2`` ``model.py``)
both use the normalised VGG-19 of :mod:`brushwork.transfer.adain` (a 1 × 1 input
convolution, reflection padding) but keep their layers as named attributes (``conv0``,
``conv1_1`` … ``conv4_1``; decoders mirror them) and pool differently: max pooling with
indices / Haar wavelets. This module builds those layers once, for both, with the shapes
from :data:`~brushwork.transfer.adain.VGG19_WIDTHS` / ``VGG19_CONVS``; the pooling and
unpooling are passed in by each method. The input convolution starts as the AdaIN
encoder's (RGB [0, 1] -> Caffe BGR), and :func:`load_normalised_vgg` fills an encoder
from the published ``vgg_normalised.pth``.

Encoder stages (``stage(x, k, pool)``; the output of stage k is relu{k}_1)::

    1: conv0, conv1_1                     2: conv1_2, pool1, conv2_1
    3: conv2_2, pool2, conv3_1            4: conv3_2 … conv3_4, pool3, conv4_1

Decoder stages (``stage(x, k, unpool)``, k = level … 1) mirror them::

    4: conv4_1, unpool3, conv3_4, conv3_3, conv3_2     3: conv3_1, unpool2, conv2_2
    2: conv2_1, unpool1, conv1_2                        1: conv1_1 (no ReLU)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer.adain import VGG19_CONVS, VGG19_WIDTHS, _set_caffe_input

#: ``pool(name, x)`` -> pooled x; ``name`` is ``"pool1"`` … ``"pool3"``.
PoolFn = Callable[[str, torch.Tensor], torch.Tensor]
#: ``unpool(name, x)`` -> unpooled x (the next convolution's input).
UnpoolFn = Callable[[str, torch.Tensor], torch.Tensor]
#: ``unpool_conv(name, x, conv)`` -> conv(reflect_pad(unpool(x))) before the ReLU.
UnpoolConvFn = Callable[[str, torch.Tensor, nn.Conv2d], torch.Tensor]


def _convs_in_block(block: int, level: int) -> int:
    """Convolutions of block ``block`` (1-based) in an encoder to relu{level}_1."""
    return 1 if block == level else VGG19_CONVS[block - 1]


def _check(level: int, widths: tuple[int, ...]) -> None:
    if not 1 <= level <= 4:
        raise ConfigError(f"level must be 1 … 4 (relu1_1 … relu4_1), got {level}")
    if len(widths) != 5 or any(w < 1 for w in widths):
        raise ConfigError(f"widths must be 5 positive numbers, got {widths}")


def _reflect(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


class NamedVGGEncoder(nn.Module):
    """Normalised VGG-19 to relu{level}_1 with named convolutions (see the module).

    Input (B, 3, H, W) RGB in [0, 1]. Pooling is supplied per call (``pool``).
    """

    def __init__(self, level: int = 4, widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
        super().__init__()
        _check(level, widths)
        self.level = level
        self.widths = tuple(widths)
        self.conv0 = nn.Conv2d(3, 3, 1)
        _set_caffe_input(self.conv0)
        self._stages: dict[int, list[str]] = {}
        cin = 3
        for block in range(1, level + 1):
            for k in range(1, _convs_in_block(block, level) + 1):
                setattr(self, f"conv{block}_{k}", nn.Conv2d(cin, widths[block - 1], 3))
                cin = widths[block - 1]
        for stage in range(1, level + 1):
            steps = ["conv0", "conv1_1"] if stage == 1 else []
            if stage > 1:
                prev = stage - 1
                steps += [f"conv{prev}_{k}" for k in range(2, VGG19_CONVS[prev - 1] + 1)]
                steps += [f"pool{prev}", f"conv{stage}_1"]
            self._stages[stage] = steps

    def stage(self, x: torch.Tensor, stage: int, pool: PoolFn) -> torch.Tensor:
        """relu{stage-1}_1 features (or the image for stage 1) -> relu{stage}_1 features."""
        for step in self._stages[stage]:
            if step.startswith("pool"):
                x = pool(step, x)
            elif step == "conv0":
                x = self.conv0(x)
            else:
                x = F.relu(getattr(self, step)(_reflect(x)), inplace=True)
        return x


class NamedVGGDecoder(nn.Module):
    """Mirror of :class:`NamedVGGEncoder` from relu{level}_1 back to RGB.

    Args:
        level: the deepest features decoded (1 … 4).
        widths: VGG block widths.
        unpooled_channels: input channels of the convolution after each unpooling, as a
            multiple of the block width (WCT²'s ``cat5``: 5; max-unpooling / ``sum``: 1).
        after_unpool_suffix: name suffix of those convolutions (WCT² cat5: ``"_2"``,
            as in ``conv3_4_2``).
    """

    def __init__(
        self,
        level: int = 4,
        widths: tuple[int, ...] = VGG19_WIDTHS,
        *,
        unpooled_channels: int = 1,
        after_unpool_suffix: str = "",
    ) -> None:
        super().__init__()
        _check(level, widths)
        self.level = level
        self.widths = tuple(widths)
        self._stages: dict[int, list[str]] = {}
        for stage in range(level, 0, -1):
            out = widths[stage - 2] if stage > 1 else 3
            setattr(self, f"conv{stage}_1", nn.Conv2d(widths[stage - 1], out, 3))
            steps = [f"conv{stage}_1"]
            if stage > 1:
                prev = stage - 1
                width = widths[prev - 1]
                steps.append(f"unpool{prev}")
                n = VGG19_CONVS[prev - 1]
                for k in range(n, 1, -1):
                    name = f"conv{prev}_{k}"
                    cin = width
                    if k == n:
                        name += after_unpool_suffix
                        cin = width * unpooled_channels
                    setattr(self, name, nn.Conv2d(cin, width, 3))
                    steps.append(name)
            self._stages[stage] = steps

    def stage(
        self,
        x: torch.Tensor,
        stage: int,
        unpool: UnpoolFn | None = None,
        *,
        unpool_conv: UnpoolConvFn | None = None,
    ) -> torch.Tensor:
        """Decode one stage (see the module); stage 1 returns RGB (unclamped).

        ``unpool`` unpools before the next convolution; ``unpool_conv`` instead does
        both (given the convolution, which then is not applied again).
        """
        steps = self._stages[stage]
        index = 0
        while index < len(steps):
            step = steps[index]
            index += 1
            if step.startswith("unpool") and unpool_conv is not None:
                conv = getattr(self, steps[index])
                index += 1
                x = F.relu(unpool_conv(step, x, conv), inplace=True)
            elif step.startswith("unpool"):
                x = unpool(step, x)
            else:
                x = getattr(self, step)(_reflect(x))
                if not (stage == 1 and step == "conv1_1"):
                    x = F.relu(x, inplace=True)
        return x


def normalised_vgg_names(level: int = 4) -> dict[str, str]:
    """``vgg_normalised.pth`` key prefix (``"<index>"``) -> named conv (``"conv1_1"``)."""
    from brushwork.transfer.adain import EncoderConfig, NormalisedVGG

    vgg = NormalisedVGG(EncoderConfig(level=level))
    names = ["conv0"]
    for block in range(1, level + 1):
        names += [f"conv{block}_{k}" for k in range(1, _convs_in_block(block, level) + 1)]
    indices = [str(i) for i, m in enumerate(vgg) if isinstance(m, nn.Conv2d)]
    return dict(zip(indices, names, strict=True))


def load_normalised_vgg(encoder: NamedVGGEncoder, state: dict[str, torch.Tensor], *, source: str):
    """Fill ``encoder`` from a ``vgg_normalised.pth``-layout state dict (deeper keys ignored)."""
    mapping = normalised_vgg_names(encoder.level)
    ours = encoder.state_dict()
    renamed = {}
    for index, name in mapping.items():
        for part in ("weight", "bias"):
            key = f"{index}.{part}"
            if key not in state or tuple(state[key].shape) != tuple(ours[f"{name}.{part}"].shape):
                raise WeightsError(f"{source} does not hold a normalised VGG-19 ({key})")
            renamed[f"{name}.{part}"] = state[key].float()
    encoder.load_state_dict({**ours, **renamed})
