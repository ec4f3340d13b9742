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


def test_a_cache_travels_as_one_tar_and_refuses_what_is_not_an_entry(tmp_path):
    import tarfile

    import pytest

    from jaxcodec.errors import ConfigError

    cache = tmp_path / "xla"
    cache.mkdir()
    entries = {"jit_step-abc-cache": os.urandom(3000), "jit_step-abc-atime": b"1234"}
    for name, data in entries.items():
        (cache / name).write_bytes(data)
    assert xla_cache.pack(str(cache), str(tmp_path / "c.tar"), max_bytes=4000) is None  # over the room
    assert not (tmp_path / "c.tar").exists()
    size = xla_cache.pack(str(cache), str(tmp_path / "c.tar"), max_bytes=1 << 20)
    assert size == os.path.getsize(tmp_path / "c.tar")
    assert xla_cache.unpack(str(tmp_path / "c.tar"), str(tmp_path / "other")) == 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "other").iterdir()} == entries
    for name, kind in (("../escape", tarfile.REGTYPE), ("sub/entry", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        bad = tmp_path / f"bad-{kind!r}-{len(name)}.tar"
        with tarfile.open(bad, "w") as tar:
            member = tarfile.TarInfo(name)
            member.type, member.linkname = kind, "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(member, None if kind == tarfile.SYMTYPE else __import__("io").BytesIO(b""))
        with pytest.raises(ConfigError, match="is not a plain cache entry"):
            xla_cache.unpack(str(bad), str(tmp_path / "never"))
        assert not (tmp_path / "never").exists() and not (tmp_path / "escape").exists()
    (tmp_path / "junk.tar").write_text("not a tar file")
    with pytest.raises(ConfigError, match="cannot read it"):
        xla_cache.unpack(str(tmp_path / "junk.tar"), str(tmp_path / "never"))
