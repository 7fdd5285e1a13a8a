"""Loading, saving, resizing and colour-space conversion of images as tensors.

Images are float tensors in ``[0, 1]`` with the channel axis third from the end:
``(3, H, W)`` for one RGB image, ``(B, 3, H, W)`` for a batch and ``(1, H, W)``
for a greyscale mask. Every problem a user can cause (missing file, corrupt or
huge image, bad output path) raises :class:`~brushwork.errors.ImageError` or
:class:`~brushwork.errors.OutputPathError` with a one-line message that names the
file and says what to do.

Pixel values are taken as sRGB; embedded ICC colour profiles are not applied.
Multi-frame files (animated GIF or WebP) give their first frame.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from brushwork.atomic import create_temp_file
from brushwork.errors import ConfigError, ImageError, OutputPathError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_OUTPUT_SUFFIXES",
    "check_output_path",
    "lab_to_rgb",
    "load_image",
    "load_mask",
    "luminance",
    "resize_long_side",
    "resize_to",
    "rgb_to_lab",
    "rgb_to_ycbcr",
    "rgb_to_yiq",
    "save_image",
    "ycbcr_to_rgb",
    "yiq_to_rgb",
]

DEFAULT_MAX_PIXELS: int = 100_000_000
SUPPORTED_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# Pillow modes holding one channel of more than 8 bits (16-bit PNG greyscale
# loads as "I;16"; older Pillow versions and TIFF give "I").
_HIGH_BIT_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_UINT16_MAX = 65535.0
# Errors Pillow raises for broken files besides OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# Pillow's decompression-bomb limit and truncated-file switch are module globals.
# We set them for the duration of our own loads; the lock keeps two of our
# loads (in different threads) from restoring each other's values too early.
_PILLOW_GLOBALS_LOCK = threading.Lock()


# --------------------------------------------------------------------------- loading


def load_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Load an image file as an RGB tensor.

    EXIF orientation is applied. Alpha channels are dropped (not composited onto
    any background). Greyscale, palette, 1-bit and CMYK images are converted to
    RGB; 16-bit greyscale ("I;16", "I") is scaled by 1/65535 and float ("F")
    images are taken to be in [0, 1] and clipped to it.

    Args:
        path: The image file.
        max_pixels: Largest width × height accepted, checked from the file header
            before any pixel is decoded.

    Returns:
        float32 tensor of shape (3, H, W) with values in [0, 1].

    Raises:
        ImageError: The file is missing, a folder, not an image, truncated or
            corrupt, empty, or larger than ``max_pixels``.
        ConfigError: ``max_pixels`` is smaller than 1.
    """
    file = Path(path)
    array = _rgb_array(_open_oriented(file, max_pixels, "image"), file)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_mask(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Load an image file as a greyscale mask.

    EXIF orientation is applied, then the image is converted to greyscale
    luminance (Pillow's "L" conversion, 16-bit aware). Any alpha channel is
    ignored: transparency does not count as black or white.

    Args:
        path: The mask file.
        max_pixels: Largest width × height accepted, checked before decoding.

    Returns:
        float32 tensor of shape (1, H, W) with values in [0, 1].

    Raises:
        ImageError: Same cases as :func:`load_image`.
        ConfigError: ``max_pixels`` is smaller than 1.
    """
    file = Path(path)
    array = _grey_array(_open_oriented(file, max_pixels, "mask"), file)
    return torch.from_numpy(array).unsqueeze(0).contiguous()


def _open_oriented(file: Path, max_pixels: int, what: str) -> Image.Image:
    """Open, size-check, fully decode and EXIF-rotate an image file.

    The returned image is detached from the file (the file is closed).
    """
    _check_max_pixels_setting(max_pixels)
    _check_is_file(file, what)
    with _strict_pillow():
        try:
            with Image.open(file) as img:
                _check_dimensions(img.width, img.height, file, max_pixels)
                img.load()
                return _exif_transposed(img)
        except UnidentifiedImageError as err:
            raise ImageError(
                f"'{file}' is not an image file that can be read; "
                "use a PNG, JPEG, WebP, TIFF or BMP file"
            ) from err
        except PermissionError as err:
            raise ImageError(
                f"cannot read {what} '{file}': permission denied; check the file's permissions"
            ) from err
        except _DECODE_ERRORS as err:
            raise ImageError(
                f"{what} '{file}' is truncated or corrupt ({_one_line(err)}); "
                "re-export or re-download it"
            ) from err


@contextlib.contextmanager
def _strict_pillow() -> Iterator[None]:
    """Make Pillow defer to our pixel limit and refuse truncated files.

    Pillow's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``) fires
    inside ``Image.open`` with a message that knows nothing of ``--max-pixels``.
    ``Image.open`` reads only the header, so for the duration of the block
    Pillow's check is off and ours (:func:`_check_dimensions`, before any pixel
    is decoded) is the only one; ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False.
    Both globals are restored afterwards.
    """
    with _PILLOW_GLOBALS_LOCK:
        old_limit = Image.MAX_IMAGE_PIXELS
        old_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
            ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated


def _check_max_pixels_setting(max_pixels: int) -> None:
    if not _is_whole(max_pixels) or max_pixels < 1:
        raise ConfigError(f"--max-pixels must be a whole number of at least 1, got {max_pixels!r}")


def _is_whole(value: object) -> bool:
    """True for integers (Python or NumPy), False for bools, floats and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_is_file(file: Path, what: str) -> None:
    """Raise ImageError if ``file`` is missing or is a folder."""
    if file.is_dir():
        raise ImageError(f"'{file}' is a folder, not an {what} file; give the path of a file")
    if not file.exists():
        raise ImageError(f"{what} file not found: '{file}'; check the path and spelling")


def _check_dimensions(width: int, height: int, file: Path, max_pixels: int) -> None:
    """Raise ImageError for an empty image or one with more than ``max_pixels`` pixels."""
    if width < 1 or height < 1:
        raise ImageError(
            f"'{file}' is empty ({width}x{height} pixels); use an image with at least one pixel"
        )
    pixels = width * height
    if pixels > max_pixels:
        raise ImageError(
            f"'{file}' is {width}x{height} = {pixels:,} pixels, more than the limit of "
            f"{max_pixels:,}; resize it or raise the limit with --max-pixels"
        )


def _exif_transposed(img: Image.Image) -> Image.Image:
    """Return a copy of ``img`` rotated/flipped as its EXIF orientation says.

    A broken EXIF block is ignored (the image is returned unrotated).
    """
    try:
        oriented = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        oriented = None
    return img.copy() if oriented is None else oriented


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _high_bit_grey(img: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a 16/32-bit integer greyscale image (scale 1/65535)."""
    values = np.asarray(img).astype(np.float32) / _UINT16_MAX
    return np.clip(values, 0.0, 1.0)


def _float_grey(img: Image.Image, file: Path) -> np.ndarray:
    """(H, W) float32 from a float ("F") image, taken to be in [0, 1] and clipped."""
    values = np.asarray(img, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ImageError(f"'{file}' contains NaN or infinite pixel values; re-export it")
    return np.clip(values, 0.0, 1.0)


def _convert(img: Image.Image, mode: str, file: Path) -> Image.Image:
    """Convert to an 8-bit mode ("RGB" or "L"), going through RGBA for palettes."""
    try:
        if img.mode in ("P", "PA"):
            img = img.convert("RGBA")
        return img.convert(mode)
    except ValueError as err:
        raise ImageError(
            f"'{file}' uses the colour mode {img.mode}, which cannot be converted to {mode}; "
            "re-save it as an RGB or greyscale image"
        ) from err


def _rgb_array(img: Image.Image, file: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from any supported Pillow mode."""
    if img.mode in _HIGH_BIT_GREY_MODES or img.mode == "F":
        grey = _grey_array(img, file)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(_convert(img, "RGB", file), dtype=np.float32) / 255.0


def _grey_array(img: Image.Image, file: Path) -> np.ndarray:
    """(H, W) float32 in [0, 1] greyscale from any supported Pillow mode."""
    if img.mode in _HIGH_BIT_GREY_MODES:
        return _high_bit_grey(img)
    if img.mode == "F":
        return _float_grey(img, file)
    return np.asarray(_convert(img, "L", file), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- saving


def check_output_path(path: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Check that an output image can be written, before any long work starts.

    Args:
        path: The output file.
        inputs: Input files that must not be overwritten.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OutputPathError: ``path`` is a folder, has an unsupported extension, its
            folder does not exist, or it is the same file as one of ``inputs``.
    """
    out = _check_output_location(Path(path))
    for given in inputs:
        if _same_file(out, Path(given)):
            raise OutputPathError(
                f"output '{out}' would overwrite the input '{given}'; "
                "choose a different output file name"
            )
    return out


def _check_output_location(out: Path) -> Path:
    """Raise OutputPathError unless ``out`` is a writable-looking image file path."""
    if out.is_dir():
        raise OutputPathError(
            f"output '{out}' is a folder; give a file name such as '{out / 'result.png'}'"
        )
    if out.suffix.lower() not in SUPPORTED_OUTPUT_SUFFIXES:
        shown = out.suffix or "no extension"
        raise OutputPathError(
            f"cannot write '{out}': unsupported file type ({shown}); "
            f"use one of {', '.join(SUPPORTED_OUTPUT_SUFFIXES)}"
        )
    folder = out.parent
    if not folder.exists():
        raise OutputPathError(
            f"output folder '{folder}' does not exist; create it first or choose another path"
        )
    if not folder.is_dir():
        raise OutputPathError(f"cannot write '{out}': '{folder}' is a file, not a folder")
    from brushwork.resources import probe_writable

    probe_writable(folder, f"output '{out.name}'")
    return out


def _same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name the same file (resolved paths, links, hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def save_image(image: torch.Tensor, path: str | os.PathLike, *, quality: int = 95) -> Path:
    """Write an image tensor to a PNG, JPEG or WebP file, atomically.

    The file type follows the extension. Values are clamped to [0, 1] and
    quantised as round(x * 255). The image is written to a temporary file in the
    same folder and moved over ``path`` only once complete, so a failure never
    leaves a partial file (an existing file at ``path`` stays untouched). JPEGs
    are written without chroma subsampling.

    Args:
        image: Float tensor of shape (3, H, W), (1, 3, H, W) (RGB) or (1, H, W)
            (greyscale).
        path: Output file ending in one of :data:`SUPPORTED_OUTPUT_SUFFIXES`.
        quality: JPEG/WebP quality, 1 to 100 (ignored for PNG).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OutputPathError: Bad extension, missing folder, ``path`` is a folder, or
            the file could not be written.
        ConfigError: ``quality`` is outside 1..100.
        ValueError: ``image`` has the wrong shape or contains NaN.
    """
    out = _check_output_location(Path(path))
    _check_quality(quality)
    pil_image = _tensor_to_pil(image)
    fmt = _PIL_FORMATS[out.suffix.lower()]
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": quality, "subsampling": 0}
    elif fmt == "WEBP":
        options = {"quality": quality}
    try:
        _write_atomically(pil_image, out, fmt, options)
    except OSError as err:
        raise OutputPathError(f"could not write '{out}': {_one_line(err)}") from err
    return out


def _check_quality(quality: int) -> None:
    if not _is_whole(quality) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be a whole number from 1 to 100, got {quality!r}")


def _tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Quantise a (3, H, W), (1, 3, H, W) or (1, H, W) float tensor to an 8-bit PIL image."""
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"save_image expects shape (3, H, W), (1, 3, H, W) or (1, H, W), "
            f"got {tuple(image.shape)}"
        )
    pixels = image.detach().to("cpu", torch.float32)
    if torch.isnan(pixels).any():
        raise ValueError("save_image got an image containing NaN values")
    quantised = (pixels.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    array = quantised.permute(1, 2, 0).numpy()
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def _write_atomically(
    pil_image: Image.Image, out: Path, fmt: str, options: dict[str, object]
) -> None:
    """Save to a temporary file next to ``out``, then rename it over ``out``."""
    fd, temp = _create_temp_file(out)
    try:
        with os.fdopen(fd, "wb") as handle:
            pil_image.save(handle, format=fmt, **options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _create_temp_file(out: Path) -> tuple[int, Path]:
    """A new hidden file beside ``out`` with the usual (umask) permissions."""
    return create_temp_file(out)


# --------------------------------------------------------------------------- resizing


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the longer side is ``size`` pixels, keeping the aspect ratio.

    The shorter side is rounded (halves up) and is at least 1. Bilinear, with
    antialiasing when shrinking.

    Args:
        image: Float tensor of shape (C, H, W) or (B, C, H, W).
        size: Length of the longer side after resizing.

    Returns:
        Tensor of the same rank, (C, H', W') or (B, C, H', W'), max(H', W') == size.

    Raises:
        ConfigError: ``size`` is smaller than 1.
    """
    _check_side(size, "size")
    height, width = _spatial_size(image)
    if height >= width:
        new_height, new_width = size, _scaled_side(width, size, height)
    else:
        new_height, new_width = _scaled_side(height, size, width), size
    return resize_to(image, new_height, new_width)


def _scaled_side(short: int, size: int, long: int) -> int:
    return max(1, math.floor(short * size / long + 0.5))


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize to exactly ``height`` × ``width`` pixels (bilinear, antialiased when shrinking).

    Args:
        image: Float tensor of shape (C, H, W) or (B, C, H, W).
        height: Output height.
        width: Output width.

    Returns:
        Tensor of shape (C, height, width) or (B, C, height, width). If the size
        is already right, ``image`` itself is returned.

    Raises:
        ConfigError: ``height`` or ``width`` is smaller than 1.
    """
    _check_side(height, "height")
    _check_side(width, "width")
    old_height, old_width = _spatial_size(image)
    if (old_height, old_width) == (height, width):
        return image
    if not image.is_floating_point():
        raise ValueError(f"resize_to needs a floating-point tensor, got {image.dtype}")
    batch = image if image.ndim == 4 else image.unsqueeze(0)
    shrinking = height < old_height or width < old_width
    resized = F.interpolate(
        batch, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )
    return resized if image.ndim == 4 else resized[0]


def _check_side(value: int, name: str) -> None:
    if not _is_whole(value) or value < 1:
        raise ConfigError(f"image {name} must be a whole number of pixels >= 1, got {value!r}")


def _spatial_size(image: torch.Tensor) -> tuple[int, int]:
    if image.ndim not in (3, 4):
        raise ValueError(f"expected shape (C, H, W) or (B, C, H, W), got {tuple(image.shape)}")
    return int(image.shape[-2]), int(image.shape[-1])


# --------------------------------------------------------------------------- colour spaces

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, shared by YIQ and YCbCr

_RGB_TO_YIQ = torch.tensor(
    [
        list(_LUMA_WEIGHTS),
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _ycbcr_matrix() -> torch.Tensor:
    """BT.601 full-range matrix: Cb = (B - Y) / 1.772, Cr = (R - Y) / 1.402."""
    kr, kg, kb = _LUMA_WEIGHTS
    return torch.tensor(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ],
        dtype=torch.float64,
    )


_RGB_TO_YCBCR = _ycbcr_matrix()
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
_YCBCR_OFFSET = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)

# Linear sRGB (D65) to CIE XYZ, and the D65 white point as the image of RGB white.
_LINEAR_RGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)
_XYZ_TO_LINEAR_RGB = torch.linalg.inv(_LINEAR_RGB_TO_XYZ)
_D65_WHITE = _LINEAR_RGB_TO_XYZ.sum(dim=1)
_LAB_DELTA = 6.0 / 29.0


def _check_three_channels(image: torch.Tensor) -> None:
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"expected a tensor of shape (..., 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"expected a floating-point tensor, got {image.dtype}")


def _apply_matrix(
    image: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor | None = None
) -> torch.Tensor:
    """Multiply the channel vectors of a (..., 3, H, W) tensor by ``matrix``, add ``offset``."""
    _check_three_channels(image)
    out = torch.einsum("ij,...jhw->...ihw", matrix.to(image), image)
    if offset is not None:
        out = out + offset.to(image).view(3, 1, 1)
    return out


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) to NTSC YIQ (..., 3, H, W) with the FCC matrix."""
    return _apply_matrix(image, _RGB_TO_YIQ)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """NTSC YIQ (..., 3, H, W) to RGB (..., 3, H, W); exact inverse of :func:`rgb_to_yiq`."""
    return _apply_matrix(image, _YIQ_TO_RGB)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luminance (..., 1, H, W) of an RGB (..., 3, H, W) tensor: the Y of YIQ.

    Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601).
    """
    return _apply_matrix(image, _RGB_TO_YIQ[:1])


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) to full-range BT.601 YCbCr (..., 3, H, W); Cb, Cr centred on 0.5."""
    return _apply_matrix(image, _RGB_TO_YCBCR, _YCBCR_OFFSET)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 YCbCr (..., 3, H, W) to RGB (..., 3, H, W)."""
    _check_three_channels(image)
    centred = image - _YCBCR_OFFSET.to(image).view(3, 1, 1)
    return _apply_matrix(centred, _YCBCR_TO_RGB)


def _srgb_to_linear(values: torch.Tensor) -> torch.Tensor:
    curved = ((values.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(values <= 0.04045, values / 12.92, curved)


def _linear_to_srgb(values: torch.Tensor) -> torch.Tensor:
    curved = 1.055 * values.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(values <= 0.0031308, values * 12.92, curved)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    cube_root = t.clamp(min=_LAB_DELTA**3) ** (1.0 / 3.0)
    return torch.where(t > _LAB_DELTA**3, cube_root, t / (3 * _LAB_DELTA**2) + 4.0 / 29.0)


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB (..., 3, H, W) in [0, 1] to CIE L*a*b* (..., 3, H, W), D65 white, L in [0, 100]."""
    xyz = _apply_matrix(_srgb_to_linear(image), _LINEAR_RGB_TO_XYZ)
    f = _lab_f(xyz / _D65_WHITE.to(xyz).view(3, 1, 1))
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (..., 3, H, W), D65 white, to sRGB (..., 3, H, W); not clamped."""
    _check_three_channels(image)
    lightness, a, b = image.unbind(dim=-3)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), dim=-3)
    xyz = _lab_f_inverse(f) * _D65_WHITE.to(image).view(3, 1, 1)
    return _linear_to_srgb(_apply_matrix(xyz, _XYZ_TO_LINEAR_RGB))
