"""jaxcodec.train.lease and tools/train_lease.py: a time-boxed run, its package, resuming and workdirs."""

from __future__ import annotations

import importlib.util
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from jaxcodec.train import engine
from jaxcodec.train import lease
from jaxcodec.train import photo_archive
from jaxcodec.train import run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "mbt2018_mean.py")
TINY = ["--config.model.features=8", "--config.model.latent_channels=8", "--config.model.filters=(2,)",
        "--config.data.crop=64", "--config.batch_size=2", "--config.log_every=2", "--log-seconds=0"]


def _tool():
    spec = importlib.util.spec_from_file_location("train_lease", os.path.join(ROOT, "tools", "train_lease.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i, (h, w) in enumerate([(96, 128), (80, 80), (128, 96), (70, 100)]):
        Image.fromarray(_photo(h, w, i)).save(folder / f"p{i}.png")
    out = tmp_path_factory.mktemp("archive") / "photos.tar"
    photo_archive.build(sorted(folder.iterdir()), out, max_side=112)
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, archive):
    """Packages of the tiny model: 6 steps at once, and 3 steps then 3 more from the package."""
    tool, tmp = _tool(), tmp_path_factory.mktemp("runs")
    common = ["--archive", archive, *TINY]
    assert tool.main(["--config", CONFIG, "--out", str(tmp / "whole"), *common, "--config.num_steps=6"]) == 0
    assert tool.main(["--config", CONFIG, "--out", str(tmp / "part"), *common, "--config.num_steps=3"]) == 0
    assert tool.main(["--resume", str(tmp / "part"), "--out", str(tmp / "resumed"), *common,
                      "--config.num_steps=6"]) == 0
    return tmp


def _arrays(folder):
    manifest = lease.read_manifest(folder)
    files = {name: np.load(os.path.join(folder, name)) for name in manifest["files"]}
    return {leaf["path"]: np.concatenate([files[f][k] for f, k in leaf["parts"]]) for leaf in manifest["leaves"]
            if leaf["stored"]}


def test_package_fits_a_lease_and_resumes_exactly(runs):
    whole, part, resumed = (lease.read_manifest(str(runs / n)) for n in ("whole", "part", "resumed"))
    assert (whole["step"], part["step"], resumed["step"]) == (6, 3, 6)
    assert whole["optimizer"] == "float32" and whole["config"]["model"]["features"] == 8
    assert whole["data"]["photos"] == 4 and len(whole["data"]["sha256"]) == 64
    files, size = lease.check_limits(str(runs / "whole"))
    assert files <= lease.MAX_FILES and size <= lease.TOTAL_BYTES
    assert sorted(os.listdir(runs / "whole")) == ["package.json", "state-0.npz"]
    # the resumed run's history continues the first part's step count
    assert [h["step"] for h in resumed["history"]] == [4, 6]
    a, b = _arrays(str(runs / "whole")), _arrays(str(runs / "resumed"))
    assert a.keys() == b.keys()
    for key in a:  # float32 moments and data keyed by (seed, step): the same run
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = _arrays(str(runs / "part"))
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_package_becomes_a_workdir_that_train_resumes_and_packs_again(runs, archive, tmp_path):
    tool = _tool()
    workdir = tmp_path / "wd"
    assert tool.main(["unpack", str(runs / "part"), str(workdir)]) == 0
    config, state, _ = run_files.load_checkpoint(str(workdir))
    stored = _arrays(str(runs / "part"))
    params = dict((jax.tree_util.keystr(p), np.asarray(v)) for p, v in jax.tree_util.tree_flatten_with_path(state)[0])
    for key, value in params.items():
        np.testing.assert_array_equal(value.reshape(-1), stored[key].astype(value.dtype), err_msg=key)
    # the CPU engine continues it: steps 4 and 5, host pipeline on the archive's photos
    folder = photo_archive.extract(archive, tmp_path / "p")
    config.num_steps, config.data.train, config.checkpoint_every = 5, f"folder:{folder}", 0
    from jaxcodec.train.tasks import build_task

    result = engine.train(build_task(config), config, str(workdir))
    assert result.start_step == 3
    logged = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert logged[0] <= 3 and logged[-1] == 5
    # ... and a lease continues that workdir: --resume WORKDIR, then pack / unpack round trip
    assert tool.main(["--resume", str(workdir), "--out", str(tmp_path / "next"), "--archive", archive,
                      *TINY, "--config.num_steps=6"]) == 0
    assert lease.read_manifest(str(tmp_path / "next"))["step"] == 6
    assert tool.main(["pack", str(workdir), str(tmp_path / "packed")]) == 0
    assert lease.read_manifest(str(tmp_path / "packed"))["step"] == 5
    assert tool.main(["unpack", str(tmp_path / "packed"), str(tmp_path / "wd2")]) == 0
    _, again, _ = run_files.load_checkpoint(str(tmp_path / "wd2"))
    _, original, _ = run_files.load_checkpoint(str(workdir))
    for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(original)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert tool.main(["unpack", str(tmp_path / "packed"), str(tmp_path / "wd2")]) == 1  # never over checkpoints


def test_a_short_lease_still_leaves_a_package(archive, tmp_path, capsys):
    assert _tool().main(["--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "p"), *TINY,
                         "--minutes", "0.01"]) == 0
    manifest = lease.read_manifest(str(tmp_path / "p"))
    assert manifest["step"] == 0
    assert "stopped at step 0" in capsys.readouterr().out


def test_a_lease_reports_where_its_start_up_time_went(archive, tmp_path, capsys):
    """The first-step line splits the time before training into its phases, which add up to it."""
    assert _tool().main(["--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "p"), *TINY,
                         "--config.num_steps=2"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("compiled; first step done"))
    total = line.split("first step done ")[1].split(" after the start")[0]
    minutes, _, seconds = total.rpartition("m")
    total_s = 60 * int(minutes or 0) + int(seconds.rstrip("s"))
    phases = dict(re.findall(r"(setup|data|state|first step) (\d+\.\d)s", line))
    assert list(phases) == ["setup", "data", "state", "first step"], line
    assert all(float(v) >= 0 for v in phases.values())
    assert abs(sum(float(v) for v in phases.values()) - total_s) <= 0.5 + 0.05 * len(phases), line
    assert float(phases["first step"]) > 0.1, line  # the first step compiles the training step


def test_a_new_lease_starts_from_config_init_from(runs, archive, tmp_path, capsys):
    """A lease's step 0 is train.py's: ``config.init_from``'s parameters, not a fresh initialisation."""
    tool = _tool()
    assert tool.main(["unpack", str(runs / "whole"), str(tmp_path / "source")]) == 0
    assert tool.main(["--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "p"), *TINY,
                      f"--config.init_from={tmp_path / 'source'}", "--minutes", "0.01"]) == 0
    assert "parameters initialised from" in capsys.readouterr().out
    started, source = _arrays(str(tmp_path / "p")), _arrays(str(runs / "whole"))
    params = [key for key in started if key.startswith("['params']")]
    assert params
    for key in params:
        np.testing.assert_array_equal(started[key], source[key], err_msg=key)
    # and without init_from, step 0 is the fresh initialisation, which differs
    assert tool.main(["--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "q"), *TINY,
                      "--minutes", "0.01"]) == 0
    fresh = _arrays(str(tmp_path / "q"))
    assert any(not np.array_equal(fresh[key], source[key]) for key in params)


def _state(n):
    params = {"w": jnp.arange(n, dtype=jnp.float32) / n, "b": jnp.ones((3,), jnp.float32)}
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    grads = jax.tree.map(lambda p: p * 0.5 + 0.1, params)
    _, opt = tx.update(grads, opt, params)
    return {"step": jnp.array(7, jnp.int32), "params": params, "opt": opt}


def _abstract(state):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=jax.sharding.SingleDeviceSharding(
        jax.devices()[0])), state)


