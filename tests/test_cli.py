"""Tests of ``python -m jaxcodec`` (jaxcodec.cli): real subprocesses for the main paths,
``cli.run`` in-process for the rest, with a tiny factorized model trained once per module."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec import zoo
from jaxcodec.codecs import container
from jaxcodec.train import engine
from jaxcodec.cli import run as cli_run
from jaxcodec.train.tasks.factorized import default_config

ROOT = Path(__file__).resolve().parents[1]


def jaxcodec_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m jaxcodec ARGS`` in a fresh interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "jaxcodec", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A Ballé 2017 factorized model (N = M = 8) trained for 2 steps on sample:photos."""
    config = default_config(quality=3)
    config.model.features = 8
    config.model.latent_channels = 8
    config.data.train = "sample:photos"
    config.data.eval = ""
    config.data.crop = 64
    config.batch_size = 2
    config.num_steps = 2
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 0
    path = str(tmp_path_factory.mktemp("factorized_run"))
    engine.train_and_evaluate(config, path)
    return path


@pytest.fixture(scope="module")
def codec(workdir):
    return zoo.load_workdir_codec(os.path.abspath(workdir))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 45×70 RGB photo crop and a 33×21 grey one as PNG files, and a text file."""
    folder = tmp_path_factory.mktemp("files")
    rgb = skimage.data.coffee()[100:145, 200:270]
    grey = skimage.data.camera()[200:233, 300:321]
    Image.fromarray(rgb).save(folder / "photo.png")
    Image.fromarray(grey).save(folder / "grey.png")
    (folder / "notes.png").write_text("this is not an image\n")
    return {"dir": folder, "rgb": rgb, "grey": grey}


@pytest.fixture(scope="module")
def stream(workdir, files):
    """The subprocess-compressed photo (its bytes and the process result)."""
    out = files["dir"] / "photo.jxc"
    result = jaxcodec_cli("compress", files["dir"] / "photo.png", out, "--model", workdir)
    assert result.returncode == 0, result.stderr
    return out.read_bytes(), result


def assert_one_line_error(result_or_err, *needles):
    err = result_or_err if isinstance(result_or_err, str) else result_or_err.stderr
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_compress_then_decompress_in_subprocesses_equals_codec_decode(codec, workdir, files, stream, tmp_path):
    data, result = stream
    # The stream made by another process is bit-identical to an in-process encode.
    assert data == codec.encode(files["rgb"], 3)
    m = re.fullmatch(r".*photo\.png -> .*photo\.jxc: (\d+) bytes, ([\d.]+) bpp\n", result.stdout)
    assert m and int(m.group(1)) == len(data), result.stdout
    assert float(m.group(2)) == pytest.approx(len(data) * 8 / (45 * 70), abs=1e-4)
    assert result.stderr == ""

    out = tmp_path / "decoded.png"
    result = jaxcodec_cli("decompress", files["dir"] / "photo.jxc", out, "--model", workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": 70x45x3")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        decoded = np.asarray(im)
    np.testing.assert_array_equal(decoded, codec.decode(data))


def test_info_prints_the_header_as_json(files, stream):
    data, _ = stream
    result = jaxcodec_cli("info", files["dir"] / "photo.jxc")
    assert result.returncode == 0 and result.stderr == ""
    info = json.loads(result.stdout)
    header, payload = container.unpack(data)
    assert info == {
        "model": "factorized",
        "format_version": 3,
        "table_hash": header.table_hash.hex(),
        "height": 45,
        "width": 70,
        "channels": 3,
        "latent_shape": [3, 5, 8],
        "quality": 3,
        "payload_bytes": len(payload),
        "total_bytes": len(data),
        "bpp": pytest.approx(len(data) * 8 / (45 * 70)),
    }


def _damaged(data: bytes, tmp_path: Path) -> dict[str, Path]:
    truncated, flipped = tmp_path / "truncated.jxc", tmp_path / "flipped.jxc"
    truncated.write_bytes(data[: len(data) // 2])
    bad = bytearray(data)
    bad[-9] ^= 0x04  # inside the payload
    flipped.write_bytes(bytes(bad))
    return {"truncated": truncated, "flipped": flipped}


def test_errors_are_one_line_without_traceback_or_output_file(workdir, files, stream, tmp_path):
    damaged = _damaged(stream[0], tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    photo = files["dir"] / "photo.png"
    cases = [
        (("compress", files["dir"] / "notes.png", out / "a.jxc", "--model", workdir), "not a readable image"),
        (("decompress", damaged["truncated"], out / "b.png", "--model", workdir), "corrupted or truncated"),
        (("decompress", damaged["flipped"], out / "c.png"), "CRC mismatch"),
        (("compress", photo, out / "d.jxc", "--model", "no-such-model"), "unknown model or codec 'no-such-model'"),
        (("compress", photo, out / "missing" / "e.jxc", "--model", workdir), "cannot write"),
        (("compress", photo, out, "--model", workdir), "cannot write"),  # the output is a folder
    ]
    for args, message in cases:
        before = sorted(os.listdir(out))
        result = jaxcodec_cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert_one_line_error(result, message)
        assert result.stdout == ""
        assert sorted(os.listdir(out)) == before, args  # no output, no temporary file
    assert not os.path.exists(out / "missing")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_more_errors_in_process(workdir, files, stream, tmp_path, capsys):
    damaged = _damaged(stream[0], tmp_path)
    photo = files["dir"] / "photo.png"
    out = tmp_path / "out.png"
    cases = [
        (["decompress", str(damaged["flipped"]), str(out), "--model", workdir], "CRC mismatch"),
        (["decompress", str(tmp_path / "nothing.jxc"), str(out)], "cannot read"),
        (["decompress", str(photo), str(out)], "not a jaxcodec stream"),
        (["compress", str(tmp_path / "nothing.png"), str(out)], "no such file"),
        (["compress", str(photo), str(out), "--model", workdir, "--quality", "5"], "has no quality 5"),
        (["compress", str(photo), str(out), "--model", workdir, "--quality", "high"], "has no quality"),
        (["compress", str(photo), str(out), "--model", str(tmp_path)], "not a training workdir"),
        (["info", str(damaged["truncated"])], "corrupted or truncated"),
        (["compress", str(photo), str(out), "--model", workdir, "--refine", "-2"], "whole number"),
        (["compress", str(photo), str(out), "--model", workdir, "--refine", "many"], "whole number"),
        (["compress", str(photo), str(out), "--model", "jpeg", "--refine", "3"], "no latent to refine"),
        (["decompress", str(files["dir"] / "photo.jxc"), str(tmp_path / "out.jpg"), "--model", workdir],
         "cannot write a decoded image as '.jpg'"),
        (["export", workdir, "copy", "--dest", str(photo / "sub")], "cannot create folder"),
    ]
    for args, message in cases:
        assert cli_run(args) == 1, args
        captured = capsys.readouterr()
        assert captured.out == ""
        assert_one_line_error(captured.err, message)
        assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["flipped.jxc", "truncated.jxc"]


def test_refine_option_codes_the_refined_latent_and_decodes_as_usual(codec, workdir, files, tmp_path, capsys):
    jxc, png = tmp_path / "refined.jxc", tmp_path / "refined.png"
    args = ["compress", str(files["dir"] / "photo.png"), str(jxc), "--model", workdir, "--refine", "4"]
    assert cli_run(args) == 0
    assert cli_run(["decompress", str(jxc), str(png), "--model", workdir]) == 0
    assert capsys.readouterr().err == ""
    data = jxc.read_bytes()
    assert data == codec.refined(4).encode(files["rgb"], 3)
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), codec.decode(data))


def test_grey_png_round_trip_in_process(codec, workdir, files, tmp_path, capsys):
    jxc, png = tmp_path / "grey.jxc", tmp_path / "grey.png"
    assert cli_run(["compress", str(files["dir"] / "grey.png"), str(jxc), "--model", workdir]) == 0
    assert cli_run(["decompress", str(jxc), str(png), "--model", workdir]) == 0
    assert capsys.readouterr().err == ""
    data = jxc.read_bytes()
    assert container.unpack(data)[0].channels == 1
    with Image.open(png) as im:
        assert im.mode == "L"
        decoded = np.asarray(im)
    np.testing.assert_array_equal(decoded, codec.decode(data)[:, :, 0])
    np.testing.assert_array_equal(decoded, codec.decode(codec.encode(files["grey"], 3))[:, :, 0])


def test_exported_model_is_listed_and_decodes_without_model_argument(
    codec, workdir, files, tmp_path, capsys, monkeypatch
):
    """`export`, `models`, then the README's flow: compress with the family name, and
    decompress with no --model (the stream's header must lead to the shipped model)."""
    weights = tmp_path / "weights"
    assert cli_run(["export", workdir, "tinyfact-q3", "--dest", str(weights), "--description", "tiny"]) == 0
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", str(weights))
    capsys.readouterr()
    assert cli_run(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"tinyfact\s+family, qualities \[3\]", line) for line in lines), lines
    assert any(re.fullmatch(r"tinyfact-q3\s+tiny", line) for line in lines), lines

    jxc, png = tmp_path / "photo.jxc", tmp_path / "photo.png"
    assert cli_run(["compress", str(files["dir"] / "photo.png"), str(jxc), "--model", "tinyfact", "--quality", "3"]) == 0
    assert jxc.read_bytes() == codec.encode(files["rgb"], 3)
    status = cli_run(["decompress", str(jxc), str(png)])
    assert capsys.readouterr().err == ""
    assert status == 0
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), codec.decode(jxc.read_bytes()))


