"""Loading Stable Diffusion pipelines and generating images with word maps.

:func:`load_pipeline` loads SD 1.x, SD 2.x or SDXL through diffusers'
``from_pretrained`` (hub id or local folder). :func:`generate_with_maps` runs the
pipeline once for a batch of prompts inside an :class:`~.attention.AttentionRecorder`
and returns the images with each image's word maps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from brushwork.diffusion.attention import AttentionRecorder, RecordingSettings
from brushwork.diffusion.maps import WordMaps, word_maps
from brushwork.diffusion.tokens import TextStream, prompt_tokens, word_positions
from brushwork.errors import ConfigError

__all__ = [
    "DTYPES",
    "PRECISION_DTYPES",
    "AttendResult",
    "bytes_per_value",
    "dtype_name",
    "generate_image",
    "generate_with_maps",
    "load_pipeline",
    "pipeline_family",
    "seeded_call",
    "text_stream",
    "user_errors",
]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: The canonical ``--precision`` names -> the dtype names above.
PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def dtype_name(precision: str) -> str:
    """``"fp16"`` -> ``"float16"`` (``auto`` and dtype names pass through)."""
    return PRECISION_DTYPES.get(precision, precision)


def bytes_per_value(precision: str, device_type: str) -> int:
    """Bytes of one weight or activation value under ``precision`` (auto: fp16 on CUDA)."""
    name = dtype_name(precision)
    if name == "auto":
        name = "float16" if device_type == "cuda" else "float32"
    return 4 if name == "float32" else 2


def load_pipeline(model: str, *, dtype: str = "auto", device: str = "auto") -> Any:
    """A diffusers text-to-image pipeline from a hub id or a local folder: Stable Diffusion
    1.x/2.x/XL, SD3/3.5, Flux.1 or Flux.2 (anything else is refused by
    :func:`pipeline_family` before the weights move to the device).

    Args:
        model: e.g. ``"stabilityai/stable-diffusion-xl-base-1.0"``,
            ``"black-forest-labs/FLUX.1-dev"`` or a folder written by ``save_pretrained``
            (its tokenizers, T5's SentencePiece one included, load from the folder).
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float32"``,
            ``"float16"`` or ``"bfloat16"``, or the ``--precision`` names ``"fp32"``,
            ``"fp16"``, ``"bf16"``; applied to every component (transformer, VAE and text
            encoders alike).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    """
    from diffusers import DiffusionPipeline

    from brushwork.devices import resolve_device
    from brushwork.hub import from_pretrained

    target = resolve_device(device)
    dtype = dtype_name(dtype)
    if dtype == "auto":
        torch_dtype = torch.float16 if target.type == "cuda" else torch.float32
    elif dtype in DTYPES:
        torch_dtype = DTYPES[dtype]
    else:
        raise ConfigError(f"unknown dtype '{dtype}': choose from auto, {', '.join(DTYPES)}")
    pipe = from_pretrained(
        DiffusionPipeline.from_pretrained,
        model,
        what="diffusion pipeline",
        **_dtype_kwarg(torch_dtype),
    )
    pipeline_family(pipe)  # refuse unsupported pipelines before moving weights
    pipe = pipe.to(target)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The dtype keyword: ``dtype=`` on diffusers ≥ 0.40, ``torch_dtype=`` before."""
    import diffusers

    major, minor = (int(part) for part in diffusers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (0, 40) else {"torch_dtype": dtype}


#: Denoiser class -> family name (what :func:`pipeline_family` returns).
FAMILY_NAMES = {
    "SD3Transformer2DModel": "sd3",
    "FluxTransformer2DModel": "flux",
    "Flux2Transformer2DModel": "flux2",
}


def pipeline_family(pipe: Any) -> str:
    """``"sd"`` (1.x / 2.x), ``"sdxl"``, ``"sd3"``, ``"flux"`` or ``"flux2"``.

    Raises:
        ConfigError: a pipeline whose denoiser has no supported text attention.
    """
    from brushwork.diffusion.backbones import FAMILIES, denoiser_of

    denoiser = denoiser_of(pipe)
    name = type(denoiser).__name__
    if denoiser is pipe or name not in FAMILIES or getattr(pipe, "tokenizer", None) is None:
        raise ConfigError(
            f"{type(pipe).__name__} is not supported: word maps need a denoiser with text "
            "attention (Stable Diffusion 1.x, 2.x, XL, SD3/3.5 or Flux)"
        )
    if name in FAMILY_NAMES:
        return FAMILY_NAMES[name]
    return "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd"


def text_stream(pipe: Any, name: str | None = None) -> TextStream:
    """The text stream whose positions word maps use: ``name``, or the model's default.

    Raises:
        ConfigError: ``name`` is not one of the model's streams (the valid ones named).
    """
    from brushwork.diffusion.backbones import backbone_for

    streams = backbone_for(pipe).text_streams(pipe)
    if name is None:
        return streams[0]
    for stream in streams:
        if stream.name == name:
            return stream
    raise ConfigError(
        f"this model has no '{name}' text stream (it has: {', '.join(s.name for s in streams)})"
    )


@dataclass
class AttendResult:
    """Images and word maps of one pipeline call.

    Attributes:
        images: (N, 3, H, W) float32 in [0, 1], N = prompts × images per prompt.
        prompts: the prompt of each image (repeated for several images per prompt).
        maps: per image, its :class:`~.maps.WordMaps`.
        token_maps: (N, tokens, h, w) float32 raw DAAM maps per text position (on the CPU,
            like ``images`` and ``maps``).
        extra: ``"steps_recorded"`` (list of step indices), and when kept,
            ``"layer_maps"`` ({layer: (N, tokens, h, w)}) and ``"step_maps"``
            ((steps, N, tokens, h, w)).
    """

    images: torch.Tensor
    prompts: list[str]
    maps: list[WordMaps]
    token_maps: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


def generate_with_maps(
    pipe: Any,
    prompts: str | Sequence[str],
    words: Sequence[str] | Sequence[Sequence[str]],
    *,
    num_inference_steps: int = 30,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seeds: int | Sequence[int] = 0,
    num_images_per_prompt: int = 1,
    negative_prompt: str | Sequence[str] | None = None,
    settings: RecordingSettings | None = None,
    rule: str = "mean",
    occurrence: int | None = None,
    stream: str | None = None,
    **pipe_kwargs: Any,
) -> AttendResult:
    """Generate a batch of images in one pipeline call and the maps of the given words.

    Args:
        prompts: one prompt or a list (one UNet batch).
        words: the words for every prompt, or one list of words per prompt.
        guidance_scale: ``None`` keeps the pipeline's default.
        seeds: one seed per image (``prompts × images per prompt``), or one base seed: image
            ``i`` then uses ``seed + i``. Each image has its own generator, so a batch gives
            the images (and maps) of the same prompts generated one at a time.
        settings: what to record (defaults: the original DAAM method).
        rule, occurrence: see :func:`~.tokens.word_positions`.
        stream: the text stream the words are looked up in (``"clip"``, ``"t5"``); default:
            the model's first (UNets and SD3: CLIP; Flux: T5).
        pipe_kwargs: passed to the pipeline call.

    Raises:
        WordNotFoundError: before generating, naming the first word missing from a prompt.
    """
    pipeline_family(pipe)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise ConfigError("no prompt given")
    word_lists = _words_per_prompt(words, len(prompt_list))
    text = text_stream(pipe, stream)
    if text.name == "t5" and "max_sequence_length" in pipe_kwargs:  # this call's T5 length
        text = replace(text, length=int(pipe_kwargs["max_sequence_length"]))
    tokenizer = text.tokenizer
    for prompt, prompt_words in zip(prompt_list, word_lists, strict=True):
        tokens = prompt_tokens(tokenizer, prompt, stream=text)
        for word in prompt_words:  # fail before the (long) generation
            word_positions(tokenizer, tokens, word, occurrence=occurrence, rule=rule)
    count = len(prompt_list) * num_images_per_prompt
    call = seeded_call(
        pipe,
        prompt_list,
        seeds=seeds,
        num_inference_steps=num_inference_steps,
        height=height,
        width=width,
        num_images_per_prompt=num_images_per_prompt,
        negative_prompt=negative_prompt,
        guidance_scale=guidance_scale,
        **pipe_kwargs,
    )
    max_tokens = max(prompt_tokens(tokenizer, p, stream=text).end for p in prompt_list)
    settings = settings or RecordingSettings()
    if settings.max_tokens is None:
        settings = RecordingSettings(**{**settings.__dict__, "max_tokens": max_tokens})
    with AttentionRecorder(pipe, settings) as recorder:
        output = pipe(**call)
        token_maps = recorder.token_maps().cpu()
        extra: dict[str, Any] = {"steps_recorded": recorder.steps_recorded}
        if settings.keep_per_layer:
            extra["layer_maps"] = {k: v.cpu() for k, v in recorder.layer_maps().items()}
        if settings.keep_per_step:
            extra["step_maps"] = recorder.step_maps().cpu()
    images = output.images.float().cpu().clamp(0, 1)
    image_size = (int(images.shape[-2]), int(images.shape[-1]))
    per_image_prompts = [p for p in prompt_list for _ in range(num_images_per_prompt)]
    per_image_words = [w for w in word_lists for _ in range(num_images_per_prompt)]
    maps = [
        word_maps(
            token_maps[i],
            tokenizer,
            per_image_prompts[i],
            per_image_words[i],
            image_size=image_size,
            rule=rule,
            occurrence=occurrence,
            stream=text,
        )
        for i in range(count)
    ]
    return AttendResult(
        images=images, prompts=per_image_prompts, maps=maps, token_maps=token_maps, extra=extra
    )


def seeded_call(
    pipe: Any,
    prompt_list: list[str],
    *,
    seeds: int | Sequence[int],
    num_images_per_prompt: int = 1,
    negative_prompt: str | Sequence[str] | None = None,
    guidance_scale: float | None = None,
    **call_kwargs: Any,
) -> dict[str, Any]:
    """The keyword arguments of one pipeline call with one seeded generator per image.

    ``seeds``: one per image (``prompts × images per prompt``), or a base seed (image ``i``
    uses ``seed + i``). ``negative_prompt`` and ``guidance_scale`` are passed only when
    given (not every pipeline takes them; ``None`` keeps the pipeline's default).
    Output is ``"pt"``.
    """
    count = len(prompt_list) * num_images_per_prompt
    seed_list = [seeds + i for i in range(count)] if isinstance(seeds, int) else list(seeds)
    if len(seed_list) != count:
        raise ConfigError(f"{len(seed_list)} seeds given for {count} images")
    generator_device = "cpu" if pipe.device.type == "mps" else pipe.device
    call: dict[str, Any] = dict(
        prompt=prompt_list,
        num_images_per_prompt=num_images_per_prompt,
        generator=[torch.Generator(generator_device).manual_seed(s) for s in seed_list],
        output_type="pt",
        **call_kwargs,
    )
    if negative_prompt is not None:  # not every pipeline takes one (Flux.2 klein)
        call["negative_prompt"] = negative_prompt
    if guidance_scale is not None:
        call["guidance_scale"] = guidance_scale
    return call


def _words_per_prompt(
    words: Sequence[str] | Sequence[Sequence[str]], prompts: int
) -> list[list[str]]:
    if isinstance(words, str):
        raise ConfigError("words must be a list of words, not one string")
    if words and all(isinstance(w, str) for w in words):
        return [list(words)] * prompts  # type: ignore[arg-type]
    lists = [list(w) for w in words]
    if len(lists) != prompts:
        raise ConfigError(f"{len(lists)} word lists given for {prompts} prompts")
    return lists


@contextlib.contextmanager
def user_errors(what: str = "the pipeline") -> Iterator[None]:
    """Turn diffusers'/transformers' ``ValueError`` about its inputs into a one-line ConfigError.

    The pipelines check sizes, guidance, prompts and batch shapes with ``ValueError``;
    every such value comes from the user, so the message is theirs to read, not a traceback.
    """
    try:
        yield
    except ValueError as error:
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
        raise ConfigError(f"{what} refused the settings: {reason}") from error


def generate_image(
    pipe: Any,
    prompt: str,
    *,
    steps: int = 50,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
    negative_prompt: str | None = None,
    callback: Any = None,
) -> torch.Tensor:
    """One plain text-to-image generation; returns (3, H, W) float32 on the CPU.

    ``callback()`` is called after each denoising step. Same seed, same image (the
    initial noise comes from a CPU generator). Pipeline ValueErrors become ConfigError.
    """

    def on_step(pipe_: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        if callback is not None:
            callback()
        return kwargs

    call: dict[str, Any] = dict(
        num_inference_steps=steps,
        negative_prompt=negative_prompt,
        height=height,
        width=width,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pt",
        callback_on_step_end=on_step,
    )
    if guidance_scale is not None:
        call["guidance_scale"] = guidance_scale
    with user_errors():
        image = pipe(prompt, **call).images[0]
    return image.float().cpu()
