"""What every tab shares: the session, the model cache, jobs, errors, images, commands.

A tab's handler is a plain function of the session and the widget values; it returns
(or, for long jobs, yields) the outputs, and raises :class:`gradio.Error` with one line
for anything the user can fix (:func:`readable_errors`). The work itself is a library
call, the same one the CLI makes.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import shlex
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.errors import BrushworkError, ConfigError, ImageError

log = logging.getLogger("brushwork.ui")

#: Models a session keeps loaded (the least recently used one goes first).
MODELS_PER_SESSION = 2


class Cancelled(BrushworkError):
    """The user pressed Cancel; the job stopped at its next step."""


@dataclass(frozen=True)
class UISettings:
    """What ``brushwork ui`` was started with (the same meaning as the CLI's flags).

    Attributes:
        model: the default diffusion model (Hub id or ``save_pretrained`` folder).
        device: ``auto``, ``cpu``, ``cuda``, ... for every model the app loads.
        precision: diffusion pipelines' precision (``auto``: fp16 on CUDA, else fp32).
    """

    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    device: str = "auto"
    precision: str = "auto"


class ModelCache:
    """Loaded models of one browser session, by key, loaded on first use.

    Keys say everything the model depends on (method, file, device, ...). At most
    ``capacity`` models stay loaded; the least recently used one is dropped first.
    """

    def __init__(self, capacity: int = MODELS_PER_SESSION) -> None:
        self.capacity = capacity
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        """The model under ``key``, calling ``load()`` the first time."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load()
        with self._lock:
            self.loads += 1
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        return model

    def __contains__(self, key: tuple) -> bool:
        return key in self._models

    def __deepcopy__(self, memo: dict) -> ModelCache:  # gr.State copies initial values
        return ModelCache(self.capacity)


@dataclass
class Session:
    """One browser session: its settings, models, cancel flag and last results."""

    settings: UISettings = field(default_factory=UISettings)
    models: ModelCache = field(default_factory=ModelCache)
    cancel: threading.Event = field(default_factory=threading.Event)
    #: The running job's thread (:func:`stream`), for Cancel to wait on.
    job_thread: threading.Thread | None = None
    #: Per tab, what a later control needs without re-running (e.g. attention maps).
    results: dict[str, Any] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict) -> Session:
        return Session(self.settings)


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _gradio_error(error: BaseException):
    import gradio as gr

    if isinstance(error, gr.Error):
        return error
    if isinstance(error, BrushworkError):
        message = one_line(error)
    elif type(error).__name__ == "OutOfMemoryError" or isinstance(error, MemoryError):
        message = "out of memory: try a smaller size or fewer steps"
    else:
        log.exception("unexpected error in the UI")
        message = f"unexpected error ({type(error).__name__}): {one_line(error)}"
    return gr.Error(message, duration=None, print_exception=False)


def readable_errors(handler: Callable) -> Callable:
    """Turn a handler's errors into one-line :class:`gradio.Error` messages.

    Works for plain and generator handlers; :class:`BrushworkError` keeps its message,
    anything else is logged with its traceback and shown in one line.
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from handler(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as error:
                raise _gradio_error(error) from error

        return generator

    @functools.wraps(handler)
    def plain(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except Exception as error:
            raise _gradio_error(error) from error

    return plain


# --------------------------------------------------------------------------- jobs


class Job:
    """What a job's library callbacks report through: progress, previews, cancel."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.updates: queue.Queue = queue.Queue()

    def step(self, done: int, total: int | None, desc: str, preview: Any = None) -> None:
        """Report progress (and optionally a preview); stop here if cancel was asked."""
        if self.session.cancel.is_set():
            raise Cancelled("cancelled")
        self.updates.put((done, total, desc, preview))


