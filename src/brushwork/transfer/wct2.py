"""WCT²: photorealistic style transfer with wavelet pooling (Yoo et al., ICCV 2019).

J. Yoo, Y. Uh, S. Chun, B. Kang, J.-W. Ha, *Photorealistic Style Transfer via Wavelet
Transforms*, ICCV 2019. Reference code and weights: ``clovaai/WCT2``.

One normalised VGG-19 encoder to relu4_1 whose max pooling is replaced by Haar pooling
(:mod:`brushwork.transfer.wavelets`): the low band goes on to the next layer, the three
high bands skip to the decoder, which unpools with them (``cat5``: the four unpooled
bands and the encoder's pre-pooling map concatenated, the published default; ``sum``:
the inverse transform). The style is transferred progressively (the reference's
default, all three sites): after each encoder stage (relu1_1 … relu4_1), on the nine
high-frequency skips, and before decoder stages 3, 2 and 1 (at the style's own decoder
features), each time by whitening and colouring (:func:`~brushwork.transfer.wct.whiten_colour`)
with the reference's regularisation (1 added to both covariances, the result clamped
to the content features' range) and blended with α.

The modules keep the reference's attribute names, so the published
``wave_encoder_cat5_l4.pth`` / ``wave_decoder_cat5_l4.pth`` (and the ``sum`` pair) load
key for key (:func:`load_published_wct2`).

Example::

    model = load_published_wct2()                        # or WCT2Model() + load_wct2_state
    out = model.stylize(content, style, alpha=1.0)       # (1, 3, H, W), H, W multiples of 8
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer.adain import VGG19_WIDTHS, check_alpha
from brushwork.transfer.namedvgg import NamedVGGDecoder, NamedVGGEncoder
from brushwork.transfer.regions import RegionStats, region_statistics, region_whiten_colour
from brushwork.transfer.wavelets import WavePool, WaveUnpool, unpool_conv_cat5
from brushwork.transfer.wct import stack_maps

#: Unpooling variants of the published models.
VARIANTS = ("cat5", "sum")
#: Where the style is transferred (the reference's default: all three).
SITES = ("encoder", "skip", "decoder")
#: The reference's covariance regulariser (``svd(..., iden=True)``).
RIDGE = 1.0
#: Haar pooling halves three times: inputs must be multiples of this.
MULTIPLE = 8


class WaveEncoder(NamedVGGEncoder):
    """The WCT² encoder (relu4_1) with Haar pooling ``pool1`` … ``pool3``."""

    def __init__(self, widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
        super().__init__(4, widths)
        for k in (1, 2, 3):
            self.add_module(f"pool{k}", WavePool(widths[k - 1]))

    def encode(self, x: torch.Tensor, skips: dict, stage: int) -> torch.Tensor:
        """One stage (1 … 4); records ``skips["pool{k}"]`` = [LH, HL, HH] and the map before."""

        def pool(name: str, feats: torch.Tensor) -> torch.Tensor:
            ll, lh, hl, hh = getattr(self, name)(feats)
            skips[name] = [lh, hl, hh]
            skips["original" + name[-1]] = feats
            return ll

        return self.stage(x, stage, pool)


class WaveDecoder(NamedVGGDecoder):
    """The WCT² decoder with Haar unpooling ``recon_block3`` … ``recon_block1``."""

    def __init__(self, variant: str = "cat5", widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"WCT² variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        cat5 = variant == "cat5"
        super().__init__(
            4, widths, unpooled_channels=5 if cat5 else 1, after_unpool_suffix="_2" if cat5 else ""
        )
        self.variant = variant
        for k in (1, 2, 3):
            self.add_module(f"recon_block{k}", WaveUnpool(widths[k - 1], variant))

    def decode(self, x: torch.Tensor, skips: dict, stage: int) -> torch.Tensor:
        """One stage (4 … 1) with the encoder's ``skips``.

        cat5 unpools and convolves in one step (:func:`unpool_conv_cat5`: the same
        numbers, less than half the multiply-adds of those convolutions).
        """

        def unpool(name: str, feats: torch.Tensor) -> torch.Tensor:
            k = name[-1]
            lh, hl, hh = skips[f"pool{k}"]
            block = getattr(self, f"recon_block{k}")
            return block(feats, lh, hl, hh, skips.get(f"original{k}"))

        def unpool_conv(name: str, feats: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
            k = name[-1]
            return unpool_conv_cat5((feats, *skips[f"pool{k}"]), skips[f"original{k}"], conv)

        if self.variant == "cat5":
            return self.stage(x, stage, unpool_conv=unpool_conv)
        return self.stage(x, stage, unpool)


@dataclass
class WCT2Style:
    """A style's statistics at every transfer site (see :meth:`WCT2Model.style_features`)."""

    encoder: dict[int, RegionStats] = field(default_factory=dict)
    skip: dict[tuple[int, int], RegionStats] = field(default_factory=dict)
    decoder: dict[int, RegionStats] = field(default_factory=dict)


