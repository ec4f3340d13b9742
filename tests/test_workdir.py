"""One training run per workdir, and logs cut back to the resumed step (jaxcodec.train.workdir)."""

import json
import os
import struct
import subprocess
import sys

import pytest

from jaxcodec.train import workdir
from jaxcodec.train.summaries import EventWriter

HOLD = """
import sys
from jaxcodec.train import workdir
from jaxcodec.errors import JaxcodecError
try:
    with workdir.lock(sys.argv[1]):
        print("held")
except JaxcodecError as error:
    print(f"error: {error}")
"""


def _try_lock(path) -> str:
    run = subprocess.run([sys.executable, "-c", HOLD, str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with workdir.lock(str(tmp_path)) as path:
        info = json.loads(open(path).read())
        assert info["pid"] == os.getpid() and info["host"]
        line = _try_lock(tmp_path)
        assert line.startswith(f"error: {tmp_path} is in use by another training run (process {os.getpid()} on ")
        assert line.endswith("wait for it to end or choose another --workdir")
        with pytest.raises(workdir.WorkdirBusy):  # also a second holder in the same process
            with workdir.lock(str(tmp_path)):
                pass
    assert _try_lock(tmp_path) == "held"  # released when the block ends


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / workdir.LOCK_FILE).write_text('{"host": "elsewhere", "pid": 999999999, "started": 0}\n')
    assert _try_lock(tmp_path) == "held"
    (tmp_path / workdir.LOCK_FILE).write_text("garbage")
    with workdir.lock(str(tmp_path)) as path:
        assert json.loads(open(path).read())["pid"] == os.getpid()


def test_truncate_metrics_keeps_rows_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / s} for s in (10, 20, 30, 40, 50, 60, 70, 80)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 90, "lo')  # cut by a kill
    assert workdir.truncate_metrics(str(path), 50) == 4
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:5]
    assert workdir.truncate_metrics(str(path), 50) == 0
    assert workdir.truncate_metrics(str(tmp_path / "missing.jsonl"), 5) == 0
    assert not (tmp_path / "missing.jsonl").exists()


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        value |= (data[i] & 0x7F) << shift
        shift, i = shift + 7, i + 1
        if not data[i - 1] & 0x80:
            return value, i


def _event_steps(path) -> list[int]:
    """Steps of the events in a TensorBoard file (TFRecord framing; an ``Event`` is a
    protocol buffer whose step is field 2, a varint, absent when 0)."""
    data, pos, steps = open(path, "rb").read(), 0, []
    while pos < len(data):
        (size,) = struct.unpack_from("<Q", data, pos)
        record, i, step = data[pos + 12 : pos + 12 + size], 0, 0
        while i < len(record):
            key, i = _varint(record, i)
            wire = key & 7
            if wire == 0:
                value, i = _varint(record, i)
                step = value if key >> 3 == 2 else step
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                length, i = _varint(record, i)
                i += length
        steps.append(step)
        pos += 12 + size + 4
    return steps


def test_truncate_events_drops_later_steps_from_every_file(tmp_path):
    first = EventWriter(str(tmp_path))
    for step in (100, 200, 300, 400):
        first.write_scalars(step, {"loss": 1.0, "psnr": 20.0})
    first.close()
    with open(first.path, "ab") as f:
        f.write(b"\x10\x00\x00")  # a record cut short by a kill
    assert workdir.truncate_events(str(tmp_path), 250) == 3
    assert _event_steps(first.path) == [0, 100, 200]
    second = EventWriter(str(tmp_path))
    second.write_scalars(300, {"loss": 0.5})
    second.close()
    assert workdir.truncate_events(str(tmp_path), 300) == 0
    assert workdir.truncate_events(str(tmp_path), 100) == 2
    assert _event_steps(first.path) == [0, 100] and _event_steps(second.path) == [0]
