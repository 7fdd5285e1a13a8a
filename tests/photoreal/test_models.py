"""WCT² and PhotoWCT: published key layouts through the real loaders, transfer properties."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from photoreal_testing import (
    TINY_WIDTHS,
    random_state,
    reference_photowct_shapes,
    reference_wct2_shapes,
    scene,
)

from brushwork.errors import WeightsError
from brushwork.transfer.photowct import (
    PhotoWCTModel,
    load_published_photowct,
    max_pool,
    max_unpool,
)
from brushwork.transfer.wct2 import WCT2Model, load_published_wct2, load_wct2_state


@pytest.fixture(scope="module")
def wct2(wct2_dir: Path) -> WCT2Model:
    return load_published_wct2(wct2_dir)


@pytest.fixture(scope="module")
def photowct(photowct_file: Path) -> PhotoWCTModel:
    return load_published_photowct(photowct_file)


def test_published_layouts_are_the_modules_layouts() -> None:
    for variant in ("cat5", "sum"):
        enc, dec = reference_wct2_shapes(variant)
        model = WCT2Model(variant)
        assert {k: tuple(v.shape) for k, v in model.encoder.state_dict().items()} == enc
        assert {k: tuple(v.shape) for k, v in model.decoder.state_dict().items()} == dec
    shapes = {k: tuple(v.shape) for k, v in PhotoWCTModel().state_dict().items()}
    assert shapes == reference_photowct_shapes()


def test_loaders_take_the_published_files_and_refuse_others(
    wct2_dir: Path, wct2: WCT2Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = torch.load(wct2_dir / "wave_decoder_cat5_l4.pth", weights_only=True)
    assert torch.equal(wct2.decoder.conv3_4_2.weight, state["conv3_4_2.weight"])
    # Through the registry lookup: BRUSHWORK_WEIGHTS_DIR with the published names.
    monkeypatch.setenv("BRUSHWORK_WEIGHTS_DIR", str(wct2_dir))
    again = load_published_wct2(download=False)
    assert torch.equal(again.encoder.conv4_1.bias, wct2.encoder.conv4_1.bias)
    # The decoder file alone: the encoder is found beside it; the variant from the keys.
    assert load_published_wct2(wct2_dir / "wave_decoder_cat5_l4.pth").variant == "cat5"
    broken = dict(state)
    broken["conv3_4_2.weight"] = broken["conv3_4_2.weight"][:, :256]
    bad = tmp_path / "wave_decoder_cat5_l4.pth"
    torch.save(broken, bad)
    with pytest.raises(WeightsError, match=r"conv3_4_2.weight is \(256, 256, 3, 3\)"):
        load_published_wct2(bad)
    enc = torch.load(wct2_dir / "wave_encoder_cat5_l4.pth", weights_only=True)
    enc["pool2.HL.weight"] = enc["pool2.HL.weight"] * -1
    with pytest.raises(WeightsError, match="HL filter is not the Haar filter"):
        load_wct2_state(WCT2Model(), enc, state)
    with pytest.raises(WeightsError, match="holds neither"):
        load_published_wct2(tmp_path / "empty" if (tmp_path / "empty").mkdir() else tmp_path)


def test_photowct_loader(photowct_file: Path, photowct: PhotoWCTModel, tmp_path: Path) -> None:
    state = torch.load(photowct_file, weights_only=True)
    assert torch.equal(photowct.d4.conv3_4.weight, state["d4.conv3_4.weight"])
    del state["e3.conv2_2.bias"]
    torch.save(state, tmp_path / "photo_wct.pth")
    with pytest.raises(WeightsError, match=r"missing e3\.conv2_2\.bias"):
        load_published_photowct(tmp_path)


def test_alpha_zero_is_the_plain_auto_encoding(wct2: WCT2Model, photowct: PhotoWCTModel) -> None:
    content, style = scene(0)[None], scene(1, 24, 32)[None]
    with torch.no_grad():
        assert torch.equal(wct2.stylize(content, style, alpha=0.0), wct2.reconstruct(content))
        image = content
        for k in (4, 3, 2, 1):
            feats, pools = getattr(photowct, f"e{k}").encode(image)
            image = getattr(photowct, f"d{k}").decode(feats, pools)
        assert torch.equal(photowct.stylize(content, style, alpha=0.0), image)


def test_wct2_with_the_content_as_its_own_style_is_near_identity(wct2: WCT2Model) -> None:
    content = scene(2)[None]
    with torch.no_grad():
        plain = wct2.reconstruct(content)
        same = wct2.stylize(content, content)
    assert (same - plain).abs().max() < 1e-3 * plain.abs().max()


def test_max_unpooling_with_the_indices_puts_values_back() -> None:
    x = torch.rand(2, 4, 8, 6, generator=torch.Generator().manual_seed(0)) + 0.1  # ReLU-like
    pooled, record = max_pool(x)
    back = max_unpool(pooled, record)
    kept = back != 0
    assert kept.sum() == pooled.numel()
    assert torch.equal(back[kept], x[kept])  # the pooled positions hold the input's values
    assert torch.equal(max_pool(back)[0], pooled)


def test_labels_reach_every_transfer_site() -> None:
    torch.manual_seed(0)
    content, style = scene(3)[None], scene(4)[None]
    one = torch.zeros(32, 32, dtype=torch.long)
    two = one.clone()
    two[:, 16:] = 1
    for model in (WCT2Model(widths=TINY_WIDTHS), PhotoWCTModel(widths=TINY_WIDTHS)):
        model.eval()
        with torch.no_grad():
            plain = model.stylize(content, style)
            # One label everywhere = no labels.
            same = model.stylize(content, style, content_labels=one, style_labels=one)
            split = model.stylize(content, style, content_labels=two, style_labels=two)
        assert torch.allclose(same, plain, atol=1e-5), type(model).__name__
        assert (plain - model.reconstruct(content)).abs().max() > 1e-2  # the style moves it
        assert (split - plain).abs().max() > 1e-3, type(model).__name__


def test_bf16_runs_close_to_fp32() -> None:
    model = WCT2Model(widths=TINY_WIDTHS).eval()
    content, style = scene(5)[None], scene(6)[None]
    with torch.no_grad():
        ref = model.stylize(content, style)
        low = model.to(torch.bfloat16).stylize(content.bfloat16(), style.bfloat16())
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().mean() < 0.05 * ref.abs().mean() + 1e-3


def test_random_state_helper_is_seeded() -> None:
    shapes = {"a.weight": (2, 1, 3, 3)}
    assert torch.equal(random_state(shapes, 0)["a.weight"], random_state(shapes, 0)["a.weight"])
