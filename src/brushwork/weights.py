"""Where pretrained weights come from: registry, lookup, download, verification, loading.

Every pretrained file brushwork uses is described by a :class:`WeightFile` in
:data:`REGISTRY`. :func:`resolve` finds the file, in this order:

1. an explicit ``path`` (the CLI's ``--weights PATH``);
2. the environment: ``BRUSHWORK_<NAME>_WEIGHTS=/path/to/file`` for one file, or
   ``BRUSHWORK_WEIGHTS_DIR=/folder`` holding files under their published names;
3. the torch cache, ``<torch.hub.get_dir()>/checkpoints/<filename>`` — where
   torchvision keeps the same files, so existing downloads are reused;
4. a download from the published URL into that cache, unless ``download=False``,
   ``BRUSHWORK_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``.

:func:`load_state_dict` then checks the file's SHA-256 (remembering files it has
already checked, see :func:`verify`) and loads it with ``weights_only=True``.

Torch is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork.atomic import create_temp_file
from brushwork.errors import WeightsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUNDLES",
    "ENV_OFFLINE",
    "ENV_WEIGHTS_DIR",
    "HUB_MODELS",
    "REGISTRY",
    "HubModel",
    "WeightFile",
    "all_names",
    "bundle",
    "cache_dir",
    "download",
    "download_hub",
    "expected_cache_path",
    "file_env_var",
    "flag_for",
    "flag_hints",
    "get",
    "get_hub",
    "hub_name_of",
    "hub_status",
    "is_hub",
    "is_offline",
    "load_checkpoint_state",
    "load_state_dict",
    "register",
    "register_hub",
    "resolve",
    "sha256_file",
    "status",
    "verify",
]

#: Folder searched for weight files under their published file names.
ENV_WEIGHTS_DIR = "BRUSHWORK_WEIGHTS_DIR"
#: Set to 1 to forbid downloads (``HF_HUB_OFFLINE=1`` is honoured too).
ENV_OFFLINE = "BRUSHWORK_OFFLINE"
_OFFLINE_VARS = (ENV_OFFLINE, "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}

#: File in :func:`cache_dir` remembering the digests of files already hashed.
INDEX_NAME = "brushwork-verified.json"

_CHUNK = 1 << 20  # 1 MiB
_TIMEOUT_S = 60.0  # per socket operation, not for the whole download
_MIB = 1 << 20
_HEX = re.compile(r"[0-9a-f]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class WeightFile:
    """One published pretrained file.

    ``sha256`` is the file's full SHA-256 hex digest when known, otherwise the
    published prefix (at least 8 hex characters); a file passes when its digest
    starts with it. ``None`` marks a file whose digest is not published: it is
    checked only for its keys and shapes, and messages say so.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    size_bytes: int | None = None
    description: str = ""
    license_note: str = ""
    #: Whether ``size_bytes`` is the file's exact size (checked before hashing)
    #: or only an estimate for messages and the disk-space check.
    size_is_exact: bool = True

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"WeightFile name must be non-empty without spaces: {self.name!r}")
        if not self.filename or Path(self.filename).name != self.filename:
            raise ValueError(f"WeightFile filename must be a bare file name: {self.filename!r}")
        if self.sha256 is None:
            return self._check_size()
        digest = self.sha256.lower()
        if len(digest) < 8 or len(digest) > 64 or not _HEX.fullmatch(digest):
            raise ValueError(
                f"WeightFile {self.name!r}: sha256 must be 8 to 64 hex characters, "
                f"got {self.sha256!r}"
            )
        object.__setattr__(self, "sha256", digest)
        self._check_size()

    def _check_size(self) -> None:
        if self.size_bytes is not None and self.size_bytes <= 0:
            raise ValueError(f"WeightFile {self.name!r}: size_bytes must be positive")

    @property
    def size_text(self) -> str:
        """The size in MiB for messages, or "unknown size"."""
        if self.size_bytes is None:
            return "unknown size"
        return f"{'' if self.size_is_exact else '≈'}{self.size_bytes / _MIB:.0f} MiB"

    @property
    def exact_size(self) -> int | None:
        """The size every valid copy must have, if it is known exactly."""
        return self.size_bytes if self.size_is_exact else None


#: Registry name -> published file. Add entries with :func:`register`.
REGISTRY: dict[str, WeightFile] = {}


def register(spec: WeightFile) -> WeightFile:
    """Add ``spec`` to :data:`REGISTRY`; raises ``ValueError`` if the name is taken."""
    if spec.name in REGISTRY:
        raise ValueError(f"weights {spec.name!r} are already registered")
    REGISTRY[spec.name] = spec
    return spec


