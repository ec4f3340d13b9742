"""Config files read by path: the ``get_config()`` of a ``configs/NAME.py`` file, whatever the
working directory (a config that builds on another one beside it, a tool given ``--config FILE``)."""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from jaxcodec.errors import ConfigError


def load(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """``get_config()`` of the config file at ``path``; ConfigError when there is none."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0] + "_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def beside(config_file: str, name: str) -> ml_collections.ConfigDict:
    """``get_config()`` of the config file ``name`` in the folder of ``config_file`` (a config's
    own ``__file__``)."""
    return load(os.path.join(os.path.dirname(os.path.abspath(config_file)), name))