def test_models_command_in_a_subprocess_lists_the_shipped_models():
    result = jaxcodec_cli("models")
    assert result.returncode == 0 and result.stderr == ""
    expected = zoo.describe() or ["no shipped models"]
    assert result.stdout.splitlines() == expected


def test_transparent_image_is_coded_by_its_colour_with_a_note(codec, workdir, files, tmp_path, capsys):
    rgb = files["rgb"]
    alpha = np.tile(np.arange(rgb.shape[1], dtype=np.uint8) * 3, (rgb.shape[0], 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    jxc = tmp_path / "rgba.jxc"
    assert cli_run(["compress", str(tmp_path / "rgba.png"), str(jxc), "--model", workdir]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: {tmp_path / 'rgba.png'} has transparency; only its colour is coded"]
    assert jxc.read_bytes() == codec.encode(rgb, 3)
    # A failing run prints its error alone.
    assert cli_run(["compress", str(tmp_path / "rgba.png"), str(tmp_path / "no" / "x.jxc"), "--model", workdir]) == 1
    assert_one_line_error(capsys.readouterr().err, "cannot write")
    # An opaque file gets no note.
    assert cli_run(["compress", str(files["dir"] / "photo.png"), str(tmp_path / "rgb.jxc"), "--model", workdir]) == 0
    assert capsys.readouterr().err == ""


def test_decompress_writes_the_lossless_format_of_the_output_ending(codec, workdir, files, stream, tmp_path, capsys):
    want = codec.decode(stream[0])
    for name in ("a.png", "a.tif", "a.webp", "a.bmp", "a.ppm", "no_ending"):
        out = tmp_path / name
        assert cli_run(["decompress", str(files["dir"] / "photo.jxc"), str(out), "--model", workdir]) == 0
        with Image.open(out) as im:
            assert im.format == {"a.tif": "TIFF", "a.webp": "WEBP", "a.bmp": "BMP", "a.ppm": "PPM"}.get(name, "PNG")
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want, err_msg=name)
    capsys.readouterr()


def test_the_progress_bar_starts_afresh_for_each_search(monkeypatch):
    """A hyperprior's encoder runs two searches of different lengths (the hyper-latent's, then
    the latent's): each gets a bar of its own length instead of one bar running past its total."""
    import io

    from jaxcodec import cli
    from jaxcodec.codecs import refinement

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with cli._refinement_bar():
        report = refinement.progress()
        for steps in (6, 3, 3):
            for done in range(1, steps + 1):
                report(done, steps)
    shown = terminal.getvalue()
    assert shown.count("0/6 [") == 1 and shown.count("0/3 [") == 2  # one bar a search, each of its own length
    assert shown.endswith("\r")  # the last bar is cleared


def test_refinement_shows_a_progress_bar_on_a_terminal_only(codec, workdir, files, tmp_path, monkeypatch, capsys):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    args = ["compress", str(files["dir"] / "photo.png"), str(tmp_path / "a.jxc"), "--model", workdir, "--refine", "4"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli_run(args) == 0
    shown = terminal.getvalue()
    assert "refining the encoding" in shown and "/4 [" in shown
    assert shown.endswith("\r")  # the bar is cleared, not left behind
    monkeypatch.undo()
    capsys.readouterr()
    args[2] = str(tmp_path / "b.jxc")
    assert cli_run(args) == 0
    assert capsys.readouterr().err == ""  # not a terminal: no bar
    assert (tmp_path / "a.jxc").read_bytes() == (tmp_path / "b.jxc").read_bytes()


def test_output_that_is_the_input_is_refused_and_the_input_kept(workdir, files, stream, tmp_path, capsys):
    """compress/decompress onto their own input (the same path, another spelling of it, a
    link to it) is one error line, and the input is untouched."""
    photo = tmp_path / "photo.png"
    photo.write_bytes((files["dir"] / "photo.png").read_bytes())
    stream_file = tmp_path / "photo.jxc.png"  # a stream whose name ends like an image
    stream_file.write_bytes(stream[0])
    (tmp_path / "link.png").symlink_to(photo)
    original = photo.read_bytes()
    cases = [
        ["compress", str(photo), str(photo), "--model", workdir],
        ["compress", str(photo), str(tmp_path / "." / "photo.png"), "--model", workdir],
        ["compress", str(photo), str(tmp_path / "link.png"), "--model", workdir],
        ["decompress", str(stream_file), str(stream_file), "--model", workdir],
    ]
    for args in cases:
        assert cli_run(args) == 1, args
        captured = capsys.readouterr()
        assert captured.out == ""
        assert_one_line_error(captured.err, "is the input file itself")
    assert photo.read_bytes() == original and stream_file.read_bytes() == stream[0]
    assert (tmp_path / "link.png").is_symlink()


def _forged(codec, height: int, width: int) -> bytes:
    """A stream of ``codec``'s model whose CRC is right and whose header claims
    ``height`` x ``width`` pixels over 136 bytes of payload."""
    shape = (-(-height // codec.downsampling), -(-width // codec.downsampling), codec.latent_channels)
    header = container.Header(model=codec.name, table_hash=codec.table_hash, height=height, width=width,
                              channels=3, latent_shape=shape, quality=codec.quality)
    return container.pack(header, bytes(range(136)))


def test_forged_headers_are_refused_by_decompress_and_info(tmp_path, capsys):
    """A 193-byte stream claiming 23168x23168 pixels (the pixel limit) or 16000x8000 (its
    136-byte payload cannot hold the latent), with a valid CRC: one error line, fast."""
    codec = zoo.get_codec("bmshj2017-factorized-q5")
    for (height, width), message in (((23168, 23168), "more than the limit of 134.2 megapixels"),
                                     ((16000, 8000), "need at least 3231603 payload bytes")):
        path = tmp_path / f"forged-{height}.jxc"
        path.write_bytes(_forged(codec, height, width))
        for args in (["decompress", str(path), str(tmp_path / "out.png")], ["info", str(path)]):
            assert cli_run(args) == 1, args
            captured = capsys.readouterr()
            assert captured.out == ""
            assert_one_line_error(captured.err, message)
    assert not (tmp_path / "out.png").exists()
    path = tmp_path / "forged-23168.jxc"
    assert cli_run(["info", str(path), "--max-pixels", str(23168 * 23168)]) == 1
    assert_one_line_error(capsys.readouterr().err, "need at least")


def test_max_pixels_and_max_memory_options(codec, workdir, files, stream, tmp_path, capsys):
    photo, out = files["dir"] / "photo.png", tmp_path / "photo.jxc"
    assert cli_run(["compress", str(photo), str(out), "--model", workdir, "--max-pixels", "3149"]) == 1
    assert_one_line_error(capsys.readouterr().err, "declares 70x45 pixels", "--max-pixels")
    assert cli_run(["decompress", str(files["dir"] / "photo.jxc"), str(tmp_path / "d.png"), "--model", workdir,
                    "--max-pixels", "3149"]) == 1
    assert_one_line_error(capsys.readouterr().err, "declares 70x45 pixels")
    for bad, message in (("--max-memory=lots", "a memory size must look like"), ("--max-pixels=0", "at least 1")):
        assert cli_run(["compress", str(photo), str(out), "--model", workdir, bad]) == 1
        assert_one_line_error(capsys.readouterr().err, message)
    assert sorted(os.listdir(tmp_path)) == []
    # A budget for windows of 16x16 pixels codes the 45x70 photo in 12 tiles: the same stream.
    assert cli_run(["compress", str(photo), str(out), "--model", workdir, "--max-pixels", "3150",
                    "--max-memory", str(codec.bytes_per_pixel * (16 * (1 + 2 * codec.halo)) ** 2)]) == 0
    capsys.readouterr()
    assert out.read_bytes() == stream[0]


def test_running_out_of_memory_is_one_line_naming_what_to_lower(files, monkeypatch, capsys):
    from jaxcodec import api

    def exhausted(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 32487981056 bytes.")

    monkeypatch.setattr(api, "compress", exhausted)
    photo = str(files["dir"] / "photo.png")
    assert cli_run(["compress", photo, str(files["dir"] / "never.jxc")]) == 1
    assert_one_line_error(capsys.readouterr().err, f"out of memory while coding {photo}; lower --max-memory")
    monkeypatch.setattr(api, "compress", lambda *a, **k: [0] * (1 << 62))
    assert cli_run(["compress", photo, str(files["dir"] / "never.jxc")]) == 1
    assert_one_line_error(capsys.readouterr().err, "out of memory")
    assert not (files["dir"] / "never.jxc").exists()
    monkeypatch.setattr(api, "compress", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug stays a traceback
        cli_run(["compress", photo, str(files["dir"] / "never.jxc")])
