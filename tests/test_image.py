"""Tests for brushwork.image: loading, saving, resizing, colour spaces."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile
from skimage import color as skcolor

from brushwork import image as bw_image
from brushwork.errors import ConfigError, ImageError, OutputPathError
from brushwork.image import (
    SUPPORTED_OUTPUT_SUFFIXES,
    check_output_path,
    lab_to_rgb,
    load_image,
    load_mask,
    luminance,
    resize_long_side,
    resize_to,
    rgb_to_lab,
    rgb_to_ycbcr,
    rgb_to_yiq,
    save_image,
    ycbcr_to_rgb,
    yiq_to_rgb,
)


def _random_uint8(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def _smooth_image(height: int = 48, width: int = 64) -> torch.Tensor:
    """(3, H, W) gradients that lossy codecs preserve well."""
    ys = torch.linspace(0.1, 0.9, height).view(height, 1).expand(height, width)
    xs = torch.linspace(0.2, 0.8, width).view(1, width).expand(height, width)
    return torch.stack((ys, xs, (ys + xs) / 2))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _write_rgb16_png(path: Path, pixels: np.ndarray) -> None:
    """Write an (H, W, 3) uint16 array as a 16-bit RGB PNG (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _read_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def _info(path: Path) -> dict:
    with Image.open(path) as img:
        return dict(img.info)


# --------------------------------------------------------------------------- round trips


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = torch.from_numpy(_random_uint8(17, 23)).permute(2, 0, 1).float() / 255
    out = save_image(pixels, tmp_path / "x.png")
    assert out == tmp_path / "x.png"
    loaded = load_image(out)
    assert loaded.dtype == torch.float32
    assert loaded.shape == (3, 17, 23)
    assert torch.allclose(loaded, pixels, atol=1e-6)


def test_save_rounds_instead_of_truncating(tmp_path: Path) -> None:
    values = torch.tensor([10.4, 10.6, 254.6, 300.0, -5.0]) / 255
    image = values.view(1, 1, 5).expand(3, 1, 5).clone()
    save_image(image, tmp_path / "r.png")
    stored = _read_pixels(tmp_path / "r.png")[0, :, 0]
    assert stored.tolist() == [10, 11, 255, 255, 0]


def test_save_accepts_batch_of_one_and_greyscale(tmp_path: Path) -> None:
    image = _smooth_image()
    save_image(image.unsqueeze(0), tmp_path / "b.png")
    assert torch.allclose(load_image(tmp_path / "b.png"), image, atol=0.5 / 255 + 1e-6)
    grey = image[:1]
    save_image(grey, tmp_path / "g.png")
    assert _mode(tmp_path / "g.png") == "L"
    assert torch.allclose(load_mask(tmp_path / "g.png"), grey, atol=0.5 / 255 + 1e-6)


def test_save_rejects_bad_shape_and_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        save_image(torch.zeros(2, 3, 4, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="NaN"):
        save_image(torch.full((3, 4, 4), float("nan")), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp", ".JPG"])
def test_lossy_round_trip_is_close(tmp_path: Path, suffix: str) -> None:
    image = _smooth_image()
    loaded = load_image(save_image(image, tmp_path / f"x{suffix}", quality=95))
    assert loaded.shape == image.shape
    assert (loaded - image).abs().mean() < 0.02


def test_quality_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quality"):
        save_image(_smooth_image(), tmp_path / "x.jpg", quality=0)


# --------------------------------------------------------------------------- modes


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    pixels[:, 20:] = (0, 0, 255)  # right half blue
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)

    loaded = load_image(tmp_path / "o.jpg")
    assert loaded.shape == (3, 40, 20)
    # Rotating clockwise puts the original left (red) half on top.
    top, bottom = loaded[:, 5:15].mean(dim=(1, 2)), loaded[:, 25:35].mean(dim=(1, 2))
    assert top[0] > 0.9 and top[2] < 0.1
    assert bottom[2] > 0.9 and bottom[0] < 0.1
    assert load_mask(tmp_path / "o.jpg").shape == (1, 40, 20)


def _palette_image() -> Image.Image:
    img = Image.new("P", (4, 3))
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    img.putpixel((1, 1), 1)
    return img


@pytest.mark.parametrize(
    ("name", "make", "corner_rgb"),
    [
        ("rgb.png", lambda: Image.new("RGB", (4, 3), (255, 128, 0)), (255, 128, 0)),
        # alpha is dropped, not composited onto white
        ("rgba.png", lambda: Image.new("RGBA", (4, 3), (10, 20, 30, 0)), (10, 20, 30)),
        ("la.png", lambda: Image.new("LA", (4, 3), (100, 0)), (100, 100, 100)),
        ("l.png", lambda: Image.new("L", (4, 3), 77), (77, 77, 77)),
        ("one.png", lambda: Image.new("1", (4, 3), 1), (255, 255, 255)),
        ("p.png", _palette_image, (0, 0, 0)),
        ("cmyk.tif", lambda: Image.new("CMYK", (4, 3), (0, 0, 0, 0)), (255, 255, 255)),
        ("cmyk.jpg", lambda: Image.new("CMYK", (4, 3), (0, 0, 0, 255)), (0, 0, 0)),
    ],
)
def test_modes_load_as_rgb(
    tmp_path: Path, name: str, make, corner_rgb: tuple[int, int, int]
) -> None:
    path = tmp_path / name
    make().save(path)
    loaded = load_image(path)
    assert loaded.shape == (3, 3, 4)
    assert loaded.dtype == torch.float32
    assert loaded.min() >= 0.0 and loaded.max() <= 1.0
    expected = torch.tensor(corner_rgb, dtype=torch.float32) / 255
    assert torch.allclose(loaded[:, 0, 0], expected, atol=2 / 255)
    assert load_mask(path).shape == (1, 3, 4)


def test_palette_pixel_colour(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "p.png")
    loaded = load_image(tmp_path / "p.png")
    assert torch.allclose(loaded[:, 1, 1], torch.tensor([200, 100, 50]) / 255)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("transparency", [0, b"\x00\x80"])
def test_palette_with_transparency(tmp_path: Path, transparency: int | bytes) -> None:
    img = _palette_image()
    img.save(tmp_path / "pt.png", transparency=transparency)
    assert _info(tmp_path / "pt.png")["transparency"] == transparency
    loaded = load_image(tmp_path / "pt.png")
    assert torch.allclose(loaded[:, 1, 1], torch.tensor([200, 100, 50]) / 255)
    assert torch.allclose(loaded[:, 0, 0], torch.zeros(3))


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 300, 1000], [32768, 60000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert _mode(tmp_path / "g16.png").startswith("I")
    expected = torch.from_numpy(values.astype(np.float32) / 65535)
    loaded = load_image(tmp_path / "g16.png")
    assert loaded.shape == (3, 2, 3)
    for channel in loaded:
        assert torch.allclose(channel, expected, atol=1e-6)
    assert torch.allclose(load_mask(tmp_path / "g16.png")[0], expected, atol=1e-6)


def test_32_bit_integer_and_float_tiffs(tmp_path: Path) -> None:
    ints = np.array([[0, 65535 // 2, 65535, 70000]], dtype=np.int32)
    Image.fromarray(ints).save(tmp_path / "i.tif")
    assert _mode(tmp_path / "i.tif") == "I"
    loaded = load_image(tmp_path / "i.tif")
    assert torch.allclose(loaded[0, 0], torch.tensor([0.0, 32767 / 65535, 1.0, 1.0]))

    floats = np.array([[-0.5, 0.25, 0.75, 2.0]], dtype=np.float32)
    Image.fromarray(floats).save(tmp_path / "f.tif")
    assert _mode(tmp_path / "f.tif") == "F"
    assert torch.allclose(load_mask(tmp_path / "f.tif")[0, 0], torch.tensor([0, 0.25, 0.75, 1]))


def test_16_bit_rgb_png_loads(tmp_path: Path) -> None:
    pixels = np.array([[[65535, 0, 32768], [1000, 20000, 45000]]], dtype=np.uint16)
    _write_rgb16_png(tmp_path / "rgb16.png", pixels)
    loaded = load_image(tmp_path / "rgb16.png")
    assert loaded.shape == (3, 1, 2)
    expected = torch.from_numpy(pixels[0].T.astype(np.float32) / 65535)
    # Pillow reduces 16-bit RGB to 8 bits per channel.
    assert torch.allclose(loaded[:, 0, :], expected, atol=1 / 255)


# --------------------------------------------------------------------------- load errors


@pytest.mark.parametrize("loader", [load_image, load_mask])
def test_missing_file(tmp_path: Path, loader) -> None:
    with pytest.raises(ImageError, match="not found") as info:
        loader(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("loader", [load_image, load_mask])
def test_directory_is_refused(tmp_path: Path, loader) -> None:
    with pytest.raises(ImageError, match="folder"):
        loader(tmp_path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(path)
    assert "notes.png" in str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("loader", [load_image, load_mask])
def test_truncated_file(tmp_path: Path, suffix: str, loader) -> None:
    full = tmp_path / f"full{suffix}"
    Image.fromarray(_random_uint8(64, 64)).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        loader(cut)
    assert "cut" in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_file_errors_even_if_pillow_is_lenient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(_random_uint8(64, 64)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:1000])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError, match="truncated"):
        load_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_zero_size_is_refused(tmp_path: Path) -> None:
    # Pillow neither writes nor opens empty images, so test the check itself.
    for width, height in [(0, 5), (5, 0)]:
        with pytest.raises(ImageError, match="empty"):
            bw_image._check_dimensions(width, height, tmp_path / "e.png", 100)
    bw_image._check_dimensions(1, 1, tmp_path / "e.png", 100)


@pytest.mark.parametrize("side", [11, 64])  # just over the limit, and over Pillow's 2x error
def test_too_many_pixels(tmp_path: Path, side: int) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (side, side)).save(path)
    with pytest.raises(ImageError, match="--max-pixels") as info:
        load_image(path, max_pixels=100)
    assert "big.png" in str(info.value)
    with pytest.raises(ImageError, match="--max-pixels"):
        load_mask(path, max_pixels=100)
    assert load_image(path, max_pixels=side * side).shape == (3, side, side)


def test_pillow_limit_does_not_override_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    assert load_image(path).shape == (3, 30, 40)
    assert Image.MAX_IMAGE_PIXELS == 10  # restored


def test_bad_max_pixels_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--max-pixels"):
        load_image(tmp_path / "x.png", max_pixels=0)


# --------------------------------------------------------------------------- atomic saving


def _failing_save(self: Image.Image, fp, *args, **kwargs) -> None:
    fp.write(b"partial image data")
    raise RuntimeError("disk exploded")


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(RuntimeError, match="disk exploded"):
        save_image(_smooth_image(), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old contents")
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(RuntimeError):
        save_image(_smooth_image(), target)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_os_error_during_save_becomes_output_path_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: Image.Image, fp, *args, **kwargs) -> None:
        fp.write(b"xx")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(OutputPathError, match="No space left"):
        save_image(_smooth_image(), tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_and_uses_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    save_image(_smooth_image(), target)
    assert load_image(target).shape == (3, 48, 64)
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_to_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="does not exist") as info:
        save_image(_smooth_image(), tmp_path / "missing" / "out.png")
    assert "missing" in str(info.value)


@pytest.mark.parametrize("name", ["out.gif", "out.tiff", "out"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputPathError) as info:
        save_image(_smooth_image(), tmp_path / name)
    for suffix in SUPPORTED_OUTPUT_SUFFIXES:
        assert suffix in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- check_output_path


def test_check_output_path_accepts_new_file(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "new.webp", inputs=[tmp_path / "a.png"]) == (
        tmp_path / "new.webp"
    )


def test_check_output_path_refuses_input_spelled_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError, match="would overwrite the input"):
        check_output_path("sub/../a.png", inputs=["style.png", "./a.png"])
    with pytest.raises(OutputPathError, match="would overwrite the input"):
        check_output_path(tmp_path / "a.png", inputs=["a.png"])
    # Not yet existing input and output that resolve to the same path.
    with pytest.raises(OutputPathError, match="would overwrite"):
        check_output_path("b.png", inputs=[tmp_path / "sub" / ".." / "b.png"])


def test_check_output_path_refuses_hard_link_to_input(tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")
    try:
        os.link(tmp_path / "a.png", tmp_path / "link.png")
    except OSError:
        pytest.skip("hard links not supported here")
    with pytest.raises(OutputPathError, match="would overwrite"):
        check_output_path(tmp_path / "link.png", inputs=[tmp_path / "a.png"])


def test_check_output_path_other_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="does not exist") as info:
        check_output_path(tmp_path / "nowhere" / "x.png")
    assert "nowhere" in str(info.value)
    with pytest.raises(OutputPathError, match="unsupported"):
        check_output_path(tmp_path / "x.bmp")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputPathError, match="folder"):
        check_output_path(tmp_path / "dir.png")
    with pytest.raises(OutputPathError, match="folder"):
        save_image(_smooth_image(), tmp_path / "dir.png")


# --------------------------------------------------------------------------- resizing


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((3, 60, 80), 40, (3, 30, 40)),  # landscape
        ((3, 80, 60), 40, (3, 40, 30)),  # portrait
        ((3, 50, 50), 20, (3, 20, 20)),  # square
        ((2, 3, 50, 100), 25, (2, 3, 13, 25)),  # batch; 12.5 rounds up
        ((1, 2, 1000), 10, (1, 1, 10)),  # short side at least 1
        ((3, 30, 40), 400, (3, 300, 400)),  # upscaling
    ],
)
def test_resize_long_side_shapes(
    shape: tuple[int, ...], size: int, expected: tuple[int, ...]
) -> None:
    assert resize_long_side(torch.rand(shape), size).shape == expected


def test_resize_long_side_rejects_bad_size() -> None:
    with pytest.raises(ConfigError):
        resize_long_side(torch.rand(3, 8, 8), 0)
    with pytest.raises(ConfigError):
        resize_to(torch.rand(3, 8, 8), 4, -1)


def test_resize_antialiases_when_shrinking() -> None:
    stripes = (torch.arange(96) % 2).float().view(1, 1, 96).expand(3, 96, 96)
    shrunk = resize_long_side(stripes, 32)
    assert shrunk.shape == (3, 32, 32)
    aliased = F.interpolate(stripes[None], size=(32, 32), mode="bilinear", antialias=False)
    assert aliased.std() > 0.4  # without antialiasing the stripes survive
    assert shrunk.std() < 0.2
    assert torch.allclose(shrunk.mean(), torch.tensor(0.5), atol=0.02)


def test_resize_to_and_same_size() -> None:
    image = torch.rand(2, 3, 10, 20)
    assert resize_to(image, 7, 9).shape == (2, 3, 7, 9)
    assert resize_to(image[0], 30, 5).shape == (3, 30, 5)
    assert resize_to(image, 10, 20) is image
    constant = torch.full((3, 10, 20), 0.25)
    assert torch.allclose(resize_to(constant, 33, 7), torch.tensor(0.25))


# --------------------------------------------------------------------------- colour spaces


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(rgb_to_yiq, yiq_to_rgb), (rgb_to_ycbcr, ycbcr_to_rgb), (rgb_to_lab, lab_to_rgb)],
)
def test_colour_space_round_trips(forward, inverse) -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    assert torch.allclose(inverse(forward(image)), image, atol=1e-5)
    assert torch.allclose(inverse(forward(image[0])), image[0], atol=1e-5)
    image64 = image.double()
    assert torch.allclose(inverse(forward(image64)), image64, atol=1e-10)
    assert forward(image).shape == image.shape


