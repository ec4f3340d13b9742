"""What a training run prints: the progress line, its timing and its ETA.

* :class:`Progress` times the loop: steps per second, time left (ETA) and the
  fraction of wall time the host spends outside the jitted step (reading and
  transforming data, copying it to the devices).
* TensorBoard summaries are :mod:`jaxcodec.train.summaries`' job.
* :func:`format_line` builds ``step 120/2000  loss 0.0213  12.3 steps/s  host 4%
  ETA 2m35s``.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Iterator, Mapping

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
