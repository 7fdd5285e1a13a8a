"""What third-party libraries may print while a command runs.

Under ``-q`` the warnings, log messages and progress bars of diffusers, transformers,
huggingface_hub and torch are silenced (errors still reach the user through
brushwork's own one-line messages); otherwise each warning is shown once.
The libraries read these environment variables when imported, which the commands
do lazily, after this has been set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

__all__ = ["third_party_output"]

#: Environment variables that quiet the libraries when they are imported.
QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "torch", "onnxruntime", "accelerate")


@contextlib.contextmanager
def third_party_output(*, quiet: bool) -> Iterator[None]:
    """Within this block, third-party output is silenced (``quiet``) or shown once."""
    saved_env = {key: os.environ.get(key) for key in QUIET_ENVIRONMENT}
    saved_levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
            for key, value in QUIET_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
            for name in _LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            _quiet_imported_libraries()
        else:
            warnings.simplefilter("once")
        try:
            yield
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)


def _quiet_imported_libraries() -> None:
    """Libraries imported before the block read their settings already: tell them too."""
    if "diffusers" in sys.modules:
        with contextlib.suppress(Exception):
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.set_verbosity_error()
            diffusers_logging.disable_progress_bar()
    if "transformers" in sys.modules:
        with contextlib.suppress(Exception):
            from transformers.utils import logging as transformers_logging

            transformers_logging.set_verbosity_error()
            transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        with contextlib.suppress(Exception):
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
