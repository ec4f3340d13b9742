"""One training run per workdir, and logs that never run ahead of the checkpoint.

Two ``train.py`` processes on one workdir overwrite each other's checkpoints (each
Orbax manager deletes the other's half-written ``*.orbax-checkpoint-tmp`` folders as
stale), write every log row twice and leave two TensorBoard event files. So a run holds
an exclusive lock on ``WORKDIR/train.lock`` (:func:`lock`, ``fcntl.flock``) from before it
opens its checkpoints until it ends; a second run on the workdir stops at once with one
line naming the holder (host, process id, start time, which the holder writes into the
file). The operating system drops the lock when its process ends in any way, so a lock
left by a killed run is no obstacle: the file stays, unlocked, and the next run takes it.
(``flock`` locks are per host on some network file systems; the host in the file says
where a run holds it.)

A run killed after its last checkpoint has logged steps that its successor will train
again: resumed at step 50 after a kill at 80, ``metrics.jsonl`` would read 70, 80, 60, 70,
80, ... So a resumed run first cuts ``metrics.jsonl`` (:func:`truncate_metrics`) and the
TensorBoard event files (:func:`truncate_events`) back to the checkpoint's step: no row
is written twice and steps never go backwards.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import socket
import struct
import time
from typing import Iterator

from jaxcodec.errors import JaxcodecError
from jaxcodec.fileio import atomic_write_bytes

__all__ = ["LOCK_FILE", "WorkdirBusy", "lock", "truncate_events", "truncate_metrics"]

LOCK_FILE = "train.lock"


class WorkdirBusy(JaxcodecError):
    """Another run holds the workdir's lock."""


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            info = json.load(f)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"process {int(info['pid'])} on {info['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[str]:
    """Holds ``workdir``'s exclusive training lock for the block (yields the lock file's path).

    Raises:
      WorkdirBusy: another run holds it (one line naming that run).
      JaxcodecError: the lock file cannot be created.
    """
    path = os.path.join(workdir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise JaxcodecError(f"cannot create the lock file {path}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JaxcodecError(f"cannot lock {path}: {e.strerror or e}") from None
            raise WorkdirBusy(f"{workdir} is in use by another training run ({_holder(path)}); "
                              "wait for it to end or choose another --workdir") from None
        record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def truncate_metrics(path: str, step: int) -> int:
    """Keeps the rows of a ``metrics.jsonl`` whose ``step`` is at most ``step`` (and drops a
    row a killed run left half-written); returns how many rows were dropped. The file is
    replaced atomically; a missing file is left missing."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
            if int(row["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
    return dropped


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _event_step(record: bytes) -> int:
    """The ``step`` field (2, varint) of a serialised ``tensorflow.Event``; 0 without one."""
    pos = 0
    while pos < len(record):
        key, pos = _read_varint(record, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(record, pos)
            if field == 2:
                return value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _read_varint(record, pos)
            pos += size
        else:
            raise ValueError(f"unknown wire type {wire}")
    return 0


def truncate_events(logdir: str, step: int) -> int:
    """Drops every event after ``step`` from the TensorBoard files in ``logdir`` (records:
    length u64, its masked CRC, the ``Event``, its masked CRC; TFRecord's framing), each
    file rewritten atomically. A record cut short by a kill, and what follows it, goes too.
    Returns how many events were dropped."""
    dropped = 0
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos, kept, count = 0, [], 0
        while pos < len(data):
            if pos + 12 > len(data):
                break
            (size,) = struct.unpack_from("<Q", data, pos)
            end = pos + 12 + size + 4
            if end > len(data):
                break
            try:
                if _event_step(data[pos + 12 : pos + 12 + size]) <= step:
                    kept.append(data[pos:end])
            except (ValueError, IndexError):
                pass
            pos, count = end, count + 1
        if len(kept) < count or pos < len(data):
            atomic_write_bytes(path, b"".join(kept))
            dropped += count - len(kept) + (pos < len(data))
    return dropped
