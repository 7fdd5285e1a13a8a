"""Gatys style transfer end to end at 64 px on a real-size VGG-19 with seeded random weights."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import ConfigError, OptimisationError
from brushwork.image import resize_long_side, rgb_to_yiq
from brushwork.transfer import GatysSettings, gatys
from brushwork.transfer.gatys import (
    describe_schedule,
    estimate_memory,
    pyramid_sizes,
    split_steps,
    step_schedule,
)


def run(content, styles, vgg19, **overrides):
    settings = GatysSettings(**{"size": 64, "steps": 20, "pyramid": "off", **overrides})
    return gatys(content, styles, settings=settings, encoder=vgg19, device="cpu")


def test_loss_decreases(content_image, style_image, vgg19):
    result = run(content_image, style_image, vgg19, steps=30)
    assert len(result.losses) == 30
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.image.shape == (3, 64, 64)
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert result.seconds > 0 and result.levels == [(64, 64, 30)]
    for terms in zip(result.content_losses, result.style_losses, result.tv_losses, strict=True):
        assert all(t >= 0 for t in terms)


def test_same_seed_gives_bitwise_the_same_result(content_image, style_image, vgg19):
    a = run(content_image, style_image, vgg19, init="noise", seed=3, steps=8)
    b = run(content_image, style_image, vgg19, init="noise", seed=3, steps=8)
    c = run(content_image, style_image, vgg19, init="noise", seed=4, steps=8)
    assert torch.equal(a.image, b.image)
    assert a.losses == b.losses
    assert not torch.equal(a.image, c.image)


def test_adam_optimizer_decreases_the_loss(content_image, style_image, vgg19):
    result = run(content_image, style_image, vgg19, optimizer="adam", steps=25)
    assert result.losses[-1] < 0.7 * result.losses[0]


def test_luminance_only_transfer_keeps_the_content_chrominance(content_image, style_image, vgg19):
    result = run(content_image, style_image, vgg19, preserve_color="luminance", steps=20)
    content_iq = rgb_to_yiq(resize_long_side(content_image, 64))[1:]
    result_iq = rgb_to_yiq(result.image)[1:]
    # Equal up to the clamping of the recombined RGB to [0, 1].
    assert (content_iq - result_iq).abs().mean() < 0.01
    # ...while the luminance did change.
    assert (rgb_to_yiq(result.image)[0] - rgb_to_yiq(content_image)[0]).abs().mean() > 0.01


@pytest.mark.parametrize("method", ["histogram", "mean-cov"])
def test_colour_matching_modes_run(content_image, style_image, vgg19, method):
    result = run(content_image, style_image, vgg19, preserve_color=method, steps=10)
    assert result.losses[-1] < result.losses[0]


def test_style_blend_with_zero_weight_equals_the_single_style(content_image, style_image, vgg19):
    other = style_image.flip(0)  # channels swapped: other colours
    single = run(content_image, style_image, vgg19, steps=6)
    blended = run(content_image, [style_image, other], vgg19, steps=6, style_blend=(1.0, 0.0))
    assert torch.equal(single.image, blended.image)
    mixed = run(content_image, [style_image, other], vgg19, steps=6, style_blend=(0.5, 0.5))
    assert not torch.equal(single.image, mixed.image)


def _redness(image: torch.Tensor, region: torch.Tensor) -> float:
    """Mean (red − blue) of ``image`` (3, H, W) inside the boolean ``region`` (H, W)."""
    return float((image[0] - image[2])[region].mean())


def test_mask_regions_get_their_own_style_statistics(vgg19):
    generator = torch.Generator().manual_seed(0)
    # Content and masks at 96 px, output at 64 px: the masks are resized with the content.
    content = 0.4 + 0.2 * torch.rand(3, 96, 96, generator=generator)
    texture = torch.rand(64, 64, generator=generator)
    red = torch.stack([0.6 + 0.4 * texture, 0.2 * texture, 0.1 * texture])
    blue = torch.stack([0.1 * texture, 0.2 * texture, 0.6 + 0.4 * texture])
    left = torch.zeros(1, 96, 96)
    left[..., :48] = 1
    right = 1 - left
    result = gatys(
        content,
        [red, blue],
        masks=[left, right],
        settings=GatysSettings(size=64, steps=40, pyramid="off"),
        encoder=vgg19,
        device="cpu",
    )
    assert result.image.shape == (3, 64, 64)
    left_region = torch.zeros(64, 64, dtype=torch.bool)
    left_region[:, :28] = True  # away from the border, where receptive fields mix
    right_region = torch.zeros(64, 64, dtype=torch.bool)
    right_region[:, 36:] = True
    assert _redness(result.image, left_region) > 0.2
    assert _redness(result.image, right_region) < -0.2


def test_pyramid_levels_and_steps(content_image, style_image, vgg19):
    settings = GatysSettings(size=64, steps=11, coarse_steps=3, pyramid="on", pyramid_min_size=16)
    seen = []
    result = gatys(
        content_image,
        style_image[:, :, 10:53],  # square, so that its 16 px level is deep enough for relu5_1
        settings=settings,
        encoder=vgg19,
        device="cpu",
        callback=lambda info: seen.append((info.step, info.level, tuple(info.preview().shape))),
    )
    assert result.levels == [(16, 16, 3), (32, 32, 3), (64, 64, 5)]
    assert [s[0] for s in seen] == list(range(1, 12))
    assert seen[0][1:] == (0, (3, 16, 16)) and seen[-1][1:] == (2, (3, 64, 64))


def test_pyramid_skips_levels_too_small_for_the_network(content_image, style_image, vgg19):
    settings = GatysSettings(size=64, steps=2, coarse_steps=1, pyramid="on", pyramid_min_size=16)
    result = gatys(content_image, style_image, settings=settings, encoder=vgg19, device="cpu")
    # The 43×64 style image would be 11×16 at the 16 px level: below relu5_1's 16 px.
    assert [level[:2] for level in result.levels] == [(32, 32), (64, 64)]


def test_images_too_small_for_the_layers_are_refused(content_image, vgg19):
    with pytest.raises(ConfigError, match="need at least 16 px"):
        run(content_image, torch.rand(3, 8, 30), vgg19, style_scale=0.25)


def test_pyramid_sizes_auto_threshold():
    settings = GatysSettings(pyramid="auto", pyramid_min_size=128, pyramid_threshold=300 * 300)
    assert pyramid_sizes(256, 256 * 256, settings) == [256]
    assert pyramid_sizes(512, 512 * 384, settings) == [128, 256, 512]
    assert pyramid_sizes(1000, 1000 * 1000, settings) == [125, 250, 500, 1000][1:]
    off = GatysSettings(pyramid="off")
    assert pyramid_sizes(2048, 2048 * 2048, off) == [2048]


def test_non_finite_loss_stops_with_a_clear_error(content_image, style_image, vgg19):
    # A style weight beyond float32's range makes the loss infinite at the first step.
    with pytest.raises(OptimisationError, match="loss became inf at step 1"):
        run(content_image, style_image, vgg19, style_weight=1e300, steps=10)


def test_non_finite_inputs_are_refused(content_image, style_image, vgg19):
    broken = content_image.clone()
    broken[0, 3, 3] = float("nan")
    with pytest.raises(ConfigError, match="content image contains NaN"):
        run(broken, style_image, vgg19)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"style_weight": -1.0}, "--style-weight must be a non-negative"),
        ({"steps": -5}, "--steps must be 0 or more"),
        ({"content_layers": ("relu4_22",)}, "did you mean 'relu4_2'"),
        ({"style_blend": (0.5, 0.3, 0.2)}, "--style-weights has 3 weights"),
        ({"optimizer": "sgd"}, "--optimizer must be one of"),
    ],
)
def test_invalid_settings_are_config_errors(content_image, style_image, vgg19, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(content_image, style_image, vgg19, **overrides)


def test_mask_of_the_wrong_size_is_refused(content_image, style_image, vgg19):
    with pytest.raises(ConfigError, match="masks must have the content's size"):
        gatys(
            content_image,
            [style_image],
            masks=[torch.ones(1, 10, 10)],
            settings=GatysSettings(size=32, steps=1),
            encoder=vgg19,
            device="cpu",
        )


def test_steps_are_the_total_over_all_levels(content_image, style_image, vgg19):
    settings = GatysSettings(size=64, steps=9, pyramid="on", pyramid_min_size=16)
    square = style_image[:, :, 10:53]
    result = gatys(content_image, square, settings=settings, encoder=vgg19, device="cpu")
    assert sum(level[2] for level in result.levels) == 9 == len(result.losses)
    assert [level[2] for level in result.levels] == [2, 3, 4]  # floor(9 × 0.6) = 5 coarse


@pytest.mark.parametrize(
    ("total", "levels", "expected"),
    [(80, 3, [24, 24, 32]), (80, 1, [80]), (1, 3, [0, 0, 1]), (7, 3, [2, 2, 3]), (0, 2, [0, 0])],
)
def test_split_steps_rule(total, levels, expected):
    assert split_steps(total, levels, GatysSettings()) == expected
    assert sum(expected) == total


def test_coarse_steps_are_capped_by_the_total():
    settings = GatysSettings(coarse_steps=150)
    assert split_steps(80, 3, settings) == [39, 40, 1]
    assert split_steps(400, 3, settings) == [150, 150, 100]


def test_schedule_drops_empty_levels_and_describes_itself():
    settings = GatysSettings(size=512, steps=2, pyramid="on")
    schedule = step_schedule((384, 512), settings)
    assert schedule == [(256, 1), (512, 1)]
    assert describe_schedule(schedule) == "256 px × 1, 512 px × 1 = 2 steps"
    default = step_schedule((384, 512), GatysSettings(size=512))  # full resolution only
    assert describe_schedule(default) == "512 px × 200 = 200 steps"


def test_memory_estimate_grows_with_the_size():
    small = estimate_memory((300, 400), GatysSettings(size=256), style_sizes=[(300, 300)])
    large = estimate_memory((300, 400), GatysSettings(size=512), style_sizes=[(300, 300)])
    assert 100 * 1024**2 < small < large < 4 * 1024**3
    assert estimate_memory((300, 400), GatysSettings(size=20000)) > 1000 * 1024**3
