"""The app: every tab in one ``gr.Blocks``, served locally.

Example::

    from brushwork.ui.app import build_app, launch
    from brushwork.ui.common import UISettings

    app = build_app(UISettings(model="path/to/sd15"))
    server = launch(app, port=7860, block=False)     # http://127.0.0.1:7860
    ...
    server.close()
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from brushwork.errors import ConfigError
from brushwork.ui.common import Session, UISettings

#: (title, module) of each tab, in order.
TABS = (
    ("Style transfer", "transfer"),
    ("Attention maps", "attention"),
    ("Edit", "edit"),
    ("Generate", "generate"),
    ("Evaluate", "evaluate"),
    ("Study", "study"),
)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

INTRO = (
    "# brushwork\nArtistic style in images. Every tab runs the same library functions as "
    "the `brushwork` command and shows the equivalent command line. Models load on first "
    "use and stay loaded for this browser session; one job runs at a time per kind of model "
    "(others wait in the queue)."
)


def _offline_gradio() -> None:
    """No analytics, no update check: the app never phones home."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TELEMETRY_ENABLED", "False")


def import_gradio() -> Any:
    """Gradio, or one line saying how to install it."""
    _offline_gradio()
    try:
        import gradio
    except ImportError as error:
        raise ConfigError("the web app needs Gradio: pip install 'brushwork[ui]'") from error
    return gradio


def build_app(settings: UISettings | None = None) -> Any:
    """The ``gr.Blocks`` app with every tab (nothing loads until a tab needs it)."""
    import importlib

    gr = import_gradio()
    settings = settings or UISettings()
    with gr.Blocks(title="brushwork", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        session_state = gr.State(lambda: Session(settings))
        for title, module_name in TABS:
            module = importlib.import_module(f"brushwork.ui.{module_name}")
            with gr.Tab(title, id=module_name, elem_id=f"tab-{module_name}"):
                module.build(session_state, settings)
    app.queue(default_concurrency_limit=1)
    calm_queue(app)
    return app


#: How often Gradio's queue looks for a free worker and for progress to send, seconds.
QUEUE_POLL_S = 0.02
PROGRESS_POLL_S = 0.05


def calm_queue(app: Any) -> None:
    """Make Gradio's queue poll at 50 Hz and send progress at 20 Hz instead of 1000 and 100.

    Gradio's queue loop sleeps 1 ms between looks for work, and its progress loop 10 ms,
    even while a job runs. On a CPU that is the job's cost: the server thread woke about
    1,100 times a second, each time taking Python's lock from the job's thread (an idle app
    used 5.4 % of a core, 1.6 % after this; during a 2.4 s AdaIN job the server thread took
    0.12 s of CPU, 0.04 s after; per-thread CPU times around the handler, docs/ui.md).
    A job now starts up to 20 ms later and a progress bar moves 20 times a second. The
    attributes are Gradio's own (6.x); an app without them is left as it is.
    """
    queue = getattr(app, "_queue", None)
    if queue is None:
        return
    if hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = QUEUE_POLL_S
    if hasattr(queue, "progress_update_sleep_when_free"):
        queue.progress_update_sleep_when_free = PROGRESS_POLL_S


@dataclass
class Server:
    """A running app: its address, and :meth:`close` to stop it."""

    app: Any
    url: str

    def close(self) -> None:
        self.app.close()


def launch(
    app: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    block: bool = True,
    quiet: bool = False,
) -> Server:
    """Serve ``app`` on ``host:port`` (127.0.0.1 by default; ``share`` only when asked).

    ``block=False`` returns at once with the running :class:`Server`.
    """
    from brushwork.ui.common import output_root

    outputs = output_root()
    outputs.mkdir(parents=True, exist_ok=True)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            inbrowser=False,
            prevent_thread_lock=True,
            quiet=quiet,
            ssr_mode=False,
            show_error=True,
            footer_links=[],
            allowed_paths=[str(outputs)],  # the jobs' outputs, nothing else
        )
    except OSError as error:
        raise ConfigError(f"cannot serve on {host}:{port}: {error}") from error
    url = app.local_url or f"http://{host}:{port}/"
    server = Server(app, url)
    if block:
        try:
            app.block_thread()
        finally:
            server.close()
    return server
