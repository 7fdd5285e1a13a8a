"""Models the tabs share, loaded lazily through the CLI's loaders and cached per session."""

from __future__ import annotations

from typing import Any

from brushwork.ui.common import Session


def model_name(session: Session, model: str | None) -> str:
    """The model typed in a tab, or the app's default (``brushwork ui --model``)."""
    return (model or "").strip() or session.settings.model


def pipeline(session: Session, model: str | None) -> Any:
    """The diffusers pipeline of ``model`` (Hub id or local folder), cached per session.

    The same lookup as the CLI: a path must be an existing folder (checked first), a Hub
    id comes from the Hub cache or the network (offline: one line naming the model).
    """
    from brushwork.cli.diffusion_common import check_model_folder
    from brushwork.diffusion.pipelines import load_pipeline

    name = model_name(session, model)
    check_model_folder(name)
    settings = session.settings
    key = ("pipeline", name, settings.precision, settings.device)
    return session.models.get(
        key, lambda: load_pipeline(name, dtype=settings.precision, device=settings.device)
    )
