r"""How long a user waits for one ``python -m jaxcodec`` command: wall time of fresh processes.

::

    .venv/bin/python bench/cli_latency.py                   # 3 runs of each row
    .venv/bin/python bench/cli_latency.py --repeats 5 --json out/cli_latency.json

The image is the first photo of ``sample:photos`` (:func:`jaxcodec.data.load_images`) at
least 512×768 (``hubble_deep_field``, 872×1000, the only one that large), its central
512×768 window, written as a PNG. The model is the default one,
whatever ``python -m jaxcodec compress`` picks without ``--model`` and ``--quality``. Each
row starts a new process of this Python and times it from start to exit:

* ``pillow PNG decode (floor)``: ``python -c`` that decodes the photo's PNG with Pillow,
  the least a command that writes or reads that image could cost;
* ``import jaxcodec``: ``python -c "import jaxcodec"``;
* ``decompress cold`` / ``compress cold``: ``python -m jaxcodec decompress IN.jxc OUT.png``
  and ``python -m jaxcodec compress IN.png OUT.jxc`` with an empty persistent compilation
  cache (``JAXCODEC_CACHE_DIR``, :mod:`jaxcodec.runtime.xla_cache`, a new empty folder each run);
* ``decompress warm`` / ``compress warm``: the same commands with a cache that an earlier
  run of the same command filled.

Every row runs once untimed first, so the timed runs find Python's bytecode already
compiled (into a temporary ``PYTHONPYCACHEPREFIX``, as an installed package has it) and
the files in the OS's cache; "cold" means only the compilation cache is empty. The rows
then run in turns, one of each per round, so a change in the machine's load hits them
alike. The table gives the median and the minimum over ``--repeats`` rounds.

Last, it reports which heavy modules (optax, orbax, tensorflow, tensorflow_datasets,
jaxcodec.train.engine) are in ``sys.modules`` after a decode, through ``jaxcodec.decompress`` and
through the command line's own code (:func:`jaxcodec.cli.run`), and which third-party
packages got loaded, to show whether decoding pulls in the training stack. It also counts
the programs each warm cache holds after one run: JAX stores only those that took at least
``jaxcodec.runtime.xla_cache.MIN_COMPILE_SECONDS`` to compile, so a command whose programs all
compile faster than that gains nothing from the cache, and its warm row is a second cold one.

Every process runs with the repository root as its working folder, so the checkout's
``jaxcodec`` is the one imported, installed or not; every process is given its own
``JAXCODEC_CACHE_DIR``, so the user's own compilation cache is never read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import positive

REPO_ROOT = Path(__file__).resolve().parent.parent
HEIGHT, WIDTH = 512, 768
HEAVY_MODULES = ("optax", "orbax", "tensorflow", "tensorflow_datasets", "jaxcodec.train.engine")

# Writes the photo's PNG; prints its name, the default model and the cache's compile-time
# threshold as one JSON line.
_PREPARE = r"""
import json, sys
import numpy as np
from PIL import Image
from jaxcodec import api, crops, data, data_sources
from jaxcodec.runtime import xla_cache
height, width, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
photos = data.load_images("sample:photos")
index = next((i for i, p in enumerate(photos) if p.shape[0] >= height and p.shape[1] >= width), None)
if index is None:
    sys.exit(f"no photo of sample:photos is at least {height}x{width}")
crop = crops.center_crop(photos[index], height, width)
Image.fromarray(np.rint(crop * 255.0).astype(np.uint8)).save(path)
print(json.dumps({"photo": data_sources.SAMPLE_PHOTOS[index], "source_shape": list(photos[index].shape),
                  "default_model": api.DEFAULT_MODEL, "cache_min_compile_s": xla_cache.MIN_COMPILE_SECONDS}))
"""

_PILLOW_FLOOR = "import sys; from PIL import Image; Image.open(sys.argv[1]).load()"

# Decodes a stream through the API or the command line's code; the last line printed is
# JSON: which of the heavy modules are loaded, and every third-party package loaded.
_MODULES = r"""
import json, sys
path, out, how, heavy = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if how == "api":
    import jaxcodec
    with open(path, "rb") as f:
        jaxcodec.decompress(f.read())
else:
    from jaxcodec import cli
    if cli.run(["decompress", path, out]) != 0:
        sys.exit(1)
tops = {name.partition(".")[0] for name in sys.modules}
third_party = sorted(t for t in tops if t not in sys.stdlib_module_names and not t.startswith("_")
                     and t != "jaxcodec")
print(json.dumps({"heavy": {m: m in sys.modules for m in heavy}, "third_party": third_party}))
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Runs ``argv`` in the repository root; returns (wall seconds, stdout). Exits on failure."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed with status {proc.returncode}: {' '.join(argv)}\n{proc.stderr.strip()}")
    return seconds, proc.stdout


def last_json(stdout: str) -> dict:
    """The JSON object on the last line of a subprocess's output."""
    return json.loads(stdout.strip().splitlines()[-1])


