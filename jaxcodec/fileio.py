"""Writing files so that nothing half-written is ever left behind.

Every file the project writes for a user (streams, decoded images, reports,
tables) goes to a temporary file in the destination's folder first and is then
renamed over the destination with :func:`os.replace`, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from jaxcodec.errors import JaxcodecError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def first_missing(path: str | os.PathLike) -> str | None:
    """The outermost folder of the absolute ``path`` that does not exist yet (``path``
    itself, or one of its parents), or None when ``path`` exists: what a failed run
    removes again so that it leaves no empty folder behind."""
    path, missing = os.fspath(path), None
    while not os.path.exists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def make_dirs(path: str | os.PathLike) -> None:
    """``os.makedirs(path, exist_ok=True)``, failing with a one-line
    :class:`~jaxcodec.errors.JaxcodecError` (a read-only place, a file in the way)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise JaxcodecError(f"cannot create folder {os.fspath(path)}: {e.strerror or e}") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. A path
    that cannot be written (a directory, a missing folder) raises
    :class:`~jaxcodec.errors.JaxcodecError`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise JaxcodecError(f"cannot write {path}: it is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as e:
        raise JaxcodecError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
            os.replace(tmp, path)
        except OSError as e:
            raise JaxcodecError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:  # e.g. a full disk
            raise JaxcodecError(f"cannot write {path}: {e.strerror or e}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, prefix: str = ".tmp-") -> Iterator[str]:
    """Yields a new temporary folder beside ``path``; on success it replaces ``path`` (an
    existing folder there is removed first), on any exception it is removed and ``path``
    is left as it was. For outputs that are folders (an exported model, a photo set)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    except OSError as e:
        raise JaxcodecError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
