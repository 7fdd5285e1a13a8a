"""Optimisation-based style transfer (Gatys, Ecker & Bethge 2016; Gatys et al. 2017).

The image pixels are optimised so that the VGG features of the result match
the content image at the content layers and the Gram matrices of the style
image(s) at the style layers. Extras from "Controlling Perceptual Factors in
Neural Style Transfer" (Gatys et al. 2017): colour preservation (luminance-only
transfer, or colour matching of the style image), several styles blended or
each confined to a mask region, and coarse-to-fine optimisation.

Example::

    from brushwork.encoders import load_vgg_encoder
    from brushwork.image import load_image
    from brushwork.transfer import GatysSettings, gatys

    result = gatys(load_image("photo.jpg"), [load_image("starry.jpg")],
                   settings=GatysSettings(size=512, seed=0))
    result.image          # (3, H, W) in [0, 1]
    result.losses[-1], result.seconds

Speed: convolutions run in bfloat16 where the hardware has fast bf16 (the first
one, whose input is the image, and losses, Gram matrices and the image stay
float32), and the network stops at the deepest layer a loss uses. L-BFGS is
preconditioned with a multiscale operator (:class:`MultiscalePreconditioner`)
that moves coarse image structure as fast as fine detail, which is what a
coarse-to-fine pyramid was for (still available: ``pyramid="on"``). See
``benchmarks/gatys.py`` and docs/gatys.md for the figures.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from brushwork import color
from brushwork import image as imageops
from brushwork.devices import autocast, resolve_device, resolve_precision
from brushwork.encoders import VGGEncoder, load_vgg_encoder, unknown_name_message, vgg_layer_names
from brushwork.errors import ConfigError, OptimisationError
from brushwork.losses import (
    content_loss,
    gram_matrix,
    masked_gram_matrix,
    resize_mask,
    total_variation,
)

INIT_CHOICES = ("content", "style", "noise")
OPTIMIZER_CHOICES = ("lbfgs", "adam")
PRESERVE_COLOR_CHOICES = ("none", "luminance", "histogram", "mean-cov")
PYRAMID_CHOICES = ("auto", "on", "off")


@dataclass
class GatysSettings:
    """Settings of :func:`gatys`; the defaults follow the paper and the common
    reference implementations, except where ``benchmarks/gatys.py`` showed a
    faster schedule reaching an equal or lower loss.

    Attributes:
        size: long side of the output in pixels (``None``: the content's size).
        steps: optimisation steps (loss evaluations) in total, over all pyramid
            levels (see :func:`step_schedule` for how they are shared out).
        optimizer: ``"lbfgs"`` (default) or ``"adam"`` (less memory).
        learning_rate: step size; ``None`` means 1.0 for L-BFGS and 0.02 for Adam.
        init: start from the ``"content"`` image, the ``"style"`` image or
            seeded ``"noise"``.
        content_weight, style_weight, tv_weight: weights of the three losses.
        content_layers, style_layers: VGG layer names used by each loss.
        style_layer_weights: one weight per style layer (default 1 each).
        style_blend: one weight per style image when several are blended
            (default equal; normalised to sum to 1). Ignored with masks.
        style_scale: the style image's long side relative to the output's.
        preserve_color: ``"none"``, ``"luminance"`` (stylise luminance only and
            keep the content's colours), ``"histogram"`` or ``"mean-cov"``
            (match the style image's colours to the content first).
        pyramid: coarse-to-fine optimisation: ``"off"`` (default: with the
            preconditioner, full resolution from the start reaches a given loss sooner,
            ``benchmarks/gatys.py --time-to-quality``), ``"on"`` or ``"auto"`` (when the
            output has more than ``pyramid_threshold`` pixels).
        pyramid_min_size: long side of the coarsest level.
        coarse_share: the fraction of ``steps`` the coarser levels get together,
            split evenly among them; the full-size level gets the rest.
        coarse_steps: if set, the steps each coarser level asks for instead of the
            share; still taken out of ``steps`` (the full-size level keeps at least one).
        encoder: ``"vgg19"`` or ``"vgg16"``; pooling: ``"max"`` or ``"avg"``.
        precision: compute dtype of the network: ``"auto"``, ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (see :func:`brushwork.devices.resolve_precision`).
        lbfgs_history: number of past updates L-BFGS keeps.
        line_search: L-BFGS with a strong-Wolfe line search (each evaluation
            counts as a step, so the step budget is the same either way).
        precondition: L-BFGS's starting inverse Hessian is the identity plus
            ``precondition`` × the projection onto block-constant images at each
            block size 2, 4, 8, … px (see :class:`MultiscalePreconditioner`); 0 is
            the identity of textbook L-BFGS. A pixel gradient moves the coarse
            structure of the image slowly; this moves it as fast as the fine detail.
        seed: seeds the noise initialisation (the only randomness).
    """

    size: int | None = 512
    steps: int = 200
    optimizer: str = "lbfgs"
    learning_rate: float | None = None
    init: str = "content"
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] | None = None
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    preserve_color: str = "none"
    pyramid: str = "off"
    pyramid_threshold: int = 300 * 300
    pyramid_min_size: int = 128
    coarse_share: float = 0.6
    coarse_steps: int | None = None
    encoder: str = "vgg19"
    pooling: str = "max"
    precision: str = "auto"
    lbfgs_history: int = 100
    line_search: bool = True
    precondition: float = 2.0
    seed: int = 0

    def validate(self, num_styles: int = 1) -> None:
        """Raise ConfigError for any value that cannot work."""
        _choice("optimizer", self.optimizer, OPTIMIZER_CHOICES)
        _choice("init", self.init, INIT_CHOICES)
        _choice("preserve-color", self.preserve_color, PRESERVE_COLOR_CHOICES)
        _choice("pyramid", self.pyramid, PYRAMID_CHOICES)
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale", "precondition"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{_flag(name)} must be a non-negative number, got {value}")
        if self.style_scale == 0:
            raise ConfigError("--style-scale must be greater than 0")
        if self.steps < 0:
            raise ConfigError(f"--steps must be 0 or more, got {self.steps}")
        if self.coarse_steps is not None and self.coarse_steps < 0:
            raise ConfigError(f"--coarse-steps must be 0 or more, got {self.coarse_steps}")
        if not (math.isfinite(self.coarse_share) and 0 <= self.coarse_share < 1):
            raise ConfigError(
                f"--coarse-share must be at least 0 and below 1, got {self.coarse_share}"
            )
        if self.size is not None and self.size < 16:
            raise ConfigError(f"--size must be at least 16 pixels, got {self.size}")
        if self.pyramid_threshold < 0:
            raise ConfigError(
                f"--pyramid-threshold must be 0 or more, got {self.pyramid_threshold}"
            )
        if self.pyramid_min_size < 16:
            raise ConfigError(
                f"--pyramid-min-size must be at least 16, got {self.pyramid_min_size}"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.lbfgs_history < 1:
            raise ConfigError("--lbfgs-history must be at least 1")
        if not self.style_layers:
            raise ConfigError("at least one style layer is needed")
        known_layers = vgg_layer_names(self.encoder)
        for layer in self.content_layers + self.style_layers:
            if layer not in known_layers:
                raise ConfigError(
                    unknown_name_message(f"{self.encoder} layer", layer, known_layers)
                )
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(
                    f"{len(self.style_layer_weights)} style layer weights given for "
                    f"{len(self.style_layers)} style layers"
                )
            _non_negative("style layer weight", self.style_layer_weights)
        if self.style_blend is not None:
            if len(self.style_blend) != num_styles:
                raise ConfigError(
                    f"--style-weights has {len(self.style_blend)} weights but "
                    f"{num_styles} style image(s) were given"
                )
            _non_negative("--style-weights weight", self.style_blend)
            if sum(self.style_blend) <= 0:
                raise ConfigError("--style-weights must not all be zero")


def _flag(attribute: str) -> str:
    return "--" + attribute.replace("_", "-")


def _choice(name: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ConfigError(f"--{name} must be one of {', '.join(valid)}; got '{value}'")


def _non_negative(what: str, values: Sequence[float]) -> None:
    for value in values:
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{what} must be non-negative, got {value}")


@dataclass
class StepInfo:
    """What the per-step callback receives.

    Attributes:
        step: loss evaluations so far over all levels (1-based).
        total_steps: the planned number of evaluations over all levels.
        level: index of the pyramid level (0 = coarsest).
        loss, content_loss, style_loss, tv_loss: weighted loss terms.
        image: (1, 3, h, w) the pixels being optimised (do not modify).
    """

    step: int
    total_steps: int
    level: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    image: torch.Tensor
    _finish: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    def preview(self) -> torch.Tensor:
        """The current result as it would be returned: (3, h, w) in [0, 1], on the CPU."""
        return self._finish(self.image.detach()).cpu()


@dataclass
class GatysResult:
    """What :func:`gatys` returns.

    Attributes:
        image: (3, H, W) float32 result in [0, 1], on the CPU.
        losses: total loss after each evaluation (all levels in order).
        content_losses, style_losses, tv_losses: the weighted terms, per evaluation.
        levels: (height, width, steps run) of each pyramid level.
        seconds: wall time of the optimisation (targets included).
        device: where it ran; precision: the network's compute dtype.
        final_loss: the total loss of the returned image at full size (for
            L-BFGS the best point it evaluated there; NaN if ``steps`` is 0).
    """

    image: torch.Tensor
    losses: list[float]
    content_losses: list[float]
    style_losses: list[float]
    tv_losses: list[float]
    levels: list[tuple[int, int, int]]
    seconds: float
    device: str
    precision: str
    final_loss: float


def pyramid_sizes(size: int, pixels: int, settings: GatysSettings) -> list[int]:
    """Long sides of the levels, coarsest first, ending with ``size``.

    Each level doubles the previous one; the coarsest is at least
    ``pyramid_min_size``. One level when the pyramid is off or not needed.
    """
    use = settings.pyramid == "on" or (
        settings.pyramid == "auto" and pixels > settings.pyramid_threshold
    )
    sizes = [size]
    while use and sizes[0] // 2 >= settings.pyramid_min_size:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def split_steps(total: int, levels: int, settings: GatysSettings) -> list[int]:
    """Share ``total`` steps out over ``levels`` pyramid levels, coarsest first.

    The rule: the coarser levels together get ``floor(total × coarse_share)`` steps
    (or ``coarse_steps`` each, when set), never more than ``total − 1``, so the
    full-size level always keeps at least one step and the sum is exactly ``total``.
    The coarse budget is split evenly; a remainder goes to the finer coarse levels,
    so a level that gets 0 steps is always a coarsest one (and is dropped by
    :func:`step_schedule`). ``total = 0`` gives 0 steps everywhere.
    """
    if levels <= 1 or total == 0:
        return [0] * (levels - 1) + [total]
    coarse_levels = levels - 1
    if settings.coarse_steps is not None:
        coarse_budget = settings.coarse_steps * coarse_levels
    else:
        coarse_budget = math.floor(total * settings.coarse_share)
    coarse_budget = min(coarse_budget, total - 1)
    base, extra = divmod(coarse_budget, coarse_levels)
    coarse = [base + (1 if index >= coarse_levels - extra else 0) for index in range(coarse_levels)]
    return [*coarse, total - coarse_budget]


def step_schedule(
    content_size: tuple[int, int],
    settings: GatysSettings,
    *,
    smallest_side: int | None = None,
    min_side: int | None = None,
) -> list[tuple[int, int]]:
    """The (long side, steps) of each level, coarsest first; the steps sum to ``settings.steps``.

    Args:
        content_size: (height, width) of the content image before resizing.
        settings: the run's settings (``size``, ``steps``, pyramid settings).
        smallest_side: the smallest side of any image (content or style) at full size;
            with ``min_side``, coarse levels at which it would be below ``min_side``
            pixels (too small for the deepest layer) are left out.
        min_side: the smallest input side the network needs (default: computed from
            the settings' layers, 2 ** pools before the deepest layer).

    Levels that would get no step are left out; the full-size level is always there.
    """
    height, width = _output_size(content_size, settings.size)
    sizes = pyramid_sizes(max(height, width), height * width, settings)
    if min_side is None:
        min_side = min_input_side(settings)
    smallest = min(height, width) if smallest_side is None else smallest_side
    sizes = [size for size in sizes if smallest * size // sizes[-1] >= min_side] or [sizes[-1]]
    steps = split_steps(settings.steps, len(sizes), settings)
    schedule = [(size, count) for size, count in zip(sizes, steps, strict=True) if count > 0]
    return schedule or [(sizes[-1], 0)]


def planned_schedule(
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    settings: GatysSettings,
) -> list[tuple[int, int]]:
    """The schedule :func:`gatys` will run for images of these (height, width) sizes.

    Styles are scaled to ``style_scale`` × the output's long side, as :func:`gatys`
    does, so that levels too small for any image are left out the same way.
    """
    height, width = _output_size(content_size, settings.size)
    smallest = min(height, width)
    for style_height, style_width in style_sizes:
        long_side = max(1, round(max(height, width) * settings.style_scale))
        scale = long_side / max(style_height, style_width)
        smallest = min(smallest, max(1, round(min(style_height, style_width) * scale)))
    return step_schedule(content_size, settings, smallest_side=smallest)


def describe_schedule(schedule: Sequence[tuple[int, int]]) -> str:
    """``"256 px × 40, 512 px × 40 = 80 steps"`` for a :func:`step_schedule`."""
    parts = ", ".join(f"{size} px × {steps}" for size, steps in schedule)
    return f"{parts} = {sum(steps for _size, steps in schedule)} steps"


def min_input_side(settings: GatysSettings) -> int:
    """Smallest image side the settings' layers need: 2 ** (pools before the deepest layer)."""
    names = vgg_layer_names(settings.encoder)
    deepest = max(names.index(n) for n in (*settings.content_layers, *settings.style_layers))
    return 2 ** sum(1 for name in names[:deepest] if name.startswith("pool"))


def _output_size(content_size: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(height, width) of the output: the content's aspect with long side ``size``."""
    height, width = content_size
    if size is None:
        return height, width
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


#: Channels of each VGG block (VGG-16 and VGG-19 alike).
_VGG_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def _activation_elements(height: int, width: int, settings: GatysSettings) -> int:
    """Elements of every VGG activation up to the deepest layer used, for one image."""
    names = vgg_layer_names(settings.encoder)
    deepest = max(names.index(n) for n in (*settings.content_layers, *settings.style_layers))
    total, h, w = 0, height, width
    for name in names[: deepest + 1]:
        if name.startswith("pool"):
            h, w = max(1, h // 2), max(1, w // 2)
        total += _VGG_BLOCK_CHANNELS[int(name[4]) - 1] * h * w  # conv3_2, relu3_2, pool3: block 3
    return total


def estimate_memory(
    content_size: tuple[int, int],
    settings: GatysSettings,
    *,
    style_sizes: Sequence[tuple[int, int]] = (),
) -> int:
    """A rough upper estimate of the bytes a :func:`gatys` run needs at full size.

    The formula (4 bytes per float32 value, 2 for bf16/fp16 activations; ``A(h, w)`` =
    the elements of every VGG activation up to the deepest layer used, ≈ 650 per pixel
    of the image for VGG-19 to relu5_1)::

        2 · A(output) · act_bytes      forward activations kept for backward, and their
                                       gradients during the backward pass
      + A(style) · act_bytes           each style's forward pass (its Gram targets)
      + (2 · history + 6) · 3 · H · W · 4   L-BFGS: the s/y history pairs, pixels,
                                       gradient, direction and the best point (Adam: 4)
      + 80 MiB                         the VGG weights

    The coarse levels are smaller, so the full-size level is the peak.

    Args:
        content_size: (height, width) of the content image (before resizing).
        settings: the run's settings.
        style_sizes: (height, width) of each style image (before resizing).
    """
    height, width = _output_size(content_size, settings.size)
    act_bytes = 2 if settings.precision in ("bf16", "fp16") else 4
    total = 2 * _activation_elements(height, width, settings) * act_bytes
    for style_height, style_width in style_sizes:
        scale = max(height, width) * settings.style_scale / max(style_height, style_width)
        style_h = max(1, round(style_height * scale))
        style_w = max(1, round(style_width * scale))
        total += _activation_elements(style_h, style_w, settings) * act_bytes
    buffers = 2 * settings.lbfgs_history + 6 if settings.optimizer == "lbfgs" else 4
    total += buffers * 3 * height * width * 4
    return int(total + 80 * 1024**2)


def gatys(
    content: torch.Tensor,
    styles: torch.Tensor | Sequence[torch.Tensor],
    *,
    settings: GatysSettings | None = None,
    masks: Sequence[torch.Tensor] | None = None,
    encoder: VGGEncoder | None = None,
    weights: str | None = None,
    device: str | torch.device = "auto",
    callback: Callable[[StepInfo], None] | None = None,
    init_image: torch.Tensor | None = None,
    extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> GatysResult:
    """Stylise ``content`` with ``styles`` by optimising the pixels.

    Args:
        content: (3, H, W) RGB in [0, 1]; resized to ``settings.size``.
        styles: one (3, H', W') style image or a sequence of them.
        settings: see :class:`GatysSettings`.
        masks: optional, one (1, H, W) mask in [0, 1] per style, the content's
            size: style i is applied where mask i is set (regional style).
        encoder: a VGG encoder to use (default: the pretrained one of
            ``settings.encoder``, loaded through :mod:`brushwork.weights`).
        weights: path of the encoder's weight file (overrides the lookup).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` or a torch.device.
        callback: called after every loss evaluation with a :class:`StepInfo`.
        init_image: optional (3, H, W) image in [0, 1] to start from instead of
            ``settings.init`` (resized to the first level; its luminance is used
            with ``preserve_color="luminance"``). Video uses the warped previous frame.
        extra_loss: optional callable adding a term to the total loss: it gets the
            clamped pixels (1, 3, h, w) at the current level's size and returns a
            scalar tensor (e.g. the temporal loss of video style transfer).

    Returns:
        :class:`GatysResult` with the image and the loss history.

    Raises:
        ConfigError: invalid settings or inputs (mask sizes, style counts).
        OptimisationError: the loss became NaN or infinite, or memory ran out.
    """
    settings = settings or GatysSettings()
    style_list = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    if not style_list:
        raise ConfigError("at least one style image is needed")
    settings.validate(num_styles=len(style_list))
    _check_image("content image", content)
    for index, style in enumerate(style_list):
        _check_image(f"style image {index + 1}", style)
    if masks is not None:
        masks = _check_masks(masks, content, len(style_list))
    if init_image is not None:
        _check_image("initial image", init_image)

    device = resolve_device(device)
    dtype = resolve_precision(settings.precision, device)
    if encoder is None:
        encoder = load_vgg_encoder(settings.encoder, weights=weights, pooling=settings.pooling)
    encoder = encoder.to(device)
    layers = encoder.check_layers(dict.fromkeys(settings.content_layers + settings.style_layers))

    start = time.perf_counter()
    if settings.size is not None:
        content = imageops.resize_long_side(content, settings.size)
    content = content.float()
    if masks is not None:
        masks = [imageops.resize_to(m, *content.shape[-2:]) for m in masks]
    style_list = [_prepare_style(s.float(), content, settings) for s in style_list]
    finish = _finisher(content, settings)
    if settings.preserve_color == "luminance":
        content, style_list = _luminance_inputs(content, style_list)
        if init_image is not None:
            init_image = imageops.luminance(init_image.float()).expand(3, -1, -1)

    height, width = content.shape[-2:]
    min_side = encoder.min_input_size(layers)
    _check_large_enough(content, style_list, min_side, layers)
    # Coarse levels at which an image would be smaller than the network needs are skipped.
    smallest = min(min(image.shape[-2:]) for image in (content, *style_list))
    schedule = step_schedule(
        (height, width), replace(settings, size=None), smallest_side=smallest, min_side=min_side
    )
    sizes = [size for size, _steps in schedule]
    level_steps = [steps for _size, steps in schedule]
    history = _History(total_steps=sum(level_steps), callback=callback, finish=finish)
    pixels = None
    final_loss = float("nan")
    levels = []
    try:
        for level, (size, steps) in enumerate(zip(sizes, level_steps, strict=True)):
            level_content = _level_image(content, size, sizes[-1])
            objective = _Objective(
                encoder,
                layers,
                content=level_content.to(device),
                styles=[_level_image(s, size, sizes[-1]).to(device) for s in style_list],
                masks=[_level_image(m, size, sizes[-1]).to(device) for m in masks]
                if masks is not None
                else None,
                settings=settings,
                dtype=dtype,
                extra_loss=extra_loss,
            )
            pixels = _initial_pixels(
                pixels, level_content, style_list, settings, device, init_image=init_image
            )
            history.level = level
            before = history.step
            pixels, final_loss = _optimise(pixels, objective, steps, settings, history)
            levels.append((*pixels.shape[-2:], history.step - before))
    except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        raise OptimisationError(
            f"out of memory on {device} at {size} px; try a smaller --size, "
            "--optimizer adam, or --precision bf16"
        ) from error
    result_image = finish(pixels.detach()).cpu()
    return GatysResult(
        image=result_image,
        losses=history.losses,
        content_losses=history.content,
        style_losses=history.style,
        tv_losses=history.tv,
        levels=levels,
        seconds=time.perf_counter() - start,
        device=str(device),
        precision=str(dtype).removeprefix("torch."),
        final_loss=final_loss,
    )


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        "out of memory" in text or "can't allocate memory" in text
    )


def _check_image(what: str, image: torch.Tensor) -> None:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ConfigError(f"{what} must be a (3, H, W) RGB tensor, got shape {tuple(image.shape)}")
    if min(image.shape[-2:]) < 1:
        raise ConfigError(f"{what} is empty (shape {tuple(image.shape)})")
    if not torch.isfinite(image).all():
        raise ConfigError(f"{what} contains NaN or infinite values")


def _check_large_enough(
    content: torch.Tensor, styles: list[torch.Tensor], min_side: int, layers: list[str]
) -> None:
    for what, image in [("content image", content)] + [
        (f"style image {i}", s) for i, s in enumerate(styles, start=1)
    ]:
        if min(image.shape[-2:]) < min_side:
            raise ConfigError(
                f"the {what} is {image.shape[-1]}×{image.shape[-2]} px after resizing, but the "
                f"layers {', '.join(layers)} need at least {min_side} px on each side; "
                "use a larger --size (or --style-scale for the style)"
            )


def _check_masks(
    masks: Sequence[torch.Tensor], content: torch.Tensor, num_styles: int
) -> list[torch.Tensor]:
    masks = list(masks)
    if len(masks) != num_styles:
        raise ConfigError(f"{len(masks)} mask(s) given for {num_styles} style image(s): one each")
    for index, mask in enumerate(masks, start=1):
        if mask.dim() != 3 or mask.shape[0] != 1:
            raise ConfigError(f"mask {index} must be (1, H, W), got shape {tuple(mask.shape)}")
        if mask.shape[-2:] != content.shape[-2:]:
            raise ConfigError(
                f"mask {index} is {mask.shape[-1]}×{mask.shape[-2]} but the content image is "
                f"{content.shape[-1]}×{content.shape[-2]}; masks must have the content's size"
            )
    return [m.float() for m in masks]


def _prepare_style(style: torch.Tensor, content: torch.Tensor, settings: GatysSettings):
    """Resize a style image relative to the output and match its colours if asked."""
    long_side = max(1, round(max(content.shape[-2:]) * settings.style_scale))
    style = imageops.resize_long_side(style, long_side)
    if settings.preserve_color in ("histogram", "mean-cov"):
        style = color.match_color(style, content, settings.preserve_color)
    return style


def _luminance_inputs(
    content: torch.Tensor, styles: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Grey (3-channel) content and styles, the styles' luminance matched to the content's."""
    content_luma = imageops.luminance(content)
    grey_styles = [
        color.match_luminance_stats(imageops.luminance(s), content_luma)
        .clamp(0, 1)
        .expand(3, -1, -1)
        for s in styles
    ]
    return content_luma.expand(3, -1, -1), grey_styles


def _finisher(
    content: torch.Tensor, settings: GatysSettings
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Turn optimised pixels (1, 3, h, w) into the returned image (3, h, w) in [0, 1]."""
    if settings.preserve_color != "luminance":
        return lambda pixels: pixels[0].clamp(0, 1)

    def recombine(pixels: torch.Tensor) -> torch.Tensor:
        chroma = imageops.resize_to(content, *pixels.shape[-2:]).to(pixels.device)
        return color.combine_luminance(imageops.luminance(pixels[0]), chroma)

    return recombine


def _level_image(image: torch.Tensor, size: int, full_size: int) -> torch.Tensor:
    """``image`` (C, H, W) scaled by size / full_size, as a (1, C, h, w) batch."""
    if size != full_size:
        long_side = max(1, round(max(image.shape[-2:]) * size / full_size))
        image = imageops.resize_long_side(image, long_side)
    return image.unsqueeze(0)


def _initial_pixels(
    previous: torch.Tensor | None,
    content: torch.Tensor,
    styles: list[torch.Tensor],
    settings: GatysSettings,
    device: torch.device,
    *,
    init_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """Starting pixels (1, 3, h, w) of a level: the upsampled previous level, or the init."""
    height, width = content.shape[-2:]
    if previous is not None:
        start = F.interpolate(previous.detach(), size=(height, width), mode="bilinear")
    elif init_image is not None:
        start = imageops.resize_to(init_image.float(), height, width).unsqueeze(0)
    elif settings.init == "content":
        start = content
    elif settings.init == "style":
        start = imageops.resize_to(styles[0], height, width).unsqueeze(0)
    else:
        generator = torch.Generator().manual_seed(settings.seed)
        start = torch.rand(1, 3, height, width, generator=generator)
    # Contiguous: L-BFGS flattens the gradient with view() (frames decoded as
    # (H, W, 3) arrays and permuted are not).
    start = start.to(device).clamp(0, 1).clone(memory_format=torch.contiguous_format)
    return start.requires_grad_(True)


class _Objective:
    """The weighted loss of one pyramid level, with its targets computed once."""

    def __init__(
        self,
        encoder: VGGEncoder,
        layers: list[str],
        *,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        masks: list[torch.Tensor] | None,
        settings: GatysSettings,
        dtype: torch.dtype,
        extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.encoder, self.layers, self.settings, self.dtype = encoder, layers, settings, dtype
        self.extra_loss = extra_loss
        self.device = content.device
        self.masks = masks
        self._masks_at: dict[tuple[int, tuple[int, int]], torch.Tensor] = {}
        layer_weights = settings.style_layer_weights or (1.0,) * len(settings.style_layers)
        self.style_layer_weights = dict(zip(settings.style_layers, layer_weights, strict=True))
        with torch.no_grad():
            features = self.features(content, settings.content_layers)
            self.content_targets = {n: f.float() for n, f in features.items()}
            style_grams = []
            for style in styles:
                features = self.features(style, settings.style_layers)
                style_grams.append({n: gram_matrix(f) for n, f in features.items()})
        if masks is None:
            blend = settings.style_blend or (1.0,) * len(styles)
            total = sum(blend)
            self.style_targets = [
                {
                    n: sum(
                        w / total * grams[n] for w, grams in zip(blend, style_grams, strict=True)
                    )
                    for n in settings.style_layers
                }
            ]
        else:
            self.style_targets = style_grams

    def _mask_at(self, index: int, features: torch.Tensor) -> torch.Tensor:
        """Mask ``index`` at the size of (B, C, h, w) ``features``, resized once per size."""
        key = (index, tuple(features.shape[-2:]))
        if key not in self._masks_at:
            self._masks_at[key] = resize_mask(self.masks[index], key[1]).float()
        return self._masks_at[key]

    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.dtype):
            return self.encoder(image, layers, exact_input=True)

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its weighted terms for pixels (1, 3, h, w).

        The loss is that of the pixels clamped to [0, 1], the image that is
        returned: unconstrained L-BFGS otherwise drifts out of range, and the
        clamped result is worse than the loss it reported.
        """
        s = self.settings
        pixels = pixels.clamp(0, 1)
        features = self.features(pixels, self.layers)
        content = sum(content_loss(features[n], t) for n, t in self.content_targets.items())
        style = 0.0
        for index, targets in enumerate(self.style_targets):
            for name, target in targets.items():
                if self.masks is None:
                    gram = gram_matrix(features[name])
                else:
                    gram = masked_gram_matrix(features[name], self._mask_at(index, features[name]))
                style = style + self.style_layer_weights[name] * F.mse_loss(gram, target)
        terms = {
            "content": s.content_weight * content,
            "style": s.style_weight * style,
            "tv": s.tv_weight * total_variation(pixels) if s.tv_weight else pixels.new_zeros(()),
        }
        total = terms["content"] + terms["style"] + terms["tv"]
        if self.extra_loss is not None:
            terms["extra"] = self.extra_loss(pixels)
            total = total + terms["extra"]
        return total, terms


@dataclass
class _History:
    """Loss history and step counting across levels; calls the user's callback."""

    total_steps: int
    callback: Callable[[StepInfo], None] | None
    finish: Callable[[torch.Tensor], torch.Tensor]
    level: int = 0
    step: int = 0
    losses: list[float] = field(default_factory=list)
    content: list[float] = field(default_factory=list)
    style: list[float] = field(default_factory=list)
    tv: list[float] = field(default_factory=list)

    def record(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], pixels: torch.Tensor):
        value = float(loss.detach())
        self.step += 1
        if not math.isfinite(value):
            raise OptimisationError(
                f"the loss became {value} at step {self.step}; lower --learning-rate or "
                "--style-weight, or use --precision fp32"
            )
        self.losses.append(value)
        self.content.append(float(terms["content"].detach()))
        self.style.append(float(terms["style"].detach()))
        self.tv.append(float(terms["tv"].detach()))
        if self.callback is not None:
            self.callback(
                StepInfo(
                    step=self.step,
                    total_steps=self.total_steps,
                    level=self.level,
                    loss=value,
                    content_loss=self.content[-1],
                    style_loss=self.style[-1],
                    tv_loss=self.tv[-1],
                    image=pixels,
                    _finish=self.finish,
                )
            )


class _StepBudgetReached(Exception):
    """Raised inside an evaluation to stop the optimiser at exactly the step budget."""


def _optimise(
    pixels: torch.Tensor,
    objective: _Objective,
    steps: int,
    settings: GatysSettings,
    history: _History,
    accepted: list[float] | None = None,
) -> tuple[torch.Tensor, float]:
    """Run ``steps`` loss evaluations on ``pixels`` (1, 3, h, w).

    Returns the pixels and their loss: for L-BFGS the best point evaluated (its
    line search may be stopped by the budget at a trial point), for Adam the
    last evaluated one. ``accepted`` (L-BFGS) receives the loss of every point
    the line search accepted, in order.
    """
    if steps == 0:
        return pixels, float("nan")
    if settings.optimizer == "adam":
        optimizer = torch.optim.Adam([pixels], lr=settings.learning_rate or 0.02)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss, terms = objective(pixels)
            history.record(loss, terms, pixels)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                pixels.clamp_(0, 1)
        return pixels, history.losses[-1]

    evaluations = 0
    best_loss, best_pixels = math.inf, pixels.detach().clone()

    def evaluate(point: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Loss and flat gradient at a flat point (3·h·w,); counts one step."""
        nonlocal evaluations, best_loss
        if evaluations == steps:
            raise _StepBudgetReached
        evaluations += 1
        with torch.no_grad():
            pixels.copy_(point.view_as(pixels))
        pixels.grad = None
        with torch.enable_grad():
            loss, terms = objective(pixels)
            history.record(loss, terms, pixels)
            loss.backward()
        if history.losses[-1] < best_loss:
            best_loss = history.losses[-1]
            best_pixels.copy_(pixels.detach())
        return history.losses[-1], pixels.grad.detach().flatten().clone()

    precondition = None
    if settings.precondition > 0:
        precondition = MultiscalePreconditioner(tuple(pixels.shape), settings.precondition)
    with contextlib.suppress(_StepBudgetReached):
        _lbfgs(
            pixels.detach().flatten().clone(),
            evaluate,
            objective,
            settings,
            accepted,
            precondition=precondition,
        )
    with torch.no_grad():
        pixels.copy_(best_pixels)
    pixels.grad = None
    return pixels, best_loss


def _lbfgs(
    point: torch.Tensor,
    evaluate: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    objective: _Objective,
    settings: GatysSettings,
    accepted: list[float] | None,
    *,
    precondition: MultiscalePreconditioner | None = None,
) -> None:
    """L-BFGS from the flat ``point`` until ``evaluate`` raises :class:`_StepBudgetReached`.

    torch's ``LBFGS`` with a strong-Wolfe line search, with four differences:
    a point is accepted only if its loss is below the current one; when the line
    search finds no decrease (a noisy bf16 loss near a minimum), the loss is
    re-evaluated in float32 and the rest of the level runs in float32 (a second
    stall in float32 restarts the curvature history); the budget is always
    spent (torch's optimiser returns early on a stall); and with
    ``precondition`` the starting inverse Hessian is γ·P instead of γ·I, with
    γ = s'y / (y'Py) from the newest pair (Nocedal & Wright's scaling, in P's metric).
    """
    from torch.optim.lbfgs import _strong_wolfe

    lr = settings.learning_rate or 1.0
    loss, grad = evaluate(point)
    steps_s: list[torch.Tensor] = []
    steps_y: list[torch.Tensor] = []
    scale = 1.0
    while True:
        direction = _two_loop(grad, steps_s, steps_y, scale, precondition)
        slope = float(grad.dot(direction))
        if not steps_s or slope >= 0:
            steps_s.clear()
            steps_y.clear()
            direction, slope = -grad, -float(grad.dot(grad))
            step = min(1.0, 1.0 / float(grad.abs().sum())) * lr
        else:
            step = lr
        if slope == 0:
            return  # a stationary point: nothing more to gain
        if settings.line_search:

            def along(x: torch.Tensor, t: float, d: torch.Tensor):
                return evaluate(x + t * d)

            new_loss, new_grad, step, _evals = _strong_wolfe(
                along, point, step, direction, loss, grad, slope, max_ls=25
            )
            new_loss = float(new_loss)
        else:
            new_loss, new_grad = evaluate(point + step * direction)
        if not new_loss < loss or step == 0:
            # A stall: no decrease along the direction.
            if objective.dtype != torch.float32:
                objective.dtype = torch.float32
                loss, grad = evaluate(point)
            steps_s.clear()
            steps_y.clear()
            continue
        s = step * direction
        y = new_grad - grad
        curvature = float(y.dot(s))
        if curvature > 1e-10:
            if len(steps_s) == settings.lbfgs_history:
                steps_s.pop(0)
                steps_y.pop(0)
            steps_s.append(s)
            steps_y.append(y)
            metric_y = y if precondition is None else precondition(y)
            scale = curvature / float(y.dot(metric_y))
        point = point + s
        loss, grad = new_loss, new_grad
        if accepted is not None:
            accepted.append(loss)


def _two_loop(
    grad: torch.Tensor,
    steps_s: list[torch.Tensor],
    steps_y: list[torch.Tensor],
    scale: float,
    precondition: MultiscalePreconditioner | None = None,
) -> torch.Tensor:
    """The L-BFGS direction −H·grad from the stored (s, y) pairs (two-loop recursion).

    The starting inverse Hessian is ``scale`` × I, or ``scale`` × ``precondition``.
    """
    q = -grad
    alphas = []
    for s, y in zip(reversed(steps_s), reversed(steps_y), strict=True):
        alpha = float(s.dot(q)) / float(y.dot(s))
        q = q - alpha * y
        alphas.append(alpha)
    direction = (q if precondition is None else precondition(q)) * scale
    for (s, y), alpha in zip(zip(steps_s, steps_y, strict=True), reversed(alphas), strict=True):
        beta = float(y.dot(direction)) / float(y.dot(s))
        direction = direction + (alpha - beta) * s
    return direction


class MultiscalePreconditioner:
    """A symmetric positive-definite operator on flat images: P = I + c · Σ_k Π_k.

    Π_k replaces each pixel by the mean of its 2^k × 2^k block (the orthogonal
    projection onto images constant on those blocks; edge blocks that the image
    only partly covers average what they cover), for every block size 2, 4, 8, …
    up to half the image's shorter side. Used as L-BFGS's starting inverse
    Hessian it lets one step change a region's mean colour as much as a single
    pixel, where a plain gradient step moves coarse structure 2^k-fold slower.

    Args:
        shape: the image's shape (1, C, H, W); calls take and return flat (C·H·W,) vectors.
        weight: c, the weight of each level (> 0).
    """

    def __init__(self, shape: tuple[int, ...], weight: float):
        *_batch, height, width = shape
        self.shape = tuple(shape)
        self.weight = float(weight)
        self.blocks: list[int] = []
        block = 2
        while block <= min(height, width) // 2:
            self.blocks.append(block)
            block *= 2

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        image = vector.view(self.shape)
        height, width = self.shape[-2:]
        out = image.clone()
        for block in self.blocks:
            # ceil_mode with no padding divides each edge block by its in-bounds count.
            means = F.avg_pool2d(image, block, ceil_mode=True)
            spread = means.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)
            out += self.weight * spread[..., :height, :width]
        return out.flatten()