_TORCHVISION_LICENSE = "torchvision model zoo (BSD-3-Clause code); trained on ImageNet"

register(
    WeightFile(
        name="vgg19",
        filename="vgg19-dcbb9e9d.pth",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        # Only the prefix published in the file name is known here. Whoever has network
        # access should compute the full digest (`sha256sum vgg19-dcbb9e9d.pth`) and pin it.
        sha256="dcbb9e9d",
        # 143,667,240 float32 parameters + pickle overhead; not checked against the real
        # file here, so it is only used for messages and the disk-space check.
        size_bytes=574673361,  # ≈548 MiB
        size_is_exact=False,
        description=(
            "VGG-19 ImageNet classifier as published with torchvision (only features.* is used)"
        ),
        license_note=_TORCHVISION_LICENSE,
    )
)
register(
    WeightFile(
        name="vgg16",
        filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        size_bytes=553433881,  # ≈528 MiB
        description=(
            "VGG-16 ImageNet classifier as published with torchvision (only features.* is used)"
        ),
        license_note=_TORCHVISION_LICENSE,
    )
)
# Arbitrary style transfer (brushwork.transfer.adain / wct): the normalised VGG-19 of
# Gatys et al. / Huang & Belongie and the AdaIN decoder, as converted to PyTorch state
# dicts (nn.Sequential keys "<index>.weight|bias") by naoto0804/pytorch-AdaIN, release v0.0.0.
# The digests were recorded by a third-party project from that release; not re-checked here.
_ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
register(
    WeightFile(
        name="adain-vgg-normalised",
        filename="vgg_normalised.pth",
        url=_ADAIN_RELEASE + "vgg_normalised.pth",
        sha256="804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
        size_bytes=80_102_481,  # ≈76 MiB: 20.0 M float32 parameters + pickle overhead
        size_is_exact=False,
        description="normalised VGG-19 (reflection padding, 1×1 input conv) used by AdaIN/WCT",
        license_note="MIT (naoto0804/pytorch-AdaIN); weights from Gatys et al. / Huang & Belongie",
    )
)
register(
    WeightFile(
        name="adain-decoder",
        filename="decoder.pth",
        url=_ADAIN_RELEASE + "decoder.pth",
        sha256="379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472",
        size_bytes=14_026_727,  # ≈13 MiB: 3.5 M float32 parameters + pickle overhead
        size_is_exact=False,
        description="AdaIN decoder (relu4_1 -> RGB), MS-COCO + WikiArt (Huang & Belongie)",
        license_note="MIT (naoto0804/pytorch-AdaIN); converted from xunhuang1995/AdaIN-style",
    )
)
# Photorealistic style transfer (brushwork.transfer.wct2 / photowct): the files committed
# to the reference repositories, plain state dicts (torch.save of state_dict(); load with
# weights_only=True). No SHA-256 is published: the files are checked for keys and shapes
# (and the Haar filters) on loading. Their git blob ids (`git hash-object FILE`) at
# clovaai/WCT2@05d17c0 and NVIDIA/FastPhotoStyle master are given for a manual check.
# Sizes are estimates from the parameter counts.
_WCT2_FILES = "https://github.com/clovaai/WCT2/raw/master/model_checkpoints/"
_WCT2_LICENSE = "MIT (clovaai/WCT2, NAVER Corp.)"
for _variant, _enc_blob, _dec_blob, _enc_size, _dec_size in (
    (
        "cat5",
        "6be4f0df67802f93dfa68c3da5a25f5be4d15a88",
        "3f7fd4cbd4398a053dd21b22c00dd0012dfcc6e2",
        14_060_000,
        26_450_000,
    ),
    (
        "sum",
        "dd533376dfd0d1a3113924303bfdd5ca3591807f",
        "305baf0115e5e6cde546ce0776c2bb1b92f907c7",
        14_060_000,
        14_060_000,
    ),
):
    register(
        WeightFile(
            name=f"wct2-encoder-{_variant}",
            filename=f"wave_encoder_{_variant}_l4.pth",
            url=f"{_WCT2_FILES}wave_encoder_{_variant}_l4.pth",
            sha256=None,
            size_bytes=_enc_size,
            size_is_exact=False,
            description=f"WCT² Haar-pooling VGG-19 encoder to relu4_1 ({_variant}; git blob "
            f"{_enc_blob[:12]})",
            license_note=_WCT2_LICENSE,
        )
    )
    register(
        WeightFile(
            name=f"wct2-decoder-{_variant}",
            filename=f"wave_decoder_{_variant}_l4.pth",
            url=f"{_WCT2_FILES}wave_decoder_{_variant}_l4.pth",
            sha256=None,
            size_bytes=_dec_size,
            size_is_exact=False,
            description=f"WCT² Haar-unpooling decoder ({_variant}; git blob {_dec_blob[:12]})",
            license_note=_WCT2_LICENSE,
        )
    )
