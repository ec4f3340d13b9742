"""Training: the engine, the task interface, checkpoints, sharding, logging, data on the device, leases."""

import importlib


def __getattr__(name):
    """Submodules load on first use (``jaxcodec.train.<module>``)."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise
