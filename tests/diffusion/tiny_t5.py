"""A T5-style SentencePiece (Unigram) tokenizer trained in the test, with no download.

Real T5 tokenizers are SentencePiece Unigram models: "▁" marks the start of a word, no
start token, ``</s>`` ends the sequence, ``<pad>`` pads it. This one is trained with
the ``tokenizers`` library on a small word list, so the pipelines' T5 paths (Flux, SD3's
third encoder) and the word-position code see the same kind of tokens.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "under",
    "over",
    "with",
    "and",
    "photo",
    "painting",
    "style",
    "cat",
    "dog",
    "cow",
    "giraffe",
    "hill",
    "sky",
    "dusk",
    "tree",
    "house",
    "lighthouse",
    "sea",
    "river",
    "mountain",
    "analytical",
    "cubism",
    "rembrandt",
    "monet",
    "impressionism",
    "baroque",
    "oil",
    "watercolor",
    "sketch",
    "portrait",
    "landscape",
    "red",
    "blue",
    "green",
    "yellow",
    "big",
    "small",
    "old",
    "new",
    "night",
    "day",
    "sun",
    "moon",
    "field",
    "city",
    "street",
    "road",
    "car",
    "boat",
    "bird",
]


def tiny_t5_tokenizer(folder: Path | None = None, *, vocab_size: int = 300, max_length: int = 32):
    """A ``PreTrainedTokenizerFast`` in T5's layout (saved to ``folder`` when given).

    Args:
        vocab_size: the Unigram vocabulary size (small: some words split into pieces).
        max_length: ``model_max_length`` (pipelines pass their own max_sequence_length).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        shrinking_factor=0.75,
    )
    # Common words whole, rarer ones in pieces (so multi-token words are exercised).
    sentences = [" ".join(WORDS[i : i + 6]) for i in range(0, len(WORDS), 3)] * 4
    sentences += [" ".join(WORDS[:40])] * 50
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=max_length,
    )
    if folder is not None:
        wrapped.save_pretrained(folder)
    return wrapped