register(
    WeightFile(
        name="photowct",
        filename="photo_wct.pth",
        url="https://github.com/NVIDIA/FastPhotoStyle/raw/master/PhotoWCTModels/photo_wct.pth",
        sha256=None,
        size_bytes=33_420_000,  # ≈32 MiB: 8.35 M float32 parameters (e1…e4, d1…d4)
        size_is_exact=False,
        description="PhotoWCT encoders e1…e4 and max-unpooling decoders d1…d4 (git blob "
        "4b38e69fd1c3)",
        license_note="CC BY-NC-SA 4.0 (NVIDIA/FastPhotoStyle): non-commercial use only",
    )
)
# Evaluation metrics (brushwork.metrics): LPIPS, FID, ArtFID.
register(
    WeightFile(
        name="alexnet",
        filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256="7be5be79",  # prefix from the file name; full digest not known here
        size_bytes=244_408_911,  # ≈233 MiB, 61.1 M float32 parameters
        size_is_exact=False,
        description="AlexNet ImageNet classifier from torchvision (LPIPS trunk; features.* used)",
        license_note=_TORCHVISION_LICENSE,
    )
)
register(
    WeightFile(
        name="lpips-alex",
        filename="alex.pth",
        url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        size_bytes=6009,
        description="LPIPS v0.1 linear layers for the AlexNet trunk (Zhang et al. 2018)",
        license_note="BSD-2-Clause (richzhang/PerceptualSimilarity)",
    )
)
register(
    WeightFile(
        name="lpips-vgg",
        filename="vgg.pth",
        url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        size_bytes=7289,
        description="LPIPS v0.1 linear layers for the VGG-16 trunk (Zhang et al. 2018)",
        license_note="BSD-2-Clause (richzhang/PerceptualSimilarity)",
    )
)
register(
    WeightFile(
        name="inception-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        sha256="6726825d",  # prefix from the file name; full digest not known here
        size_bytes=95_628_359,  # ≈91 MiB, estimate
        size_is_exact=False,
        description="TensorFlow FID Inception-v3 (2015-12-05) ported by pytorch-fid",
        license_note="Apache-2.0 (pytorch-fid; weights from TensorFlow's Inception)",
    )
)
register(
    WeightFile(
        name="inception-art",
        filename="art_inception.pth",
        url="https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth",
        # Digest not published and not known here (no network): the file is checked
        # for its keys and shapes only, until someone pins its sha256.
        sha256=None,
        size_bytes=110_000_000,  # ≈105 MiB, estimate
        size_is_exact=False,
        description="ArtFID's Inception-v3 fine-tuned on art (Wright & Ommer 2022)",
        license_note="see github.com/matthias-wright/art-fid",
    )
)


# CSD style descriptor (brushwork.metrics.csd): the training checkpoint uploaded to the
# Hub by the CSD authors (model_state_dict + optimiser states + args). The digest and size
# were recorded by two third-party manifests of revision 5bc26a6fb0487f3f00a2a7313135103a005b1b67;
# not re-checked here. The CSD README warns these weights miss the paper's numbers.
register(
    WeightFile(
        name="csd-vit-large",
        filename="csd-vit-l-pytorch_model.bin",
        url="https://huggingface.co/tomg-group-umd/CSD-ViT-L/resolve/main/pytorch_model.bin",
        sha256="40e92fad63a361b8136100cd234c42d401ef9b34ff1748234318929ebcc7e7a1",
        size_bytes=2_438_228_893,  # ≈2.3 GiB (optimiser states included)
        size_is_exact=False,
        description="CSD ViT-L/14 style/content descriptor (Somepalli et al. 2024), "
        "tomg-group-umd/CSD-ViT-L pytorch_model.bin",
        license_note="MIT code (learn2phoenix/CSD); model card: CC-BY-4.0",
    )
)


# --------------------------------------------------------------------------- Hub models


@dataclass(frozen=True)
class HubModel:
    """A Hugging Face Hub model repo brushwork loads with ``from_pretrained``.

    Hub models live in the Hugging Face cache (see :mod:`brushwork.hub`), not in the
    torch cache. ``allow_patterns`` / ``ignore_patterns`` limit ``brushwork weights
    download`` to the files brushwork loads (e.g. the diffusers layout of a pipeline,
    not its single-file checkpoints).
    """

    name: str
    repo_id: str
    description: str
    used_by: str
    #: An estimate of the download (the files ``allow_patterns`` selects), for messages.
    size_bytes: int | None = None
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None

    @property
    def size_text(self) -> str:
        """The estimated download size for messages, or "unknown size"."""
        if self.size_bytes is None:
            return "unknown size"
        if self.size_bytes >= 1 << 30:
            return f"≈{self.size_bytes / (1 << 30):.1f} GiB"
        return f"≈{self.size_bytes / _MIB:.0f} MiB"


