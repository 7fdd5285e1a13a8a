"""Content leakage: its direction on constructed cases, through ``evaluate`` with a tiny DINO."""

from __future__ import annotations

import math

import pytest
import torch

from brushwork.image import save_image
from brushwork.metrics.evaluation import EvaluationSettings, NetworkSettings, evaluate
from brushwork.metrics.leakage import content_leakage, crop_to_match

H = W = 64


def _mask(kind: str) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    if kind == "disc":
        return ((x + 0.3) ** 2 + (y + 0.2) ** 2 < 0.25).float()
    return (torch.sin(6 * x) > 0.3).float()  # vertical bars


def _paint(mask: torch.Tensor, palette: tuple[tuple[float, float], ...]) -> torch.Tensor:
    return torch.stack([lo + (hi - lo) * mask for lo, hi in palette])


CONTENT_PALETTE = ((0.2, 0.8), (0.3, 0.6), (0.7, 0.2))
STYLE_PALETTE = ((0.9, 0.2), (0.6, 0.8), (0.1, 0.4))


def constructed_cases() -> dict[str, torch.Tensor]:
    """A content photo (a disc), a style image (bars, another palette) and results that
    take ever more of the style image's content."""
    content = _paint(_mask("disc"), CONTENT_PALETTE)
    style = _paint(_mask("bars"), STYLE_PALETTE)
    cases = {"content": content, "style": style}
    # the content's layout in the style's colours: style without the style's content
    cases["recoloured"] = _paint(_mask("disc"), STYLE_PALETTE)
    for fraction in (0.25, 0.5, 0.75):  # the style image pasted over part of the content
        pasted = torch.zeros(H, W)
        pasted[:, : int(W * fraction)] = 1
        cases[f"pasted_{int(fraction * 100)}"] = content * (1 - pasted) + style * pasted
    return cases


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


def test_leakage_orders_constructed_cases_through_evaluate(tmp_path, dino_folder, clip_folder):
    cases = constructed_cases()
    folders = {name: tmp_path / name for name in ("content", "style", "results")}
    for folder in folders.values():
        folder.mkdir()
    for name, result in cases.items():
        save_image(cases["content"], folders["content"] / f"{name}.png")
        save_image(cases["style"], folders["style"] / f"{name}.png")
        save_image(result, folders["results"] / f"{name}.png")
    settings = EvaluationSettings(
        mode="style",
        results=(str(folders["results"]),),
        content=str(folders["content"]),
        style=str(folders["style"]),
        metrics=("clip_style", "leakage"),
        networks=NetworkSettings(dino_model=str(dino_folder), clip_model=str(clip_folder)),
        device="cpu",
        output=str(tmp_path / "scores.csv"),
    )
    result = evaluate(settings)
    assert result.metrics == ["clip_style", "leakage"]  # reported next to style similarity
    leak = {row["name"]: row["leakage"] for row in result.rows}
    assert leak["content"] == pytest.approx(0.0, abs=1e-6)
    assert leak["style"] == pytest.approx(1.0, abs=1e-6)
    assert leak["pasted_25"] < leak["pasted_50"] < leak["pasted_75"] < leak["style"]
    assert leak["content"] < leak["recoloured"] < leak["pasted_50"]
    assert "leakage" in (tmp_path / "scores.csv").read_text().splitlines()[0]
    assert result.summary["leakage"]["n"] == len(cases)


def test_leakage_is_nan_when_content_and_style_share_their_structure(dino_folder):
    from brushwork.metrics.structure import load_dino

    scorer = load_dino(str(dino_folder), size=32)
    content = _paint(_mask("disc"), CONTENT_PALETTE)[None]
    value = content_leakage(scorer, content, content, content.clone())
    assert math.isnan(float(value[0]))
    with pytest.raises(Exception, match="one size"):
        content_leakage(scorer, content, content, content[..., :32])


def test_crop_to_match_keeps_the_centre():
    image = torch.zeros(3, 40, 80)
    image[:, :, 20:60] = 1.0  # the centre square of a wide image
    cropped = crop_to_match(image, 20, 20)
    assert cropped.shape == (3, 20, 20) and cropped.min() == 1.0
    assert crop_to_match(image, 40, 80).shape == (3, 40, 80)
