"""jaxcodec.runtime.xla_cache: where the compilation cache lives, and that compiled programs land there."""

import os
import subprocess
import sys

from jaxcodec.runtime import xla_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cache_dir_from_the_environment():
    assert xla_cache.cache_dir({"HOME": "/h"}) == os.path.join(os.path.expanduser("~"), ".cache", "jaxcodec", "xla")
    assert xla_cache.cache_dir({"XDG_CACHE_HOME": "/c"}) == "/c/jaxcodec/xla"
    assert xla_cache.cache_dir({xla_cache.ENV: "/x", "XDG_CACHE_HOME": "/c"}) == "/x"
    for off in ("off", "OFF", "none", ""):
        assert xla_cache.cache_dir({xla_cache.ENV: off}) is None


# A program that takes longer than MIN_COMPILE_SECONDS to compile (the Winograd layer).
_PROBE = """
import jax, jax.numpy as jnp
from jaxcodec.ops import winograd
from jaxcodec.runtime import xla_cache
print(xla_cache.enable())
jax.jit(winograd.conv3x3)(jnp.ones((1, 64, 96, 64)), jnp.ones((3, 3, 64, 256))).block_until_ready()
"""


def _run(env):
    env = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)


def test_compiled_programs_are_stored_and_off_means_off(tmp_path):
    cache = tmp_path / "xla"
    out = _run({xla_cache.ENV: str(cache)})
    assert out.stdout.strip() == str(cache)
    assert "Error" not in out.stderr, out.stderr  # e.g. a missing filelock for the size bound
    assert [p for p in os.listdir(cache) if p.endswith("-cache")], os.listdir(cache)
    out = _run({xla_cache.ENV: "off", "XDG_CACHE_HOME": str(tmp_path / "unused")})
    assert out.stdout.strip() == "None"
    assert not (tmp_path / "unused").exists()


def test_unusable_folder_turns_the_cache_off_with_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert xla_cache.enable({xla_cache.ENV: str(blocker / "xla")}) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: compilation cache off: cannot use {blocker / 'xla'}"), err