#: Registry name -> Hub model. Names are distinct from :data:`REGISTRY`'s.
HUB_MODELS: dict[str, HubModel] = {}


def register_hub(model: HubModel) -> HubModel:
    """Add ``model`` to :data:`HUB_MODELS`; raises ``ValueError`` if the name is taken."""
    if model.name in HUB_MODELS or model.name in REGISTRY:
        raise ValueError(f"weights {model.name!r} are already registered")
    HUB_MODELS[model.name] = model
    return model


# The diffusers layout that brushwork.diffusion.pipelines loads (no variant): configs,
# tokenizers and the components' safetensors, without the repos' single-file checkpoints.
_PIPELINE_FILES = (
    "*.json",
    "*.txt",
    "*/diffusion_pytorch_model*.safetensors",
    "*/model*.safetensors",
)
_PIPELINE_SKIP = ("*non_ema*", "*.ckpt", "*.bin", "*.msgpack", "*.onnx", "*.onnx_data")

register_hub(
    HubModel(
        name="sd-1.5",
        repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        description="Stable Diffusion 1.5 pipeline (512 px)",
        used_by="attend, edit, generate (default model)",
        size_bytes=int(4.0 * (1 << 30)),
        allow_patterns=_PIPELINE_FILES,
        ignore_patterns=_PIPELINE_SKIP,
    )
)
register_hub(
    HubModel(
        name="sd-2.1",
        repo_id="stabilityai/stable-diffusion-2-1",
        description="Stable Diffusion 2.1 pipeline (768 px, v-prediction)",
        used_by="attend, edit, generate (--model)",
        size_bytes=int(4.8 * (1 << 30)),
        allow_patterns=_PIPELINE_FILES,
        ignore_patterns=_PIPELINE_SKIP,
    )
)
register_hub(
    HubModel(
        name="sdxl-base",
        repo_id="stabilityai/stable-diffusion-xl-base-1.0",
        description="Stable Diffusion XL base 1.0 pipeline (1024 px)",
        used_by="study run (default model), generate --sdxl, attend --model",
        size_bytes=int(13.2 * (1 << 30)),
        allow_patterns=_PIPELINE_FILES,
        ignore_patterns=_PIPELINE_SKIP,
    )
)
register_hub(
    HubModel(
        name="clip-vit-large",
        repo_id="openai/clip-vit-large-patch14",
        description="CLIP ViT-L/14 image and text encoders",
        used_by="evaluate (clip_* metrics, --clip-model), generate's SGOOL guidance",
        size_bytes=int(1.6 * (1 << 30)),
        allow_patterns=("*.json", "*.txt", "*.safetensors"),
    )
)
register_hub(
    HubModel(
        name="dino-vitb8",
        repo_id="facebook/dino-vitb8",
        description="DINO ViT-B/8 (self-similarity of keys)",
        used_by="evaluate (structure and leakage metrics, --dino-model)",
        size_bytes=330 * _MIB,
        allow_patterns=("*.json", "*.txt", "*.safetensors", "*.bin"),
    )
)
_CONTROLNET_FILES = ("*.json", "diffusion_pytorch_model.safetensors")
for _name, _repo, _what, _size in (
    ("controlnet-canny-sd15", "lllyasviel/control_v11p_sd15_canny", "Canny, SD 1.5", 1.4),
    ("controlnet-depth-sd15", "lllyasviel/control_v11f1p_sd15_depth", "depth, SD 1.5", 1.4),
    ("controlnet-lineart-sd15", "lllyasviel/control_v11p_sd15_lineart", "line art, SD 1.5", 1.4),
    ("controlnet-canny-sdxl", "diffusers/controlnet-canny-sdxl-1.0", "Canny, SDXL", 4.7),
    ("controlnet-depth-sdxl", "diffusers/controlnet-depth-sdxl-1.0", "depth, SDXL", 4.7),
    ("controlnet-lineart-sdxl", "TheMistoAI/MistoLine", "line art (MistoLine), SDXL", 4.7),
):
    register_hub(
        HubModel(
            name=_name,
            repo_id=_repo,
            description=f"ControlNet ({_what}) in the diffusers layout",
            used_by="stylize --method controlnet (--controlnet)",
            size_bytes=int(_size * (1 << 30)),
            allow_patterns=_CONTROLNET_FILES,
        )
    )
