"""Training a style LoRA on SD 1.x/2.x, SDXL or Flux.1 with diffusers and peft.

The recipe is diffusers' LoRA training scripts' (``train_text_to_image_lora*.py``,
``train_dreambooth_lora_flux.py``): LoRA layers on the attention projections
(:mod:`.targets`), AdamW (weight decay 1e-2), gradient-norm clipping at 1, a constant
learning rate; UNets learn the noise (or v) at uniform timesteps, Flux learns the flow
``noise - x`` at logit-normal ``sigma`` (SD3 paper). What it does differently:

* **latents are computed once**: the VAE encodes each image once and keeps the mean and
  standard deviation of its latent distribution; each step draws its sample from them
  (the same numbers a fresh encode would give). The VAE is not run during training.
  Prompt embeddings are computed once too, unless the text encoders are trained.
* **everything random is a function of (seed, step)**: the batch (:mod:`.data`), the
  latent sample, the noise and the timesteps come from generators seeded with the step,
  and the LoRA's initial weights from the seed. A checkpoint therefore holds the LoRA
  weights, the optimiser (and grad-scaler) state, the step (with the epoch and position
  in the epoch's order it implies) and the run's settings; resuming from it continues
  exactly as the uninterrupted run (bit for bit on the CPU).
* mixed precision: the frozen weights stay in the pipeline's dtype, the LoRA weights are
  float32, and half-precision pipelines run under autocast (with a grad scaler for fp16).
* gradient checkpointing of the denoiser (and trained text encoders) when asked.

Example::

    data = load_training_set(["my_style/"], trigger="in sks style", resolution=512)
    result = train_lora(pipe, data, LoraSettings(rank=16, steps=1000), base_model=model_id)
    save_lora("my_style.safetensors", result.tensors, result.info)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from brushwork.atomic import atomic_path
from brushwork.diffusion.lora.adapters import add_text_encoder_adapter, remove_text_encoder_adapter
from brushwork.diffusion.lora.data import TrainingSet
from brushwork.diffusion.lora.files import LoraInfo
from brushwork.diffusion.lora.targets import (
    B_LORA_PARTS,
    TEXT_ENCODER_TARGETS,
    denoiser_targets,
)
from brushwork.errors import ConfigError, OptimisationError, WeightsError
from brushwork.transfer.data import step_generator

__all__ = [
    "LoraSettings",
    "LoraStep",
    "LoraTrainResult",
    "LoraTrainer",
    "size_multiple",
    "train_lora",
]

ADAPTER = "brushwork_train"
#: Flux.1-dev's guidance input during training (diffusers' Flux LoRA script's default).
FLUX_TRAIN_GUIDANCE = 3.5


@dataclass
class LoraSettings:
    """Settings of a LoRA run (defaults: diffusers' LoRA scripts; B-LoRA's paper for its
    blocks).

    Attributes:
        rank: LoRA rank r.
        alpha: LoRA alpha (``None``: = rank, scale 1).
        steps: optimiser steps of the whole run.
        learning_rate: AdamW learning rate (constant).
        batch_size: images per step (one bucket per batch).
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient-norm clipping (0: none).
        seed: seeds the LoRA's initial weights, the data order and every step's noise.
        b_lora: ``"style"``, ``"content"`` or ``"both"``: train only B-LoRA's SDXL blocks.
        train_text_encoder: also put LoRA layers on the CLIP text encoder(s).
        gradient_checkpointing: recompute activations in the backward pass.
        cache_latents: encode each image once (``False``: the VAE runs every step, as in
            the textbook loop; same results).
        checkpoint_every: write a checkpoint every N steps (0: at the end only).
        sample_steps: steps after which sample images are made (see ``sample_prompt``).
        sample_prompt: prompt of the samples (``None``: the first caption).
        sample_inference_steps: denoising steps of each sample.
        max_sequence_length: Flux's T5 length (``None``: 512).
    """

    rank: int = 16
    alpha: float | None = None
    steps: int = 1000
    learning_rate: float = 1e-4
    batch_size: int = 1
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    seed: int = 0
    b_lora: str | None = None
    train_text_encoder: bool = False
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    checkpoint_every: int = 0
    sample_steps: tuple[int, ...] = ()
    sample_prompt: str | None = None
    sample_inference_steps: int = 25
    max_sequence_length: int | None = None

    def validate(self) -> None:
        """Raises ConfigError on a value out of range."""
        if self.rank < 1:
            raise ConfigError(f"--rank must be 1 or more, got {self.rank}")
        if self.alpha is not None and not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ConfigError(f"--alpha must be more than 0, got {self.alpha}")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("--steps and --batch-size must be 1 or more")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"--learning-rate must be more than 0, got {self.learning_rate}")
        if self.b_lora is not None and self.b_lora not in B_LORA_PARTS:
            raise ConfigError(f"--b-lora must be one of {', '.join(B_LORA_PARTS)}")
        if self.b_lora is not None and self.train_text_encoder:
            raise ConfigError("B-LoRA trains two UNet blocks only: drop --train-text-encoder")
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be 0 or more, got {self.checkpoint_every}")
        bad = [s for s in self.sample_steps if not 1 <= s <= self.steps]
        if bad:
            raise ConfigError(f"--sample-steps must lie in 1..{self.steps}, got {bad[0]}")

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else float(self.rank)

    def trajectory(self) -> dict[str, Any]:
        """The settings that decide the weights after each step (checked on resume)."""
        keep = ("rank", "alpha", "learning_rate", "batch_size", "weight_decay", "max_grad_norm",
                "seed", "b_lora", "train_text_encoder", "max_sequence_length")  # fmt: skip
        return {k: getattr(self, k) for k in keep}


@dataclass
class LoraStep:
    """What the callback receives after each step.

    Attributes:
        step: steps done (1-based); total_steps: of the whole run.
        loss: this step's loss; epoch: the epoch of this step (0-based).
        checkpoint: the checkpoint written after it, if any.
        samples: (N, 3, H, W) float32 sample images made after it, if any.
    """

    step: int
    total_steps: int
    loss: float
    epoch: int
    checkpoint: Path | None = None
    samples: torch.Tensor | None = None


@dataclass
class LoraTrainResult:
    """The trained LoRA and how the run went.

    Attributes:
        tensors: ``<component>.<module>.lora_A|B.weight`` (diffusers layout, alpha/r in B).
        info: the metadata to write with it.
        losses: the loss of each step run in this session.
        start_step: the step this session began at (> 0 after a resume).
        seconds: wall time of this session's steps.
    """

    tensors: dict[str, torch.Tensor]
    info: LoraInfo
    losses: list[float] = field(default_factory=list)
    start_step: int = 0
    seconds: float = 0.0


def size_multiple(pipe: Any) -> int:
    """What training image sides must be multiples of: VAE factor × (UNet: 2^(levels-1),
    Flux: the 2×2 packing)."""
    from brushwork.diffusion.pipelines import pipeline_family

    factor = int(getattr(pipe, "vae_scale_factor", 8))
    if pipeline_family(pipe) == "flux":
        return factor * 2
    return factor * 2 ** (len(pipe.unet.config.down_block_types) - 1)


class LoraTrainer:
    """A LoRA run on one pipeline: adapters added, latents cached, optimiser built.

    Use :func:`train_lora` unless you need the steps one by one (:meth:`step`), the loss
    of a step without training (:meth:`loss_at`), or checkpoints by hand.
    The pipeline carries the training adapter until :meth:`close`.
    """

    def __init__(
        self,
        pipe: Any,
        data: TrainingSet,
        settings: LoraSettings,
        *,
        base_model: str = "",
    ) -> None:
        from brushwork.diffusion.pipelines import pipeline_family

        settings.validate()
        self.pipe = pipe
        self.data = data
        self.settings = settings
        self.base_model = base_model
        self.family = pipeline_family(pipe)
        self.targets = denoiser_targets(self.family, settings.b_lora)
        self.denoiser = pipe.transformer if self.family == "flux" else pipe.unet
        self.device = self.denoiser.device
        self.dtype = self.denoiser.dtype
        self.text_encoders = self._text_encoder_names() if settings.train_text_encoder else []
        self._freeze()
        self._add_adapters()
        self.parameters = [p for _, p in self._lora_parameters()]
        self.optimizer = torch.optim.AdamW(
            self.parameters,
            lr=settings.learning_rate,
            betas=(0.9, 0.999),
            weight_decay=settings.weight_decay,
            eps=1e-8,
        )
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        )
        if settings.gradient_checkpointing:
            self.denoiser.enable_gradient_checkpointing()
            for name in self.text_encoders:
                getattr(pipe, name).gradient_checkpointing_enable()
        if self.family != "flux":
            from diffusers import DDPMScheduler

            self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.latents = self._encode_all() if settings.cache_latents else None
        self.text = {} if self.text_encoders else self._embed_all()
        self.step_done = 0

    # ------------------------------------------------------------------ setup

    def _text_encoder_names(self) -> list[str]:
        names = ["text_encoder"]
        if self.family == "sdxl":
            names.append("text_encoder_2")  # Flux's second encoder is T5: not trained
        return [n for n in names if getattr(self.pipe, n, None) is not None]

    def _freeze(self) -> None:
        for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(self.pipe, name, None)
            if module is not None:
                module.requires_grad_(False)

    def _add_adapters(self) -> None:
        from peft import LoraConfig

        s = self.settings
        config = LoraConfig(
            r=s.rank, lora_alpha=s.lora_alpha, target_modules=self.targets, init_lora_weights=True
        )
        self.denoiser.add_adapter(config, adapter_name=ADAPTER)
        for name in self.text_encoders:
            text_config = LoraConfig(
                r=s.rank,
                lora_alpha=s.lora_alpha,
                target_modules=list(TEXT_ENCODER_TARGETS),
                init_lora_weights=True,
            )
            add_text_encoder_adapter(getattr(self.pipe, name), text_config, ADAPTER)
        # peft initialises lora_A from torch's global generator: redo it from the seed
        # (same kaiming-uniform law), so that the seed alone decides the start.
        generator = torch.Generator().manual_seed(int(s.seed))
        with torch.no_grad():
            for key, param in self._lora_parameters():
                param.data = param.data.float()
                if ".lora_A." in key:
                    bound = 1.0 / math.sqrt(param.shape[1])
                    values = torch.rand(param.shape, generator=generator) * 2 - 1
                    param.copy_(values * bound)
                else:
                    param.zero_()

    def _components(self) -> list[tuple[str, Any]]:
        first = "transformer" if self.family == "flux" else "unet"
        return [(first, self.denoiser)] + [(n, getattr(self.pipe, n)) for n in self.text_encoders]

    def _lora_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        found = []
        for component, module in self._components():
            for key, param in module.named_parameters():
                if ".lora_A." in key or ".lora_B." in key:
                    if f".{ADAPTER}" not in key:
                        continue
                    param.requires_grad_(True)
                    found.append((f"{component}.{key}", param))
        if not found:
            raise ConfigError("no layer of this pipeline matched the LoRA target modules")
        return found

    # ------------------------------------------------------------------ data

    def _pixels(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([self.data.images[i].pixels for i in indices])

    @torch.no_grad()
    def _encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> the latent distribution's (mean, std), float32."""
        vae = self.pipe.vae
        x = (pixels * 2 - 1).to(self.device, vae.dtype)
        dist = vae.encode(x).latent_dist
        return dist.mean.float(), dist.std.float()

    def _encode_all(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for i in range(len(self.data)):
            mean, std = self._encode(self._pixels([i]))
            out.append((mean[0], std[0]))
        return out

    def _embed_all(self) -> dict[str, dict[str, torch.Tensor]]:
        with torch.no_grad():
            return {c: self._embed([c]) for c in dict.fromkeys(i.caption for i in self.data.images)}

    def _embed(self, captions: list[str]) -> dict[str, torch.Tensor]:
        pipe = self.pipe
        if self.family == "flux":
            embeds, pooled, text_ids = pipe.encode_prompt(
                prompt=captions,
                prompt_2=None,
                device=self.device,
                num_images_per_prompt=1,
                max_sequence_length=self.settings.max_sequence_length or 512,
            )
            return {"embeds": embeds, "pooled": pooled, "text_ids": text_ids}
        if self.family == "sdxl":
            embeds, _, pooled, _ = pipe.encode_prompt(
                prompt=captions,
                device=self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=False,
            )
            return {"embeds": embeds, "pooled": pooled}
        embeds, _ = pipe.encode_prompt(captions, self.device, 1, False)
        return {"embeds": embeds}

    def _text_for(self, captions: list[str]) -> dict[str, torch.Tensor]:
        if self.text_encoders:
            return self._embed(captions)
        parts = [self.text[c] for c in captions]
        if self.family == "flux":  # text ids are per position, not per prompt
            return {
                "embeds": torch.cat([p["embeds"] for p in parts]),
                "pooled": torch.cat([p["pooled"] for p in parts]),
                "text_ids": parts[0]["text_ids"],
            }
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    # ------------------------------------------------------------------ the loss

    def loss_at(self, step: int) -> torch.Tensor:
        """The training loss of the 0-based ``step`` (its batch, latent sample, noise and
        timesteps), as a differentiable float32 scalar."""
        s = self.settings
        _, _, indices = self.data.batch_at(step, s.batch_size, s.seed)
        generator = step_generator(s.seed, step, stream=11)
        if self.latents is not None:
            mean = torch.stack([self.latents[i][0] for i in indices])
            std = torch.stack([self.latents[i][1] for i in indices])
        else:
            mean, std = self._encode(self._pixels(indices))
        eps = torch.randn(mean.shape, generator=generator).to(self.device)
        sample = mean + std * eps
        captions = [self.data.images[i].caption for i in indices]
        text = self._text_for(captions)
        with self._autocast():
            if self.family == "flux":
                loss = self._flux_loss(sample, text, generator)
            else:
                loss = self._unet_loss(sample, text, generator, indices)
        return loss

    def _autocast(self) -> Any:
        import contextlib

        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _unet_loss(
        self, sample: torch.Tensor, text: dict, generator: torch.Generator, indices: list[int]
    ) -> torch.Tensor:
        vae_config = self.pipe.vae.config
        latents = sample * vae_config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        scheduler = self.noise_scheduler
        count = scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, count, (latents.shape[0],), generator=generator)
        timesteps = timesteps.to(self.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        kwargs: dict[str, Any] = {}
        if self.family == "sdxl":
            height, width = self.data.images[indices[0]].bucket
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": text["pooled"].to(self.dtype),
                "time_ids": time_ids.repeat(latents.shape[0], 1).to(self.device, self.dtype),
            }
        prediction = self.denoiser(
            noisy.to(self.dtype),
            timesteps,
            encoder_hidden_states=text["embeds"].to(self.dtype),
            return_dict=False,
            **kwargs,
        )[0]
        return torch.nn.functional.mse_loss(prediction.float(), target.float())

    def _flux_loss(
        self, sample: torch.Tensor, text: dict, generator: torch.Generator
    ) -> torch.Tensor:
        from diffusers import FluxPipeline

        config = self.pipe.vae.config
        latents = (sample - config.shift_factor) * config.scaling_factor
        batch, channels, height, width = latents.shape
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        sigma = torch.sigmoid(torch.randn((batch,), generator=generator)).to(self.device)
        s = sigma.view(batch, 1, 1, 1)
        noisy = (1 - s) * latents + s * noise
        pack = FluxPipeline._pack_latents
        image_ids = FluxPipeline._prepare_latent_image_ids(
            batch, height // 2, width // 2, self.device, self.dtype
        )
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((batch,), FLUX_TRAIN_GUIDANCE, device=self.device)
        prediction = self.denoiser(
            hidden_states=pack(noisy, batch, channels, height, width).to(self.dtype),
            timestep=sigma.to(self.dtype),
            guidance=guidance,
            pooled_projections=text["pooled"].to(self.dtype),
            encoder_hidden_states=text["embeds"].to(self.dtype),
            txt_ids=text["text_ids"],
            img_ids=image_ids,
            return_dict=False,
        )[0]
        target = pack(noise - latents, batch, channels, height, width)
        return torch.nn.functional.mse_loss(prediction.float(), target.float())

    # ------------------------------------------------------------------ steps

    def _train_mode(self, on: bool) -> None:
        for _, module in self._components():
            module.train(on)

    def step(self) -> float:
        """Run the next optimiser step; returns its loss."""
        step = self.step_done
        self._train_mode(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_at(step)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise OptimisationError(
                f"LoRA training diverged at step {step + 1}: loss is {value}; lower "
                "--learning-rate or use --precision fp32"
            )
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self._train_mode(False)
        self.step_done = step + 1
        return value

    @torch.no_grad()
    def samples(self, prompt: str | None = None, *, seed: int | None = None) -> torch.Tensor:
        """Images of ``prompt`` (default: the sample prompt, else the first caption) with the
        LoRA as trained so far: (1, 3, H, W) float32 on the CPU at the square bucket."""
        from brushwork.diffusion.pipelines import seeded_call

        s = self.settings
        text = prompt or s.sample_prompt or self.data.images[0].caption
        side = self.data.resolution
        kwargs: dict[str, Any] = {}
        if self.family == "flux":
            kwargs["max_sequence_length"] = s.max_sequence_length or 512
        call = seeded_call(
            self.pipe,
            [text],
            seeds=s.seed if seed is None else seed,
            num_inference_steps=s.sample_inference_steps,
            height=side,
            width=side,
            **kwargs,
        )
        return self.pipe(**call).images.float().cpu().clamp(0, 1)

    # ------------------------------------------------------------------ results

    def lora_tensors(self) -> dict[str, torch.Tensor]:
        """The LoRA in the file layout: diffusers keys, ``alpha / r`` multiplied into B."""
        scale = self.settings.lora_alpha / self.settings.rank
        out = {}
        for key, param in self._lora_parameters():
            name = key.replace(f".{ADAPTER}", "")
            value = param.detach().float().cpu().clone()
            out[name] = value * scale if ".lora_B." in name else value
        return out

    def info(self) -> LoraInfo:
        from brushwork import __version__

        s = self.settings
        components = [c for c, _ in self._components()]
        return LoraInfo(
            base_model=self.base_model,
            family=self.family,
            rank=s.rank,
            alpha=s.lora_alpha,
            target_modules=self.targets,
            components=components,
            trigger=None,
            steps=self.step_done,
            b_lora=s.b_lora,
            resolution=self.data.resolution,
            brushwork_version=__version__,
        )

    def _config(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "base_model": self.base_model,
            "settings": self.settings.trajectory(),
            "data": self.data.fingerprint(),
            "resolution": self.data.resolution,
            "dtype": str(self.dtype),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write a resumable checkpoint atomically (torch.save, read with weights_only)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        s = self.settings
        epoch, position = (0, 0)
        if self.step_done:
            epoch, position, _ = self.data.batch_at(self.step_done, s.batch_size, s.seed)
        payload = {
            "lora": {k: p.detach().cpu().clone() for k, p in self._lora_parameters()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "step": self.step_done,
            # Every random draw is seeded by (seed, step): these say where the run stands.
            "data_position": [epoch, position],
            "rng": {"seed": int(s.seed), "scheme": "step_generator(seed, step, stream)"},
            "config": json.dumps(self._config(), sort_keys=True),
            "format": "brushwork-lora-checkpoint-1",
        }
        with atomic_path(out, ".part") as tmp:
            torch.save(payload, tmp)
        return out

    def load_checkpoint(self, path: str | os.PathLike) -> int:
        """Restore a checkpoint of the same run; returns its step.

        Raises:
            WeightsError: missing, not a LoRA checkpoint, or of another run (settings,
                model or training images differ).
        """
        file = Path(path).expanduser()
        if not file.is_file():
            raise WeightsError(f"checkpoint {file} does not exist; check the --resume path")
        try:
            payload = torch.load(str(file), weights_only=True, map_location="cpu")
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise WeightsError(f"{file} is not a LoRA training checkpoint ({first})") from error
        if not isinstance(payload, dict) or payload.get("format") != "brushwork-lora-checkpoint-1":
            raise WeightsError(f"{file} is not a brushwork LoRA training checkpoint")
        saved = json.loads(payload["config"])
        mine = json.loads(json.dumps(self._config(), sort_keys=True))
        if saved != mine:
            differ = sorted(k for k in mine if saved.get(k) != mine.get(k))
            raise WeightsError(
                f"checkpoint {file} belongs to another run ({', '.join(differ)} differ): "
                "resume with the same model, images, captions and training options"
            )
        params = dict(self._lora_parameters())
        if set(params) != set(payload["lora"]):
            raise WeightsError(f"checkpoint {file} holds other LoRA layers than this run")
        with torch.no_grad():
            for key, param in params.items():
                param.copy_(payload["lora"][key].to(param.device))
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scaler is not None and payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        self.step_done = int(payload["step"])
        return self.step_done

    def close(self) -> None:
        """Remove the training adapter (and gradient checkpointing) from the pipeline."""
        if self.settings.gradient_checkpointing:
            self.denoiser.disable_gradient_checkpointing()
            for name in self.text_encoders:
                getattr(self.pipe, name).gradient_checkpointing_disable()
        for _, module in self._components():
            if hasattr(module, "delete_adapters"):  # diffusers models
                module.delete_adapters(ADAPTER)
            else:  # transformers text encoders: peft layers (see .adapters)
                remove_text_encoder_adapter(module, ADAPTER)
            module.eval()


def train_lora(
    pipe: Any,
    data: TrainingSet,
    settings: LoraSettings,
    *,
    base_model: str = "",
    trigger: str | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[LoraStep], None] | None = None,
) -> LoraTrainResult:
    """Train a LoRA on ``data`` and return it (the pipeline is left without it).

    Args:
        pipe: an SD 1.x/2.x, SDXL or Flux.1 diffusers pipeline (its weights are frozen).
        data: :func:`~.data.load_training_set`'s images.
        base_model: the pipeline's Hub id or folder, written into the file's metadata.
        trigger: the trigger phrase, written into the metadata.
        checkpoint_path: where checkpoints go (every ``settings.checkpoint_every`` steps
            and at the end); ``None``: none.
        resume: a checkpoint of the same run to continue from.
        callback: called after every step with a :class:`LoraStep`.

    Raises:
        ConfigError, WeightsError (resume), OptimisationError (divergence).
    """
    trainer = LoraTrainer(pipe, data, settings, base_model=base_model)
    try:
        start = trainer.load_checkpoint(resume) if resume is not None else 0
        if start >= settings.steps:
            raise ConfigError(
                f"checkpoint {resume} is at step {start}, the run has only {settings.steps} "
                "steps; raise --steps to train further"
            )
        losses = []
        began = time.perf_counter()
        samples_at = set(settings.sample_steps)
        while trainer.step_done < settings.steps:
            loss = trainer.step()
            losses.append(loss)
            done = trainer.step_done
            written = None
            every = settings.checkpoint_every
            due = (every and done % every == 0) or done == settings.steps
            if checkpoint_path is not None and due:
                written = trainer.save_checkpoint(checkpoint_path)
            images = trainer.samples() if done in samples_at else None
            if callback is not None:
                epoch = trainer.data.batch_at(done - 1, settings.batch_size, settings.seed)[0]
                callback(LoraStep(done, settings.steps, loss, epoch, written, images))
        seconds = time.perf_counter() - began
        info = trainer.info()
        info.trigger = trigger
        return LoraTrainResult(trainer.lora_tensors(), info, losses, start, seconds)
    finally:
        trainer.close()
