"""jaxcodec.runtime.allocator: freed large blocks are reused instead of being mapped afresh."""

import json
import os
import subprocess
import sys

import pytest

from jaxcodec.runtime import allocator
from jaxcodec.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Allocates, touches and frees a 64 MiB block with the C library's malloc (as XLA
# does; numpy's allocator would ask for huge pages) twice, then counts the minor page
# faults of the second round: a block served by a fresh mmap faults on each of its
# 16,384 pages; one reused from the heap does not fault at all.
_PROBE = """
import ctypes, json, resource
from jaxcodec.runtime import allocator
on = allocator.configure()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def touch(n=64 << 20):
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(json.dumps({"on": on, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

def _probe(setting: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    for name in allocator.GLIBC_ENV:
        env.pop(name, None)
    env[allocator.ENV] = setting
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_configured_process_reuses_large_blocks():
    kept = _probe("keep")
    assert kept["on"] is True
    assert kept["faults"] < 1000, kept
    system = _probe("system")
    assert system["on"] is False
    if not _thp_always():  # with transparent huge pages everywhere a fresh map faults rarely too
        assert system["faults"] > 10_000, system


def test_opt_out_and_bad_setting():
    assert allocator.configure({allocator.ENV: "system"}) is False
    with pytest.raises(ConfigError, match="JAXCODEC_MALLOC must be 'keep' or 'system', got 'fast'"):
        allocator.configure({allocator.ENV: "fast"})


def test_glibc_env_names_the_same_settings():
    assert allocator.GLIBC_ENV == {
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD),
    }


def test_command_line_names_a_bad_setting_in_one_line():
    env = dict(os.environ, PYTHONPATH=ROOT, **{allocator.ENV: "fast"})
    out = subprocess.run([sys.executable, "-m", "jaxcodec", "models"], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == "error: JAXCODEC_MALLOC must be 'keep' or 'system', got 'fast'"
    assert out.stdout == ""
