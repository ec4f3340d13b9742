"""Running the application under uvicorn: ``python -m jaxcodec serve``.

One process holds the models once; ``--workers`` threads run the codecs. The socket is
bound before uvicorn starts, so a port in use is one error line. uvicorn's own access log
is replaced by the application's (:class:`jaxcodec.serve.app.RequestLog`); it trusts
``X-Forwarded-For`` from a proxy on the same machine only (uvicorn's default) and closes
idle keep-alive connections after 5 seconds. The application refuses requests beyond
``max_requests`` (a JSON 503); uvicorn refuses connections beyond four times that, idle
ones included, as a backstop (a plain 503).
"""

from __future__ import annotations

import logging
import socket
import sys

from jaxcodec.errors import ConfigError
from jaxcodec.serve.config import ServeConfig

KEEP_ALIVE_SECONDS = 5


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (a ConfigError, one line, when it cannot be had)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def configure_logging() -> None:
    """One line per record on stderr: time, then the message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger("jaxcodec.serve")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def serve(config: ServeConfig) -> None:
    """Serves until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn
    from PIL import Image

    from jaxcodec.serve.app import create_app
    from jaxcodec.serve.catalog import Catalog
    from jaxcodec.serve.service import Service

    Catalog.check_names(config.models)  # a misspelt name fails here, not in the loading thread

    # The server checks every declared size against its own limit first; Pillow's guard
    # must not refuse what the operator allowed.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < config.max_pixels:
        Image.MAX_IMAGE_PIXELS = config.max_pixels
    sock = bind(config.host, config.port)
    configure_logging()
    log = logging.getLogger("jaxcodec.serve")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("jaxcodec serve on http://%s:%d/ (loading models; /healthz says ok when ready)", shown, port)
    if config.public:
        log.info("listening beyond this machine: put it behind a proxy for TLS and header timeouts")
    service = Service(config)
    uv = uvicorn.Config(
        create_app(service), log_level="warning", access_log=False, lifespan="on",
        limit_concurrency=4 * config.max_requests, timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    uvicorn.Server(uv).run(sockets=[sock])
