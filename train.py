"""Trains a jaxcodec model: ``python train.py --config configs/NAME.py --workdir DIR``.

Override any config field from the command line, e.g. ``--config.num_steps=100``.
Running again with the same workdir resumes from its latest checkpoint. This file
only parses flags; the logic lives in :mod:`jaxcodec.train.engine`.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcodec.errors import JaxcodecError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and codec tables.")
config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep Orbax's INFO lines out of the progress output
    if "tensorflow" in sys.modules:
        # TensorFlow (used by the data pipeline) must not grab GPU memory JAX needs.
        sys.modules["tensorflow"].config.set_visible_devices([], "GPU")
    from jaxcodec.runtime import allocator
    from jaxcodec.train import engine  # imported after flag parsing, so flag errors come fast

    try:
        allocator.configure()  # before JAX starts its threads (see jaxcodec.runtime.allocator)
        engine.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except JaxcodecError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def _lines(e: BaseException) -> list[str]:
    while isinstance(e, BaseException) and e.args:  # KeyError wrapped in AttributeError
        e = e.args[0]
    return [line.strip() for line in str(e).strip().splitlines() if line.strip()] or [""]


def parse_flags(argv):
    """absl's flag parsing, with one-line errors for bad flags and unknown config fields."""
    try:
        rest = FLAGS(argv)
        FLAGS.config.keys()  # a config file that failed to load raises here
    except flags.Error as e:
        _fail("; ".join(_lines(e)))
    except (KeyError, AttributeError) as e:
        lines = _lines(e)
        key = lines[0].strip("'\"")
        names = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
        flag = next((n for n in names if key in n.split(".")[1:]), f"config.{key}")
        hint = f" ({lines[1][0].lower()}{lines[1][1:]})" if len(lines) > 1 else ""
        _fail(f"unknown config field {flag}{hint}")
    except OSError as e:
        _fail(f"cannot load config file {FLAGS['config'].config_filename}: {_lines(e.__cause__ or e)[-1]}")
    return rest


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
