"""examples/quickstart.ipynb runs from top to bottom in a kernel of this Python, and what it
prints is right: the photo and digit round trips reach their PSNR, the rate-distortion table
holds both learned photo models, JPEG and WebP (the learned models the cheaper, the default one
the cheapest), training lowers the loss and the restored checkpoint decodes digits. Training runs
QUICKSTART_STEPS steps."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
CONFIG = ROOT / "configs" / "mnist_conv_ae.py"
STEPS = 200
CELL_TIMEOUT = 300  # seconds, per cell
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

# Appended to the notebook: its inline training configuration is the repository's
# configs/mnist_conv_ae.py but for the fields that set the run's length.
CONFIG_CHECK = f"""
import importlib.util as _util
_spec = _util.spec_from_file_location("_seed004", {str(CONFIG)!r})
_module = _util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_ours, _theirs = config.to_dict(), _module.get_config().to_dict()
for _key in ("num_steps", "log_every", "eval_every", "checkpoint_every"):
    _ours.pop(_key), _theirs.pop(_key)
print("CONFIG_DIFF", _ours == _theirs, repr(_ours), repr(_theirs))
"""


def _kernel_spec(folder: Path) -> str:
    """A kernel spec that starts ipykernel with this Python (JUPYTER_PATH comes first)."""
    name = "jaxcodec-tests"
    spec = folder / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxcodec tests", "language": "python",
    }))
    return name


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def _find(cells, pattern: str) -> list[tuple[str, ...]]:
    found = [m.groups() for c in cells for m in re.finditer(pattern, _text(c))]
    assert found, f"no output matches {pattern!r}"
    return found


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_install_cell_names_the_projects_url():
    """The URL the install cell falls back to is pyproject.toml's [project.urls] entry."""
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (line,) = [l for c in nb.cells for l in c.source.splitlines() if l.startswith("REPOSITORY_URL =")]
    value = line.split("=", 1)[1].split("#")[0].strip()
    if urls:
        assert value.strip("\"'") in urls.values()
    else:
        assert value == "None"


def test_install_cell_installs_the_source_it_is_given(tmp_path, monkeypatch):
    """Where jaxcodec is not importable, the first cell pip-installs ``jaxcodec[train]`` from
    JAXCODEC_SOURCE (a folder becomes a file:// URL, a git URL stays), else from the checkout
    the notebook runs in; with neither (and no URL) it stops with a message."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code").source
    commands = []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jaxcodec" else True)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(cmd))

    def run_cell(cwd, source=None):
        monkeypatch.chdir(cwd)
        if source is None:
            monkeypatch.delenv("JAXCODEC_SOURCE", raising=False)
        else:
            monkeypatch.setenv("JAXCODEC_SOURCE", source)
        exec(compile(install, "install-cell", "exec"), {})
        return commands[-1]

    assert run_cell(tmp_path, str(ROOT)) == [
        sys.executable, "-m", "pip", "install", "--quiet", f"jaxcodec[train] @ {ROOT.as_uri()}"]
    assert run_cell(tmp_path, "git+https://example.org/jaxcodec.git")[-1] == \
        "jaxcodec[train] @ git+https://example.org/jaxcodec.git"
    assert run_cell(ROOT / "examples")[-1] == f"jaxcodec[train] @ {ROOT.as_uri()}"
    if "REPOSITORY_URL = None" in install:
        with pytest.raises(RuntimeError, match="JAXCODEC_SOURCE"):
            run_cell(tmp_path)
    else:
        assert run_cell(tmp_path)[-1].startswith("jaxcodec[train] @ ")


def test_notebook_runs_and_its_numbers_hold(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CONFIG_CHECK))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("QUICKSTART_STEPS", str(STEPS))
    monkeypatch.setenv("QUICKSTART_WORKDIR", str(tmp_path / "workdir"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("JAXCODEC_SOURCE", raising=False)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=_kernel_spec(tmp_path / "jupyter"),
        resources={"metadata": {"path": str(run_dir)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / "executed.ipynb")  # for a look after a failure
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for cell in cells:
        assert not [o for o in cell.outputs if o.get("output_type") == "error"]

    # 1. jaxcodec is importable here, so nothing is installed.
    assert "jaxcodec is already installed" in _text(cells[0])

    # 2. The photo: a real stream at a photo rate, decoded close to the original.
    ((nbytes, bpp, psnr),) = _find(cells, rf"photo: (\d+) bytes, {NUMBER} bpp, PSNR {NUMBER} dB")
    assert int(nbytes) > 1000 and 0.1 < float(bpp) < 2.0 and float(psnr) > 30.0

    # 3. The digit, through both MNIST models.
    digits = dict((m, (float(b), float(p))) for m, b, p in
                  _find(cells, rf"(mnist-(?:conv|deep)-ae): \d+ bytes, {NUMBER} bpp, PSNR {NUMBER} dB"))
    assert set(digits) == {"mnist-conv-ae", "mnist-deep-ae"}
    assert all(p > 20.0 and b < 3.0 for b, p in digits.values())

    # 4. The RD table: the four codecs at three qualities, rate rising with quality; both learned
    #    models need fewer bits than JPEG for the same PSNR, the default one fewer than the other.
    curves = {}
    for name, points in _find(cells, r"(?m)^(mbt2018-mean|bmshj2017-factorized|jpeg|webp) ((?:\S+bpp/\S+dB ?)+)$"):
        curves[name] = [tuple(map(float, p[:-2].split("bpp/"))) for p in points.split()]
    assert set(curves) == {"mbt2018-mean", "bmshj2017-factorized", "jpeg", "webp"}
    for name, points in curves.items():
        assert len(points) == 3 and [b for b, _ in points] == sorted(b for b, _ in points), (name, points)
        assert all(p > 20.0 for _, p in points), (name, points)
    ((mean_scale,),) = _find(cells, rf"'mbt2018-mean': {NUMBER}")
    ((factorized,),) = _find(cells, rf"'bmshj2017-factorized': {NUMBER}")
    assert float(mean_scale) < float(factorized) < 0.0
    rd_cell = next(c for c in cells if "plot_rd" in c.source)
    assert "| jpeg |" in "".join(o.get("data", {}).get("text/markdown", "") for o in rd_cell.outputs)
    assert _pngs(rd_cell) == 1

    # 5. Training lowered the loss; the checkpoint restores at the last step and decodes digits.
    ((first, last),) = _find(cells, rf"loss first {NUMBER} last {NUMBER}")
    assert float(last) < 0.5 * float(first)
    ((step,),) = _find(cells, r"restored mnist_conv_ae at step (\d+)")
    assert int(step) == STEPS
    ((trained_psnr,),) = _find(cells, rf"trained model: [0-9.]+ bytes per digit, mean PSNR {NUMBER} dB")
    assert float(trained_psnr) > 15.0

    # Every figure was drawn: photo, digits, RD curve, reconstructions.
    assert sum(_pngs(c) for c in cells) >= 4

    # The inline training configuration is configs/mnist_conv_ae.py's.
    assert "CONFIG_DIFF True" in _text(cells[-1]), _text(cells[-1])
