import pytest
import torch

from brushwork import losses
from brushwork.errors import ConfigError


@pytest.fixture
def feats():
    return torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(0))


def test_gram_is_symmetric_and_normalised(feats):
    g = losses.gram_matrix(feats)
    assert g.shape == (2, 8, 8)
    torch.testing.assert_close(g, g.transpose(1, 2))
    flat = feats.reshape(2, 8, 35)
    expected = torch.einsum("bci,bdi->bcd", flat, flat) / (8 * 5 * 7)
    torch.testing.assert_close(g, expected)
    # positive semi-definite
    assert torch.linalg.eigvalsh(g).min() > -1e-6


def test_gram_of_constant_features_is_independent_of_spatial_size():
    small = torch.ones(1, 3, 4, 4)
    large = torch.ones(1, 3, 16, 16)
    torch.testing.assert_close(losses.gram_matrix(small), losses.gram_matrix(large))


def test_gram_is_float32_for_bfloat16_features(feats):
    g = losses.gram_matrix(feats.bfloat16())
    assert g.dtype == torch.float32


def test_masked_gram_with_full_mask_equals_gram(feats):
    mask = torch.ones(1, 1, 5, 7)
    torch.testing.assert_close(losses.masked_gram_matrix(feats, mask), losses.gram_matrix(feats))


def test_masked_gram_sees_only_the_region():
    left = torch.randn(1, 4, 6, 3)
    features = torch.cat([left, 100 * torch.randn(1, 4, 6, 3)], dim=3)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :3] = 1
    torch.testing.assert_close(losses.masked_gram_matrix(features, mask), losses.gram_matrix(left))


def test_masked_gram_gradient_equals_autograd_of_the_formula():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 1, 6, 5, generator=g, dtype=torch.float64)  # soft, per batch element
    weight = torch.randn(2, 4, 4, generator=g, dtype=torch.float64)
    (losses.masked_gram_matrix(features, mask) * weight).sum().backward()
    fast = features.grad.clone()
    features.grad = None
    flat = (features * mask).reshape(2, 4, 30)
    direct = flat @ flat.transpose(1, 2) / (4 * mask.square().sum(dim=(1, 2, 3)).view(-1, 1, 1))
    (direct * weight).sum().backward()
    torch.testing.assert_close(fast, features.grad, rtol=1e-10, atol=1e-12)


def test_zero_losses_for_identical_inputs(feats):
    assert losses.content_loss(feats, feats) == 0
    assert losses.gram_loss(feats, losses.gram_matrix(feats)) == 0
    assert losses.mean_std_loss(feats, feats) == 0
    assert losses.total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0


def test_losses_positive_for_different_inputs(feats):
    other = feats + 0.5 * torch.randn_like(feats)
    assert losses.content_loss(feats, other) > 0
    assert losses.gram_loss(other, losses.gram_matrix(feats)) > 0
    assert losses.mean_std_loss(other, feats) > 0


def test_total_variation_value():
    image = torch.zeros(1, 1, 2, 3)
    image[..., 1] = 1.0  # one vertical stripe
    # horizontal differences: (1, -1) per row -> mean of squares over 2x2 entries = 1
    assert losses.total_variation(image) == pytest.approx(1.0)


def test_mean_std_values():
    x = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
    mean, std = losses.mean_std(x, eps=0.0)
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(1.0)


def test_function_equals_module(feats):
    target = feats.flip(0)
    names = {"a": feats, "b": feats * 2}
    targets = {"a": target, "b": target * 2}
    weights = {"a": 0.5, "b": 2.0}
    expected_content = 0.5 * losses.content_loss(feats, target) + 2.0 * losses.content_loss(
        feats * 2, target * 2
    )
    torch.testing.assert_close(losses.ContentLoss(targets, weights)(names), expected_content)
    expected_gram = 0.5 * losses.gram_loss(
        feats, losses.gram_matrix(target)
    ) + 2.0 * losses.gram_loss(feats * 2, losses.gram_matrix(target * 2))
    torch.testing.assert_close(losses.GramStyleLoss(targets, weights)(names), expected_gram)
    grams = {n: losses.gram_matrix(t) for n, t in targets.items()}
    torch.testing.assert_close(
        losses.GramStyleLoss(grams, weights, grams=True)(names), expected_gram
    )
    expected_ms = 0.5 * losses.mean_std_loss(feats, target) + 2.0 * losses.mean_std_loss(
        feats * 2, target * 2
    )
    torch.testing.assert_close(losses.MeanStdStyleLoss(targets, weights)(names), expected_ms)
    image = torch.rand(1, 3, 9, 9)
    torch.testing.assert_close(losses.TotalVariationLoss()(image), losses.total_variation(image))


def test_gradients_flow(feats):
    x = feats.clone().requires_grad_(True)
    target = torch.randn_like(feats)
    total = (
        losses.content_loss(x, target)
        + losses.gram_loss(x, losses.gram_matrix(target))
        + losses.mean_std_loss(x, target)
        + losses.total_variation(x)
    )
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_batch_items_are_independent(feats):
    g = losses.gram_matrix(feats)
    torch.testing.assert_close(g[1:], losses.gram_matrix(feats[1:]))


def test_weighted_sum_needs_layers():
    with pytest.raises(ConfigError):
        losses.weighted_sum({})


def test_gram_gradient_matches_autograd_of_the_plain_formula():
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: losses.gram_matrix(t), (x,))
    weights = torch.randn(2, 4, 4)
    (losses.gram_matrix(x) * weights.double()).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    flat = x.reshape(2, 4, 15)
    ((flat @ flat.transpose(1, 2) / 60) * weights.double()).sum().backward()
    torch.testing.assert_close(ours, x.grad, rtol=1e-5, atol=1e-6)


def test_gram_gradient_keeps_the_features_dtype():
    x = torch.randn(1, 3, 4, 4).bfloat16().requires_grad_(True)
    losses.gram_matrix(x).sum().backward()
    assert x.grad.dtype == torch.bfloat16
