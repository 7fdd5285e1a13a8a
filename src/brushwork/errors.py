"""Errors a user can cause.

Every error that comes from bad input, missing files or a failed run raises a
subclass of :class:`BrushworkError`. Its message says what was wrong and what to
do about it; the CLI prints it on one line, without a traceback, and exits with
a non-zero status.
"""

from __future__ import annotations


class BrushworkError(Exception):
    """Base class of all errors a user can cause or fix."""


class ImageError(BrushworkError):
    """An image or mask file is missing, unreadable, corrupt, empty or too large."""


class OutputPathError(BrushworkError):
    """An output path cannot be written (missing folder, same as an input, bad extension)."""


class WeightsError(BrushworkError):
    """Pretrained weights are missing, corrupt, or do not match the architecture."""


class ConfigError(BrushworkError):
    """A setting has an invalid value (negative weight, unknown layer name, ...)."""


class OptimisationError(BrushworkError):
    """An optimisation diverged (NaN or infinite loss) or could not run."""
