"""Process tuning: the host allocator, the persistent compilation cache, compiled-code accounting."""

import importlib


def __getattr__(name):
    """Submodules load on first use (``jaxcodec.runtime.<module>``)."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise
