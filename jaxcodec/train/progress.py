"""What a training run reports: the progress line, TensorBoard scalars and a JSON log.

* :class:`Progress` times the loop: steps per second, time left (ETA) and the
  fraction of wall time the host spends outside the jitted step (reading and
  transforming data, copying it to the devices).
* :class:`EventWriter` writes TensorBoard event files (``events.out.tfevents.*``)
  with scalar summaries and a text summary of the hyperparameters. It writes the
  TFRecord/``Event`` protocol-buffer format directly, so it needs neither
  TensorFlow nor the ``tensorboard`` package at training time (``clu.metric_writers``
  imports ``tensorboard``, which is not a dependency of jaxcodec); ``tensorboard
  --logdir WORKDIR`` reads the files.
* :func:`format_line` builds ``step 120/2000  loss 0.0213  12.3 steps/s  host 4%
  ETA 2m35s``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import struct
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

# ---------------------------------------------------------------------------------
# Timing


class Progress:
    """Steps/s, ETA and host-time fraction of a training loop.

    Wrap host work (data, host transforms, host-to-device copies) in
    ``with progress.host():`` and work that is not training (evaluation,
    checkpoints) in ``with progress.paused():``; call :meth:`report` at each log step.

    Steps/s and the host fraction measure training alone (paused time excluded);
    the ETA uses the whole-run average including evaluations and checkpoints. The
    jitted step runs asynchronously, so host time that overlaps device work is still
    counted: the fraction is an upper bound on how much the input pipeline can slow
    training. Whole-run totals start at :meth:`start_totals`, which the engine calls
    once the first step has compiled.
    """

    def __init__(self, num_steps: int, start_step: int, clock: Callable[[], float] = time.perf_counter):
        self.num_steps = num_steps
        self._clock = clock
        self._last_time = clock()
        self._last_step = start_step
        self._host = 0.0  # host seconds in the current interval
        self._paused = 0.0  # paused seconds in the current interval
        self._total_start: float | None = None
        self._total_start_step = start_step
        self._total = {"host": 0.0, "paused": 0.0, "elapsed": 0.0, "steps": 0}

    @contextlib.contextmanager
    def host(self) -> Iterator[None]:
        """Counts the block's time as host (non-step) time."""
        t0 = self._clock()
        try:
            yield
        finally:
            self._host += self._clock() - t0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leaves the block's time out of steps/s and the host fraction."""
        t0 = self._clock()
        try:
            yield
        finally:
            self._paused += self._clock() - t0

    def start_totals(self, step: int) -> None:
        """Starts the whole-run totals at ``step`` (call after compilation)."""
        self._total_start = self._clock()
        self._total_start_step = step
        self._last_time, self._last_step, self._host, self._paused = self._total_start, step, 0.0, 0.0

    def report(self, step: int) -> dict[str, float]:
        """``steps_per_sec``, ``host_fraction`` since the last report, and ``eta_sec``.

        Keys that cannot be measured yet (no step since the last report) are left out.
        """
        now = self._clock()
        wall = now - self._last_time - self._paused
        rate = (step - self._last_step) / wall if wall > 0 and step > self._last_step else math.nan
        out = {}
        if math.isfinite(rate):  # nothing to measure when no step ran since the last report
            out = {"steps_per_sec": rate, "host_fraction": min(self._host / wall, 1.0)}
        if self._total_start is not None:
            t = self._total
            t["host"] += self._host
            t["paused"] += self._paused
            t["elapsed"] = now - self._total_start
            t["steps"] = step - self._total_start_step
        done, elapsed_total = self._total["steps"], self._total["elapsed"]
        avg_rate = done / elapsed_total if done > 0 and elapsed_total > 0 else rate
        if math.isfinite(avg_rate) and avg_rate > 0:
            out["eta_sec"] = (self.num_steps - step) / avg_rate
        self._last_time, self._last_step, self._host, self._paused = now, step, 0.0, 0.0
        return out

    def _train_seconds(self) -> float:
        return self._total["elapsed"] - self._total["paused"]

    @property
    def steps_per_sec(self) -> float:
        """Training steps per second since :meth:`start_totals` (NaN until a step is timed)."""
        wall = self._train_seconds()
        return self._total["steps"] / wall if wall > 0 and self._total["steps"] > 0 else math.nan

    @property
    def host_fraction(self) -> float:
        """Share of training wall time since :meth:`start_totals` spent in :meth:`host` blocks."""
        wall = self._train_seconds()
        return min(self._total["host"] / wall, 1.0) if wall > 0 and self._total["steps"] > 0 else math.nan