def _config():
    import ml_collections

    return ml_collections.ConfigDict({"model": {"name": "x"}, "seed": 0})


@pytest.mark.parametrize("max_bytes,tier", [(10**6, "float32"), (90_000, "bfloat16"),
                                            (70_000, "second moments in bfloat16"), (41_000, "none")])
def test_optimiser_moments_are_kept_as_far_as_they_fit(tmp_path, max_bytes, tier):
    state = _state(10_000)  # 40 KB of parameters, 80 KB of moments
    manifest = lease.save(str(tmp_path), state, step=7, config=_config(), batch_shape=[1], max_bytes=max_bytes)
    assert manifest["optimizer"] == tier
    loaded, _ = lease.load(str(tmp_path), _abstract(state))
    np.testing.assert_array_equal(np.asarray(loaded["params"]["w"]), np.asarray(state["params"]["w"]))
    assert int(loaded["step"]) == 7 and int(loaded["opt"][0].count) == 1
    mu, nu = np.asarray(loaded["opt"][0].mu["w"]), np.asarray(loaded["opt"][0].nu["w"])
    ref_mu, ref_nu = np.asarray(state["opt"][0].mu["w"]), np.asarray(state["opt"][0].nu["w"])
    if tier == "float32":
        np.testing.assert_array_equal(mu, ref_mu)
    elif tier == "bfloat16":
        np.testing.assert_allclose(mu, ref_mu, rtol=2**-8)
    else:
        assert not mu.any()
    if tier == "none":
        assert not nu.any()
    else:
        np.testing.assert_allclose(nu, ref_nu, rtol=2**-8)


