"""Train-state checkpoints: a thin wrapper around Orbax's ``CheckpointManager``.

Each checkpoint ``<dir>/<step>/`` holds two items:

* ``state`` — the train-state pytree (``ocp.args.StandardSave``), restored into an
  abstract state whose ``jax.ShapeDtypeStruct`` leaves carry the target shardings, so
  a checkpoint written on 8 devices restores on 1 and the other way round;
* ``meta`` — a small JSON dict the engine needs to resume (e.g. whether the task's
  pre-training already ran).

Orbax writes each step to a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoint intact (the next run deletes
the half-written ``*.orbax-checkpoint-tmp-*`` folder when it opens the directory, which
is why the engine opens it only while it holds the workdir's lock,
:mod:`jaxcodec.train.workdir`: another run's folders in progress would look the same); saves
run in a background thread once the arrays are copied to host memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

import orbax.checkpoint as ocp

from jaxcodec.errors import ModelError

_ITEMS = ("state", "meta")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences Orbax's warning that a read-only manager is read-only."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class Checkpointer:
    """Saves and restores ``(state, meta)`` pairs by step number in ``directory``.

    Args:
      directory: folder of the checkpoints (created unless ``read_only``).
      max_to_keep: number of most recent checkpoints kept (None keeps all).
      save_every: :meth:`save` without ``force`` only writes steps that are
        multiples of this.
      read_only: open an existing folder without creating or deleting anything
        (e.g. shipped weights inside an installed package).
    """

    def __init__(
        self,
        directory: str,
        *,
        max_to_keep: int | None = None,
        save_every: int = 1,
        read_only: bool = False,
    ):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=0 if read_only else max(int(save_every), 1),
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,  # half-written steps of a killed run
        )
        with _quiet() if read_only else contextlib.nullcontext():
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of every complete checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False) -> bool:
        """Saves ``state`` and ``meta`` as ``step``; returns whether a save was started.

        Without ``force`` only multiples of ``save_every`` are written. The call
        returns once the arrays are copied off the devices, so the caller may then
        donate ``state`` to the next step.
        """
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        return self._manager.save(int(step), args=args, force=force)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restores ``(state, meta)`` of ``step`` (default: the latest).

        ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with shardings
        (e.g. from ``jax.eval_shape``) giving the structure, dtypes and placement.
        """
        if step is None:
            step = self.latest_step()
        if step is None:
            raise ModelError(f"no checkpoint in {self.directory}")
        if step not in self._manager.all_steps():
            raise ModelError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        try:
            restored = self._manager.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(
                f"checkpoint {step} in {self.directory} does not match the model: {first_line}"
            ) from e
        return restored.state, dict(restored.meta or {})

    def wait(self) -> None:
        """Blocks until background saves have finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for background saves and releases the manager's resources."""
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
