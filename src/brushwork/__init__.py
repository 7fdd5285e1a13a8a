"""brushwork: artistic style in images — doing it, controlling it, measuring it."""

from brushwork.errors import BrushworkError

__version__ = "0.1.0"

__all__ = ["BrushworkError", "__version__"]
