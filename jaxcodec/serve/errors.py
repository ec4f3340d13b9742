"""The server's refusals: one exception type per HTTP status, each with a one-line message.

Every refusal reaches the client as ``{"error": "<one line>"}`` with its status; the
library's own errors (:mod:`jaxcodec.errors`) map onto them with :func:`from_library`.
"""

from __future__ import annotations

from jaxcodec.errors import BitstreamError, ConfigError, ImageError, JaxcodecError, ModelError, one_line


class RequestError(JaxcodecError):
    """A request the server refuses: bad input (400) unless a subclass says otherwise."""

    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(one_line(message, limit=300))
        self.headers = dict(headers or {})


class BodyTimeout(RequestError):
    """The client stopped sending its body (408)."""

    status = 408


class NotFound(RequestError):
    """An unknown model or path (404)."""

    status = 404


class TooLarge(RequestError):
    """A body over the upload limit, or an image that declares more pixels than allowed (413)."""

    status = 413


class UnsupportedMedia(RequestError):
    """A body that is not ``multipart/form-data`` (415)."""

    status = 415


class Unprocessable(RequestError):
    """A well-formed request the model cannot serve: a bad quality, a wrong image size (422)."""

    status = 422


class Busy(RequestError):
    """Every worker busy and the queue full, or the models still loading (503)."""

    status = 503


def from_library(error: JaxcodecError) -> RequestError:
    """The refusal a library error becomes: unreadable images and damaged streams are bad
    input (400); a stream of a model this server lacks, or a bad setting, is 422."""
    if isinstance(error, RequestError):
        return error
    if isinstance(error, (ImageError, BitstreamError)):
        return RequestError(str(error))
    if isinstance(error, (ModelError, ConfigError)):
        return Unprocessable(str(error))
    return RequestError(str(error))