class WCT2Model(nn.Module):
    """Encoder + decoder of one variant; :meth:`stylize` runs the progressive transfer."""

    def __init__(
        self,
        variant: str = "cat5",
        *,
        widths: tuple[int, ...] = VGG19_WIDTHS,
        sites: tuple[str, ...] = SITES,
    ) -> None:
        super().__init__()
        if not sites or any(s not in SITES for s in sites):
            raise ConfigError(f"WCT² transfer sites must be among {', '.join(SITES)}, got {sites}")
        self.variant = variant
        self.sites = frozenset(sites)
        self.encoder = WaveEncoder(widths)
        self.decoder = WaveDecoder(variant, widths)
        self.requires_grad_(False)

    multiple = MULTIPLE

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Plain auto-encoding decoder(encoder(images)), (B, 3, H, W)."""
        skips: dict = {}
        x = images
        for stage in (1, 2, 3, 4):
            x = self.encoder.encode(x, skips, stage)
        for stage in (4, 3, 2, 1):
            x = self.decoder.decode(x, skips, stage)
        return x

    def style_features(
        self,
        style: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        use: set[int] | None = None,
    ) -> WCT2Style:
        """(1, 3, H, W) style image (and its (H, W) labels) -> statistics at every site."""
        skips: dict = {}
        out = WCT2Style()

        def stats(feats: torch.Tensor) -> RegionStats:
            return region_statistics(feats[0], labels, use=use, ridge=RIDGE)

        x = style
        for stage in (1, 2, 3, 4):
            x = self.encoder.encode(x, skips, stage)
            if "encoder" in self.sites:
                out.encoder[stage] = stats(x)
        if "skip" in self.sites:
            for k in (1, 2, 3):
                for band, feats in enumerate(skips[f"pool{k}"]):
                    out.skip[(k, band)] = stats(feats)
        if "decoder" in self.sites:
            if "encoder" not in self.sites:
                out.decoder[4] = stats(x)
            for stage in (4, 3, 2):
                x = self.decoder.decode(x, skips, stage)
                out.decoder[stage - 1] = stats(x)
        return out

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | WCT2Style,
        *,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The progressive WCT² transfer.

        Args:
            content: (B, 3, H, W) in [0, 1], H and W multiples of 8.
            style: (1, 3, H', W') style image or its :meth:`style_features`.
            alpha: blend of the transferred and the content features at every site
                (0: the plain auto-encoding).
            content_labels: (H, W) labels of the content (with ``style_labels``, or a
                ``style`` whose statistics were computed with labels): region to region.

        Returns:
            (B, 3, H, W) unclamped.
        """
        check_alpha(alpha)
        if alpha == 0:
            style = WCT2Style()  # nothing to transfer: the plain auto-encoding
        elif not isinstance(style, WCT2Style):
            style = self.style_features(style, style_labels)
        if content.shape[-2] % MULTIPLE or content.shape[-1] % MULTIPLE:
            raise ConfigError(
                f"WCT² needs sides that are multiples of {MULTIPLE}, got "
                f"{content.shape[-2]}×{content.shape[-1]} (the Stylizer pads them)"
            )
        return torch.cat(
            [
                self._one(content[b : b + 1], style, alpha, content_labels)
                for b in range(len(content))
            ]
        )

    def _one(self, x, style: WCT2Style, alpha: float, labels) -> torch.Tensor:
        def transfer(feats: torch.Tensor, stats: RegionStats) -> torch.Tensor:
            if alpha == 0:
                return feats
            moved = region_whiten_colour(feats[0], stats, labels, ridge=RIDGE, clamp=True)
            if alpha != 1:
                moved = torch.lerp(feats[0], moved, alpha)
            return stack_maps([moved])

        skips: dict = {}
        for stage in (1, 2, 3, 4):
            x = self.encoder.encode(x, skips, stage)
            if stage in style.encoder:
                x = transfer(x, style.encoder[stage])
        for (k, band), stats in style.skip.items():
            skips[f"pool{k}"][band] = transfer(skips[f"pool{k}"][band], stats)
        for stage in (4, 3, 2, 1):
            if stage in style.decoder:
                x = transfer(x, style.decoder[stage])
            x = self.decoder.decode(x, skips, stage)
        return x


