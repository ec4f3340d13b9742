"""Helpers shared by the benchmarks: real photos, the CompressAI peer run, GAN generators."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_compressai_peer.py")


def load_photos(photos_dir: str | None) -> list[np.ndarray]:
    """uint8 RGB photos: every ``*.png``/``*.jpg`` of ``photos_dir``, or scikit-image's
    astronaut, coffee, chelsea and rocket when no folder is given."""
    if photos_dir:
        paths = sorted(glob.glob(os.path.join(photos_dir, "*.png")) + glob.glob(os.path.join(photos_dir, "*.jpg")))
        if not paths:
            sys.exit(f"no .png/.jpg photos in {photos_dir}")
        return [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    import skimage.data

    return [getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")]


def random_crops(photos: list[np.ndarray], n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` random ``size × size`` uint8 crops ``(n, size, size, 3)`` from the photos."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        y, x = rng.integers(p.shape[0] - size + 1), rng.integers(p.shape[1] - size + 1)
        out[i] = p[y : y + size, x : x + size]
    return out


def fit_image(photo: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ``height × width`` uint8 view of ``photo``: the centre crop of that aspect ratio,
    resized with Lanczos when it is not exactly that size."""
    h, w = photo.shape[:2]
    scale = min(h / height, w / width)
    ch, cw = round(height * scale), round(width * scale)
    y, x = (h - ch) // 2, (w - cw) // 2
    crop = photo[y : y + ch, x : x + cw]
    if crop.shape[:2] != (height, width):
        crop = np.asarray(Image.fromarray(crop).resize((width, height), Image.LANCZOS))
    return np.ascontiguousarray(crop)


def random_quality(codec, rng: np.random.Generator):
    """A quality for one test stream: uniform in a variable-rate codec's range (to 3 decimals),
    else one of its rungs."""
    if hasattr(codec, "quality_range"):
        low, high = codec.quality_range
        return round(float(rng.uniform(low, high)), 3)
    return int(rng.choice(codec.qualities))


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_peer_args(parser) -> None:
    """The flags of the CompressAI peer: its python, its device, its allocator."""
    parser.add_argument("--peer-python", default=None, help="python of a venv with torch + compressai")
    parser.add_argument("--peer-device", default="cpu",
                        help="torch device of CompressAI's network (cpu, or cuda beside jax on a GPU)")
    parser.add_argument("--peer-malloc", choices=("system", "same"), default="system",
                        help="CompressAI's allocator: glibc's defaults (system), or the settings jaxcodec's "
                             "entry points use (same; see jaxcodec.runtime.allocator)")


def configure_allocator() -> str:
    """Applies :func:`jaxcodec.runtime.allocator.configure` as jaxcodec's entry points do; returns
    a description of the allocator for the result line."""
    from jaxcodec.runtime import allocator
    from jaxcodec.errors import JaxcodecError

    try:
        return "malloc kept" if allocator.configure() else "system malloc"
    except JaxcodecError as error:
        sys.exit(f"error: {error}")


def run_peer(peer_python: str, mode: str, data_path: str, *args: str, malloc: str = "system") -> dict:
    """Runs ``_compressai_peer.py`` under ``peer_python``; returns its JSON result.
    ``malloc="same"`` starts it with jaxcodec's allocator settings (glibc variables)."""
    from jaxcodec.runtime import allocator

    cmd = [peer_python, PEER_SCRIPT, mode, data_path, *args]
    env = dict(os.environ)
    for name in allocator.GLIBC_ENV:
        env.pop(name, None)
    if malloc == "same":
        env.update(allocator.GLIBC_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"CompressAI peer failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def take_turns(rounds: int, data: np.ndarray, ours, peer_python: str, mode: str, peer_args: list[str],
               speed, describe, malloc: str = "system") -> tuple[list[dict], list[dict]]:
    """Times jaxcodec (``ours()``, one round's result) and the CompressAI peer (``mode``
    with ``peer_args`` on ``data``, saved as ``.npy``) in turns for ``rounds`` rounds, so
    that a slow spell of the machine falls on both rather than on whichever side happened
    to run during it. Prints each round's ``describe(result)`` of both sides and the
    ratio of their ``speed(result)`` (higher is faster); returns both lists of results."""
    import tempfile

    ours_all, theirs_all = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npy")
        np.save(path, data)
        for i in range(rounds):
            ours_all.append(ours())
            theirs_all.append(run_peer(peer_python, mode, path, *peer_args, malloc=malloc))
            print(f"round {i + 1}/{rounds}: jaxcodec {describe(ours_all[-1])}, CompressAI "
                  f"{describe(theirs_all[-1])}, ratio {speed(ours_all[-1]) / speed(theirs_all[-1]):.3f}")
    return ours_all, theirs_all


def run_main(main) -> None:
    """Runs a benchmark's ``main``; a :class:`~jaxcodec.errors.JaxcodecError` (an unknown
    model, a missing dataset) ends it with one line on stderr and exit status 1."""
    from jaxcodec.errors import JaxcodecError

    try:
        configure_allocator()
        main()
    except JaxcodecError as error:
        sys.exit(f"error: {error}")


def load_generator(model: str, config_path: str = "configs/gan_mnist.py", seed: int = 0):
    """``(task, g_params, description)`` of a GAN generator.

    ``model`` is a shipped model name (``gan-mnist``) or a trained ``gan`` workdir; ``none``
    initialises the generator of ``config_path`` freshly (same shapes and operations, so
    the same speed, but not a trained generator).
    """
    import importlib.util

    import jax
    import jax.numpy as jnp

    from jaxcodec import zoo
    from jaxcodec.errors import ModelError
    from jaxcodec.train.tasks import build_task

    if model != "none":
        codec = zoo.get_codec(model)  # a shipped artefact or a training workdir
        if not hasattr(codec, "g_params"):
            raise ModelError(f"{model} is not a GAN (its codec: {codec.description})")
        return codec.task, codec.g_params, f"trained: {model} ({codec.description})"
    spec = importlib.util.spec_from_file_location("bench_config", config_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = build_task(module.get_config())
    params = jax.jit(task.generator.init)(jax.random.PRNGKey(seed), jnp.zeros((1, task.latent_dim)))
    return task, params, f"freshly initialised {config_path}"


def codec_members(models: str, need: str) -> list:
    """``[(name, codec)]`` of comma-separated shipped models, families (one entry per
    quality) or workdirs, each of which must have the attribute ``need``."""
    from jaxcodec import zoo
    from jaxcodec.errors import ModelError

    members = []
    for name in models.split(","):
        codec = zoo.get_codec(name)
        if isinstance(codec, zoo.LadderCodec):
            members += [(f"{name}-q{q}", codec.members[q]) for q in codec.qualities]
        else:
            members.append((name, codec))
    for name, codec in members:
        if not hasattr(codec, need):
            raise ModelError(f"{name} is not a learned codec with {need!r} (factorized models have it)")
    return members


def model_data_parser(doc: str):
    """An argument parser with ``--models`` (shipped models, families or workdirs,
    comma-separated; default the shipped factorized ladder), ``--data`` and ``--split``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--models", default="bmshj2017-factorized",
                        help="comma-separated shipped models, families or workdirs")
    parser.add_argument("--data", default="sample:photos")
    parser.add_argument("--split", default="test")
    return parser
