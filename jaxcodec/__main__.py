"""Entry point of ``python -m jaxcodec`` (see :mod:`jaxcodec.cli`)."""

import sys

from jaxcodec.cli import run

if __name__ == "__main__":
    sys.exit(run())
