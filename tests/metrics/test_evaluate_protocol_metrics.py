"""The StyleID-protocol metrics through the evaluation library and ``brushwork evaluate``:
csd, cfsd, lpips_gray, fid_inf, artfid_inf with tiny networks in the published layouts."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

from brushwork.errors import WeightsError
from brushwork.metrics.evaluation import (
    STYLE_METRICS,
    EvaluationSettings,
    NetworkSettings,
    choose_metrics,
    evaluate,
    score_triples,
)

PROTOCOL = ("csd", "cfsd", "lpips", "lpips_gray", "fid_inf", "artfid_inf")


@pytest.fixture(scope="module")
def csd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CSD training checkpoint (width 64, 1 layer, 28 px) as train_csd.py saves it."""
    from brushwork.metrics.csd import CSDModel, csd_vision_config

    torch.manual_seed(0)
    config = csd_vision_config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
        image_size=28, patch_size=14, projection_dim=16,
    )  # fmt: skip
    model = CSDModel(config)
    state = {f"module.{k}": v for k, v in model.csd_state_dict().items()}
    path = tmp_path_factory.mktemp("csd") / "checkpoint.pth"
    torch.save({"model_state_dict": state, "iter": 1, "args": argparse.Namespace(a=1)}, path)
    return path


@pytest.fixture
def networks(csd_file, vgg19_file, alexnet_file, lpips_alex_file, fid_inception_file,
             art_inception_file) -> NetworkSettings:  # fmt: skip
    return NetworkSettings(
        lpips_weights=str(lpips_alex_file),
        lpips_trunk_weights=str(alexnet_file),
        vgg_weights=str(vgg19_file[0]),
        inception_weights=str(fid_inception_file),
        art_inception_weights=str(art_inception_file),
        inception_size=75,
        csd_weights=str(csd_file),
    )


def test_opt_in_metrics_are_named_but_not_defaults() -> None:
    assert set(PROTOCOL) <= set(STYLE_METRICS)
    defaults = choose_metrics("style", None)
    assert not {"csd", "cfsd", "lpips_gray", "fid_inf", "artfid_inf"} & set(defaults)


def test_score_triples_rows_and_set_scores(style_sets, networks) -> None:
    folders = style_sets
    triples = [
        (folders["content"] / f"{s}.png", folders["style"] / f"{s}.png",
         folders["results"] / f"{s}.png")
        for s in "abc"
    ]  # fmt: skip
    result = score_triples(triples, PROTOCOL, networks=networks, device="cpu")
    assert [row["name"] for row in result.rows] == ["a", "b", "c"]
    for row in result.rows:
        assert -1 <= row["csd"] <= 1 and row["cfsd"] >= 0 and row["lpips_gray"] >= 0
    for metric in ("fid_inf", "artfid_inf"):
        assert math.isfinite(result.summary[metric]["value"]), metric
    lpips = result.summary["lpips"]["mean"]
    inner = result.summary["artfid_inf"]["fid_art_inception"]
    assert result.summary["artfid_inf"]["value"] == pytest.approx((1 + lpips) * (1 + inner))
    # Content scored against itself: gray LPIPS 0, CSD of a style with itself 1.
    same = [(c, c, c) for c, _, _ in triples]
    again = score_triples(same, ("csd", "lpips_gray"), networks=networks, device="cpu")
    for row in again.rows:
        assert row["csd"] == pytest.approx(1, abs=1e-5)
        assert abs(row["lpips_gray"]) < 1e-6


def test_evaluate_folders_same_scores(style_sets, networks) -> None:
    settings = EvaluationSettings(
        mode="style", results=(str(style_sets["results"]),), content=str(style_sets["content"]),
        style=str(style_sets["style"]), metrics=("csd", "cfsd"), networks=networks, device="cpu",
    )  # fmt: skip
    folders = evaluate(settings)
    kinds = ("content", "style", "results")
    triples = [tuple(style_sets[k] / f"{s}.png" for k in kinds) for s in "abc"]
    direct = score_triples(triples, ("csd", "cfsd"), networks=networks)
    assert [r["csd"] for r in folders.rows] == pytest.approx([r["csd"] for r in direct.rows])


def test_missing_csd_weights_is_one_line_before_work(style_sets, tmp_path) -> None:
    nets = NetworkSettings(csd_weights=str(tmp_path / "nope.bin"))
    triples = [
        (style_sets["content"] / "a.png", style_sets["style"] / "a.png",
         style_sets["results"] / "a.png")
    ]  # fmt: skip
    with pytest.raises(WeightsError) as error:
        score_triples(triples, ("csd", "ssim"), networks=nets)
    message = str(error.value)
    assert "\n" not in message and "csd-vit-large" in message and "--metrics ssim" in message


def test_style_scorer_one_at_a_time_equals_score_triples(style_sets, networks) -> None:
    from brushwork.metrics.evaluation import check_networks
    from brushwork.metrics.scorer import StyleScorer

    kinds = ("content", "style", "results")
    triples = [tuple(style_sets[k] / f"{s}.png" for k in kinds) for s in "abc"]
    metrics = ["ssim", "csd", "cfsd", "artfid_inf"]
    check_networks("style", metrics, networks)
    scorer = StyleScorer(metrics, networks, torch.device("cpu"))
    assert scorer.item_metrics == ["ssim", "csd", "cfsd", "lpips"]  # ArtFID's LPIPS term
    items = [scorer.score(result, content, style) for content, style, result in triples]
    whole = score_triples(triples, [*metrics, "lpips"], networks=networks, device="cpu")
    for mine, row in zip(items, whole.rows, strict=True):
        for metric in scorer.item_metrics:
            assert mine[metric] == pytest.approx(row[metric], rel=1e-5), metric
    sets = scorer.score_set(
        [(r, c, s) for c, s, r in triples], lpips=[item["lpips"] for item in items]
    )
    assert sets["artfid_inf"] == pytest.approx(whole.summary["artfid_inf"]["value"], rel=1e-6)
