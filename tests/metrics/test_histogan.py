"""HistoGAN histogram loss: 0 for the same colours, symmetric, larger for other colours."""

from __future__ import annotations

import torch

from brushwork.metrics.histogan import histogan_loss, rgb_uv_histogram


def _image(seed: int, tint=(1.0, 1.0, 1.0), size: int = 160) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, size, size, generator=g) * torch.tensor(tint).view(3, 1, 1)).clamp(0, 1)


def test_histogram_is_normalised_and_loss_behaves() -> None:
    a = _image(0)
    hist = rgb_uv_histogram(a)
    assert hist.shape == (3, 64, 64) and abs(hist.sum().item() - 1) < 1e-4
    assert histogan_loss(a, a).item() < 1e-6
    # The same pixels in another order (and size) have the same histogram.
    assert histogan_loss(a, a.flip(-1)).item() < 1e-3
    b, red = _image(1), _image(1, tint=(1.0, 0.3, 0.3))
    assert abs(histogan_loss(a, b) - histogan_loss(b, a)) < 1e-6
    assert histogan_loss(a, red) > 1.5 * histogan_loss(a, b)
    assert 0 <= histogan_loss(a, red) <= 1


def test_through_score_triples(tmp_path) -> None:
    from brushwork.image import save_image
    from brushwork.metrics.evaluation import score_triples

    paths = {}
    for name, image in (("content", _image(2, size=48)), ("style", _image(3, (1, 0.4, 0.4), 48))):
        paths[name] = tmp_path / f"{name}.png"
        save_image(image, paths[name])
    row = score_triples(
        [(paths["content"], paths["style"], paths["style"]),
         (paths["content"], paths["style"], paths["content"])],
        ("histogan",),
    ).rows  # fmt: skip
    assert row[0]["histogan"] < 1e-6 < row[1]["histogan"]
