"""Models from the Hugging Face Hub (diffusers pipelines, CLIP, DINO) with clear errors.

Hub models are not single files, so they live outside :mod:`brushwork.weights`: they
are fetched by ``from_pretrained`` into the Hugging Face cache (``HF_HOME``,
default ``~/.cache/huggingface``) on first use. :func:`from_pretrained` wraps any
``from_pretrained``-style loader so that a missing model, no network, or offline
mode (``BRUSHWORK_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) becomes one
:class:`~brushwork.errors.WeightsError` that names the model id and says how to
point at a local copy.

Example::

    from diffusers import StableDiffusionPipeline
    pipe = from_pretrained(StableDiffusionPipeline.from_pretrained,
                           "stable-diffusion-v1-5/stable-diffusion-v1-5", what="pipeline")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from brushwork.errors import WeightsError
from brushwork.weights import is_offline

__all__ = ["from_pretrained", "hf_cache_dir", "looks_like_path"]

T = TypeVar("T")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE`` / ``HF_HOME``-based default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def looks_like_path(model_id: str) -> bool:
    """True when ``model_id`` is meant as a local folder rather than a hub id."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.strip("/").count("/") >= 2
        or Path(model_id).expanduser().exists()
    )


def from_pretrained(
    load: Callable[..., T], model_id: str, *, what: str = "model", **kwargs: Any
) -> T:
    """Call ``load(model_id, **kwargs)``; failures become a WeightsError that says what to do.

    Args:
        load: a ``from_pretrained`` classmethod (diffusers or transformers).
        model_id: a hub id (``"org/name"``) or a local folder.
        what: what is being loaded, for the message ("pipeline", "CLIP model", ...).
        kwargs: passed through (``torch_dtype``, ``subfolder``, ``variant``, ...).
            ``local_files_only=True`` is added in offline mode.
    """
    if looks_like_path(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"{what} folder {folder} does not exist")
    elif is_offline():
        kwargs.setdefault("local_files_only", True)
    source = str(Path(model_id).expanduser()) if looks_like_path(model_id) else model_id
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:
        raise _explain(model_id, what, error) from error


def _explain(model_id: str, what: str, error: BaseException) -> WeightsError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if looks_like_path(model_id):
        return WeightsError(f"could not load {what} from {model_id}: {reason}")
    mode = ""
    if is_offline():  # the hub's own message then talks about local_files_only, which we set
        mode, reason = " (offline mode is on)", "it is not in the local Hugging Face cache"
    return WeightsError(
        f"could not load {what} '{model_id}'{mode}: {reason}\n"
        f"Hub models are downloaded on first use into {hf_cache_dir()} (needs network). "
        "Without network:\n"
        f"  * on a machine with internet run `huggingface-cli download {model_id}` and copy "
        "the cache folder (or set HF_HOME to it);\n"
        "  * or there call `.save_pretrained(FOLDER)` on the loaded model, copy FOLDER here "
        f"and pass it instead of '{model_id}'."
    )
