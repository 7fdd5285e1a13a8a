"""ControlNet-guided stylisation: the layout of a photo, the style of a style image.

The content photo gives the structure through a ControlNet (Zhang et al. 2023) —
its Canny edges (computed here with OpenCV), its depth (a monocular depth model such
as DPT/MiDaS, ``Intel/dpt-hybrid-midas``, loaded from the Hub with transformers) or
its line art (the informative-drawings generator of the ControlNet 1.1 annotators,
``lllyasviel/Annotators``/``sk_model.pth``) — and the style image gives the style
through IP-Adapter with InstantStyle's block targeting
(:mod:`brushwork.diffusion.style_reference`): on SDXL the image features enter only the
style blocks, so the style image's *content* stays out; on SD 1.x the plain adapter.

Everything runs through diffusers' own ControlNet pipelines
(``StableDiffusionControlNetPipeline``, ``StableDiffusionXLControlNetPipeline``), built
from an already loaded text-to-image pipeline with ``from_pipe`` (no second copy of the
weights). ControlNets and annotators load through :func:`brushwork.hub.from_pretrained`
(Hub id or local folder; one clear line offline).

``control_scale`` multiplies the ControlNet's residuals: 0 gives exactly the generation
without a ControlNet.

Example::

    pipe = controlnet_pipeline(load_pipeline("stabilityai/stable-diffusion-xl-base-1.0"),
                               load_controlnet("sdxl", "canny"))
    load_style_adapter(pipe); set_style_preset(pipe, "style")
    hint = control_image(photo, "canny")
    result = stylize_with_controlnet(pipe, hint, style_image=starry_pil)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError, ImageError, WeightsError

__all__ = [
    "ANNOTATORS",
    "CONTROLNETS",
    "CONTROLS",
    "LINEART_FILE",
    "ControlStyleResult",
    "ControlStyleSettings",
    "DepthAnnotator",
    "LineartGenerator",
    "canny_map",
    "control_image",
    "controlnet_pipeline",
    "load_annotator",
    "load_controlnet",
    "stylize_with_controlnet",
]

CONTROLS = ("canny", "depth", "lineart")

#: (pipeline family, control) -> the published ControlNet in diffusers' layout.
CONTROLNETS: dict[tuple[str, str], str] = {
    ("sd", "canny"): "lllyasviel/control_v11p_sd15_canny",
    ("sd", "depth"): "lllyasviel/control_v11f1p_sd15_depth",
    ("sd", "lineart"): "lllyasviel/control_v11p_sd15_lineart",
    ("sdxl", "canny"): "diffusers/controlnet-canny-sdxl-1.0",
    ("sdxl", "depth"): "diffusers/controlnet-depth-sdxl-1.0",
    ("sdxl", "lineart"): "TheMistoAI/MistoLine",
}

#: control -> the annotator model that turns a photo into its control image.
ANNOTATORS = {"depth": "Intel/dpt-hybrid-midas", "lineart": "lllyasviel/Annotators"}
#: The line-art generator's weight file in ``lllyasviel/Annotators`` ("realistic" lines).
LINEART_FILE = "sk_model.pth"


@dataclass(frozen=True)
class ControlStyleSettings:
    """One ControlNet stylisation. Defaults: InstantStyle's ControlNet example.

    Attributes:
        prompt: what the image shows (may be empty: the style image and the control
            image then carry everything).
        control_scale: ControlNet strength (``controlnet_conditioning_scale``).
        steps, guidance_scale, seed: the sampler's.
        negative_prompt: what the image should not show.
        canny_low, canny_high: OpenCV Canny hysteresis thresholds (0–255 scale).
    """

    prompt: str = ""
    control_scale: float = 0.6
    steps: int = 30
    guidance_scale: float = 5.0
    seed: int = 0
    negative_prompt: str | None = None
    canny_low: int = 100
    canny_high: int = 200

    def validate(self) -> None:
        if not math.isfinite(self.control_scale) or self.control_scale < 0:
            raise ConfigError(f"the control scale must be ≥ 0, got {self.control_scale}")
        if self.steps < 1:
            raise ConfigError(f"steps must be ≥ 1, got {self.steps}")
        if not 0 <= self.canny_low <= self.canny_high <= 255:
            raise ConfigError(
                f"Canny thresholds need 0 ≤ low ≤ high ≤ 255, got {self.canny_low}, "
                f"{self.canny_high}"
            )


@dataclass
class ControlStyleResult:
    """Attributes: image (3, H, W) float32 in [0, 1]; control (3, H, W) the control
    image used; seconds: the pipeline call's wall time."""

    image: torch.Tensor
    control: torch.Tensor
    seconds: float


