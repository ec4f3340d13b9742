"""The HTTP application: routes, JSON errors and one log line per request (Starlette).

    GET  /                 the page (static HTML, CSS and JavaScript shipped in the package)
    GET  /healthz          200 {"status": "ok"} once the models are loaded; 503 before
    GET  /v1/models        the models, their qualities and a line each; the upload limits
    POST /v1/compress      ?model=NAME&quality=Q, form field ``file`` (an image) -> the stream
    POST /v1/decompress    form field ``file`` (a stream) -> image/png
    POST /v1/compare       ?model=NAME&quality=Q[&images=1], ``file`` -> JSON figures
    POST /v1/digit         ?bits=B, ``file`` (a 28×28 digit) -> every digit model's code

Every refusal is ``{"error": "<one line>"}`` with a 4xx status (503 when busy): a body
that is not an image or a damaged stream is 400, an unknown model 404, a bad quality or a
wrong size for the model 422, a body over the limit or an image that declares too many
pixels 413 (both before the body is decoded), a stalled body 408.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import traceback
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxcodec.errors import JaxcodecError, one_line
from jaxcodec.serve import sizes
from jaxcodec.serve.errors import RequestError, UnsupportedMedia, Unprocessable, from_library
from jaxcodec.serve.limits import BodyLimit, InFlightLimit
from jaxcodec.serve.service import STATIC_DIR, Service, describe_compiles

log = logging.getLogger("jaxcodec.serve")


def error_response(error: RequestError) -> JSONResponse:
    """``{"error": ...}`` with the error's status and headers."""
    return JSONResponse({"error": str(error)}, status_code=error.status, headers=error.headers)


def _note(request: Request, text: str) -> None:
    """Adds ``text`` to the request's log line."""
    request.state.log = f"{getattr(request.state, 'log', '')} {text}".strip()


