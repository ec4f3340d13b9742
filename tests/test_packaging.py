"""The installable package (pyproject.toml): its wheel holds the code, the shipped models
and the embedded sample, and works from outside the checkout; its dependencies are
requirements.txt's."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [re.sub(r"\s*#.*", "", line).strip() for line in lines if re.sub(r"\s*#.*", "", line).strip()]


def test_dependencies_and_extras_are_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert sorted(declared) == sorted(_requirement_lines())
    assert len(set(declared)) == len(declared)


def test_wheel_holds_models_and_sample_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "jaxcodec", source / "jaxcodec", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("jaxcodec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        path.relative_to(source).as_posix()
        for path in (source / "jaxcodec").rglob("*")
        if path.is_file() and (path.suffix == ".py" or {"weights", "samples"} & set(path.parts))
    }
    assert wanted and not wanted - names
    assert any(n.endswith("entry_points.txt") for n in names)

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    code = (
        "import jaxcodec, numpy as np; from jaxcodec import data; "
        "print(jaxcodec.__file__); "
        "x = np.round(data.load_images('sample:mnist', 'test', limit=1)[0] * 255).astype(np.uint8); "
        "s = jaxcodec.compress(x, 'mnist-conv-ae'); print(jaxcodec.decompress(s).shape)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(site / "jaxcodec" / "__init__.py"), "(28, 28, 1)"]
    models = subprocess.run([str(site / "bin" / "jaxcodec"), "models"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert models.returncode == 0, models.stderr
    assert "bmshj2017-factorized-q9" in models.stdout and "mnist-conv-ae" in models.stdout


def test_version_and_every_module_reachable_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    modules = sorted(p.stem for p in (ROOT / "jaxcodec").glob("*.py") if not p.stem.startswith("_")) + ["models"]
    code = (
        "import jaxcodec, sys; "
        f"print(jaxcodec.__version__); print(all(getattr(jaxcodec, m).__name__ == 'jaxcodec.' + m for m in {modules!r}))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [project["version"], "True"]
