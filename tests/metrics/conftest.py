"""Fixtures for the metrics tests: weight files in the published layouts (random
weights), tiny Hugging Face models saved to folders, and small image sets."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork.image import save_image
from brushwork.metrics.inception import InceptionFeatures
from brushwork.metrics.lpips import LPIPS, AlexNetFeatures


@pytest.fixture(scope="session")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision AlexNet layout (features.* random, a stub classifier), as a .pth file."""
    trunk = AlexNetFeatures(generator=torch.Generator().manual_seed(1))
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in trunk.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(4, 8)
    state["classifier.1.bias"] = torch.zeros(4)
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-test.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def lpips_alex_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LPIPS v0.1 linear layers for AlexNet in the published keys (lin0.model.1.weight …)."""
    metric = LPIPS("alex", generator=torch.Generator().manual_seed(2))
    path = tmp_path_factory.mktemp("lpips") / "lpips-alex-test.pth"
    torch.save(metric.linear_state_dict(), path)
    return path


def _inception_state(variant: str, seed: int) -> dict[str, torch.Tensor]:
    model = InceptionFeatures(variant, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("running_mean"):
            v = torch.randn(v.shape, generator=g) * 0.1
        elif k.endswith("running_var"):
            v = 1 + torch.rand(v.shape, generator=g)
        state[k] = v.clone()
    return state


@pytest.fixture(scope="session")
def fid_inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytorch-fid layout: the trunk plus fc (1008 classes)."""
    state = _inception_state("fid", 3)
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("inception") / "fid-inception-test.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def art_inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """art_fid layout: the trunk plus its two heads (fc1, fc2, AuxLogits1)."""
    state = _inception_state("art", 4)
    state["fc1.weight"] = torch.zeros(3, 2048)
    state["fc2.weight"] = torch.zeros(5, 2048)
    state["AuxLogits1.fc.weight"] = torch.zeros(3, 768)
    path = tmp_path_factory.mktemp("art") / "art-inception-test.pth"
    torch.save(state, path)
    return path


def tiny_clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase:
        vocab[ch] = len(vocab)
    for ch in string.ascii_lowercase:
        vocab[ch + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP (1 layer, width 32) with a letter tokenizer, saved_pretrained."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = tiny_clip_tokenizer()
    text = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer.get_vocab()),
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def dino_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ViT (2 layers, width 32, patch 8), saved_pretrained."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    model = ViTModel(config, add_pooling_layer=False)
    folder = tmp_path_factory.mktemp("dino") / "tiny-dino"
    model.save_pretrained(folder)
    return folder


def random_image(seed: int, height: int = 48, width: int = 64) -> torch.Tensor:
    """A smooth random (3, H, W) image in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, height // 8, width // 8, generator=g)
    big = torch.nn.functional.interpolate(small, size=(height, width), mode="bilinear")
    noise = 0.1 * torch.rand(1, 3, height, width, generator=g)
    return (big + noise).clamp(0, 1)[0]


@pytest.fixture
def style_sets(tmp_path: Path) -> dict[str, Path]:
    """content/{a,b,c}.png, style/{a,b,c}.png, results/{a,b,c}.png (80×96: ArtFID's
    Inception takes images at their own size and needs at least 75 px)."""
    folders = {name: tmp_path / name for name in ("content", "style", "results")}
    for folder in folders.values():
        folder.mkdir()
    for i, stem in enumerate("abc"):
        content = random_image(10 + i, 80, 96)
        save_image(content, folders["content"] / f"{stem}.png")
        save_image(random_image(20 + i, 80, 96), folders["style"] / f"{stem}.png")
        result = 0.7 * content + 0.3 * random_image(30 + i, 80, 96)
        save_image(result, folders["results"] / f"{stem}.png")
    return folders


def translated_video(steps: int, shift: tuple[int, int], size: int = 48) -> torch.Tensor:
    """(N, 3, size, size) crops of a textured image moving by ``shift`` (dx, dy) per frame."""
    rng = np.random.default_rng(0)
    big = torch.from_numpy(rng.random((3, size * 3, size * 3))).float()
    big = torch.nn.functional.avg_pool2d(big[None], 3, stride=1, padding=1)[0]
    dx, dy = shift
    frames = []
    for t in range(steps):
        y0, x0 = size + t * dy, size + t * dx
        frames.append(big[:, y0 : y0 + size, x0 : x0 + size])
    return torch.stack(frames)


@pytest.fixture(scope="session")
def make_image():
    """:func:`random_image` as a fixture (test modules cannot import this conftest)."""
    return random_image


@pytest.fixture(scope="session")
def make_video():
    """:func:`translated_video` as a fixture."""
    return translated_video