register_hub(
    HubModel(
        name="dpt-hybrid-midas",
        repo_id="Intel/dpt-hybrid-midas",
        description="DPT-hybrid (MiDaS 3.0) monocular depth, the depth ControlNets' annotator",
        used_by="stylize --method controlnet --control depth (--annotator)",
        size_bytes=470 * _MIB,
        allow_patterns=("*.json", "*.safetensors"),
    )
)
register_hub(
    HubModel(
        name="lineart-annotator",
        repo_id="lllyasviel/Annotators",
        description="ControlNet 1.1 line-art annotator (sk_model.pth, informative drawings)",
        used_by="stylize --method controlnet --control lineart (--annotator)",
        size_bytes=17 * _MIB,
        allow_patterns=("sk_model.pth",),
    )
)
register_hub(
    HubModel(
        name="ip-adapter",
        repo_id="h94/IP-Adapter",
        description="IP-Adapter weights for SD 1.5 and SDXL with their CLIP image encoders",
        used_by="generate --style (IP-Adapter / InstantStyle)",
        size_bytes=int(6.5 * (1 << 30)),
        allow_patterns=(
            "models/ip-adapter_sd15.safetensors",
            "models/image_encoder/*",
            "sdxl_models/ip-adapter_sdxl.safetensors",
            "sdxl_models/image_encoder/*",
        ),
        ignore_patterns=("*.bin",),
    )
)

#: Named sets of weights, prefetched with ``brushwork weights download --bundle NAME``.
BUNDLES: dict[str, tuple[str, ...]] = {
    "transfer": (
        "vgg19",
        "adain-vgg-normalised",
        "adain-decoder",
        "wct2-encoder-cat5",
        "wct2-decoder-cat5",
        "photowct",
    ),
    "diffusion": ("sd-1.5", "sdxl-base", "ip-adapter", "clip-vit-large"),
    "evaluate": (
        "alexnet",
        "lpips-alex",
        "vgg19",
        "inception-fid",
        "inception-art",
        "clip-vit-large",
        "dino-vitb8",
    ),
}


def all_names() -> list[str]:
    """Every registered name: weight files, then Hub models."""
    return [*REGISTRY, *HUB_MODELS]


def get_hub(name: str) -> HubModel:
    """The Hub model called ``name`` (or with repo id ``name``); WeightsError if none."""
    model = HUB_MODELS.get(name) or HUB_MODELS.get(name.strip().lower())
    if model is None:
        model = next((m for m in HUB_MODELS.values() if m.repo_id == name), None)
    if model is None:
        raise _unknown(name)
    return model


def is_hub(name: str) -> bool:
    """Whether ``name`` is a registered Hub model (by name or repo id)."""
    return hub_name_of(name) is not None


def hub_name_of(name_or_repo: str) -> str | None:
    """The registry name of a Hub model given by name or repo id, else ``None``."""
    if name_or_repo in HUB_MODELS:
        return name_or_repo
    return next((m.name for m in HUB_MODELS.values() if m.repo_id == name_or_repo), None)


def hub_status(name: str) -> tuple[Path | None, str]:
    """``(snapshot folder, "cache")`` when the Hub model is cached, else ``(None, "missing")``."""
    from brushwork.hub import cached_snapshot

    found = cached_snapshot(get_hub(name).repo_id)
    return (found, "cache") if found is not None else (None, "missing")


def bundle(name: str) -> tuple[str, ...]:
    """The names in bundle ``name``; WeightsError naming the valid bundles if unknown."""
    if name in BUNDLES:
        return BUNDLES[name]
    close = difflib.get_close_matches(name, list(BUNDLES), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise WeightsError(f"unknown bundle '{name}' (valid: {', '.join(BUNDLES)}){hint}")


def download_hub(name: str, *, progress: bool = True) -> Path:
    """Fetch Hub model ``name`` into the Hugging Face cache; returns its snapshot folder."""
    from brushwork.hub import snapshot_download

    model = get_hub(name)
    return snapshot_download(
        model.repo_id,
        allow_patterns=list(model.allow_patterns) if model.allow_patterns else None,
        ignore_patterns=list(model.ignore_patterns) if model.ignore_patterns else None,
        progress=progress,
    )


def _unknown(name: str) -> WeightsError:
    known = sorted(all_names())
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return WeightsError(f"unknown weights '{name}' (known: {', '.join(known)}){hint}")


def get(name: str) -> WeightFile:
    """The weight file called ``name``; WeightsError with a suggestion if there is none.

    Hub models are looked up with :func:`get_hub`.
    """
    spec = REGISTRY.get(name) or REGISTRY.get(name.strip().lower())
    if spec is not None:
        return spec
    if hub_name_of(name) is not None:
        raise WeightsError(
            f"'{name}' is a Hugging Face Hub model, not a weights file; it is kept in the "
            "Hugging Face cache (see `brushwork weights list`)"
        )
    raise _unknown(name)


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """The torch checkpoint cache, ``<torch.hub.get_dir()>/checkpoints`` (honours $TORCH_HOME)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def expected_cache_path(name: str) -> Path:
    """Where the file for ``name`` lives (or would live) in the torch cache."""
    return cache_dir() / get(name).filename


def file_env_var(name: str) -> str:
    """The per-file environment variable for ``name``, e.g. ``BRUSHWORK_VGG19_WEIGHTS``."""
    return "BRUSHWORK_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") + "_WEIGHTS"


def is_offline() -> bool:
    """True when ``BRUSHWORK_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in _OFFLINE_VARS)


