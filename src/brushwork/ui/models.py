"""Models the tabs share, loaded lazily through the CLI's loaders and cached per session."""

from __future__ import annotations

from typing import Any

from brushwork.ui.common import Session


def model_name(session: Session, model: str | None) -> str:
    """The model typed in a tab, or the app's default (``brushwork ui --model``)."""
    return (model or "").strip() or session.settings.model


def pipeline(session: Session, model: str | None, *, adapter: str | None = None) -> Any:
    """The diffusers pipeline of ``model`` (Hub id or local folder), cached per session.

    The same lookup as the CLI: a path must be an existing folder (checked first), a Hub
    id comes from the Hub cache or the network (offline: one line naming the model).

    ``adapter``: the IP-Adapter the pipeline must have loaded — a hub repo, folder or
    ``.safetensors`` file, ``""`` for the family's published one
    (:func:`~brushwork.diffusion.style_reference.adapter_source`) — or ``None`` for none.
    The cached pipeline is shared by every tab, and with an IP-Adapter loaded its UNet
    needs image embeddings on every call, so one loaded for a style-reference run is
    unloaded before any other use.
    """
    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.diffusion.pipelines import load_pipeline

    name = model_name(session, model)
    check_model_folder(name)
    settings = session.settings
    key = ("pipeline", name, settings.precision, settings.device)
    pipe = session.models.get(
        key, lambda: load_pipeline(name, dtype=settings.precision, device=settings.device)
    )
    if adapter is None:
        _use_adapter(pipe, None)
    else:
        from brushwork.diffusion.pipelines import pipeline_family
        from brushwork.diffusion.style_reference import adapter_source

        _use_adapter(pipe, adapter_source(pipeline_family(pipe), adapter or None))
    return pipe


def _use_adapter(pipe: Any, source: Any) -> None:
    """Make ``source`` (or no adapter, ``None``) the IP-Adapter loaded in ``pipe``."""
    from brushwork.diffusion.style_reference import IP_ADAPTER_REPO, load_style_adapter
    from brushwork.weights import flag_hints

    loaded = getattr(pipe, "_brushwork_style_adapter", None)
    if loaded == source:
        return
    if loaded is not None:
        pipe.unload_ip_adapter()
        pipe._brushwork_style_adapter = None
    if source is not None:
        with flag_hints({IP_ADAPTER_REPO: "the IP-Adapter field"}):
            load_style_adapter(pipe, source)
        pipe._brushwork_style_adapter = source
