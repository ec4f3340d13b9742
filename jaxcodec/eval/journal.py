"""A journal of finished measurements, so that an interrupted evaluation resumes.

``eval.py --resume`` appends one JSON line to ``OUT/measurements.jsonl`` after each image is
encoded, decoded and measured at one quality: the codec's name and description, the
quality, a digest of the image's pixels, the figures and the seconds spent (and, for the
images a picture of the reconstructions shows, the stream, so that the picture can be
drawn again by decoding it). A run started again with the same ``--out`` looks each
measurement up before making it: the same codec (as named on the command line, and by its
own name, description and encoder settings), quality and pixels give the recorded figures,
anything else is measured afresh. Two workdirs at the same step share a model's name and
description, hence the name given; the encoder settings are those no name tells: a refining
encoder (``NAME+refine=N:K``) keeps its model's name and description but writes other
streams, so its search (steps, step size, hyper-latent steps) is part of what a record is
found by. A record without these, written before they were recorded, is measured again.
The codecs are deterministic (a refining encoder's search included: its seed is fixed), so a
resumed evaluation reports what an uninterrupted one would, timings aside.

Each line is flushed as it is written, so a process that is killed loses nothing it
measured (it is not synced to disk one by one: a fast codec measures a small image in about
the time a sync takes; what a power cut loses is measured again). A line cut short by a
crash is ignored when the journal is read again (that measurement is made again), and the
next line starts on a line of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import numpy as np

JOURNAL_NAME = "measurements.jsonl"


def image_digest(image: np.ndarray) -> str:
    """A digest of an image's shape, type and pixels (BLAKE2b, 128 bits, hex)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def encoder_settings(codec: Any) -> str:
    """What a codec's encoder does beyond its model: ``"plain"``, or its refining search
    (:mod:`jaxcodec.codecs.refinement`, :mod:`jaxcodec.codecs.hyper_refinement`)."""
    parts = []
    steps = int(getattr(codec, "refine_steps", 0) or 0)
    if steps:
        parts.append(f"refine_steps={steps} refine_lr={getattr(codec, 'refine_lr', None)!r}")
    hyper = int(getattr(codec, "hyper_steps", 0) or 0)
    if hyper:
        parts.append(f"hyper_steps={hyper}")
    return " ".join(parts) or "plain"


def _quality_key(quality: Any) -> str:
    if isinstance(quality, np.generic):
        quality = quality.item()
    return json.dumps(quality)


class Journal:
    """The measurements recorded in one journal file, and the file open to record more."""

    def __init__(self, path: str):
        self.path = path
        self._records: dict[tuple[str, str, str, str, str, str], dict[str, Any]] = {}
        self.reused = 0
        torn = False
        if os.path.exists(path):
            with open(path, "rb") as f:
                content = f.read()
            torn = bool(content) and not content.endswith(b"\n")
            for line in content.splitlines():
                try:
                    record = json.loads(line)
                    key = (record["label"], record["codec"], record["description"], record["encoder"],
                           record["quality"], record["image"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash (or without encoder settings): measured again
                self._records[key] = record
        self._torn = torn
        self._file = None  # opened by the first record: a run that records nothing writes nothing

    def __len__(self) -> int:
        return len(self._records)

    def find(self, codec: Any, quality: Any, digest: str, *, stream: bool = False,
             label: str = "") -> dict[str, Any] | None:
        """The record of ``codec`` (named ``label`` on the command line) at ``quality`` on the
        image of ``digest`` (one that kept its stream, if ``stream``), or None. Each record found
        counts in :attr:`reused`."""
        record = self._records.get((label, codec.name, codec.description, encoder_settings(codec),
                                    _quality_key(quality), digest))
        if record is None or (stream and "stream" not in record):
            return None
        self.reused += 1
        return record

    def add(self, codec: Any, quality: Any, digest: str, row: dict[str, float], encode_s: float, decode_s: float,
            stream: bytes | None = None, label: str = "") -> None:
        """Records one measurement (the line flushed to the operating system)."""
        record = {"label": label, "codec": codec.name, "description": codec.description, "encoder": encoder_settings(codec),
                  "quality": _quality_key(quality), "image": digest, "row": row, "encode_s": encode_s, "decode_s": decode_s}
        if stream is not None:
            record["stream"] = base64.b64encode(stream).decode("ascii")
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
            if self._torn:
                self._file.write("\n")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self._records[(label, record["codec"], record["description"], record["encoder"], record["quality"],
                       digest)] = record

    @staticmethod
    def stream(record: dict[str, Any]) -> bytes:
        """The stream a record kept."""
        return base64.b64decode(record["stream"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
