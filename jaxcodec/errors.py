"""The project's own exception types.

Every failure a user can act on (a bad file, a wrong shape, a corrupt bitstream,
an unknown model, a missing dataset, a bad config key) is raised as a subclass of
:class:`JaxcodecError` with a one-line message. The command-line entry points print
that line to stderr and exit with a non-zero status, without a traceback.
"""


class JaxcodecError(Exception):
    """Base class of every error jaxcodec raises on purpose."""

    exit_code = 1


class ImageError(JaxcodecError):
    """An input that is not a readable image, or an image of the wrong shape."""


class BitstreamError(JaxcodecError):
    """A compressed stream that is truncated, corrupted or otherwise undecodable."""


class ModelError(JaxcodecError):
    """An unknown model name, a missing checkpoint, or tables that do not match."""


class DatasetError(JaxcodecError):
    """A dataset spec that cannot be resolved: missing dataset, empty folder, bad file."""


class ConfigError(JaxcodecError):
    """A configuration value or key that is invalid."""


def one_line(error: BaseException, limit: int = 200) -> str:
    """``error``'s message on one line (whitespace runs collapsed), at most ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