def cache_entries(folder: Path) -> int:
    """How many compiled programs a persistent cache folder holds (JAX keeps one file per
    program, plus an access-time file beside each and a lock file)."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".") and not p.name.endswith("-atime"))


def measure(repeats: int, tmp: Path, env: dict[str, str]) -> tuple[dict, list[dict], dict]:
    """Prepares the photo and stream, times every row, checks the decode's modules."""
    py = sys.executable
    png, jxc, out_png = tmp / "photo.png", tmp / "photo.jxc", tmp / "decoded.png"
    _, stdout = run([py, "-c", _PREPARE, str(HEIGHT), str(WIDTH), str(png)], env)
    setup = last_json(stdout)

    no_cache = {**env, "JAXCODEC_CACHE_DIR": "off"}
    run([py, "-m", "jaxcodec", "compress", str(png), str(jxc)], no_cache)
    _, stdout = run([py, "-m", "jaxcodec", "info", str(jxc)], no_cache)
    setup["stream"] = json.loads(stdout)

    decompress = [py, "-m", "jaxcodec", "decompress", str(jxc), str(out_png)]
    compress = [py, "-m", "jaxcodec", "compress", str(png), str(tmp / "again.jxc")]
    warm_caches = {"decompress": tmp / "cache-warm-decompress", "compress": tmp / "cache-warm-compress"}
    cold_runs = 0

    def cold_env() -> dict[str, str]:
        nonlocal cold_runs
        cold_runs += 1
        folder = tmp / f"cache-cold-{cold_runs}"
        folder.mkdir()
        return {**env, "JAXCODEC_CACHE_DIR": str(folder)}

    rows = [
        ("pillow PNG decode (floor)", [py, "-c", _PILLOW_FLOOR, str(png)], lambda: no_cache),
        ("import jaxcodec", [py, "-c", "import jaxcodec"], lambda: no_cache),
        ("decompress cold", decompress, cold_env),
        ("decompress warm", decompress, lambda: {**env, "JAXCODEC_CACHE_DIR": str(warm_caches["decompress"])}),
        ("compress cold", compress, cold_env),
        ("compress warm", compress, lambda: {**env, "JAXCODEC_CACHE_DIR": str(warm_caches["compress"])}),
    ]
    for _, argv, make_env in rows:  # untimed: bytecode, the OS's file cache, the warm caches
        run(argv, make_env())
    setup["warm_cache_entries"] = {name: cache_entries(folder) for name, folder in warm_caches.items()}
    times: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for round_ in range(repeats):
        for name, argv, make_env in rows:
            seconds, _ = run(argv, make_env())
            times[name].append(seconds)
        print(f"round {round_ + 1}/{repeats} done", file=sys.stderr)
    results = [{"row": name, "seconds": times[name], "median": statistics.median(times[name]),
                "min": min(times[name])} for name, _, _ in rows]

    modules = {}
    warm = {**env, "JAXCODEC_CACHE_DIR": str(warm_caches["decompress"])}
    for how in ("api", "cli"):
        _, stdout = run([py, "-c", _MODULES, str(jxc), str(out_png), how, json.dumps(HEAVY_MODULES)], warm)
        modules[how] = last_json(stdout)
    return setup, results, modules


def report(setup: dict, results: list[dict], modules: dict, repeats: int) -> str:
    """The Markdown table and the module findings."""
    stream = setup["stream"]
    quality = stream.get("quality", "?")
    lines = [
        f"photo: {setup['photo']} {tuple(setup['source_shape'][:2])}, central {HEIGHT}x{WIDTH}; "
        f"default model {setup['default_model']} (stream: {stream.get('model', stream.get('codec', '?'))}, "
        f"quality {quality}, {stream.get('total_bytes', '?')} bytes); {repeats} runs per row; "
        f"python {sys.executable}",
        "programs in the warm caches after one run (JAX stores only those that took at least "
        f"{setup['cache_min_compile_s']} s to compile): "
        + ", ".join(f"{name} {count}" for name, count in setup["warm_cache_entries"].items()),
        "",
        "| row | median (s) | min (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {r['row']} | {r['median']:.2f} | {r['min']:.2f} |" for r in results]
    lines += ["", "| loaded after a decode | jaxcodec.decompress | python -m jaxcodec decompress |", "|---|---|---|"]
    for name in HEAVY_MODULES:
        lines.append(f"| {name} | {_yes(modules['api']['heavy'][name])} | {_yes(modules['cli']['heavy'][name])} |")
    for how, label in (("api", "jaxcodec.decompress"), ("cli", "python -m jaxcodec decompress")):
        lines.append(f"\nthird-party packages loaded by {label}: {', '.join(modules[how]['third_party'])}")
    return "\n".join(lines)


def _yes(loaded: bool) -> str:
    return "yes" if loaded else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive, default=3, help="timed runs of each row (default 3)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli_latency-") as tmp_name:
        tmp = Path(tmp_name)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        setup, results, modules = measure(args.repeats, tmp, env)
    print(report(setup, results, modules, args.repeats))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"height": HEIGHT, "width": WIDTH, "repeats": args.repeats, "python": sys.executable,
                       **setup, "rows": results, "modules": modules}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
