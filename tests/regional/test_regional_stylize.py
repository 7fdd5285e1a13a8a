"""`stylize --region` with AdaIN and WCT (per-region statistics) and WCT² (blended passes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "photoreal"))
from photoreal_testing import random_state, reference_wct2_shapes

from brushwork.cli.main import main
from brushwork.image import load_image


@pytest.fixture(scope="module")
def adain_file(tmp_path_factory) -> Path:
    from brushwork.transfer.adain import AdaINConfig, AdaINModel, EncoderConfig
    from brushwork.transfer.johnson import reinitialise
    from brushwork.transfer.modelfile import save_model

    model = AdaINModel(AdaINConfig(EncoderConfig(level=4, widths=(4, 6, 8, 8, 8))))
    reinitialise(model, torch.Generator().manual_seed(1))
    return save_model(tmp_path_factory.mktemp("adain") / "adain.safetensors", model)


@pytest.fixture(scope="module")
def wct2_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wct2")
    enc, dec = reference_wct2_shapes("cat5")
    torch.save(random_state(enc, 1), folder / "wave_encoder_cat5_l4.pth")
    torch.save(random_state(dec, 2), folder / "wave_decoder_cat5_l4.pth")
    return folder


@pytest.fixture(scope="module")
def wct_file(tmp_path_factory) -> Path:
    from brushwork.transfer.adain import EncoderConfig
    from brushwork.transfer.johnson import reinitialise
    from brushwork.transfer.modelfile import save_model
    from brushwork.transfer.wct import WCTConfig, WCTModel

    config = WCTConfig(EncoderConfig(level=3, widths=(4, 6, 8, 8, 8)), levels=(3, 2, 1))
    model = WCTModel(config)
    reinitialise(model, torch.Generator().manual_seed(2))
    return save_model(tmp_path_factory.mktemp("wct") / "wct.safetensors", model)


@pytest.mark.parametrize("method", ["adain", "wct", "wct2"])
def test_region_gets_its_style_and_rest_keeps_the_photo(
    method, adain_file, wct_file, wct2_dir, pictures, tmp_path, capsys
):
    out = tmp_path / "out.png"
    model = {
        "adain": ["--model", str(adain_file)],
        "wct": ["--model", str(wct_file)],
        "wct2": ["--weights", str(wct2_dir)],
    }[method]
    argv = ["stylize", str(pictures["photo"]), "--method", method, *model,
            "--region", f"cat={pictures['red']}", "--mask", f"cat={pictures['left']}",
            "--region-feather", "0", "--device", "cpu", "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    result, photo = load_image(out), load_image(pictures["photo"])
    assert result.shape == photo.shape
    torch.testing.assert_close(result[:, :, 26:], photo[:, :, 26:], atol=1.5 / 255, rtol=0)
    assert (result[:, :, :22] - photo[:, :, :22]).abs().mean() > 0.02


def test_region_refused_for_johnson_and_folders(pictures, tmp_path, capsys):
    argv = ["stylize", str(tmp_path), "--method", "adain", "--region", f"cat={pictures['red']}",
            "--mask", f"cat={pictures['left']}", "-o", str(tmp_path / "o"), "-q"]  # fmt: skip
    assert main(argv) == 1
    assert "the input is a folder" in capsys.readouterr().err
