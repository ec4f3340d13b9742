"""The model zoo: trained models shipped with the package, and how any codec is found by name.

Shipped models live in ``jaxcodec/weights/NAME/`` as inference artefacts
(:mod:`jaxcodec.artefact`: ``model.json`` and ``params.npz``), loaded without the
training engine. A *family* groups models trained at several rate-distortion
trade-offs: ``bmshj2017-factorized`` is the ladder ``bmshj2017-factorized-q1`` ...
``-q9``, and its quality is the index in the ladder.

:func:`get_codec` resolves, in order: a shipped model or family name, a model folder
(an artefact, or a training workdir, which is restored through :mod:`jaxcodec.train.run_files`),
then the classical codecs of :mod:`jaxcodec.codecs.standard`.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jaxcodec import artefact
from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import ModelError

WEIGHTS_DIR = artefact.WEIGHTS_DIR
_QUALITY = re.compile(r"^(?P<family>.+)-q(?P<q>\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def shipped_models() -> dict[str, dict[str, Any]]:
    """Name → ``{"path", "description", "family", "quality", "model_name"}`` for each shipped
    model (``model_name``: the registry key of its model family, e.g. ``factorized``)."""
    out = {}
    if not os.path.isdir(WEIGHTS_DIR):
        return out
    for name in sorted(os.listdir(WEIGHTS_DIR)):
        path = os.path.join(WEIGHTS_DIR, name)
        if not artefact.is_artefact(path):
            continue
        spec = artefact.read_spec(path)
        m = _QUALITY.match(name)
        model_name = spec["model"]["name"]
        out[name] = {
            "path": path,
            "description": spec.get("description") or model_name,
            "family": m.group("family") if m else name,
            "quality": int(m.group("q")) if m else None,
            "model_name": model_name,
        }
    return out


def families() -> dict[str, list[str]]:
    """Family name → its shipped model names, ordered by quality."""
    fam: dict[str, list[tuple[int, str]]] = {}
    for name, info in shipped_models().items():
        if info["quality"] is not None:
            fam.setdefault(info["family"], []).append((info["quality"], name))
    return {k: [n for _, n in sorted(v)] for k, v in fam.items()}


class LadderCodec:
    """Several trained models of one family behind one codec; quality picks the model.

    ``members`` maps each quality to its codec or to a function of no arguments that
    loads it: a member is loaded the first time it is needed, so coding at one quality
    loads one model, not the whole ladder.
    """

    def __init__(self, name: str, members: Mapping[int, Codec | Callable[[], Codec]], description: str = ""):
        self.name = name
        self._members = dict(members)
        self.qualities = sorted(self._members)
        self.description = description or f"{name} (qualities {self.qualities})"
        self.refine_steps, self.refine_lr = 0, None  # the members' encoder search (refined)

    def member(self, quality: int) -> Codec:
        """The codec of one quality, loaded on first use."""
        member = self._members[quality]
        if not callable(getattr(member, "encode", None)):
            member = self._members[quality] = member()
        return member

    @property
    def members(self) -> dict[int, Codec]:
        """Every member, loaded."""
        return {q: self.member(q) for q in self.qualities}

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        quality = int(quality)
        if quality not in self._members:
            raise ModelError(f"{self.name} has no quality {quality}; available: {self.qualities}")
        member = self.member(quality)
        return member.encode(image, member.qualities[-1])

    def refined(self, steps: int, lr: float | None = None) -> "LadderCodec":
        """The ladder with every member's encoder refining its latents (:mod:`jaxcodec.codecs.refinement`);
        ``refine_steps``/``refine_lr`` tell what the members do (``lr`` None: each member's own)."""
        ladder = LadderCodec(self.name, {q: functools.partial(lambda q: refined(self.member(q), steps, lr=lr), q)
                                         for q in self.qualities}, self.description)
        ladder.refine_steps, ladder.refine_lr = steps, lr
        return ladder

    def decode(self, data: bytes) -> np.ndarray:
        return self._by_member(data, "decode")

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The integer symbols of a stream (the member's :meth:`decode_symbols`)."""
        return self._by_member(data, "decode_symbols")

    def _by_member(self, data: bytes, method: str) -> Any:
        from jaxcodec.codecs import container

        header, _ = container.unpack(data)
        # Every member of a ladder carries the same model name; the table hash in the
        # header picks the member (a wrong one refuses the stream before decoding it).
        # The header's quality is tried first, so usually one member is loaded.
        for quality in sorted(self.qualities, key=lambda q: q != header.quality):
            member = self.member(quality)
            if member.name != header.model:
                continue
            try:
                return getattr(member, method)(data)
            except ModelError:
                continue
        raise ModelError(f"stream was made by model {header.model!r}, not by the {self.name} family")


@functools.lru_cache(maxsize=64)
def load_codec(path: str) -> Codec:
    """The codec of a model folder: an inference artefact (:func:`jaxcodec.artefact.load_codec`)
    or a training workdir (:func:`load_workdir_codec`)."""
    if artefact.is_artefact(path):
        return artefact.load_codec(path)
    return load_workdir_codec(path)


@functools.lru_cache(maxsize=64)
def load_workdir_codec(path: str) -> Codec:
    """The codec of a trained workdir (restores its latest checkpoint: :mod:`jaxcodec.train.run_files`)."""
    from jaxcodec.train.run_files import load_checkpoint
    from jaxcodec.train.tasks import build_task

    config, state, tables = load_checkpoint(path)
    task = build_task(config)
    if not hasattr(task, "make_codec"):
        raise ModelError(f"model family {config.model.name!r} has no codec")
    codec = task.make_codec(state, tables)
    if isinstance(state, dict) and "step" in state and isinstance(getattr(codec, "description", None), str):
        # which checkpoint a report measured (eval.py writes the description into results.json)
        codec.description = f"{codec.description}, checkpoint step {int(state['step'])}"
    return codec


def refined(codec: Codec, steps: int, **kwargs: Any) -> Codec:
    """``codec`` with encoder-side latent refinement (:mod:`jaxcodec.codecs.refinement`);
    a :class:`ModelError` for codecs without a continuous latent (classical codecs)."""
    if not hasattr(codec, "refined"):
        raise ModelError(f"{codec.name} has no latent to refine (refinement needs a learned model with an entropy model)")
    if "hyper_steps" in kwargs and not hasattr(codec, "hyper_steps"):
        raise ModelError(f"{codec.name} has no hyper-latent to search (HYPER_STEPS needs a hyperprior model)")
    return codec.refined(steps, **kwargs)


def split_refine(name: str) -> tuple[str, int | None, int | None]:
    """``"NAME+refine=N"`` → ``("NAME", N, None)``; ``"NAME+refine"`` → ``("NAME",``
    :data:`jaxcodec.codecs.refinement.DEFAULT_STEPS` ``, None)``; ``"NAME+refine=N:K"`` →
    ``("NAME", N, K)``, ``K`` steps of a hyperprior's hyper-latent search
    (:mod:`jaxcodec.codecs.hyper_refinement`; ``None``: the codec's default); a plain name →
    ``(name, None, None)``."""
    from jaxcodec.codecs.refinement import DEFAULT_STEPS

    base, plus, suffix = name.rpartition("+")
    if not plus or not suffix.startswith("refine"):
        return name, None, None
    if suffix == "refine":
        return base, DEFAULT_STEPS, None
    match = re.fullmatch(r"refine=(\d+)(?::(\d+))?", suffix)
    if not match:
        raise ModelError(f"bad refinement suffix {suffix!r} in {name!r}; use NAME+refine, NAME+refine=STEPS "
                         f"or NAME+refine=STEPS:HYPER_STEPS")
    hyper = match.group(2)
    return base, int(match.group(1)), None if hyper is None else int(hyper)


def get_codec(name: str, **kwargs: Any) -> Codec:
    """Resolves a codec by shipped model/family name, workdir path or classical name.

    A ``+refine`` or ``+refine=STEPS`` suffix gives the learned codec with encoder-side
    latent refinement (:func:`refined`), e.g. ``bmshj2017-factorized+refine=50``;
    ``+refine=STEPS:HYPER_STEPS`` also sets a hyperprior's hyper-latent search, e.g.
    ``mbt2018-mean+refine=0:100`` (that search alone).
    """
    base, steps, hyper_steps = split_refine(name)
    if steps is not None:
        extra = {} if hyper_steps is None else {"hyper_steps": hyper_steps}
        return refined(get_codec(base, **kwargs), steps, **extra)
    models = shipped_models()
    if name in models:
        return load_codec(models[name]["path"])
    fams = families()
    if name in fams:
        loaders = {models[m]["quality"]: functools.partial(load_codec, models[m]["path"]) for m in fams[name]}
        return LadderCodec(name, loaders)
    if os.path.isdir(name):
        if not artefact.is_artefact(name) and not os.path.isfile(os.path.join(name, "config.json")):
            raise ModelError(f"{name} is not a training workdir (config.json) or a model folder "
                             f"({artefact.MODEL_FILE})")
        return load_codec(os.path.abspath(name))
    from jaxcodec.codecs import registry

    try:
        return registry.get_codec(name, **kwargs)
    except ModelError:
        known = sorted(set(models) | set(fams) | set(registry.CLASSICAL_CODECS))
        raise ModelError(f"unknown model or codec {name!r}; known: {', '.join(known)}") from None


def export_workdir(workdir: str, name: str, *, dest: str = WEIGHTS_DIR, description: str = "",
                   licence: str = "", half: bool = False) -> str:
    """Writes a training workdir's latest checkpoint into ``dest/name`` as an inference
    artefact (:func:`export_state`; ``half``: kernels stored as float16). Returns the new folder."""
    from jaxcodec.train import run_files
    from jaxcodec.train.tasks import build_task

    if not _NAME.match(name):
        raise ModelError(f"model name {name!r} must be letters, digits, '-', '_' or '.'")
    if not os.path.isfile(os.path.join(workdir, run_files.CONFIG_FILE)):
        raise ModelError(f"{workdir} is not a training workdir (no {run_files.CONFIG_FILE})")
    step = _latest_step(workdir)
    config, state, tables = run_files.load_checkpoint(workdir, step)
    data = config.get("data") or {}
    trained_on = os.path.basename(str(data.get("train", "")).rstrip("/")) or "unknown data"
    return export_state(build_task(config), state, name, dest=dest, tables=tables, description=description,
                        licence=licence, provenance=f"jaxcodec train.py, {step} steps on {trained_on}", steps=step,
                        half=half)


def export_state(task: Any, state: Any, name: str, *, dest: str = WEIGHTS_DIR, tables: Any = None,
                 description: str = "", licence: str = "", provenance: str = "", steps: int | None = None,
                 half: bool = False) -> str:
    """Writes a trained state of ``task`` into ``dest/name`` as an inference artefact
    (:mod:`jaxcodec.artefact`): the architecture's arguments (``task.config.model``), the
    parameters its codec needs (no optimiser state; ``task.codec_state_keys`` where the
    task names them) and the codec tables (``task.finalize`` when not given).

    With ``half`` the convolution kernels are stored as float16
    (:func:`jaxcodec.artefact.halve_kernels`); the codec, and so the table hash, is made
    from the rounded kernels, which is what every loader computes with.

    The folder is assembled in a temporary place and renamed into place, so an
    interrupted export leaves no half-written model. Returns the new folder.
    """
    from jaxcodec.fileio import atomic_dir, make_dirs

    if not _NAME.match(name):
        raise ModelError(f"model name {name!r} must be letters, digits, '-', '_' or '.'")
    if not hasattr(task, "make_codec"):
        raise ModelError(f"model family {task.config.model.name!r} has no codec")
    keep = getattr(task, "codec_state_keys", None)
    state = {k: np.asarray(v) if not isinstance(v, dict) else v for k, v in state.items()
             if k != "step" and not k.endswith("opt") and (keep is None or k in keep)}
    stored = state
    if half:
        stored = artefact.halve_kernels(state)
        state = artefact.widen(stored)
    if tables is None and hasattr(task, "finalize"):
        tables = {k: np.asarray(v) for k, v in task.finalize(state).items()}
    codec = task.make_codec(state, tables)
    quality = _QUALITY.match(name)
    spec = {
        "name": name,
        "family": quality.group("family") if quality else name,
        "model": task.config.model.to_dict(),
        "description": description or codec.description,
        "steps": steps,
        "provenance": provenance or "jaxcodec",
        "licence": licence or "the jaxcodec package's licence",
        "table_hash": artefact.codec_hash(codec),
    }
    make_dirs(dest)
    with atomic_dir(os.path.join(dest, name), prefix=f".{name}.") as tmp:
        artefact.write(tmp, spec, stored, tables)
    return os.path.join(dest, name)


def _latest_step(workdir: str) -> int:
    from jaxcodec.train import run_files
    from jaxcodec.train.checkpoint import Checkpointer

    with Checkpointer(os.path.join(workdir, run_files.CHECKPOINT_DIR), read_only=True) as ckpt:
        step = ckpt.latest_step()
    if step is None:
        raise ModelError(f"{workdir} has no checkpoint")
    return int(step)


def decode_stream(data: bytes) -> np.ndarray:
    """Decodes a ``.jxc`` stream with the shipped model that made it.

    The header names either a shipped model or, for a trained model's streams, its model
    family (e.g. ``"factorized"`` for every ``bmshj2017-factorized-qN``); then the shipped
    member of that family whose tables match the stream's decodes it (the header's quality
    is tried first, the others are loaded only as needed). A stream of a standard codec
    (JPEG, WebP, AVIF, JPEG XL, JPEG 2000: what ``compress --model jpeg`` writes) is
    recognised by its signature and decoded by that codec.
    """
    from jaxcodec.codecs import container, registry
    from jaxcodec.codecs import standard as classical

    standard = classical.identify(data)
    if standard is not None:
        return registry.get_codec(standard).decode(data)
    header, _ = container.unpack(data)
    models = shipped_models()
    if header.model in models:
        return load_codec(models[header.model]["path"]).decode(data)
    family = sorted((info["quality"] != header.quality, info["path"])
                    for info in models.values() if info["model_name"] == header.model)
    for _, path in family:
        try:
            return load_codec(path).decode(data)
        except ModelError:  # other tables: another quality of the family
            continue
    raise ModelError(
        f"stream was made by model {header.model!r}, which is not shipped; "
        "pass the model's workdir with --model"
    )


def describe(names: Sequence[str] | None = None) -> list[str]:
    """One line per shipped model and family, for ``python -m jaxcodec models``."""
    lines = []
    models = shipped_models()
    for fam, members in families().items():
        qs = [models[m]["quality"] for m in members]
        lines.append(f"{fam:32s} family, qualities {qs}")
    for name, info in models.items():
        if names is None or name in names:
            lines.append(f"{name:32s} {info['description']}")
    return lines


__all__ = [
    "LadderCodec",
    "decode_stream",
    "describe",
    "export_state",
    "export_workdir",
    "families",
    "get_codec",
    "refined",
    "shipped_models",
    "split_refine",
]
