"""The settings of ``python -m jaxcodec serve``, checked once when the server starts."""

from __future__ import annotations

import dataclasses
import ipaddress

from jaxcodec.errors import ConfigError

MB = 1 << 20


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What the server offers and how much it accepts.

    Attributes:
      host: address to listen on; localhost unless told otherwise.
      port: TCP port (0: any free port).
      models: names to offer (shipped models or families, standard codecs); empty: every
        shipped family and stand-alone model, and the standard codecs.
      max_upload_bytes: largest request body; a larger one gets 413 before it is read whole.
      max_pixels: largest image (width × height) an upload or a stream may declare; a larger
        one gets 413 before it is decoded.
      workers: threads that run the codecs (each request's work runs on one).
      queue: requests that may wait for a worker; one more gets 503.
      body_timeout: seconds a client may take between two pieces of its request body (408).
      max_shape_classes: compiled shape classes kept before JAX's caches are cleared.
      max_requests: requests handled at once (their bodies being read included); one more
        gets 503.
      warmup: compile the default model for the shipped samples' size and the digit models
        before ``/healthz`` says ok.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = ()
    max_upload_bytes: int = 25 * MB
    max_pixels: int = 40_000_000
    workers: int = 1
    queue: int = 16
    body_timeout: float = 30.0
    max_shape_classes: int = 64
    max_requests: int = 64
    warmup: bool = True

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "workers", "max_shape_classes", "max_requests"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ConfigError(f"queue must be 0 or more, got {self.queue}")
        if not self.body_timeout > 0:
            raise ConfigError(f"body-timeout must be positive, got {self.body_timeout}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"bad host {self.host!r}")

    @property
    def public(self) -> bool:
        """Whether the server listens beyond this machine (any address but a loopback one)."""
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return True


def parse_models(text: str | None) -> tuple[str, ...]:
    """``--models``' comma-separated names as a tuple (empty: the default set)."""
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(set(names)) != len(names):
        raise ConfigError(f"--models names a model twice: {text}")
    return names


def upload_bytes(megabytes: str | float) -> int:
    """``--max-upload-mb``'s value in bytes (a ConfigError, one line, for anything else)."""
    try:
        value = float(megabytes)
    except (TypeError, ValueError):
        raise ConfigError(f"--max-upload-mb must be a number, got {megabytes!r}") from None
    if not value > 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {megabytes!r}")
    return int(value * MB)