def _offline_var() -> str:
    return next(v for v in _OFFLINE_VARS if os.environ.get(v, "").strip().lower() in _TRUE)


def _env_dirs() -> list[Path]:
    value = os.environ.get(ENV_WEIGHTS_DIR, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _find_in_env(spec: WeightFile) -> tuple[Path | None, str]:
    """The file named by the environment, with "env-file" / "env-dir", or (None, "missing").

    Raises WeightsError when the per-file variable names a file that does not exist.
    """
    var = file_env_var(spec.name)
    value = os.environ.get(var, "").strip()
    if value:
        candidate = Path(value).expanduser()
        if candidate.is_dir():
            candidate = candidate / spec.filename
        if not candidate.is_file():
            raise WeightsError(f"{var}={value} is set, but {candidate} does not exist")
        return candidate, "env-file"
    for folder in _env_dirs():
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate, "env-dir"
    return None, "missing"


def status(name: str) -> tuple[Path | None, str]:
    """Where the file for ``name`` is found right now, without downloading.

    Returns ``(path, source)`` with source one of ``"env-file"``, ``"env-dir"``,
    ``"cache"``, or ``(None, "missing")``. Never raises for a registered name.
    """
    spec = get(name)
    try:
        found, source = _find_in_env(spec)
    except WeightsError:
        found, source = None, "missing"
    if found is not None:
        return found, source
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached, "cache"
    return None, "missing"


#: The command-line flag that gives each weight file (``"*"``: any), set by the CLI
#: for the command being run so that hints name that command's own option.
_FLAG_HINTS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "brushwork_weight_flags", default=None
)


@contextlib.contextmanager
def flag_hints(flags: dict[str, str]) -> Iterator[None]:
    """Within this block, hints for weight ``name`` name the option ``flags[name]``.

    Example: ``with flag_hints({"*": "--weights", "inception": "--inception-weights"})``.
    """
    token = _FLAG_HINTS.set(dict(flags))
    try:
        yield
    finally:
        _FLAG_HINTS.reset(token)


def flag_for(name: str, *, wildcard: bool = True) -> str | None:
    """The option of the running command that gives weight file ``name``, if any.

    ``wildcard=False``: only an option named for ``name`` itself, not the command's
    ``"*"`` one (which gives weight files, not Hub models).
    """
    hints = _FLAG_HINTS.get() or {}
    return hints.get(name) or (hints.get("*") if wildcard else None)


def _how_to_provide(spec: WeightFile) -> str:
    """One sentence of the ways to provide ``spec``'s file, naming the command's option."""
    flag = flag_for(spec.name)
    given = f"pass it with {flag} PATH" if flag else "pass its path"
    return (
        f"{given}, set {ENV_WEIGHTS_DIR}=<folder with {spec.filename}> (or "
        f"{file_env_var(spec.name)}=<file>), or run "
        f"`brushwork weights download {spec.name}` on a machine with internet and copy the "
        f"file to {cache_dir() / spec.filename}"
    )


def _not_available(spec: WeightFile, reason: str) -> WeightsError:
    dirs = _env_dirs()
    if dirs:
        listed = os.pathsep.join(str(d) for d in dirs)
        reason += f"; {ENV_WEIGHTS_DIR}={listed} does not contain {spec.filename}"
    return WeightsError(
        f"pretrained weights '{spec.name}' ({spec.filename}, {spec.size_text}, from "
        f"{spec.url}) are not available: {reason}; {_how_to_provide(spec)}"
    )


