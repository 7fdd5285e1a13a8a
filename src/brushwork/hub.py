"""Models from the Hugging Face Hub (diffusers pipelines, CLIP, DINO) with clear errors.

Hub models are not single files: ``from_pretrained`` fetches them into the Hugging
Face cache (``HF_HUB_CACHE``, or ``HF_HOME``/hub, default ``~/.cache/huggingface/hub``)
on first use. The models brushwork uses are listed, with what they are for, in
:data:`brushwork.weights.HUB_MODELS` (``brushwork weights list``).

:func:`from_pretrained` wraps any ``from_pretrained``-style loader:

* a local folder is loaded as it is;
* otherwise, unless offline mode is already on (``BRUSHWORK_OFFLINE=1`` or
  ``HF_HUB_OFFLINE=1``), the Hub endpoint (``HF_ENDPOINT``, default huggingface.co)
  is probed once per process with a TCP connect of about a second
  (:func:`network_available`). When nothing answers, the process switches to offline
  mode (``HF_HUB_OFFLINE=1`` for the rest of it, so later loaders do not retry);
* in offline mode a model that is not in the cache fails at once with one line that
  names the model and says how to provide it (``hf download <id>`` on a machine with
  internet, or a local folder), instead of the Hub client's retries;
* any other failure becomes one :class:`~brushwork.errors.WeightsError` line.

Example::

    from diffusers import StableDiffusionPipeline
    pipe = from_pretrained(StableDiffusionPipeline.from_pretrained,
                           "stable-diffusion-v1-5/stable-diffusion-v1-5", what="pipeline")
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from brushwork.errors import WeightsError
from brushwork.weights import flag_for, is_offline

__all__ = [
    "DEFAULT_ENDPOINT",
    "PROBE_TIMEOUT_S",
    "cached_snapshot",
    "endpoint_address",
    "from_pretrained",
    "go_offline",
    "hf_cache_dir",
    "looks_like_path",
    "network_available",
    "offline_reason",
    "repo_cache_dir",
    "snapshot_download",
    "url_reachable",
]

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Seconds the endpoint has to accept a TCP connection before the network counts as absent.
PROBE_TIMEOUT_S = 1.0

#: (host, port) -> whether it answered; probed once per process.
_PROBES: dict[tuple[str, int], bool] = {}


# --------------------------------------------------------------------------- cache


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE`` / ``HF_HOME``-based default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def repo_cache_dir(model_id: str) -> Path:
    """The cache folder of one Hub model repo: ``<cache>/models--<org>--<name>``."""
    return hf_cache_dir() / ("models--" + model_id.strip("/").replace("/", "--"))


def cached_snapshot(model_id: str) -> Path | None:
    """A downloaded snapshot folder of ``model_id`` in the cache, or ``None``.

    Only says that some files of the repo are cached; a loader may still need others.
    """
    snapshots = repo_cache_dir(model_id) / "snapshots"
    try:
        folders = sorted(p for p in snapshots.iterdir() if p.is_dir() and any(p.iterdir()))
    except OSError:
        return None
    return folders[-1] if folders else None


def looks_like_path(model_id: str) -> bool:
    """True when ``model_id`` is meant as a local folder rather than a hub id."""
    return (
        model_id.startswith((".", "/", "~"))
        or model_id.strip("/").count("/") >= 2
        or Path(model_id).expanduser().exists()
    )


# --------------------------------------------------------------------------- network probe


def endpoint_address() -> tuple[str, int]:
    """``(host, port)`` of the Hub endpoint (``HF_ENDPOINT``, default huggingface.co:443)."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    try:
        port = url.port
    except ValueError:
        port = None
    return url.hostname or "huggingface.co", port or (80 if url.scheme == "http" else 443)