def test_parameters_that_do_not_fit_are_refused(tmp_path):
    with pytest.raises(lease.PackageError, match="more than"):
        lease.save(str(tmp_path), _state(10_000), step=0, config=_config(), batch_shape=[1], max_bytes=1000)


def test_large_arrays_are_cut_over_files(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "_PART_BYTES", 18_000)
    state = _state(10_000)
    manifest = lease.save(str(tmp_path), state, step=1, config=_config(), batch_shape=[1])
    assert len(manifest["files"]) == 7  # 120 KB of arrays in parts of at most 18 KB
    loaded, _ = lease.load(str(tmp_path), _abstract(state))
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    monkeypatch.setattr(lease, "_PART_BYTES", 10_000)
    with pytest.raises(lease.PackageError, match="files of 16 MiB"):
        lease.save(str(tmp_path / "more"), state, step=1, config=_config(), batch_shape=[1])
    # a later, smaller save removes the files it no longer uses
    monkeypatch.setattr(lease, "_PART_BYTES", 1 << 20)
    lease.save(str(tmp_path), state, step=2, config=_config(), batch_shape=[1])
    assert sorted(os.listdir(tmp_path)) == ["package.json", "state-0.npz"]


def test_bad_inputs_are_one_line_and_a_failure(archive, tmp_path, capsys):
    tool = _tool()
    cases = [
        (["--config", CONFIG, "--archive", str(tmp_path / "none.tar")], "does not exist"),
        (["--config", CONFIG, "--archive", archive, "--sha256", "0" * 64], "expected 0000000000000000"),
        (["--config", CONFIG, "--archive", archive, "--config.model.nope=1"], "unknown config field config.model.nope"),
        (["--config", CONFIG, "--archive", archive, "--config.batch_size=big"], "config.batch_size takes int values"),
        (["--config", CONFIG], "give the training photos"),
        (["--archive", archive], "give --config FILE"),
        (["--resume", str(tmp_path), "--archive", archive], "neither a package nor a training workdir"),
        (["check", str(tmp_path / "missing")], "is not a package"),
        (["frobnicate"], "usage:"),
    ]
    for args, message in cases:
        assert tool.main(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)