def resolve(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The local file for ``name``: explicit path, environment, torch cache, else download.

    The file is not hashed here (a fresh download is, on the fly); see :func:`verify`.
    Raises WeightsError, saying how to provide the file, when it cannot be found.
    """
    spec = get(name)
    if path is not None:
        given = Path(path).expanduser()
        if given.is_dir():
            given = given / spec.filename
        if not given.is_file():
            raise WeightsError(f"weights file {given} for '{spec.name}' does not exist")
        return given
    found, _ = _find_in_env(spec)
    if found is not None:
        return found
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached
    if not download:
        raise _not_available(spec, "it is not on this machine and downloading was turned off")
    if is_offline():
        raise _not_available(
            spec, f"it is not on this machine and offline mode is on ({_offline_var()}=1)"
        )
    return _download(spec, cached, progress=progress)


# --------------------------------------------------------------------------- download


def download(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Fetch the file for ``name`` into the torch cache and return its path.

    A cached file that passes :func:`verify` is kept unless ``force``; one that fails
    is downloaded again. Refuses in offline mode.
    """
    spec = get(name)
    cached = cache_dir() / spec.filename
    if cached.is_file() and not force:
        try:
            verify(cached, spec)
        except WeightsError as error:
            print(f"{error}; downloading it again", file=sys.stderr)
        else:
            return cached
    if is_offline():
        raise WeightsError(
            f"cannot download '{spec.name}': offline mode is on ({_offline_var()}=1); "
            "unset it to download"
        )
    return _download(spec, cached, progress=progress)


def _download(spec: WeightFile, dest: Path, *, progress: bool) -> Path:
    """Stream ``spec.url`` into ``dest`` atomically, checking size and SHA-256 on the way."""
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsError(
            f"cannot create the weights cache folder {folder}: {error.strerror or error}; "
            f"{_how_to_provide(spec)}"
        ) from error
    if spec.size_bytes is not None:
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(folder).free
            if free < spec.size_bytes:
                raise WeightsError(
                    f"not enough disk space in {folder} to download {spec.filename}: "
                    f"{spec.size_text} needed, {free / _MIB:.0f} MiB free; {_how_to_provide(spec)}"
                )

    fd, tmp = create_temp_file(folder / spec.filename, ".part")
    hasher = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(spec.url, headers={"User-Agent": "brushwork"})
            try:
                response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
            except ValueError as error:  # malformed URL
                raise WeightsError(f"cannot download {spec.url}: {error}") from error
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else spec.size_bytes
                with _progress_bar(spec, total, enabled=progress) as advance:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                        advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        digest = hasher.hexdigest()
        if spec.exact_size is not None and received != spec.exact_size:
            raise WeightsError(
                f"download of {spec.url} is incomplete or wrong: got {received} bytes, "
                f"expected {spec.exact_size}; nothing was saved, try again"
            )
        if spec.sha256 is not None and not digest.startswith(spec.sha256):
            raise WeightsError(
                f"download of {spec.url} failed its SHA-256 check: expected "
                f"{spec.sha256}..., got {digest[: max(len(spec.sha256), 16)]}...; "
                "nothing was saved, try again"
            )
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, disk full
        raise WeightsError(
            f"could not download '{spec.name}' from {spec.url}: {_describe(error)}; "
            f"{_how_to_provide(spec)}"
        ) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        _remember(dest, dest.stat(), digest)
    return dest


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, TimeoutError):
        return "the connection timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _progress_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _progress_bar(
    spec: WeightFile, total: int | None, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n_bytes)``: a rich bar on a terminal, one line of text otherwise."""
    if not enabled:
        yield lambda n: None
        return
    console = _progress_console()
    if not console.is_terminal:
        console.print(
            f"downloading {spec.filename} ({spec.size_text}) from {spec.url}",
            highlight=False,
            soft_wrap=True,
        )
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(spec.filename, total=total)
        yield lambda n: bar.advance(task, n)


# --------------------------------------------------------------------------- verification


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as file:
        while n := file.readinto(buffer):
            hasher.update(view[:n])
    return hasher.hexdigest()


def _index_key(path: Path) -> str:
    return str(path.resolve())


def _read_index() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _known_digest(path: Path, stat: os.stat_result) -> str | None:
    entry = _read_index().get(_index_key(path))
    if (
        isinstance(entry, dict)
        and entry.get("size") == stat.st_size
        and entry.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
    ):
        return entry["sha256"]
    return None


def _remember(path: Path, stat: os.stat_result, digest: str) -> None:
    """Record ``digest`` for ``path`` in the index; silently skipped if it cannot be written."""
    folder = cache_dir()
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        index = {key: entry for key, entry in _read_index().items() if os.path.exists(key)}
        index[_index_key(path)] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": digest,
        }
        fd, tmp = create_temp_file(folder / INDEX_NAME)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(index, out, indent=1, sort_keys=True)
        os.replace(tmp, folder / INDEX_NAME)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def verify(path: str | os.PathLike[str], spec: WeightFile) -> None:
    """Check that the file's SHA-256 starts with ``spec.sha256``; WeightsError if not.

    Digests are remembered in ``cache_dir()/brushwork-verified.json`` by resolved path,
    size and modification time, so an unchanged file is hashed only once.
    """
    file = Path(path)
    if spec.sha256 is None:  # no published digest: keys and shapes are checked on loading
        return
    try:
        stat = file.stat()
    except OSError as error:
        raise WeightsError(f"cannot read weights file {file}: {_describe(error)}") from error
    if spec.exact_size is not None and stat.st_size != spec.exact_size:
        raise WeightsError(
            f"weights file {file} is not the published {spec.filename} for '{spec.name}': "
            f"{stat.st_size} bytes, expected {spec.exact_size} (truncated download?); "
            f"delete it and run `brushwork weights download {spec.name}`"
        )
    digest = _known_digest(file, stat)
    if digest is None:
        try:
            digest = sha256_file(file)
        except OSError as error:
            raise WeightsError(f"cannot read weights file {file}: {_describe(error)}") from error
        with contextlib.suppress(OSError):
            if file.stat().st_mtime_ns == stat.st_mtime_ns:  # unchanged while hashing
                _remember(file, stat, digest)
    if not digest.startswith(spec.sha256):
        shown = digest[: max(len(spec.sha256), 16)]
        raise WeightsError(
            f"weights file {file} failed its SHA-256 check for '{spec.name}': expected "
            f"{spec.sha256}..., got {shown}... (corrupt, or a different file); delete it and "
            f"run `brushwork weights download {spec.name}`"
        )


# --------------------------------------------------------------------------- loading


def load_state_dict(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify_hash: bool = True,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Resolve, verify and load the state dict for ``name`` onto the CPU.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(..., weights_only=True)`` (memory-mapped for zip-format checkpoints).
    """
    spec = get(name)
    file = resolve(name, path=path, download=download, progress=progress)
    if verify_hash:
        verify(file, spec)
    return _load_file(file, spec)


