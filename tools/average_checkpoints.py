r"""Averages a training run's last checkpoints into a new workdir (``jaxcodec.train.averaging``)::

    python tools/average_checkpoints.py WORKDIR OUT              # every checkpoint WORKDIR keeps
    python tools/average_checkpoints.py WORKDIR OUT --last 10
    python tools/average_checkpoints.py WORKDIR OUT --steps 21000,21500,22000

``OUT`` is an ordinary workdir: measure it (``eval.py --codecs OUT``), ship it
(``python -m jaxcodec export OUT NAME``) or anneal it (``train.py --config.init_from=OUT``).
A run keeps ``config.keep_checkpoints`` of them (``--config.keep_checkpoints=40`` keeps more).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxcodec.errors import ConfigError, JaxcodecError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", help="a training workdir")
    parser.add_argument("out", help="the new workdir to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--last", type=int, help="average the newest N checkpoints")
    which.add_argument("--steps", help="average these steps (comma-separated)")
    args = parser.parse_args(argv)
    from jaxcodec.train import averaging

    try:
        steps = None
        if args.steps is not None:
            try:
                steps = [int(s) for s in args.steps.split(",") if s.strip()]
            except ValueError:
                raise ConfigError(f"--steps {args.steps}: not a list of step numbers") from None
        chosen = averaging.average_checkpoints(args.workdir, args.out, steps=steps, last=args.last)
    except JaxcodecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: the mean of steps {', '.join(map(str, chosen))} of {args.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
