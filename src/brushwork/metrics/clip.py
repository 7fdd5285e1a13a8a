"""CLIP similarities (Radford et al. 2021) via Hugging Face transformers.

* :meth:`CLIPScorer.image_similarity` — cosine of two images' embeddings (style
  fidelity: result vs style image);
* :meth:`CLIPScorer.text_score` — cosine of an image and a text (CLIPScore
  without its ×100 and clipping at 0);
* :meth:`CLIPScorer.direction_score` — directional CLIP similarity (Gal et al.
  2022): cosine between the image change E(result) − E(input) and the text change
  E(target) − E(source);
* CLIP accuracy (as in the DDS/CDS editing papers): whether the result is closer
  to the target text than to the source text.

The default model is ``openai/clip-vit-large-patch14`` — the default of
torchmetrics' CLIPScore, so text–image numbers are comparable with the most
widely used implementation. Any CLIP checkpoint id or local folder saved with
``save_pretrained`` can be given instead (``openai/clip-vit-base-patch32`` is 4×
faster). Images are preprocessed like CLIPImageProcessor: bicubic resize of the
short side to the model's image size (antialiased, in torch), centre crop, CLIP
mean/std normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.errors import ConfigError

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_CLIP_MODEL",
    "CLIPScorer",
    "clip_pixels",
    "load_clip",
]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, size, size) CLIP pixel values.

    Bicubic resize of the short side to ``size`` (antialiased), centre crop, CLIP mean/std
    normalisation: CLIPImageProcessor's and CSD's ``transforms_branch0``.
    """
    images = images.float()
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    shape = (max(size, round(h * scale)), max(size, round(w * scale)))
    x = F.interpolate(images, size=shape, mode="bicubic", align_corners=False, antialias=True)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    x = x[..., top : top + size, left : left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _embedding(output: object) -> torch.Tensor:
    """transformers ≥5 returns a model output whose pooler_output is the projection."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined]


class CLIPScorer:
    """A CLIP model with its tokenizer, scoring on one device.

    Args:
        model: a ``transformers.CLIPModel``.
        tokenizer: its tokenizer (``None``: text scores are unavailable).
        device: where to run.
    """

    def __init__(self, model, tokenizer=None, *, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.image_size = int(model.config.vision_config.image_size)
        self.mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) normalised pixel values."""
        return clip_pixels(images.to(self.device), self.image_size)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, D) unit-length embeddings."""
        out = self.model.get_image_features(pixel_values=self.preprocess(images))
        return F.normalize(_embedding(out).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Texts -> (N, D) unit-length embeddings."""
        if self.tokenizer is None:
            raise ConfigError(
                "this CLIP model was loaded without a tokenizer; text scores need one"
            )
        tokens = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        out = self.model.get_text_features(**tokens)
        return F.normalize(_embedding(out).float(), dim=-1)

    def image_similarity(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B,) cosine similarity between paired images (any sizes per batch)."""
        return (self.image_embeddings(images) * self.image_embeddings(references)).sum(-1)

    def text_score(self, images: torch.Tensor, text: str) -> torch.Tensor:
        """(B,) cosine similarity between each image and ``text``."""
        return self.image_embeddings(images) @ self.text_embeddings([text])[0]

    def direction_score(
        self, inputs: torch.Tensor, results: torch.Tensor, source: str, target: str
    ) -> torch.Tensor:
        """(B,) directional CLIP similarity of the edits input → result vs source → target."""
        text = self.text_embeddings([source, target])
        d_text = F.normalize(text[1] - text[0], dim=-1)
        d_image = F.normalize(
            self.image_embeddings(results) - self.image_embeddings(inputs), dim=-1
        )
        return d_image @ d_text

    def accuracy(self, results: torch.Tensor, source: str, target: str) -> torch.Tensor:
        """(B,) 1.0 where the result is closer to ``target`` than to ``source``, else 0.0."""
        text = self.text_embeddings([source, target])
        sims = self.image_embeddings(results) @ text.T
        return (sims[:, 1] > sims[:, 0]).float()


def load_clip(
    model_id: str = DEFAULT_CLIP_MODEL, *, device: torch.device | str = "cpu"
) -> CLIPScorer:
    """A :class:`CLIPScorer` for a hub id or a local ``save_pretrained`` folder.

    Raises:
        WeightsError: the model cannot be loaded (offline, missing folder, ...).
    """
    from transformers import AutoTokenizer, CLIPModel

    from brushwork.hub import from_pretrained

    model = from_pretrained(CLIPModel.from_pretrained, model_id, what="CLIP model")
    try:
        tokenizer = from_pretrained(AutoTokenizer.from_pretrained, model_id, what="CLIP tokenizer")
    except Exception:
        tokenizer = None
    return CLIPScorer(model, tokenizer, device=device)