def _connects(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Name resolution is not bounded by socket timeouts, so the attempt runs in a daemon
    thread that is abandoned when it takes longer.
    """
    answered: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=attempt, daemon=True, name="brushwork-hub-probe")
    thread.start()
    thread.join(timeout + 0.25)
    return bool(answered and answered[0])


def network_available(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (probed once per process).

    When it does not, :func:`go_offline` switches the process to offline mode.
    """
    address = endpoint_address()
    if address not in _PROBES:
        _PROBES[address] = _connects(*address, timeout)
        if not _PROBES[address]:
            go_offline()
    return _PROBES[address]


def url_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url``'s host accepts a TCP connection (probed once per process).

    ``file://`` URLs are always reachable. Unlike :func:`network_available`, a failure
    does not switch the process to offline mode: other hosts may still answer.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return True
    address = (parts.hostname, parts.port or (80 if parts.scheme == "http" else 443))
    if address not in _PROBES:
        _PROBES[address] = _connects(*address, timeout)
    return _PROBES[address]


def go_offline() -> None:
    """``HF_HUB_OFFLINE=1`` for the rest of the process, so later loaders do not retry.

    huggingface_hub reads the variable once, at import, so its constant is set too when
    it is already imported.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- loading


def _provide_hint(model_id: str) -> str:
    from brushwork.weights import hub_name_of

    name = hub_name_of(model_id)
    named = flag_for(name, wildcard=False) if name else None
    flag = named or flag_for(model_id, wildcard=False) or "--model"
    return (
        f"on a machine with internet run `hf download {model_id}` and copy "
        f"{repo_cache_dir(model_id)} here (or set HF_HOME), or pass a local folder (one "
        f"written by save_pretrained) with {flag}"
    )


def offline_reason() -> str:
    """Why downloads are off: the failed network probe, or the offline variable set."""
    host, port = endpoint_address()
    if _PROBES.get((host, port)) is False:
        return f"no network answered ({host}:{port} did not accept a connection)"
    if not is_offline():
        return "no network answered"
    var = "BRUSHWORK_OFFLINE" if os.environ.get("BRUSHWORK_OFFLINE") else "HF_HUB_OFFLINE"
    return f"offline mode is on ({var}=1)"


def _not_cached(model_id: str, what: str) -> WeightsError:
    return WeightsError(
        f"{what} '{model_id}' is not in the local Hugging Face cache ({hf_cache_dir()}) and "
        f"{offline_reason()}; {_provide_hint(model_id)}"
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
            ``local_files_only=True`` is added in offline mode (also when the
            network probe finds no network).
    """
    if looks_like_path(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"{what} folder {folder} does not exist")
        source = str(folder)
    else:
        source = model_id
        if is_offline() or not network_available():
            if cached_snapshot(model_id) is None:
                raise _not_cached(model_id, what)
            kwargs.setdefault("local_files_only", True)
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:
        raise _explain(model_id, what, error) from error


def _explain(model_id: str, what: str, error: BaseException) -> WeightsError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if looks_like_path(model_id):
        return WeightsError(f"could not load {what} from {model_id}: {reason}")
    if is_offline():  # the Hub client's text then talks about local_files_only, which we set
        return WeightsError(
            f"could not load {what} '{model_id}': some of its files are not in the Hugging "
            f"Face cache ({repo_cache_dir(model_id)}) and {offline_reason()}; "
            f"{_provide_hint(model_id)}"
        )
    return WeightsError(
        f"could not load {what} '{model_id}': {reason}; Hub models are downloaded on first "
        f"use into {hf_cache_dir()}; {_provide_hint(model_id)}"
    )


def snapshot_download(
    model_id: str,
    *,
    allow_patterns: list[str] | None = None,
    ignore_patterns: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download (or reuse) ``model_id``'s files in the Hugging Face cache; returns the folder.

    Refuses at once, in one line, when offline mode is on or no network answers.
    """
    if is_offline() or not network_available():
        raise WeightsError(
            f"cannot download '{model_id}': {offline_reason()}; run this on a machine with "
            f"internet and copy {repo_cache_dir(model_id)} here"
        )
    import huggingface_hub
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    if not progress:
        disable_progress_bars()
    try:
        folder = huggingface_hub.snapshot_download(
            model_id, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
        )
    except Exception as error:  # HTTP, auth (gated repos), disk: the Hub client's many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"could not download '{model_id}': {reason}") from error
    finally:
        if not progress:
            enable_progress_bars()
    return Path(folder)
