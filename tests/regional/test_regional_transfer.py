"""Regional Gatys and feed-forward transfer on a synthetic two-region image, random VGG."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.losses import gram_matrix, masked_gram_matrix
from brushwork.regional.apply import keep_photo, regional_gatys
from brushwork.regional.masks import RegionMasks
from brushwork.transfer.gatys import GatysSettings

LAYERS = ("relu1_1", "relu2_1")


def _styles():
    gen = torch.Generator().manual_seed(0)
    texture = torch.rand(48, 48, generator=gen)
    red = torch.stack([0.6 + 0.4 * texture, 0.2 * texture, 0.1 * texture])
    stripes = (torch.arange(48) // 3 % 2).float().expand(48, 48)
    blue = torch.stack([0.1 * stripes, 0.2 * stripes, 0.5 + 0.5 * stripes])
    return {"red.png": red, "blue.png": blue}


def _three_regions(size: int) -> RegionMasks:
    weights = torch.zeros(3, size, size)
    third = size // 3
    weights[0, :, :third] = 1  # cow: red
    weights[1, :, third : 2 * third] = 1  # sky: blue
    weights[2, :, 2 * third :] = 1  # rest: the photo
    return RegionMasks(["cow", "sky", "rest"], weights, ["red.png", "blue.png", "photo"])


def test_each_region_is_pulled_to_its_own_style_and_rest_keeps_the_photo(vgg19):
    gen = torch.Generator().manual_seed(1)
    content = 0.4 + 0.2 * torch.rand(3, 48, 48, generator=gen)
    styles = _styles()
    masks = _three_regions(48)
    settings = GatysSettings(size=48, steps=40, pyramid="off", style_layers=LAYERS)
    result = regional_gatys(content, styles, masks, settings=settings, encoder=vgg19, device="cpu")
    out = result.image
    assert out.shape == (3, 48, 48)
    # rest = photo: the content exactly (the region's mask is 1 there)
    torch.testing.assert_close(out[:, :, 32:], content[:, :, 32:], atol=1e-5, rtol=0)

    with torch.no_grad():
        feats = vgg19(out[None], list(LAYERS))
        targets = {k: vgg19(v[None], list(LAYERS)) for k, v in styles.items()}

    def loss(region: int, style: str) -> float:
        inner = torch.zeros(1, 1, 48, 48)  # away from the region borders
        lo, hi = (2, 14) if region == 0 else (18, 30)
        inner[..., lo:hi] = 1
        return sum(
            F.mse_loss(masked_gram_matrix(feats[n], inner), gram_matrix(targets[style][n])).item()
            for n in LAYERS
        )

    assert loss(0, "red.png") < loss(0, "blue.png")
    assert loss(1, "blue.png") < loss(1, "red.png")


def test_keep_photo_resizes_and_blends():
    image = torch.zeros(3, 8, 8)
    content = torch.ones(3, 16, 16)
    keep = torch.zeros(4, 4)
    keep[:, 2:] = 1
    out = keep_photo(image, content, keep)
    assert out[:, :, 6:].eq(1).all() and out[:, :, :2].eq(0).all()
