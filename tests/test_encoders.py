import dataclasses

import pytest
import torch

from brushwork.encoders import VGGEncoder, load_features, vgg_layer_names
from brushwork.errors import ConfigError, WeightsError
from weights_testing import isolate_weights_env


def test_layer_names_match_torchvision_indices():
    names = vgg_layer_names("vgg19")
    assert len(names) == 37  # torchvision vgg19().features has 37 modules
    assert names[0] == "conv1_1" and names[1] == "relu1_1" and names[4] == "pool1"
    assert names.index("conv5_1") == 28 and names[-1] == "pool5"
    assert len(vgg_layer_names("vgg16")) == 31
    assert vgg_layer_names("vgg16").index("relu4_3") == 22


def test_state_dict_keys_and_shapes_are_the_published_layout():
    state = VGGEncoder("vgg19").state_dict()
    assert set(state) == {
        f"features.{i}.{p}"
        for i in (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
        for p in ("weight", "bias")
    }
    assert state["features.28.weight"].shape == (512, 512, 3, 3)


def test_forward_returns_requested_layers_with_expected_shapes(vgg19):
    image = torch.rand(2, 3, 64, 48)
    feats = vgg19(image, ["relu1_1", "relu4_2", "pool2"])
    assert set(feats) == {"relu1_1", "relu4_2", "pool2"}
    assert feats["relu1_1"].shape == (2, 64, 64, 48)
    assert feats["pool2"].shape == (2, 128, 16, 12)
    assert feats["relu4_2"].shape == (2, 512, 8, 6)
    assert (feats["relu1_1"] >= 0).all()


def test_forward_is_truncated_at_the_deepest_requested_layer(vgg19):
    called = []
    hooks = [m.register_forward_hook(lambda m, i, o: called.append(m)) for m in vgg19.features]
    try:
        vgg19(torch.rand(1, 3, 32, 32), ["relu2_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert len(called) == vgg19.layer_index["relu2_1"] + 1


def test_conv_output_is_not_overwritten_by_the_following_relu(vgg19):
    feats = vgg19(torch.rand(1, 3, 32, 32), ["conv1_1", "relu1_1"])
    assert (feats["conv1_1"] < 0).any()
    torch.testing.assert_close(feats["conv1_1"].clamp_min(0), feats["relu1_1"])


def test_normalisation_is_inside(vgg19):
    image = torch.rand(1, 3, 16, 16)
    conv = vgg19.features[0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = conv((image - mean) / std)
    torch.testing.assert_close(vgg19(image, ["conv1_1"])["conv1_1"], expected)


def test_frozen_and_always_eval(vgg19):
    assert not any(p.requires_grad for p in vgg19.parameters())
    vgg19.train()
    assert not vgg19.training


def test_gradients_flow_to_the_input(vgg19):
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg19(image, ["relu3_1"])["relu3_1"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_exact_input_keeps_small_pixel_changes_under_bf16_autocast(vgg19):
    """What an optimiser's small steps do to relu1_1: bf16 rounds most of them away;
    with ``exact_input`` the first layer is the float32 one."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    nudge = 1e-4 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact_change = (
            vgg19(image + nudge, ["relu1_1"])["relu1_1"] - vgg19(image, ["relu1_1"])["relu1_1"]
        )

        def change(**kwargs):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                after = vgg19(image + nudge, ["relu1_1"], **kwargs)["relu1_1"].float()
                before = vgg19(image, ["relu1_1"], **kwargs)["relu1_1"].float()
            return after - before

        def error(found):
            return float((found - exact_change).norm() / exact_change.norm())

        assert error(change()) > 0.5  # bf16: the change is mostly lost or rounded up
        assert error(change(exact_input=True)) < 1e-3
        with torch.autocast("cpu", dtype=torch.bfloat16):  # later layers stay in bf16
            deep = vgg19(image, ["relu2_1"], exact_input=True)["relu2_1"]
        assert deep.dtype == torch.bfloat16


def test_avg_pooling_option():
    encoder = VGGEncoder("vgg16", pooling="avg")
    assert isinstance(encoder.features[4], torch.nn.AvgPool2d)
    with pytest.raises(ConfigError, match="pooling"):
        VGGEncoder("vgg19", pooling="median")


def test_unknown_layer_and_arch_suggest_the_nearest_name(vgg19):
    with pytest.raises(ConfigError, match="did you mean 'relu4_2'"):
        vgg19(torch.rand(1, 3, 16, 16), ["relu4_22"])
    with pytest.raises(ConfigError, match="did you mean 'vgg19'"):
        VGGEncoder("vgg91")


def test_same_generator_seed_gives_the_same_random_network():
    a = VGGEncoder("vgg16", generator=torch.Generator().manual_seed(1))
    b = VGGEncoder("vgg16", generator=torch.Generator().manual_seed(1))
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_load_features_refuses_other_architectures():
    vgg16_state = VGGEncoder("vgg16").state_dict()
    with pytest.raises(WeightsError, match="VGG19"):
        load_features(VGGEncoder("vgg19"), vgg16_state, source="vgg16.pth")


@pytest.fixture
def isolated_weights(monkeypatch, tmp_path):
    isolate_weights_env(monkeypatch, tmp_path)
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")


def _published_copy(vgg19_file, folder):
    """The test weight file under the published VGG-19 file name, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "vgg19-dcbb9e9d.pth"
    target.write_bytes(vgg19_file[0].read_bytes())
    return target


def test_load_vgg_encoder_through_the_real_loader(
    vgg19_file, isolated_weights, monkeypatch, tmp_path
):
    from brushwork import weights
    from brushwork.encoders import load_vgg_encoder

    path, digest = vgg19_file
    _published_copy(vgg19_file, weights.cache_dir())
    # The right digest loads, and the encoder holds exactly the file's tensors.
    monkeypatch.setitem(
        weights.REGISTRY, "vgg19", dataclasses.replace(weights.REGISTRY["vgg19"], sha256=digest)
    )
    encoder = load_vgg_encoder("vgg19")
    state = torch.load(path, weights_only=True)
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, state[key])


def test_load_vgg_encoder_refuses_a_file_that_fails_the_hash(vgg19_file, isolated_weights):
    from brushwork import weights
    from brushwork.encoders import load_vgg_encoder

    _published_copy(vgg19_file, weights.cache_dir())  # random weights: not the published digest
    with pytest.raises(WeightsError, match="dcbb9e9d"):
        load_vgg_encoder("vgg19")


def test_own_weight_file_is_checked_for_architecture_not_hash(
    vgg19_file, isolated_weights, tmp_path
):
    from brushwork.encoders import load_vgg_encoder

    encoder = load_vgg_encoder("vgg19", weights=vgg19_file[0])  # named vgg19-test.pth
    assert encoder.features[0].weight.shape == (64, 3, 3, 3)
    wrong = tmp_path / "vgg16-own.pth"
    torch.save(VGGEncoder("vgg16").state_dict(), wrong)
    with pytest.raises(WeightsError, match="does not hold VGG19 weights"):
        load_vgg_encoder("vgg19", weights=wrong)
