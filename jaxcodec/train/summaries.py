"""TensorBoard summaries of a training run: scalars per logged step and the hyperparameters.

Written by tensorboardX's ``SummaryWriter`` (the ``tensorflow.Event`` records in TFRecord
framing that ``tensorboard --logdir WORKDIR`` reads), which needs neither TensorFlow nor
the ``tensorboard`` package at training time. One file per writer, named
``events.out.tfevents.<time>.<host>.<pid>.<n>``; :func:`jaxcodec.train.workdir.truncate_events`
drops what a killed run wrote after its last checkpoint.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
from typing import Any, Mapping

_SERIAL = itertools.count()


def _tensorboardx():
    """tensorboardX's writer, summary record and scalar summary, imported when a writer is
    made: code that never writes events (an accelerator lease, :mod:`jaxcodec.train.lease`)
    runs without the package."""
    from tensorboardX import SummaryWriter
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.summary import scalar

    return SummaryWriter, Summary, scalar


class EventWriter:
    """Appends TensorBoard summaries to a new ``events.out.tfevents.*`` file in ``logdir``."""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        suffix = f".{os.getpid()}.{next(_SERIAL)}"
        summary_writer, self._summary, self._scalar = _tensorboardx()
        self._writer = summary_writer(logdir=logdir, filename_suffix=suffix, flush_secs=60)
        (self.path,) = glob.glob(os.path.join(glob.escape(logdir), f"events.out.tfevents.*{suffix}"))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """One event at ``step`` holding a scalar summary per entry."""
        values = [v for name, value in scalars.items() for v in self._scalar(name, float(value)).value]
        if values:
            self._writer.file_writer.add_summary(self._summary(value=values), global_step=step)

    def write_text(self, step: int, tag: str, text: str) -> None:
        """A markdown text summary (TensorBoard's Text tab, tag ``<tag>/text_summary``)."""
        self._writer.add_text(tag, text, global_step=step)

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        """The flattened hyperparameters as a two-column markdown table (tag ``hparams/text_summary``)."""
        rows = ["| name | value |", "|---|---|"]
        rows += [f"| {k} | {json.dumps(v)} |" for k, v in sorted(hparams.items())]
        self.write_text(0, "hparams", "\n".join(rows))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


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
