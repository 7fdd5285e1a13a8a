"""LoRA training on tiny SD 1.5 / SDXL / Flux pipelines: loss, exact resume, data, B-LoRA."""

from __future__ import annotations

import shutil

import pytest
import torch
from lora_tiny import TRIGGER, build, settings

from brushwork.diffusion.lora import (
    LoraTrainer,
    load_training_set,
    size_multiple,
    train_lora,
)
from brushwork.diffusion.lora.data import bucket_sizes, caption_for, choose_bucket
from brushwork.errors import ConfigError, WeightsError


def _data(pipe, images, **kwargs):
    return load_training_set(
        [images], trigger=TRIGGER, resolution=32, multiple=size_multiple(pipe), **kwargs
    )


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_a_few_steps_lower_the_loss_on_fixed_batches(family, tmp_path, training_images):
    pipe = build(family, tmp_path)
    trainer = LoraTrainer(pipe, _data(pipe, training_images), settings(family, learning_rate=3e-3))
    with torch.no_grad():
        before = [float(trainer.loss_at(k)) for k in range(3)]
    for _ in range(6):
        trainer.step()
    with torch.no_grad():
        after = [float(trainer.loss_at(k)) for k in range(3)]
    trainer.close()
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)
    assert not pipe.get_list_adapters()  # close() removes the training adapter


@pytest.mark.parametrize(("family", "changes"), [
    ("sd", dict(batch_size=2, gradient_checkpointing=True)),
    ("flux", dict()),
])  # fmt: skip
def test_resume_equals_the_uninterrupted_run_bit_for_bit(
    family, changes, tmp_path, training_images
):
    run = settings(family, steps=5, checkpoint_every=2, **changes)
    pipe = build(family, tmp_path / "a")
    data = _data(pipe, training_images)
    kept = tmp_path / "step2.ckpt"

    def keep(step):
        if step.step == 2:
            shutil.copy(step.checkpoint, kept)

    whole = train_lora(pipe, data, run, checkpoint_path=tmp_path / "a.ckpt", callback=keep)
    again = build(family, tmp_path / "b")
    resumed = train_lora(again, _data(again, training_images), run, resume=kept)
    assert resumed.start_step == 2 and len(resumed.losses) == 3
    assert resumed.losses == whole.losses[2:]
    assert whole.tensors.keys() == resumed.tensors.keys()
    for key, value in whole.tensors.items():
        assert torch.equal(value, resumed.tensors[key]), key


def test_latent_cache_and_checkpointing_do_not_change_the_result(tmp_path, training_images):
    pipe = build("sd", tmp_path)
    data = _data(pipe, training_images)
    plain = train_lora(pipe, data, settings("sd", steps=2))
    other = train_lora(
        pipe, data, settings("sd", steps=2, cache_latents=False, gradient_checkpointing=True)
    )
    assert plain.losses == pytest.approx(other.losses, rel=1e-5)
    for key, value in plain.tensors.items():
        torch.testing.assert_close(value, other.tensors[key], rtol=1e-4, atol=1e-6)


def test_resume_refuses_another_run(tmp_path, training_images):
    pipe = build("sd", tmp_path)
    data = _data(pipe, training_images)
    train_lora(pipe, data, settings("sd", steps=1), checkpoint_path=tmp_path / "r.ckpt")
    with pytest.raises(WeightsError, match=r"another run.*settings"):
        train_lora(pipe, data, settings("sd", steps=2, rank=8), resume=tmp_path / "r.ckpt")
    with pytest.raises(ConfigError, match="at step 1"):
        train_lora(pipe, data, settings("sd", steps=1), resume=tmp_path / "r.ckpt")
    assert not pipe.get_list_adapters()


def test_b_lora_trains_only_the_named_block(tmp_path, training_images):
    pipe = build("sdxl-layout", tmp_path)
    data = _data(pipe, training_images)
    style = train_lora(pipe, data, settings("sdxl", steps=1, b_lora="style"))
    assert style.tensors and all(
        k.startswith("unet.up_blocks.0.attentions.1.") for k in style.tensors
    )
    both = train_lora(pipe, data, settings("sdxl", steps=1, b_lora="both"))
    blocks = {".".join(k.split(".")[1:5]) for k in both.tensors}
    assert blocks == {"up_blocks.0.attentions.0", "up_blocks.0.attentions.1"}
    assert style.info.b_lora == "style"
    sd = build("sd", tmp_path / "sd")
    with pytest.raises(ConfigError, match="SDXL"):
        train_lora(sd, _data(sd, training_images), settings("sd", b_lora="style"))


def test_text_encoder_layers_are_trained_when_asked(tmp_path, training_images):
    pipe = build("sdxl", tmp_path)
    result = train_lora(
        pipe, _data(pipe, training_images), settings("sdxl", steps=1, train_text_encoder=True)
    )
    components = {k.split(".", 1)[0] for k in result.tensors}
    assert components == {"unet", "text_encoder", "text_encoder_2"}
    assert any(".q_proj.lora_B." in k and v.abs().sum() > 0 for k, v in result.tensors.items())


def test_samples_at_chosen_steps(tmp_path, training_images):
    pipe = build("sd", tmp_path)
    seen = {}
    train_lora(
        pipe,
        _data(pipe, training_images),
        settings("sd", steps=3, sample_steps=(1, 3)),
        callback=lambda s: seen.update({s.step: s.samples}),
    )
    assert seen[2] is None
    assert seen[1].shape == seen[3].shape == (1, 3, 32, 32)
    assert not torch.equal(seen[1], seen[3])


def test_captions_buckets_and_order(tmp_path, training_images):
    assert caption_for(training_images / "a.png", TRIGGER) == TRIGGER
    assert caption_for(training_images / "c.png", TRIGGER) == f"{TRIGGER}, a tall painting of a dog"
    assert caption_for(training_images / "c.png", None) == "a tall painting of a dog"
    with pytest.raises(ConfigError, match="no caption file"):
        caption_for(training_images / "a.png", None)
    buckets = bucket_sizes(512, 64)
    assert (512, 512) in buckets and (384, 640) in buckets and (640, 384) in buckets
    assert choose_bucket(300, 500, buckets) == (384, 640)
    assert choose_bucket(1000, 1000, buckets) == (512, 512)
    data = load_training_set([training_images], trigger=TRIGGER, resolution=32, multiple=8)
    assert [i.bucket for i in data.images] == [(32, 32), (24, 40), (40, 24)]
    assert all(tuple(i.pixels.shape[-2:]) == i.bucket for i in data.images)
    order = [data.batch_at(step, 1, seed=3)[2] for step in range(6)]
    assert sorted(i for batch in order[:3] for i in batch) == [0, 1, 2]  # an epoch: each once
    assert order == [data.batch_at(step, 1, seed=3)[2] for step in range(6)]
    square = load_training_set([training_images], trigger=TRIGGER, resolution=32, buckets=False)
    assert {i.bucket for i in square.images} == {(32, 32)}
    with pytest.raises(ConfigError, match="multiple of 64"):
        bucket_sizes(100, 64)
    with pytest.raises(ConfigError, match="does not exist"):
        load_training_set([tmp_path / "nope"], trigger=TRIGGER, resolution=32)
