"""The command line's rate targets: --max-bytes, --bpp, --psnr."""

import numpy as np
from PIL import Image

from jaxcodec import data
from jaxcodec.cli import run as cli_run


def test_compress_to_a_byte_budget_and_the_impossible_one(tmp_path, capsys):
    photo = np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:160, :240])
    Image.fromarray(photo).save(tmp_path / "in.png")
    assert cli_run(["compress", str(tmp_path / "in.png"), str(tmp_path / "out.jpg.bin"), "--model", "jpeg",
                    "--max-bytes", "4000"]) == 0
    assert 0 < (tmp_path / "out.jpg.bin").stat().st_size <= 4000
    capsys.readouterr()
    assert cli_run(["compress", str(tmp_path / "in.png"), str(tmp_path / "tiny.bin"), "--model", "jpeg",
                    "--max-bytes", "50"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "smallest stream for this image has" in err[0]
    assert not (tmp_path / "tiny.bin").exists()
    assert cli_run(["compress", str(tmp_path / "in.png"), str(tmp_path / "b.bin"), "--model", "webp",
                    "--bpp", "0.5"]) == 0
    size = (tmp_path / "b.bin").stat().st_size
    assert abs(size * 8 / (160 * 240) - 0.5) < 0.15
