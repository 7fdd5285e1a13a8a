"""LPIPS, Inception, CLIP and DINO loaded from files in their published layouts."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import WeightsError
from brushwork.metrics.fid import inception_features, load_inception
from brushwork.metrics.lpips import load_lpips


@pytest.fixture(scope="module")
def lpips_alex(alexnet_file, lpips_alex_file):
    return load_lpips("alex", linear_weights=lpips_alex_file, trunk_weights=alexnet_file)


def test_lpips_zero_symmetric_positive(lpips_alex, make_image):
    a = torch.stack([make_image(1), make_image(2)])
    b = torch.stack([make_image(3), make_image(4)])
    assert torch.equal(lpips_alex(a, a), torch.zeros(2))
    ab, ba = lpips_alex(a, b), lpips_alex(b, a)
    torch.testing.assert_close(ab, ba)
    assert bool((ab > 0).all())
    # Closer images are closer in LPIPS.
    near = lpips_alex(a, (a + 0.02 * (b - a)).clamp(0, 1))
    assert bool((near < ab).all())


def test_lpips_loaded_weights_are_the_files(lpips_alex, lpips_alex_file, alexnet_file):
    lin = torch.load(lpips_alex_file, weights_only=True)
    torch.testing.assert_close(lpips_alex.lin2.model[1].weight, lin["lin2.model.1.weight"])
    trunk = torch.load(alexnet_file, weights_only=True)
    torch.testing.assert_close(lpips_alex.trunk.features[3].weight, trunk["features.3.weight"])


def test_lpips_vgg_from_files(tmp_path, lpips_alex, make_image):
    from brushwork.encoders import VGGEncoder
    from brushwork.metrics.lpips import LPIPS

    vgg = VGGEncoder("vgg16", generator=torch.Generator().manual_seed(5))
    trunk_path = tmp_path / "vgg16-test.pth"
    torch.save(vgg.state_dict(), trunk_path)
    lin_path = tmp_path / "lpips-vgg-test.pth"
    torch.save(
        LPIPS("vgg", generator=torch.Generator().manual_seed(6)).linear_state_dict(), lin_path
    )
    metric = load_lpips("vgg", linear_weights=lin_path, trunk_weights=trunk_path)
    a, b = make_image(1, 32, 32)[None], make_image(2, 32, 32)[None]
    assert float(metric(a, a)) == 0.0
    assert float(metric(a, b)) == pytest.approx(float(metric(b, a)))
    assert float(metric(a, b)) > 0


def test_lpips_rejects_wrong_layout(tmp_path, alexnet_file):
    bad = tmp_path / "bad.pth"
    torch.save({"lin0.weight": torch.zeros(1, 64, 1, 1)}, bad)
    with pytest.raises(WeightsError, match=r"missing lin0\.model\.1\.weight"):
        load_lpips("alex", linear_weights=bad, trunk_weights=alexnet_file)


def test_fid_inception_loads_and_gives_features(fid_inception_file, make_image):
    model = load_inception("fid", weights=fid_inception_file, input_size=75)
    state = torch.load(fid_inception_file, weights_only=True)
    torch.testing.assert_close(
        model.Mixed_7c.branch_pool.bn.running_var, state["Mixed_7c.branch_pool.bn.running_var"]
    )
    images = [make_image(i, 40, 56) for i in range(3)]
    feats = inception_features(model, images, batch_size=2)
    assert feats.shape == (3, 2048)
    again = inception_features(model, images, batch_size=3)
    assert abs(feats - again).max() < 1e-4  # batching does not change the features
    assert feats.std(0).mean() > 0


def test_art_inception_keeps_image_size(art_inception_file, make_image):
    model = load_inception("art", weights=art_inception_file)
    assert model.input_size is None
    images = [make_image(0, 80, 96), make_image(1, 80, 96), make_image(2, 96, 80)]
    feats = inception_features(model, images, batch_size=4)
    assert feats.shape == (3, 2048)


def test_inception_rejects_wrong_layout(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, bad)
    with pytest.raises(WeightsError, match="Inception-v3"):
        load_inception("fid", weights=bad)


def test_clip_scores(clip_folder, make_image):
    from brushwork.metrics.clip import load_clip

    scorer = load_clip(str(clip_folder))
    a = torch.stack([make_image(1), make_image(2)])
    b = torch.stack([make_image(3), make_image(4)])
    torch.testing.assert_close(scorer.image_similarity(a, a), torch.ones(2))
    sim = scorer.image_similarity(a, b)
    assert bool((sim < 1).all())
    text = scorer.text_score(a, "a pig")
    assert text.shape == (2,) and bool((text.abs() <= 1).all())
    direction = scorer.direction_score(a, b, "a cat", "a pig")
    assert bool((direction.abs() <= 1 + 1e-6).all())
    # Accuracy is 1 exactly where the target text scores higher than the source text.
    acc = scorer.accuracy(b, "a cat", "a pig")
    expected = (scorer.text_score(b, "a pig") > scorer.text_score(b, "a cat")).float()
    torch.testing.assert_close(acc, expected)


def test_structure_distance(dino_folder, make_image):
    from brushwork.metrics.structure import load_dino

    scorer = load_dino(str(dino_folder), size=32)
    a = torch.stack([make_image(1), make_image(2)])
    b = torch.stack([make_image(3), make_image(4)])
    assert torch.equal(scorer.distance(a, a), torch.zeros(2))
    assert bool((scorer.distance(a, b) > 0).all())
    keys = scorer.keys(a)
    assert keys.shape[1] == 1 + (32 // 8) * round(64 * 32 / 48 / 8)  # CLS + patches


def test_missing_hub_folder_is_a_weights_error(tmp_path):
    from brushwork.metrics.clip import load_clip

    with pytest.raises(WeightsError, match="does not exist"):
        load_clip(str(tmp_path / "nowhere"))


def test_style_losses(vgg19_file, make_image):
    from brushwork.encoders import load_vgg_encoder
    from brushwork.metrics.style import content_feature_loss, gram_style_loss

    encoder = load_vgg_encoder("vgg19", weights=vgg19_file[0])
    a, b = make_image(1, 32, 32)[None], make_image(2, 32, 32)[None]
    assert float(content_feature_loss(encoder, a, a)) == 0.0
    assert float(content_feature_loss(encoder, a, b)) > 0
    assert float(gram_style_loss(encoder, a, a)) == 0.0
    assert float(gram_style_loss(encoder, a, make_image(2, 40, 48)[None])) > 0
