"""Entry point of ``python -m jaxcodec`` (see :mod:`jaxcodec.cli`)."""

from jaxcodec.cli import main

if __name__ == "__main__":
    main()
