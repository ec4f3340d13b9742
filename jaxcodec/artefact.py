"""A shipped model as an inference artefact: one small JSON and one array file.

A folder ``NAME/`` holds

* ``model.json``: ``{"format", "name", "family", "model", "description", "steps",
  "provenance", "licence", "table_hash"}``, where ``model`` is the architecture's
  arguments (the ``config.model`` section it was trained with, quality and λ included) and
  ``table_hash`` the hex hash its codec puts in every stream (checked when it loads);
* ``params.npz``: the parameters the codec needs (``state/<key>/<path>``, no optimiser
  state) and its integer entropy tables (``tables/<name>``). Convolution kernels may be
  stored as float16 (:func:`halve_kernels`, ``export --half``: half the size, each weight
  within 2⁻¹¹ of its value); they are read back as float32, so the codec computes exactly
  as the exporter's did.

Loading one (:func:`load_codec`) builds the family's codec from these alone: no training
engine, optimiser, checkpoint library or dataset code is imported (CompressAI's zoo keeps
a model class and a parameter file the same way; big_vision loads ``.npz`` parameters).
A training workdir becomes an artefact with ``python -m jaxcodec export WORKDIR NAME``
(:func:`jaxcodec.zoo.export_workdir`).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Mapping

import numpy as np

from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import ModelError

FORMAT = "jaxcodec-model/1"
MODEL_FILE = "model.json"
PARAMS_FILE = "params.npz"
_STATE, _TABLES = "state/", "tables/"
WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")  # the shipped models, one folder each


def is_artefact(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding an inference artefact."""
    return os.path.isfile(os.path.join(path, MODEL_FILE))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays → ``{"a/b/c": array}``."""
    flat = {}
    for key, value in tree.items():
        if "/" in str(key):
            raise ModelError(f"parameter name {key!r} contains '/'")
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = np.asarray(value)
    return flat


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The inverse of :func:`flatten`."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def halve_kernels(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with every float32 array named ``kernel`` rounded to float16 (and kept
    as float16): what an artefact written with half-size kernels stores."""

    def convert(tree: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in tree.items():
            if isinstance(value, Mapping):
                out[key] = convert(value)
            elif key == "kernel" and np.asarray(value).dtype == np.float32:
                big = float(np.max(np.abs(value), initial=0.0))
                if big >= np.finfo(np.float16).max:
                    raise ModelError(f"a kernel holds {big:g}, beyond float16's range")
                out[key] = np.asarray(value).astype(np.float16)
            else:
                out[key] = value
        return out

    return convert(state)


def widen(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Nested arrays with every float16 array as float32 (how stored kernels are used)."""
    return {k: widen(v) if isinstance(v, Mapping) else
            (np.asarray(v).astype(np.float32) if np.asarray(v).dtype == np.float16 else v)
            for k, v in tree.items()}


def write(folder: str, spec: Mapping[str, Any], state: Mapping[str, Any], tables: Mapping[str, Any] | None) -> None:
    """Writes ``model.json`` (``spec`` plus the format tag) and ``params.npz`` into ``folder``."""
    arrays = {_STATE + k: v for k, v in flatten(state).items()}
    arrays.update({_TABLES + k: np.asarray(v) for k, v in (tables or {}).items()})
    with open(os.path.join(folder, PARAMS_FILE), "wb") as f:
        np.savez_compressed(f, **arrays)
    with open(os.path.join(folder, MODEL_FILE), "w") as f:
        json.dump({"format": FORMAT, **spec}, f, indent=1)
        f.write("\n")


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The ``model.json`` of an artefact folder, checked for its format and fields."""
    file = os.path.join(path, MODEL_FILE)
    try:
        with open(file) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise ModelError(f"{path} is not a model folder (no {MODEL_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"{file} is not a {FORMAT} model description")
    if not isinstance(spec.get("model"), dict) or not isinstance(spec["model"].get("name"), str):
        raise ModelError(f"{file} has no model architecture ('model' with its family 'name')")
    return spec


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray] | None]:
    """``(spec, state, tables)`` of an artefact folder (``tables`` None when it has none)."""
    spec = read_spec(path)
    try:
        with np.load(os.path.join(path, PARAMS_FILE), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ModelError(f"{path} has no {PARAMS_FILE}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelError(f"{os.path.join(path, PARAMS_FILE)} is not a readable array file: {error}") from None
    state = widen(unflatten({k[len(_STATE):]: v for k, v in arrays.items() if k.startswith(_STATE)}))
    tables = {k[len(_TABLES):]: v for k, v in arrays.items() if k.startswith(_TABLES)}
    return spec, state, tables or None


def codec_hash(codec: Codec) -> str | None:
    """The hex table hash a codec writes into its streams, where it has one."""
    digest = getattr(codec, "table_hash", None)
    return digest.hex() if isinstance(digest, bytes) else None


def load_codec(path: str | os.PathLike) -> Codec:
    """The codec of an artefact folder, built by its family's task from the stored
    architecture, parameters and tables; its table hash must match ``model.json``'s."""
    import ml_collections

    from jaxcodec.train.tasks import build_task

    spec, state, tables = read(path)
    task = build_task(ml_collections.ConfigDict({"model": spec["model"]}))
    if not hasattr(task, "make_codec"):
        raise ModelError(f"model family {spec['model']['name']!r} has no codec")
    codec = task.make_codec(state, tables)
    recorded = spec.get("table_hash")
    if recorded is not None and codec_hash(codec) != recorded:
        raise ModelError(f"{path}: parameters or tables do not give the table hash recorded in {MODEL_FILE}")
    return codec
