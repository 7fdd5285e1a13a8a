"""WCT: the transform, the cascade, decoder training, files; tiling."""

from __future__ import annotations

import itertools

import pytest
import torch

from brushwork.errors import ConfigError, WeightsError
from brushwork.transfer import modelfile, wct
from brushwork.transfer.stylize import WCTStylizer, load_stylizer
from brushwork.transfer.tiling import tile_starts, tiled
from brushwork.transfer.wct import (
    WCTModel,
    WCTSettings,
    covariance,
    masked_whiten_colour,
    stack_maps,
    style_statistics,
    train_wct,
    whiten_colour,
)


def _correlated(channels: int, n: int, seed: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(channels, channels, generator=g) * scale
    return mix @ torch.randn(channels, n, generator=g) + torch.randn(channels, 1, generator=g)


def test_output_covariance_and_mean_match_the_style() -> None:
    content = _correlated(12, 30 * 40, 0, 1.0).reshape(12, 30, 40)
    style = _correlated(12, 20 * 25, 1, 0.3).reshape(12, 20, 25)
    out = whiten_colour(content, style)
    target = covariance(style.reshape(12, -1))
    got = covariance(out.reshape(12, -1))
    assert (got - target).abs().max() < 1e-4 * target.abs().max()
    torch.testing.assert_close(out.mean(dim=(1, 2)), style.mean(dim=(1, 2)), rtol=0, atol=1e-4)
    assert out.dtype == content.dtype


@pytest.mark.parametrize("clamp", [False, True])
def test_streamed_channels_last_transform_equals_the_direct_one(monkeypatch, clamp) -> None:
    # Offset features (mean ≫ spread) and chunks that do not divide the pixel count.
    monkeypatch.setattr(wct, "CHUNK_VALUES", 12 * 97)
    content = (_correlated(12, 30 * 40, 3, 1.0) + 50).reshape(12, 30, 40)
    stats = style_statistics(_correlated(12, 20 * 25, 4, 0.3).reshape(12, 20, 25), ridge=1.0)
    direct = whiten_colour(content, stats, ridge=1.0, clamp=clamp)  # (C, N) memory
    rows_first = content[None].contiguous(memory_format=torch.channels_last)[0]
    streamed = whiten_colour(rows_first, stats, ridge=1.0, clamp=clamp)
    assert streamed.stride(0) == 1  # still channels-last
    torch.testing.assert_close(streamed, direct, rtol=0, atol=1e-4)
    if clamp:
        assert streamed.min() >= content.min() and streamed.max() <= content.max()


def test_masked_transform_gives_each_region_its_own_style() -> None:
    content = _correlated(6, 8 * 20, 5, 1.0).reshape(6, 8, 20)
    styles = [_correlated(6, 10 * 10, seed, scale).reshape(6, 10, 10) for seed, scale in
              ((6, 0.3), (7, 2.0))]  # fmt: skip
    stats = [style_statistics(s) for s in styles]
    masks = torch.zeros(2, 8, 20)
    masks[0, :, :9] = 1
    masks[1, :, 11:] = 1  # columns 9-10: no region
    out = masked_whiten_colour(content, stats, masks)
    for region, (start, stop) in enumerate(((0, 9), (11, 20))):
        alone = whiten_colour(content[:, :, start:stop].contiguous(), stats[region])
        torch.testing.assert_close(out[:, :, start:stop], alone, rtol=0, atol=1e-4)
        got = covariance(out[:, :, start:stop].reshape(6, -1))
        target = covariance(styles[region].reshape(6, -1))
        assert (got - target).abs().max() < 1e-3 * target.abs().max()
    torch.testing.assert_close(out[:, :, 9:11], content[:, :, 9:11])  # outside every mask
    whole = masked_whiten_colour(content, stats[:1], torch.ones(1, 4, 10))  # resized
    torch.testing.assert_close(whole, whiten_colour(content, stats[0]), rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="give one each"):
        masked_whiten_colour(content, stats, masks[:1])


def test_stacked_channels_last_maps_keep_canonical_strides() -> None:
    maps = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    stacked = stack_maps(list(maps))
    torch.testing.assert_close(stacked, maps, rtol=0, atol=0)
    assert stacked.stride() == maps.stride()  # (kernels take the fast path on these)
    plain = torch.randn(2, 8, 5, 6)
    assert stack_maps(list(plain)).is_contiguous()


def test_rank_deficient_features_stay_finite() -> None:
    flat = torch.ones(8, 6, 6)  # constant content: zero covariance
    style = _correlated(8, 4, 2, 1.0).reshape(8, 2, 2)  # fewer pixels than channels
    out = whiten_colour(flat, style)
    assert torch.isfinite(out).all()


def test_alpha_zero_is_the_cascade_reconstruction(tiny_wct, content_batch, style_tensor) -> None:
    x = content_batch[..., :32, :40]
    out = tiny_wct.stylize(x, [style_tensor[None]], alpha=0.0)
    expected = x
    for level in (3, 2, 1):
        expected = tiny_wct.reconstruct(expected, level)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (tiny_wct.stylize(x, [style_tensor[None]], alpha=1.0) - out).abs().max() > 1e-3


def test_decoder_training_reduces_the_loss_and_round_trips(
    tiny_wct, content_dir, tmp_path, style_tensor
) -> None:
    from brushwork.transfer.data import ImageFolder
    from brushwork.transfer.johnson import reinitialise
    from brushwork.transfer.wct import wct_loss

    settings = WCTSettings(
        resize=40,
        image_size=32,
        batch_size=2,
        steps=10,
        learning_rate=5e-3,
        checkpoint_every=0,
        seed=1,
    )
    batch = ImageFolder(content_dir, resize=40, crop=32).batch(step=0, batch_size=2, seed=5)
    reinitialise(tiny_wct.decoders, torch.Generator().manual_seed(settings.seed))
    with torch.no_grad():
        before = float(wct_loss(tiny_wct, batch, settings)["total"])
    model, result = train_wct(
        image_dir=content_dir, settings=settings, model=tiny_wct, device="cpu"
    )
    with torch.no_grad():
        after = float(wct_loss(model, batch, settings)["total"])
    assert after < before and {"level1", "level2", "level3"} <= set(result.losses)

    path = modelfile.save_model(tmp_path / "wct.safetensors", model)
    loaded, _ = modelfile.load_model(path, architecture="wct")
    assert isinstance(loaded, WCTModel)
    x = torch.rand(1, 3, 30, 37, generator=torch.Generator().manual_seed(0))
    a = load_stylizer(path, method="wct", styles=[style_tensor], alpha=0.6, device="cpu")(x)
    in_memory = WCTStylizer(
        model, styles=[style_tensor], style_weights=None, alpha=0.6, device=torch.device("cpu")
    )
    assert a.shape == x.shape
    assert torch.equal(a, in_memory(x))


def test_wct_needs_styles_and_decoders(tiny_wct, tmp_path, monkeypatch) -> None:
    path = modelfile.save_model(tmp_path / "wct.safetensors", tiny_wct)
    with pytest.raises(ConfigError, match="WCT needs at least one style"):
        load_stylizer(path, device="cpu")
    monkeypatch.delenv("BRUSHWORK_WCT_MODEL", raising=False)
    with pytest.raises(WeightsError, match="brushwork train wct"):
        load_stylizer(method="wct", styles=[torch.rand(3, 8, 8)], device="cpu")
    with pytest.raises(ConfigError, match="unknown method 'wtc'"):
        load_stylizer(method="wtc")
    with pytest.raises(ConfigError, match="holds no images"):
        (tmp_path / "empty").mkdir()
        train_wct(image_dir=tmp_path / "empty", model=tiny_wct, device="cpu")


def test_tile_spans_cover_the_image() -> None:
    for size, tile, overlap, align in ((100, 40, 10, 8), (1000, 512, 64, 16), (33, 64, 8, 4)):
        spans = tile_starts(size, tile, overlap, align)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(start % align == 0 for start, _ in spans)
        assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # neighbours overlap


def test_tiled_and_untiled_agree_away_from_seams(tmp_path, seeded) -> None:
    """A level-1 autoencoder is local (3×3 convs): tiles reproduce the full image inside."""
    from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig

    model = seeded(AdaINModel(AdaINConfig(EncoderConfig(level=1, widths=(6, 6, 6, 6, 6)))), 3)
    path = modelfile.save_model(tmp_path / "l1.safetensors", model)
    style = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))
    x = torch.rand(1, 3, 90, 130, generator=torch.Generator().manual_seed(4))
    whole = load_stylizer(path, styles=[style], alpha=0.0, device="cpu")(x)
    parts = load_stylizer(path, styles=[style], alpha=0.0, device="cpu", tile=48, tile_overlap=16)
    out = parts(x)
    # receptive field ±2 px; compare everywhere except 3 px around tile borders
    keep = torch.ones(90, 130, dtype=torch.bool)
    for axis, size in ((0, 90), (1, 130)):
        for start, end in tile_starts(size, 48, 16):
            for edge in (start, end):
                if 0 < edge < size:
                    sl = slice(max(0, edge - 3), edge + 3)
                    if axis == 0:
                        keep[sl, :] = False
                    else:
                        keep[:, sl] = False
    assert keep.float().mean() > 0.5
    torch.testing.assert_close(out[..., keep], whole[..., keep], rtol=0, atol=1e-5)
    assert (out - whole).abs().max() < 0.05  # and the seams are blended, not broken


def test_tiling_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="smaller than --tile"):
        tiled(lambda t: t, torch.rand(1, 3, 100, 100), tile=32, overlap=32)