def format_duration(seconds: float) -> str:
    """``2m35s``, ``1h04m``, ``12s``; ``?`` for an unknown (infinite) duration."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_value(value: float) -> str:
    """Four significant digits, scientific notation for very small or large values."""
    if value != 0 and math.isfinite(value) and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3e}"
    return f"{value:.4g}"


def format_line(step: int, num_steps: int, metrics: Mapping[str, float], timing: Mapping[str, float]) -> str:
    """The progress line: step, metrics (``loss`` first), steps/s, host share, ETA."""
    names = sorted(metrics, key=lambda k: (k != "loss", k))
    parts = [f"step {step}/{num_steps}"]
    parts += [f"{k} {format_value(float(metrics[k]))}" for k in names]
    if "steps_per_sec" in timing:
        parts.append(f"{timing['steps_per_sec']:.3g} steps/s")
    if "host_fraction" in timing:
        parts.append(f"host {100 * timing['host_fraction']:.0f}%")
    if "eta_sec" in timing:
        parts.append(f"ETA {format_duration(timing['eta_sec'])}")
    return "  ".join(parts)


# ---------------------------------------------------------------------------------
# TensorBoard event files (TFRecord framing of tensorflow.Event protocol buffers)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord files (RFC 3720 B.4)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _scalar_value(tag: str, value: float) -> bytes:
    # Summary.Value: tag = 1, simple_value = 2 (float, fixed32).
    return _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)


def _text_value(tag: str, text: str) -> bytes:
    # Summary.Value: tag = 1, tensor = 8, metadata = 9 with plugin_data.plugin_name = "text".
    tensor = _varint(1 << 3) + _varint(7) + _field_bytes(2, b"") + _field_bytes(8, text.encode())
    metadata = _field_bytes(1, _field_bytes(1, b"text"))
    return _field_bytes(1, tag.encode()) + _field_bytes(8, tensor) + _field_bytes(9, metadata)


def _event(step: int, wall_time: float, *, summary_values: Sequence[bytes] = (), file_version: str = "") -> bytes:
    # Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5.
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
    if file_version:
        out += _field_bytes(3, file_version.encode())
    if summary_values:
        out += _field_bytes(5, b"".join(_field_bytes(1, v) for v in summary_values))
    return out


class EventWriter:
    """Appends TensorBoard summaries to a new ``events.out.tfevents.*`` file in ``logdir``."""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "wb")
        self._write(_event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(record + struct.pack("<I", _masked_crc(record)))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """One scalar summary per entry, all at ``step``."""
        values = [_scalar_value(k, float(v)) for k, v in scalars.items()]
        if values:
            self._write(_event(step, time.time(), summary_values=values))

    def write_text(self, step: int, tag: str, text: str) -> None:
        """A markdown text summary (TensorBoard's Text tab)."""
        self._write(_event(step, time.time(), summary_values=[_text_value(tag, text)]))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        """The flattened hyperparameters as a two-column markdown table (tag ``hparams``)."""
        rows = ["| name | value |", "|---|---|"]
        rows += [f"| {k} | {json.dumps(v)} |" for k, v in sorted(hparams.items())]
        self.write_text(0, "hparams", "\n".join(rows))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"name": "x"}}`` → ``{"model.name": "x"}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