async def read_file(request: Request, what: str) -> bytes:
    """The bytes of the form field ``file`` of a ``multipart/form-data`` body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMedia(f"send the {what} as multipart/form-data in a field named 'file'")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except HTTPException as error:  # python-multipart's complaints, as Starlette reports them
        raise RequestError(f"malformed multipart body: {error.detail}") from None
    except ClientDisconnect:  # nobody to answer; the log line says what happened
        raise RequestError("client closed the connection before sending the whole body") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError(f"no {what} in the form field 'file'")
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise RequestError(f"the {what} is empty")
    return data


def _format(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if math.isfinite(value) else "inf"


def _flag(text: str | None, name: str) -> bool:
    if text in (None, "", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise Unprocessable(f"{name} must be 0 or 1, got {text!r}")


def build_routes(service: Service) -> list[Any]:
    """The routes over ``service``."""
    config = service.config

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        if service.status == "ok":
            return JSONResponse({"status": "ok"})
        body = {"status": service.status} | ({"error": service.error} if service.error else {})
        return JSONResponse(body, status_code=503)

    async def models(request: Request) -> Response:
        body = service.ready().listing()
        body["limits"] = {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels}
        return JSONResponse(body)

    async def image_upload(request: Request, shape: tuple[int, ...] | None = None, name: str = "") -> tuple[bytes, str]:
        """The uploaded image file and its declared size, refused (413) above the pixel limit
        and (422) when it is not ``shape``, the size a digit model takes."""
        data = await read_file(request, "image")
        width, height = sizes.image_size(data)
        sizes.check_pixels(width, height, config.max_pixels, "image")
        if shape is not None and (height, width) != tuple(shape[:2]):
            raise Unprocessable(f"{name} codes {shape[1]}x{shape[0]} digits only, got a {width}x{height} image")
        return data, f"{width}x{height}"

    async def compress(request: Request) -> Response:
        entry = service.entry(request.query_params.get("model"), ("photo", "digit", "standard"))
        quality = service.quality(entry, request.query_params.get("quality"))
        data, size = await image_upload(request, entry.image_shape, entry.name)
        _note(request, f"model={entry.name} quality={quality} image={size}")
        coded, compiles = await service.pool.run(service.compress, entry, quality, data)
        _note(request, f"compiles={describe_compiles(compiles)}")
        h, w = coded.decoded.shape[:2]
        ending = "jxc" if entry.kind != "standard" else {"jpegxl": "jxl"}.get(entry.name, entry.name)
        headers = {
            "X-Model": entry.name, "X-Quality": str(quality), "X-Width": str(w), "X-Height": str(h),
            "X-Bpp": _format(coded.bpp, 6), "X-Psnr": _format(coded.psnr, 4), "X-Ms-Ssim": _format(coded.ms_ssim, 6),
            "X-Compiles": str(len(compiles)),
            "Content-Disposition": f'attachment; filename="compressed.{ending}"',
        }
        return Response(coded.data, media_type="application/octet-stream", headers=headers)

    async def decompress(request: Request) -> Response:
        service.ready()
        data = await read_file(request, "stream")
        width, height = sizes.stream_size(data)
        sizes.check_pixels(width, height, config.max_pixels, "stream")
        _note(request, f"stream={len(data)}B image={width}x{height}")
        (image, png), compiles = await service.pool.run(service.decompress, data)
        _note(request, f"compiles={describe_compiles(compiles)}")
        headers = {"X-Width": str(image.shape[1]), "X-Height": str(image.shape[0]),
                   "X-Channels": str(image.shape[2]), "X-Compiles": str(len(compiles)),
                   "Content-Disposition": 'inline; filename="decoded.png"'}
        return Response(png, media_type="image/png", headers=headers)

    async def compare(request: Request) -> Response:
        entry = service.entry(request.query_params.get("model"), ("photo",))
        quality = service.quality(entry, request.query_params.get("quality"))
        images = _flag(request.query_params.get("images"), "images")
        data, size = await image_upload(request)
        _note(request, f"model={entry.name} quality={quality} image={size}")
        body, compiles = await service.pool.run(service.compare, entry, quality, data, images)
        _note(request, f"compiles={describe_compiles(compiles)}")
        return JSONResponse(body, headers={"X-Compiles": str(len(compiles))})

    async def digit(request: Request) -> Response:
        service.ready()
        text = request.query_params.get("bits") or "8"
        try:
            bits = int(text)
        except ValueError:
            raise Unprocessable(f"bits must be a whole number, got {text!r}") from None
        if not 1 <= bits <= 16:
            raise Unprocessable(f"bits must be in 1..16, got {bits}")
        digit_models = service.ready().of_kind("digit")
        shape = digit_models[0].image_shape if digit_models else None
        data, size = await image_upload(request, shape, "the digit models")
        _note(request, f"digit bits={bits} image={size}")
        body, compiles = await service.pool.run(service.digits, bits, data)
        _note(request, f"compiles={describe_compiles(compiles)}")
        return JSONResponse(body, headers={"X-Compiles": str(len(compiles))})

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/compress", compress, methods=["POST"]),
        Route("/v1/decompress", decompress, methods=["POST"]),
        Route("/v1/compare", compare, methods=["POST"]),
        Route("/v1/digit", digit, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


async def _library_error(request: Request, error: Exception) -> Response:
    return error_response(from_library(error))  # type: ignore[arg-type]


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {404: f"no such path: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(error.status_code, error.detail)
    return JSONResponse({"error": one_line(message)}, status_code=error.status_code, headers=error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error("internal error on %s %s:\n%s", request.method, request.url.path, traceback.format_exc())
    return JSONResponse({"error": f"internal error: {one_line(error)}"}, status_code=500)


class RequestLog:
    """ASGI middleware: one line per request on the ``jaxcodec.serve`` logger: client,
    method and path, status, response bytes, milliseconds, and what the route noted
    (model, quality, image size, compilations)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, sent = 0, 0

        async def logged_send(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        scope.setdefault("state", {})
        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            note = scope["state"].get("log", "")
            log.info("%s \"%s %s\" %d %dB %.0fms%s", client[0], scope["method"], path, status or 500, sent,
                     1000 * (time.perf_counter() - start), f" {note}" if note else "")


def create_app(service: Service) -> Any:
    """The ASGI application over ``service``; when it starts (its lifespan) it loads the
    models in the background unless they are loaded already."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if service.status == "loading":
            service.start_loading()
        yield
        service.close()

    app = Starlette(
        routes=build_routes(service),
        exception_handlers={JaxcodecError: _library_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.service = service
    limited = BodyLimit(app, service.config.max_upload_bytes, service.config.body_timeout)
    return RequestLog(InFlightLimit(limited, service.config.max_requests))