def stream(
    work: Callable[[Job], Any], session: Session, progress: Callable | None = None
) -> Iterator[Any]:
    """Run ``work(job)`` in a thread; yield its previews; return its result.

    ``progress`` (a :class:`gradio.Progress` or any ``progress((done, total), desc=)``
    callable) gets every step. Closing the generator (Gradio's cancel) asks the job to
    stop at its next step. Use as ``result = yield from stream(...)``.
    """
    session.cancel.clear()
    job = Job(session)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work(job)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="brushwork-ui-job", daemon=True)
    session.job_thread = thread
    thread.start()
    try:
        while thread.is_alive() or not job.updates.empty():
            try:
                done, total, desc, preview = job.updates.get(timeout=0.05)
            except queue.Empty:
                continue
            if progress is not None:
                progress((done, total), desc=desc)
            if preview is not None:
                yield preview
    finally:
        if thread.is_alive():  # closed early: the user cancelled
            session.cancel.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def finish(run: Iterator[Any]) -> Any:
    """Exhaust a handler's generator and return what it yielded last (for tests, scripts)."""
    last = None
    for last in run:  # noqa: B007
        pass
    return last


#: How long Cancel waits for the running job to reach its next step (one step).
CANCEL_WAIT_S = 60.0


def request_cancel(session: Session) -> str:
    """The Cancel button: the running job stops at its next step; returns the status.

    It waits (up to :data:`CANCEL_WAIT_S`) until the job has stopped, so that the job's
    event ends by itself before Gradio cancels it: an event cancelled while its step is
    still running (a 512 px Gatys step takes seconds) never told the page it ended, and
    the tab's Run button stayed dead.
    """
    session.cancel.set()
    thread = session.job_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(CANCEL_WAIT_S)
    return "cancelled" if thread is None or not thread.is_alive() else "cancelling…"


# --------------------------------------------------------------------------- files


def output_root() -> Path:
    """Where the jobs' output files go (the only folder the app serves files from)."""
    return Path(tempfile.gettempdir()) / "brushwork-ui"


def job_folder(kind: str) -> Path:
    """A new folder for one job's output files (under :func:`output_root`)."""
    folder = output_root() / f"{kind}-{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_path(value: Any, what: str) -> str | None:
    """The path of an uploaded file (a path, a Gradio FileData/dict, or None)."""
    if value is None or value == "":
        return None
    if isinstance(value, str | Path):
        return str(value)
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    for attribute in ("path", "name"):
        if hasattr(value, attribute):
            return str(getattr(value, attribute))
    raise ImageError(f"the {what} upload is not a file")


def file_paths(values: Any, what: str) -> list[str]:
    """Paths of a multi-file upload (None: none)."""
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        values = [values]
    return [p for p in (file_path(v, what) for v in values) if p]


def load_upload(value: Any, what: str):
    """An uploaded image as (3, H, W) in [0, 1], through the CLI's loader."""
    from brushwork.image import load_image

    path = file_path(value, what)
    if path is None:
        raise ImageError(f"no {what}: upload an image first")
    return load_image(path)


def local_path(text: str | None) -> str | None:
    """A path typed into a text box (``~`` expanded), or None when empty."""
    text = (text or "").strip()
    return str(Path(text).expanduser()) if text else None


def numbers(text: str | None, what: str) -> list[float] | None:
    """``"0.7, 0.3"`` -> [0.7, 0.3]; empty -> None."""
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{what} must be numbers separated by commas, got '{text}'") from None


def words(text: str | None) -> list[str]:
    """``"cat, Analytical Cubism"`` -> ["cat", "Analytical Cubism"]."""
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def command(*parts: Any) -> str:
    """The equivalent ``brushwork`` command line (shell-quoted; ``None`` parts dropped)."""
    flat: list[str] = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, list | tuple):
            flat.extend(str(p) for p in part if p is not None)
        else:
            flat.append(str(part))
    return "brushwork " + shlex.join(flat)


def upload_name(value: Any) -> str:
    """The file name a user uploaded (for the equivalent command line)."""
    path = file_path(value, "file")
    return Path(path).name if path else ""


def to_array(image):
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 numpy array, for image widgets."""
    return (image.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