# --------------------------------------------------------------------------- control images


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ImageError(f"expected a (3, H, W) image, got {tuple(image.shape)}")


def canny_map(image: torch.Tensor, low: int = 100, high: int = 200) -> torch.Tensor:
    """Canny edges of a (3, H, W) image in [0, 1] -> (3, H, W) white edges on black."""
    import cv2
    import numpy as np

    _check_image(image)
    array = (image.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    edges = cv2.Canny(cv2.cvtColor(array, cv2.COLOR_RGB2GRAY), low, high)
    return torch.from_numpy(edges).float().div(255).expand(3, -1, -1).clone()


class DepthAnnotator:
    """Relative depth of a photo from a transformers depth model (DPT / MiDaS).

    The image is resized to the model's ``image_size`` (384 for DPT-hybrid), normalised
    with mean = std = 0.5 (DPT's processor), and the predicted depth is resized back
    (bicubic) and min–max normalised per image: near is white, as ControlNet expects.
    This is the authors' ``get_depth_map`` of the StyleAligned ControlNet notebook.
    """

    def __init__(self, model: Any, *, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        size = getattr(model.config, "image_size", 384)
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) in [0, 1] -> (3, H, W) depth map in [0, 1]."""
        _check_image(image)
        h, w = image.shape[-2:]
        x = F.interpolate(
            image[None].float().to(self.device), size=(self.size, self.size), mode="bicubic"
        ).clamp(0, 1)
        dtype = next(self.model.parameters()).dtype
        depth = self.model(pixel_values=((x - 0.5) / 0.5).to(dtype)).predicted_depth.float()
        depth = F.interpolate(depth[:, None], size=(h, w), mode="bicubic", align_corners=False)
        low, high = depth.amin(), depth.amax()
        depth = (depth - low) / (high - low).clamp_min(1e-20)
        return depth[0].expand(3, -1, -1).clamp(0, 1).cpu()


class _Residual(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = torch.nn.Sequential(
            torch.nn.ReflectionPad2d(1),
            torch.nn.Conv2d(channels, channels, 3),
            torch.nn.InstanceNorm2d(channels),
            torch.nn.ReLU(),
            torch.nn.ReflectionPad2d(1),
            torch.nn.Conv2d(channels, channels, 3),
            torch.nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class LineartGenerator(torch.nn.Module):
    """The line-art annotator of ControlNet 1.1 (informative-drawings generator, 3 res.
    blocks), in the key layout of ``sk_model.pth`` (``model0.1.weight``, ...).

    ``forward``: (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 1], dark lines on white;
    :meth:`annotate` gives ControlNet's control image (white lines on black).
    """

    def __init__(self, residual_blocks: int = 3) -> None:
        super().__init__()
        nn = torch.nn
        self.model0 = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, 64, 7), nn.InstanceNorm2d(64), nn.ReLU()
        )
        self.model1 = nn.Sequential(
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.InstanceNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.InstanceNorm2d(256), nn.ReLU(),
        )  # fmt: skip
        self.model2 = nn.Sequential(*[_Residual(256) for _ in range(residual_blocks)])
        self.model3 = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(64), nn.ReLU(),
        )  # fmt: skip
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, 1, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))

    @torch.no_grad()
    def annotate(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) in [0, 1] -> (3, H, W) white lines on black (``255 − line``).

        The generator needs sides that are multiples of 4: the image is padded by
        reflection and the map cropped back.
        """
        _check_image(image)
        h, w = image.shape[-2:]
        parameter = next(self.parameters())
        x = image[None].to(parameter.device, parameter.dtype)
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        line = self(x)[0, 0, :h, :w].float().clamp(0, 1)
        return (1 - line).expand(3, -1, -1).cpu()


def load_annotator(
    control: str, model: str | None = None, *, device: torch.device | str = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The function that maps a photo to its control image (``None`` for canny).

    Args:
        control: ``"canny"``, ``"depth"`` or ``"lineart"``.
        model: the annotator: a Hub id or folder (depth: a transformers depth model;
            lineart: a repo or folder holding ``sk_model.pth``, or the file itself);
            ``None``: :data:`ANNOTATORS`.

    Raises:
        WeightsError: the model cannot be had (offline, missing folder, wrong layout).
    """
    from brushwork.hub import from_pretrained

    if control not in CONTROLS:
        raise ConfigError(f"unknown control '{control}': choose from {', '.join(CONTROLS)}")
    if control == "canny":
        return None
    source = model or ANNOTATORS[control]
    if control == "depth":
        from transformers import AutoModelForDepthEstimation

        depth = from_pretrained(
            AutoModelForDepthEstimation.from_pretrained, source, what="depth annotator"
        )
        return DepthAnnotator(depth, device=device)
    return _load_lineart(source, device).annotate


def _load_lineart(source: str, device: torch.device | str) -> LineartGenerator:
    from brushwork.hub import from_pretrained

    given = Path(source).expanduser()
    if given.is_file():
        path = given
    else:

        def fetch(location: str, **kwargs: Any) -> Path:
            folder = Path(location)
            if folder.is_dir():
                return folder / LINEART_FILE
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(location, LINEART_FILE, **kwargs))

        path = from_pretrained(fetch, source, what="line-art annotator")
    if not path.is_file():
        raise WeightsError(f"line-art annotator file {path} does not exist")
    generator = LineartGenerator()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        generator.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise WeightsError(
            f"{path} is not the line-art annotator ({LINEART_FILE}'s layout): {reason}"
        ) from error
    return generator.to(device).eval().requires_grad_(False)


def control_image(
    image: torch.Tensor,
    control: str,
    annotator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    settings: ControlStyleSettings | None = None,
) -> torch.Tensor:
    """The control image of a (3, H, W) photo in [0, 1]: (3, H, W) in [0, 1].

    ``annotator``: from :func:`load_annotator` (needed for depth and line art).
    """
    settings = settings or ControlStyleSettings()
    if control not in CONTROLS:
        raise ConfigError(f"unknown control '{control}': choose from {', '.join(CONTROLS)}")
    if control == "canny":
        return canny_map(image, settings.canny_low, settings.canny_high)
    if annotator is None:
        raise ConfigError(f"the '{control}' control needs its annotator (load_annotator)")
    return annotator(image)


# --------------------------------------------------------------------------- pipelines


def load_controlnet(
    family: str,
    control: str,
    model: str | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Any:
    """A diffusers ``ControlNetModel``: ``model`` (Hub id or folder) or the published one
    for ``(family, control)`` (:data:`CONTROLNETS`).

    Raises:
        ConfigError: no published ControlNet for this family.
        WeightsError: it cannot be loaded (offline, missing folder).
    """
    from diffusers import ControlNetModel

    from brushwork.diffusion.pipelines import _dtype_kwarg
    from brushwork.hub import from_pretrained

    if model is None:
        if (family, control) not in CONTROLNETS:
            raise ConfigError(
                f"no published {control} ControlNet for {family} pipelines is known: give one "
                "with --controlnet (SD 1.x and SDXL are supported)"
            )
        model = CONTROLNETS[(family, control)]
    controlnet = from_pretrained(
        ControlNetModel.from_pretrained, model, what="ControlNet", **_dtype_kwarg(dtype)
    )
    return controlnet.to(device)


def controlnet_pipeline(pipe: Any, controlnet: Any) -> Any:
    """The ControlNet pipeline of ``pipe``'s family sharing its components.

    Raises:
        ConfigError: a pipeline that is neither SD 1.x/2.x nor SDXL, or a ControlNet
            made for another UNet (its cross-attention width differs).
    """
    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    from brushwork.diffusion.pipelines import pipeline_family

    family = pipeline_family(pipe)
    if family not in ("sd", "sdxl"):
        raise ConfigError(
            f"ControlNet stylisation supports Stable Diffusion 1.x/2.x and XL, not {family}"
        )
    unet_width = pipe.unet.config.cross_attention_dim
    control_width = controlnet.config.cross_attention_dim
    if unet_width != control_width:
        raise ConfigError(
            f"this ControlNet was made for a UNet with text width {control_width}, but the "
            f"model's is {unet_width} (an SD 1.5 ControlNet on SDXL, or the reverse?)"
        )
    kind = (
        StableDiffusionXLControlNetPipeline
        if family == "sdxl"
        else StableDiffusionControlNetPipeline
    )
    components = {name: value for name, value in pipe.components.items() if name in _accepted(kind)}
    control = kind(**components, controlnet=controlnet)
    control.set_progress_bar_config(disable=True)
    return control


def _accepted(kind: type) -> set[str]:
    import inspect

    return set(inspect.signature(kind.__init__).parameters) - {"self", "controlnet"}


def stylize_with_controlnet(
    pipe: Any,
    control: torch.Tensor,
    *,
    style_image: Any = None,
    image_embeds: list[torch.Tensor] | None = None,
    settings: ControlStyleSettings | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> ControlStyleResult:
    """One image with ``control``'s layout in the style of the style image.

    Args:
        pipe: a ControlNet pipeline (:func:`controlnet_pipeline`), with an IP-Adapter
            loaded and its preset set when a style is given.
        control: (3, H, W) control image in [0, 1] (:func:`control_image`); the result
            has its size (sides: multiples of the VAE factor).
        style_image: a PIL image for the adapter's image encoder, or ``image_embeds``
            (diffusers' ``ip_adapter_image_embeds``); neither: no style image.
        callback: ``callback(step, steps)`` after each denoising step.

    Returns:
        the image (3, H, W) in [0, 1] on the CPU, and the control image.

    Raises:
        ConfigError: bad settings, a prompt past the token limit, both style inputs.
    """
    from brushwork.diffusion.editing import check_prompt
    from brushwork.diffusion.pipelines import user_errors

    settings = settings or ControlStyleSettings()
    settings.validate()
    _check_image(control)
    check_prompt(pipe.tokenizer, settings.prompt)
    if style_image is not None and image_embeds is not None:
        raise ConfigError("give one of style_image and image_embeds, not both")
    height, width = int(control.shape[-2]), int(control.shape[-1])
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    if height % factor or width % factor:
        raise ImageError(
            f"the control image is {width}×{height}; its sides must be multiples of {factor}"
        )

    def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        if callback is not None:
            callback(step + 1, settings.steps)
        return kwargs

    call: dict[str, Any] = dict(
        prompt=settings.prompt,
        image=control[None].to(pipe.device, pipe.unet.dtype),
        controlnet_conditioning_scale=float(settings.control_scale),
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        height=height,
        width=width,
        generator=torch.Generator("cpu").manual_seed(settings.seed),
        output_type="pt",
        callback_on_step_end=on_step,
    )
    if settings.negative_prompt is not None:
        call["negative_prompt"] = settings.negative_prompt
    if style_image is not None:
        call["ip_adapter_image"] = style_image
    elif image_embeds is not None:
        call["ip_adapter_image_embeds"] = image_embeds
    began = time.perf_counter()
    with user_errors():
        image = pipe(**call).images[0]
    return ControlStyleResult(
        image=image.float().cpu().clamp(0, 1), control=control.float().cpu(),
        seconds=time.perf_counter() - began,
    )  # fmt: skip
