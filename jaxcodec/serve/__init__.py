"""``python -m jaxcodec serve``: an HTTP API and an offline page over the shipped models.

The pieces, one concern per module:

* :mod:`~jaxcodec.serve.config`: the server's settings (:class:`ServeConfig`) and their checks;
* :mod:`~jaxcodec.serve.catalog`: which models are offered, their qualities, and the codecs;
* :mod:`~jaxcodec.serve.sizes`: the size an image or a stream declares, read from its header
  (decompression bombs are refused before anything is decoded);
* :mod:`~jaxcodec.serve.limits`: the request body's size and time limits (ASGI middleware);
* :mod:`~jaxcodec.serve.shapes`: shape classes (one compiled program per model and class) and
  the compilations each request triggered;
* :mod:`~jaxcodec.serve.pool`: the worker threads and their bounded queue;
* :mod:`~jaxcodec.serve.work`: what each endpoint computes (compress, decompress, compare,
  digits), with rates and quality metrics;
* :mod:`~jaxcodec.serve.app`: the Starlette application (routes, JSON errors, request log);
* :mod:`~jaxcodec.serve.server`: running it under uvicorn.

The page (``static/``) is plain HTML, CSS and JavaScript shipped in the package: it loads
nothing from elsewhere and works offline.
"""

from jaxcodec.serve.config import ServeConfig

__all__ = ["ServeConfig"]