def _load_file(file: Path, spec: WeightFile) -> dict[str, torch.Tensor]:
    import torch

    try:
        if file.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            mmap = zipfile.is_zipfile(file)  # only zip-format checkpoints can be mapped
            state = torch.load(str(file), weights_only=True, map_location="cpu", mmap=mmap)
    except Exception as error:
        raise WeightsError(
            f"{file} is not a valid checkpoint for '{spec.name}': {_load_reason(error)}"
        ) from error
    if not isinstance(state, dict):
        raise WeightsError(
            f"{file} is not a valid checkpoint for '{spec.name}': it holds a "
            f"{type(state).__name__}, not a state dict"
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{file} is not a valid checkpoint for '{spec.name}': entry {key!r} is a "
                f"{type(value).__name__}, not a tensor"
            )
    return dict(state)


def load_checkpoint_state(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    entries: tuple[str, ...] = (),
    download: bool = True,
    verify_hash: bool = True,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Like :func:`load_state_dict` for a training checkpoint: the tensors under the first
    of ``entries`` present (else the top level), other entries dropped.

    Besides tensors only argparse's ``Namespace`` and NumPy scalars/dtypes may be
    unpickled (``torch.load(weights_only=True)`` with exactly those allowed).
    """
    import argparse

    import numpy as np
    import torch

    spec = get(name)
    file = resolve(name, path=path, download=download, progress=progress)
    if verify_hash:
        verify(file, spec)
    if file.suffix.lower() == ".safetensors":
        return _load_file(file, spec)
    allowed: list[Any] = [argparse.Namespace, np.dtype, type(np.dtype(np.float64))]
    allowed += [getattr(np, "_core", np).multiarray.scalar]
    try:
        with torch.serialization.safe_globals(allowed):
            mmap = zipfile.is_zipfile(file)
            data = torch.load(str(file), weights_only=True, map_location="cpu", mmap=mmap)
    except Exception as error:
        raise WeightsError(
            f"{file} is not a valid checkpoint for '{spec.name}': {_load_reason(error)}; "
            "convert it once to .safetensors (docs/evaluation.md, CSD)"
        ) from error
    if isinstance(data, dict):
        data = next((data[key] for key in entries if isinstance(data.get(key), dict)), data)
    if not isinstance(data, dict):
        raise WeightsError(f"{file} holds a {type(data).__name__}, not a checkpoint dict")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _load_reason(error: BaseException) -> str:
    """A one-line reason from torch's long weights_only error messages."""
    text = _ANSI.sub("", str(error))
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0]
            return "refused to unpickle it safely: " + reason.strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or type(error).__name__