def test_packages_over_the_limits_or_damaged_are_refused(tmp_path, capsys):
    tool = _tool()
    state = _state(1000)
    good = tmp_path / "good"
    lease.save(str(good), state, step=1, config=_config(), batch_shape=[1])
    assert tool.main(["check", str(good)]) == 0
    crowded = tmp_path / "crowded"
    lease.save(str(crowded), state, step=1, config=_config(), batch_shape=[1])
    for i in range(7):
        (crowded / f"extra{i}.txt").write_text("x")
    big = tmp_path / "big"
    lease.save(str(big), state, step=1, config=_config(), batch_shape=[1])
    with open(big / "huge.bin", "wb") as f:
        f.truncate(17 << 20)
    damaged = tmp_path / "damaged"
    lease.save(str(damaged), state, step=1, config=_config(), batch_shape=[1])
    raw = bytearray((damaged / "state-0.npz").read_bytes())
    raw[-100] ^= 1
    (damaged / "state-0.npz").write_bytes(bytes(raw))
    capsys.readouterr()
    for folder, message in ((crowded, "9 files"), (big, "huge.bin over 16 MiB"), (damaged, "missing or damaged")):
        assert tool.main(["check", str(folder)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(lease.PackageError, match="damaged"):
        lease.load(str(damaged), _abstract(state))


def test_travel_adds_the_working_tree_to_the_carried_files(tmp_path, capsys):
    tool = _tool()
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.bin").write_bytes(b"x" * 1000)
    assert tool.main(["travel", str(small)]) == 0
    assert "MiB to spare" in capsys.readouterr().out
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(64 << 20)
    assert tool.main(["travel", str(small), str(tmp_path / "huge.bin")]) == 1
    assert "too much" in capsys.readouterr().err
    assert tool.main(["travel", str(tmp_path / "nope")]) == 1


def test_a_lease_needs_no_tensorboardx(archive, tmp_path):
    """An accelerator machine may lack tensorboardX: a lease writes no TensorBoard events, so
    it trains and leaves its package with the package unimportable."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['tensorboardX'] = None; "  # import tensorboardX now raises ImportError
            "import runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "tools", "train_lease.py"),
                          "--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "p"), *TINY,
                          "--config.num_steps=2"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert lease.read_manifest(str(tmp_path / "p"))["step"] == 2


def test_a_lease_writes_its_compilation_cache_and_the_next_one_loads_it(archive, tmp_path):
    """``--compile-cache``: the first run (no cache yet) writes the programs it compiled into its
    package folder; a second run on a fresh machine (an empty cache folder) given that file
    compiles none of them again."""
    import subprocess
    import sys
    import tarfile

    def lease_run(name, cache_tar):
        env = dict(os.environ, JAXCODEC_CACHE_DIR=str(tmp_path / f"cache-{name}"))
        run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_lease.py"), "--config", CONFIG,
                              "--archive", archive, "--out", str(tmp_path / name), *TINY, "--config.num_steps=2",
                              "--compile-cache", str(cache_tar)], cwd=ROOT, capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        line = next(x for x in run.stdout.splitlines() if x.startswith("compilation cache: "))
        loaded, kept = map(int, re.match(r"compilation cache: (\d+) programs loaded .*, (\d+) compiled and kept", line).groups())
        return run.stdout, loaded, kept

    out, loaded, kept = lease_run("first", tmp_path / "none.tar")
    assert "none yet, this run writes one" in out
    assert loaded == 0 and kept >= 1  # the training step at least
    written = tmp_path / "first" / "xla-cache.tar"
    with tarfile.open(written) as tar:
        names = tar.getnames()
    assert sum(n.endswith("-cache") for n in names) == kept
    lease.check_limits(str(tmp_path / "first"))  # the package and the cache still fit what a lease hands back
    out, loaded, _ = lease_run("second", written)
    assert f"compilation cache {written}: {len(names)} files" in out
    assert loaded == kept


def test_a_damaged_compile_cache_is_one_line_and_writes_no_package(archive, tmp_path, capsys):
    (tmp_path / "junk.tar").write_text("not a tar file")
    assert _tool().main(["--config", CONFIG, "--archive", archive, "--out", str(tmp_path / "p"), *TINY,
                         "--compile-cache", str(tmp_path / "junk.tar")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: compilation cache {tmp_path / 'junk.tar'}: cannot read it") and err.count("\n") == 1, err
    assert not (tmp_path / "p").exists()