# --------------------------------------------------------------------------- weights


def weight_names(variant: str = "cat5") -> tuple[str, str]:
    """Registry names (brushwork.weights) of a variant's encoder and decoder files."""
    if variant not in VARIANTS:
        raise ConfigError(f"WCT² variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return f"wct2-encoder-{variant}", f"wct2-decoder-{variant}"


def load_wct2_state(
    model: WCT2Model,
    encoder_state: dict[str, torch.Tensor],
    decoder_state: dict[str, torch.Tensor],
    *,
    source: str = "WCT² weights",
) -> WCT2Model:
    """Load the reference's encoder and decoder state dicts (strict: keys and shapes)."""
    from brushwork.transfer.modelfile import check_state

    for part, state in (("encoder", encoder_state), ("decoder", decoder_state)):
        module = getattr(model, part)
        check_state(module, state, source=f"{source} ({part})", architecture=f"WCT² {part}")
        module.load_state_dict({k: v.float() for k, v in state.items()})
    for module in model.modules():
        if isinstance(module, WavePool | WaveUnpool):
            module.check_filters(source=source)
    return model.eval()


def variant_of(decoder_state: dict[str, torch.Tensor]) -> str:
    """``"cat5"`` or ``"sum"`` from a decoder state dict's keys."""
    if "conv3_4_2.weight" in decoder_state:
        return "cat5"
    if "conv3_4.weight" in decoder_state:
        return "sum"
    raise WeightsError("not a WCT² decoder: it has neither conv3_4_2 (cat5) nor conv3_4 (sum)")


def load_published_wct2(
    path: str | os.PathLike | None = None,
    *,
    variant: str | None = None,
    download: bool = True,
) -> WCT2Model:
    """WCT² with the published weights (clovaai/WCT2 ``model_checkpoints``).

    Args:
        path: a folder holding ``wave_encoder_<variant>_l4.pth`` and
            ``wave_decoder_<variant>_l4.pth`` (their published names), or the decoder
            file (the encoder is looked for beside it under its published name, else
            through the usual lookup); ``None``: the usual lookup of
            :mod:`brushwork.weights` (environment, cache, download).
        variant: ``"cat5"`` (default) or ``"sum"``; with ``path``, found from the files.

    Raises:
        WeightsError: missing files, or files that are not WCT² weights of the variant.
    """
    from brushwork import weights as store

    enc_path: Path | None = None
    dec: dict[str, torch.Tensor] | None = None
    if path is not None:
        given = Path(path)
        if given.is_dir():
            variant = variant or _variant_in_folder(given)
            enc_path = given
            dec = store.load_state_dict(weight_names(variant)[1], path=given, download=False)
        elif given.is_file():
            dec = store.load_state_dict(weight_names(variant or "cat5")[1], path=given)
            variant = variant or variant_of(dec)
            sibling = given.parent / store.get(weight_names(variant)[0]).filename
            enc_path = sibling if sibling.is_file() else None
        else:
            raise WeightsError(f"WCT² weights {given} do not exist")
    variant = variant or "cat5"
    enc_name, dec_name = weight_names(variant)
    if dec is None:
        dec = store.load_state_dict(dec_name, download=download)
    if variant_of(dec) != variant:
        raise WeightsError(
            f"{path or dec_name} holds a WCT² {variant_of(dec)} decoder, not {variant}"
        )
    enc = store.load_state_dict(enc_name, path=enc_path, download=download)
    return load_wct2_state(WCT2Model(variant), enc, dec, source=str(path or dec_name))


def _variant_in_folder(folder: Path) -> str:
    from brushwork import weights as store

    for variant in VARIANTS:
        if all((folder / store.get(n).filename).is_file() for n in weight_names(variant)):
            return variant
    names = [store.get(n).filename for n in weight_names("cat5")]
    raise WeightsError(f"{folder} holds neither {' and '.join(names)} (WCT² cat5) nor the sum pair")