def test_yiq_values() -> None:
    white = torch.ones(3, 1, 1)
    assert torch.allclose(rgb_to_yiq(white).flatten(), torch.tensor([1.0, 0, 0]), atol=1e-6)
    red = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    expected = torch.tensor([0.299, 0.595716, 0.211456])
    assert torch.allclose(rgb_to_yiq(red).flatten(), expected, atol=1e-6)


def test_ycbcr_agrees_with_pillow() -> None:
    pixels = _random_uint8(8, 8)
    pil = np.asarray(Image.fromarray(pixels).convert("YCbCr"), dtype=np.float32) / 255
    ours = rgb_to_ycbcr(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert np.abs(ours.permute(1, 2, 0).numpy() - pil).max() <= 1.01 / 255


def test_lab_agrees_with_skimage() -> None:
    rgb = _random_uint8(8, 8).astype(np.float64) / 255
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours - skcolor.rgb2lab(rgb)).max() < 0.02
    white = rgb_to_lab(torch.ones(3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0, 0]), atol=1e-3)


def test_lab_gradients_are_finite() -> None:
    image = torch.rand(3, 8, 8)
    image[:, 0, 0] = 0.0
    image[:, 0, 1] = 1.0
    image.requires_grad_(True)
    rgb_to_lab(image).sum().backward()
    assert torch.isfinite(image.grad).all()
    lab = rgb_to_lab(image.detach()).requires_grad_(True)
    lab_to_rgb(lab).sum().backward()
    assert torch.isfinite(lab.grad).all()


def test_luminance_of_grey_is_its_value() -> None:
    grey = torch.tensor([0.0, 0.3, 0.7, 1.0]).view(1, 1, 4).expand(3, 1, 4)
    lum = luminance(grey)
    assert lum.shape == (1, 1, 4)
    assert torch.allclose(lum.flatten(), torch.tensor([0.0, 0.3, 0.7, 1.0]), atol=1e-6)
    batch = torch.rand(2, 3, 5, 6)
    assert luminance(batch).shape == (2, 1, 5, 6)
    assert torch.allclose(luminance(batch), rgb_to_yiq(batch)[:, :1])


def test_colour_space_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_yiq(torch.rand(4, 5, 5))
