"""The HTTP API of ``python -m jaxcodec serve`` (jaxcodec.serve), against the real
application in-process: every endpoint, every class of refused input, the size and pixel
limits, the bounded queue, 20 simultaneous requests and the shape classes.

The server offers the photo ladder, the two MNIST autoencoders and three standard codecs
(the GAN's latent recovery takes seconds per digit and is left out); images are small.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import itertools
import json
import logging
import struct
import threading
import time
import zlib

import httpx
import imagecodecs
import numpy as np
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import jaxcodec
from jaxcodec.codecs import standard as classical
from jaxcodec.codecs import registry
from jaxcodec.codecs import container
from jaxcodec.eval import metrics
from jaxcodec.errors import ConfigError
from jaxcodec.serve import app as app_lib
from jaxcodec.serve import config as config_lib
from jaxcodec.serve import shapes, sizes
from jaxcodec.serve.catalog import Catalog, default_names
from jaxcodec.serve.config import ServeConfig
from jaxcodec.serve.service import Service

MODELS = ("bmshj2017-factorized", "mnist-conv-ae", "mnist-deep-ae", "jpeg", "webp", "avif")
PHOTO = skimage.data.astronaut()[100:148, 180:244]  # 48x64 RGB, one shape class (48x64)


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def from_data_url(url: str) -> np.ndarray:
    """The image of a ``data:image/png;base64,...`` URL."""
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def digit() -> np.ndarray:
    """A 28x28 grey 'one'."""
    d = np.zeros((28, 28), np.uint8)
    d[5:23, 12:16] = 255
    return d


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(MODELS)


def make_service(catalog: Catalog, **overrides) -> Service:
    service = Service(ServeConfig(models=MODELS, warmup=False, **overrides))
    service.load(catalog)
    return service


@pytest.fixture(scope="module")
def service(catalog) -> Service:
    service = make_service(catalog, queue=32)
    yield service
    service.close()


def client(service: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app_lib.create_app(service)), base_url="http://test")


def call(service: Service, method: str, url: str, **kwargs) -> httpx.Response:
    """One request to the in-process application."""
    async def go():
        async with client(service) as c:
            return await c.request(method, url, **kwargs)

    return asyncio.run(go())


def upload(data: bytes, name: str = "upload") -> dict:
    return {"files": {"file": (name, data)}}


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    """A refusal: the status, and a body that is exactly one line of JSON error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert body["error"] and "\n" not in body["error"]
    for word in words:
        assert word in body["error"], body["error"]


# -- health and listing ----------------------------------------------------------------------


def test_healthz_says_loading_until_the_models_are_loaded(catalog):
    service = Service(ServeConfig(models=MODELS, warmup=False))
    before = call(service, "GET", "/healthz")
    assert before.status_code == 503 and before.json()["status"] == "loading"
    assert_error(call(service, "POST", "/v1/compress", **upload(png(PHOTO))), 503, "loading")
    service.load(catalog)
    after = call(service, "GET", "/healthz")
    assert after.status_code == 200 and after.json() == {"status": "ok"}
    service.close()


def test_models_lists_kinds_qualities_descriptions_and_limits(service):
    body = call(service, "GET", "/v1/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert body["default"] == "bmshj2017-factorized"
    assert list(models) == list(MODELS)
    assert models["bmshj2017-factorized"]["qualities"] == list(range(1, 10))
    assert models["bmshj2017-factorized"]["kind"] == "photo"
    assert models["jpeg"]["qualities"] == list(range(1, 101)) and models["jpeg"]["kind"] == "standard"
    assert models["webp"]["qualities"] == list(range(0, 101))
    assert models["mnist-conv-ae"]["kind"] == "digit" and models["mnist-conv-ae"]["image_shape"] == [28, 28, 1]
    assert all(m["description"] and "\n" not in m["description"] for m in models.values())
    assert body["limits"] == {"max_upload_bytes": 25 << 20, "max_pixels": 40_000_000}


# -- compress, decompress, compare, digits ------------------------------------------------------


def test_compress_returns_the_stream_with_its_rate_and_metrics(service):
    r = call(service, "POST", "/v1/compress?model=bmshj2017-factorized&quality=2", **upload(png(PHOTO)))
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    stream = r.content
    assert jaxcodec.info(stream)["quality"] == 2
    decoded = jaxcodec.decompress(stream)
    assert decoded.shape == PHOTO.shape
    h, w = PHOTO.shape[:2]
    assert float(r.headers["X-Bpp"]) == pytest.approx(len(stream) * 8 / (h * w), abs=1e-6)
    mse = np.mean((PHOTO.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    assert float(r.headers["X-Psnr"]) == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-3)
    ms = metrics.ms_ssim(PHOTO[None] / 255.0, decoded[None] / 255.0)[0]
    assert float(r.headers["X-Ms-Ssim"]) == pytest.approx(float(ms), abs=1e-5)
    assert (r.headers["X-Width"], r.headers["X-Height"], r.headers["X-Quality"]) == ("64", "48", "2")
    assert r.headers["content-disposition"].endswith('.jxc"')
    high = call(service, "POST", "/v1/compress?quality=8", **upload(png(PHOTO)))
    assert len(high.content) > len(stream) and float(high.headers["X-Psnr"]) > float(r.headers["X-Psnr"])


def test_the_default_server_offers_the_mean_scale_hyperprior_as_its_default_photo_model():
    """Without ``--models`` the server offers every shipped model; its default photo model is
    ``mbt2018-mean``, and a request naming no model gets that model's stream at its middle
    quality, byte for byte what the library writes."""
    assert "mbt2018-mean" in default_names()
    names = ("bmshj2017-factorized", "mbt2018-mean", "jpeg")
    service = Service(ServeConfig(models=names, warmup=False))
    service.load(Catalog.load(names))
    try:
        body = call(service, "GET", "/v1/models").json()
        assert body["default"] == "mbt2018-mean"
        entry = {m["name"]: m for m in body["models"]}["mbt2018-mean"]
        assert entry["kind"] == "photo" and entry["qualities"] == list(range(1, 9))
        r = call(service, "POST", "/v1/compress", **upload(png(PHOTO)))
        assert r.status_code == 200, r.text
        assert r.headers["X-Quality"] == str(entry["default_quality"])
        assert jaxcodec.info(r.content)["model"] == "mbt2018_mean"
        assert r.content == jaxcodec.compress(PHOTO, "mbt2018-mean", entry["default_quality"])
    finally:
        service.close()


def test_compress_with_a_standard_codec_returns_its_own_file(service):
    r = call(service, "POST", "/v1/compress?model=jpeg&quality=30", **upload(png(PHOTO)))
    assert r.status_code == 200
    assert r.content == classical.jpeg().encode(PHOTO, 30)
    assert r.headers["content-disposition"].endswith('.jpeg"')


def test_compress_with_a_digit_model_takes_28x28_grey_or_rgb(service):
    grey = call(service, "POST", "/v1/compress?model=mnist-conv-ae&quality=4", **upload(png(digit())))
    assert grey.status_code == 200
    assert jaxcodec.info(grey.content)["height"] == 28
    assert grey.content == jaxcodec.compress(digit(), "mnist-conv-ae", 4)
    rgb = call(service, "POST", "/v1/compress?model=mnist-conv-ae&quality=4",
               **upload(png(np.repeat(digit()[..., None], 3, axis=2))))
    assert rgb.content == grey.content
    assert_error(call(service, "POST", "/v1/compress?model=mnist-conv-ae", **upload(png(PHOTO))), 422, "28x28")


def test_decompress_returns_the_decoded_png(service):
    stream = jaxcodec.compress(PHOTO, "bmshj2017-factorized", 3)
    r = call(service, "POST", "/v1/decompress", **upload(stream, "a.jxc"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), jaxcodec.decompress(stream))
    jpeg = classical.jpeg().encode(PHOTO, 50)
    r = call(service, "POST", "/v1/decompress", **upload(jpeg, "a.jpg"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), np.asarray(Image.open(io.BytesIO(jpeg))))


def test_compare_finds_each_standard_codecs_largest_file_not_above_the_learned_one(service):
    r = call(service, "POST", "/v1/compare?quality=7&images=1", **upload(png(PHOTO)))
    assert r.status_code == 200
    body = r.json()
    learned = body["learned"]
    assert learned["bytes"] == len(jaxcodec.compress(PHOTO, "bmshj2017-factorized", 7))
    assert [row["codec"] for row in body["standard"]] == ["jpeg", "webp", "avif"]
    for row in body["standard"]:
        codec = registry.get_codec(row["codec"])
        assert row["below"] and row["bytes"] <= learned["bytes"]
        assert len(codec.encode(PHOTO, row["quality"])) == row["bytes"]
        if row["quality"] < 100:  # one step up the scale is over the learned file's size
            assert len(codec.encode(PHOTO, row["quality"] + 1)) > learned["bytes"]
        decoded = from_data_url(row["png"])
        np.testing.assert_array_equal(decoded, codec.decode(codec.encode(PHOTO, row["quality"])))
        assert 0 < row["ms_ssim"] <= 1 and row["psnr"] > 15


def test_compare_gives_the_lowest_quality_when_no_file_is_small_enough(service):
    body = call(service, "POST", "/v1/compare?quality=1", **upload(png(PHOTO))).json()
    avif = next(row for row in body["standard"] if row["codec"] == "avif")
    assert len(classical.avif().encode(PHOTO, 0)) > body["learned"]["bytes"]  # AVIF's container alone
    assert avif == avif | {"quality": 0, "below": False}
    assert avif["bytes"] > body["learned"]["bytes"] and "png" not in avif


def test_digit_gives_each_autoencoders_code_file_and_reconstruction(service):
    r = call(service, "POST", "/v1/digit?bits=4", **upload(png(digit())))
    assert r.status_code == 200
    models = {m["codec"]: m for m in r.json()["models"]}
    assert set(models) == {"mnist-conv-ae", "mnist-deep-ae"}
    for name, size in (("mnist-conv-ae", 28), ("mnist-deep-ae", 196)):
        m = models[name]
        assert m["quality"] == 4 and m["code_levels"] == 16
        assert len(m["code"]) == size and all(0 <= v <= 15 for v in m["code"])
        stream = jaxcodec.compress(digit(), name, 4)
        assert m["bytes"] == len(stream) and m["bits"] == 8 * len(stream)
        picture = from_data_url(m["png"])
        np.testing.assert_array_equal(picture, jaxcodec.decompress(stream)[..., 0])
    # The code is what the stream holds: the decoder's image from those symbols is the stream's image.
    conv = jaxcodec.get_codec("mnist-conv-ae")
    np.testing.assert_array_equal(conv.reconstruct(np.asarray(models["mnist-conv-ae"]["code"]), 4),
                                  jaxcodec.decompress(jaxcodec.compress(digit(), "mnist-conv-ae", 4)))
    assert_error(call(service, "POST", "/v1/digit?bits=4", **upload(png(PHOTO))), 422, "28x28")


# -- refusals ------------------------------------------------------------------------------------


def _damaged_streams() -> list[tuple[str, bytes]]:
    stream = jaxcodec.compress(PHOTO, "bmshj2017-factorized", 3)
    flipped = bytearray(stream)
    flipped[len(stream) // 2] ^= 0xFF
    digit_stream = bytearray(jaxcodec.compress(digit(), "mnist-deep-ae", 4))
    digit_stream[-3] ^= 0x55
    jpeg = classical.jpeg().encode(PHOTO, 50)
    return [("truncated", stream[: len(stream) // 2]), ("flipped payload byte", bytes(flipped)),
            ("header only", stream[:20]), ("magic only", b"JXC"), ("random bytes", bytes(range(256)) * 3),
            ("digit stream, flipped", bytes(digit_stream)), ("truncated jpeg", jpeg[: len(jpeg) // 3]),
            ("webp signature only", b"RIFF\x00\x00\x00\x00WEBPVP8 ")]


@pytest.mark.parametrize("what,data", _damaged_streams(), ids=[name for name, _ in _damaged_streams()])
def test_a_damaged_stream_is_a_400(service, what, data):
    assert_error(call(service, "POST", "/v1/decompress", **upload(data)), 400)


@pytest.mark.parametrize("url,kwargs,status,words", [
    ("/v1/compress", upload(b"this is not an image"), 400, ("not an image",)),
    ("/v1/compress", upload(png(PHOTO)[:60]), 400, ()),  # a PNG cut inside its pixels
    ("/v1/compare", upload(b"GIF89a broken"), 400, ()),
    ("/v1/compress?model=nope", upload(png(PHOTO)), 404, ("unknown model 'nope'",)),
    ("/v1/compress?quality=99", upload(png(PHOTO)), 422, ("no quality 99", "1..9")),
    ("/v1/compress?quality=high", upload(png(PHOTO)), 422, ("whole number",)),
    ("/v1/compress?model=jpeg&quality=0", upload(png(PHOTO)), 422, ("1..100",)),
    ("/v1/compare?model=jpeg", upload(png(PHOTO)), 422, ("standard",)),
    ("/v1/compare?images=maybe", upload(png(PHOTO)), 422, ("images",)),
    ("/v1/digit?bits=x", upload(png(digit())), 422, ("bits",)),
    ("/v1/compress", {"content": png(PHOTO), "headers": {"content-type": "image/png"}}, 415, ("multipart",)),
    ("/v1/compress", {"files": {"other": ("a.png", png(PHOTO))}}, 400, ("field 'file'",)),
    ("/v1/compress", upload(b""), 400, ("empty",)),
    ("/v1/compress", {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
     400, ()),
    ("/v1/nothing-here", {}, 404, ("no such path",)),
])
def test_bad_input_is_a_4xx_with_one_error_line(service, url, kwargs, status, words):
    assert_error(call(service, "POST", url, **kwargs), status, *words)


def test_a_wrong_method_is_a_json_405(service):
    assert_error(call(service, "GET", "/v1/compress"), 405, "GET")


def test_a_png_truncated_inside_its_pixels_is_a_400_not_a_500(service):
    data = png((np.random.default_rng(1).random((200, 200, 3)) * 255).astype(np.uint8))
    assert_error(call(service, "POST", "/v1/compress?model=jpeg", **upload(data[: len(data) // 2])), 400)


# -- size and pixel limits --------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with one tiny IDAT: a
    decompression bomb's header (decoding would need width * height * 3 bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jxl_header_only(width: int, height: int) -> bytes:
    """A JPEG XL codestream whose SizeHeader declares ``width`` x ``height`` (U32 sizes)."""
    bits = [0]  # div8 = 0
    for value in (height, None, width):
        if value is None:
            bits += [0, 0, 0]  # ratio 0: the width follows
            continue
        bits += [1, 1] + [((value - 1) >> i) & 1 for i in range(30)]  # selector 3: 30 bits
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        data[i // 8] |= bit << (i % 8)
    return b"\xff\x0a" + bytes(data) + b"\0" * 16


@pytest.fixture
def never_decoded(monkeypatch):
    """Fails the test if anything decodes an image or a stream."""
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although refused from the header")

    monkeypatch.setattr("jaxcodec.image.decode_image", refuse)
    monkeypatch.setattr("jaxcodec.decompress", refuse)


def test_an_image_declaring_too_many_pixels_is_a_413_before_decoding(catalog, never_decoded):
    service = make_service(catalog, max_pixels=1_000_000)
    assert_error(call(service, "POST", "/v1/compress", **upload(png_header_only(2000, 1000))), 413,
                 "2000x1000", "1000000")
    # Beyond Pillow's own guard too (a 400-megapixel header).
    assert_error(call(service, "POST", "/v1/compare", **upload(png_header_only(20000, 20000))), 413)


def test_a_stream_declaring_too_many_pixels_is_a_413_before_decoding(catalog, never_decoded):
    service = make_service(catalog, max_pixels=1_000_000)
    header = container.Header(model="factorized", table_hash=b"\0" * 8, height=60000, width=60000, channels=3,
                               latent_shape=(8, 8, 128), quality=3)
    jxc = container.pack(header, b"\0" * 32)
    assert_error(call(service, "POST", "/v1/decompress", **upload(jxc)), 413, "60000x60000")
    assert_error(call(service, "POST", "/v1/decompress", **upload(jxl_header_only(50000, 40000))), 413, "50000x40000")


@pytest.mark.parametrize("codec,shape", [("jpeg", (30, 41, 3)), ("webp", (17, 9, 1)), ("avif", (20, 33, 3)),
                                         ("jpegxl", (200, 300, 3)), ("jpegxl", (48, 64, 3)), ("jpegxl", (37, 1000, 1)),
                                         ("jpegxl", (1000, 5, 3)), ("jpeg2000", (19, 23, 3))])
def test_stream_size_reads_each_standard_header(codec, shape):
    image = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    data = registry.get_codec(codec).encode(image, 50)
    assert sizes.stream_size(data) == (shape[1], shape[0])


def test_jpegxl_size_reads_the_container_format_too():
    image = np.zeros((40, 72, 3), np.uint8)
    boxed = imagecodecs.jpegxl_encode(image, level=50, effort=3, usecontainer=True)
    assert boxed[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n"
    assert sizes.jpegxl_size(boxed) == (72, 40)
    assert sizes.jpegxl_size(jxl_header_only(123, 4567)) == (123, 4567)


async def _asgi(app, scope_headers, chunks, *, stall: float = 0.0):
    """Calls the ASGI app with a POST whose body arrives as ``chunks`` (an iterator; after it
    ends, ``receive`` waits ``stall`` seconds); returns (status, body, chunks consumed)."""
    consumed = 0
    sent: list[dict] = []
    iterator = iter(chunks)

    async def receive():
        nonlocal consumed
        try:
            chunk = next(iterator)
        except StopIteration:
            await asyncio.sleep(stall)
            return {"type": "http.disconnect"}
        consumed += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/compress", "raw_path": b"/v1/compress", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"multipart/form-data; boundary=b")] + scope_headers,
             "client": ("127.0.0.1", 1), "server": ("test", 80)}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), consumed


def endless(size: int = 65536):
    while True:
        yield b"x" * size


def test_a_declared_length_over_the_limit_is_a_413_before_any_body_is_read(catalog):
    app = app_lib.create_app(make_service(catalog, max_upload_bytes=1 << 20))
    status, body, consumed = asyncio.run(_asgi(app, [(b"content-length", str(5 << 20).encode())], endless()))
    assert status == 413 and "upload limit" in body["error"] and consumed == 0


def test_a_chunked_body_over_the_limit_stops_being_read_at_the_limit(catalog):
    app = app_lib.create_app(make_service(catalog, max_upload_bytes=1 << 20))
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
    status, body, consumed = asyncio.run(_asgi(app, [], itertools.chain([head], endless(65536))))
    assert status == 413 and "upload limit" in body["error"]
    assert consumed == 1 + -(-((1 << 20) + 1 - len(head)) // 65536)  # up to the chunk past the limit, no more


def test_a_client_that_stalls_while_sending_gets_a_408(catalog):
    app = app_lib.create_app(make_service(catalog, body_timeout=0.3))
    start = time.perf_counter()
    status, body, _ = asyncio.run(_asgi(app, [], iter([b"--b\r\n"]), stall=30))
    assert status == 408 and "stalled" in body["error"]
    assert time.perf_counter() - start < 5


def test_a_bad_content_length_is_a_400(catalog):
    app = app_lib.create_app(make_service(catalog))
    status, body, consumed = asyncio.run(_asgi(app, [(b"content-length", b"12x")], endless()))
    assert status == 400 and "Content-Length" in body["error"] and consumed == 0


# -- concurrency and the queue -------------------------------------------------------------------------


def test_twenty_simultaneous_requests_are_all_answered(service):
    rng = np.random.default_rng(2)
    images = [(rng.random((40, 56, 3)) * 255).astype(np.uint8) for _ in range(20)]
    stream = jaxcodec.compress(PHOTO, "bmshj2017-factorized", 5)
    requests = []
    for i, image in enumerate(images):
        if i % 4 == 3:
            requests.append(("/v1/decompress", stream))
        else:
            requests.append((f"/v1/compress?model={('bmshj2017-factorized', 'jpeg', 'webp')[i % 4]}&quality={i % 4 + 2}",
                             png(image)))

    async def go():
        async with client(service) as c:
            return await asyncio.gather(*(c.post(url, **upload(data)) for url, data in requests))

    responses = asyncio.run(go())
    assert [r.status_code for r in responses] == [200] * 20
    for (url, _), r, image in zip(requests, responses, images):
        if url.startswith("/v1/compress"):
            assert jaxcodec.decompress(r.content).shape == image.shape
        else:
            assert Image.open(io.BytesIO(r.content)).size == (64, 48)


def test_requests_beyond_the_queue_get_503_and_the_admitted_ones_finish(catalog):
    service = make_service(catalog, workers=1, queue=2)
    gate = threading.Event()
    blocker = service.pool.submit(gate.wait)  # the only worker is busy; two queue places are left

    async def go():
        async with client(service) as c:
            tasks = [asyncio.create_task(c.post("/v1/compress?model=jpeg", **upload(png(PHOTO)))) for _ in range(6)]
            while service.pool.admitted < service.pool.capacity:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the refused ones have been answered by now
            gate.set()
            return await asyncio.gather(*tasks)

    responses = asyncio.run(go())
    blocker.result(timeout=10)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200] + [503] * 4
    for r in responses:
        if r.status_code == 503:
            assert_error(r, 503, "busy")
            assert r.headers["retry-after"] == "1"
    assert service.pool.admitted == 0
    service.close()


def test_requests_beyond_max_requests_get_a_json_503_while_others_upload(catalog):
    app = app_lib.create_app(make_service(catalog, max_requests=2))
    gate = asyncio.Event()

    async def go():
        async def stalled_receive():
            await gate.wait()
            return {"type": "http.disconnect"}

        sent = []

        async def record(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/compress", "raw_path": b"/v1/compress", "query_string": b"",
                 "root_path": "", "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
                 "client": ("127.0.0.1", 1), "server": ("test", 80)}
        uploading = [asyncio.create_task(app(dict(scope), stalled_receive, record)) for _ in range(2)]
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            refused = await c.post("/v1/compress?model=jpeg", **upload(png(PHOTO)))
            gate.set()
            await asyncio.gather(*uploading)  # the clients that went away: answered, no exception
            accepted = await c.post("/v1/compress?model=jpeg", **upload(png(PHOTO)))
        return refused, accepted, [m["status"] for m in sent if m["type"] == "http.response.start"]

    refused, accepted, gone = asyncio.run(go())
    assert_error(refused, 503, "2 requests in progress")
    assert refused.headers["retry-after"] == "1" and accepted.status_code == 200
    assert gone == [400, 400]


# -- shape classes ---------------------------------------------------------------------------------------


def test_the_codec_compiles_once_per_shape_class_and_the_metrics_once_per_size(catalog):
    service = make_service(catalog)
    entry = catalog.entries["bmshj2017-factorized"]
    rng = np.random.default_rng(3)

    def compiled(shape, quality=3):
        image = (rng.random(shape) * 255).astype(np.uint8)
        _, log = service.compress(entry, quality, png(image))
        return {name for name, _ in log}

    metric_programs = {"jit(psnr)", "jit(ms_ssim)", "jit(squeeze)"}
    first = compiled((33, 97, 3))  # class 48x112
    assert first - metric_programs  # the encoder and decoder
    assert compiled((45, 100, 3)) <= metric_programs  # same class, another size: the metrics only
    assert compiled((45, 100, 3), quality=8) == set()  # another quality of the ladder: nothing
    assert compiled((70, 97, 3)) - metric_programs  # a new class compiles the codec again
    assert ("bmshj2017-factorized", 48, 112) in service.shapes.known


def test_shape_classes_clear_past_the_limit_once_no_request_runs():
    clears = []
    classes = shapes.ShapeClasses(limit=2, clear=lambda: clears.append(1))
    for key in ("a", "b", "a"):
        with classes.use(key):
            pass
    assert clears == [] and classes.known == ["a", "b"]
    inside, release = threading.Event(), threading.Event()

    def long_request():
        with classes.use("a"):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=long_request)
    worker.start()
    inside.wait(10)
    done = threading.Event()
    newcomer = threading.Thread(target=lambda: (classes.use("c").__enter__(), done.set()))
    newcomer.start()
    time.sleep(0.2)
    assert not done.is_set() and clears == []  # waits: a request is still running
    release.set()
    worker.join(10)
    newcomer.join(10)
    assert done.is_set() and clears == [1] and classes.known == ["c"] and classes.clears == 1


def test_a_class_compiles_once_while_its_other_requests_wait():
    classes = shapes.ShapeClasses(limit=8)
    order = []
    started = threading.Event()

    def first():
        with classes.use("k") as new:
            started.set()
            time.sleep(0.3)
            order.append(("first", new))

    def second():
        started.wait(10)
        with classes.use("k") as new:
            order.append(("second", new))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert order == [("first", True), ("second", False)]


def test_side_multiple_is_the_ladders_downsampling(catalog):
    assert shapes.side_multiple(catalog.entries["bmshj2017-factorized"].codec) == 16
    assert shapes.side_multiple(catalog.entries["jpeg"].codec) == 1
    assert shapes.shape_class(33, 97, 16) == (48, 112)


# -- logging, configuration, the command line ----------------------------------------------------------


def test_one_log_line_per_request_with_status_and_model(service, caplog):
    caplog.set_level(logging.INFO, logger="jaxcodec.serve")
    call(service, "POST", "/v1/compress?model=jpeg&quality=20", **upload(png(PHOTO)))
    call(service, "POST", "/v1/compress?model=nope", **upload(png(PHOTO)))
    lines = [r.getMessage() for r in caplog.records if r.name == "jaxcodec.serve"]
    assert len(lines) == 2
    assert '"POST /v1/compress?model=jpeg&quality=20" 200' in lines[0] and "model=jpeg quality=20 image=64x48" in lines[0]
    assert '"POST /v1/compress?model=nope" 404' in lines[1]


def test_config_refuses_bad_settings():
    with pytest.raises(ConfigError, match="workers"):
        ServeConfig(workers=0)
    with pytest.raises(ConfigError, match="port"):
        ServeConfig(port=70000)
    with pytest.raises(ConfigError, match="max-upload-mb"):
        config_lib.upload_bytes("lots")
    assert config_lib.upload_bytes("0.5") == 1 << 19
    assert config_lib.parse_models("jpeg, webp") == ("jpeg", "webp")
    assert not ServeConfig().public and ServeConfig(host="0.0.0.0").public and not ServeConfig(host="::1").public


def test_cli_serve_fails_with_one_line_on_an_unknown_model_or_a_busy_port(capsys):
    from jaxcodec.cli import run

    assert run(["serve", "--models", "jpeg,nope", "--port", "0"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert run(["serve", "--models", "jpeg", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_lossless_and_tiny_results_are_null_figures_not_invalid_json(service):
    blank = np.zeros((8, 8, 3), np.uint8)  # JPEG codes a flat black square exactly; too small for MS-SSIM
    r = call(service, "POST", "/v1/compress?model=jpeg&quality=95", **upload(png(blank)))
    assert (r.status_code, r.headers["X-Psnr"], r.headers["X-Ms-Ssim"]) == (200, "inf", "n/a")
    from jaxcodec.serve import work

    coded = work.code(blank, service.catalog.entries["jpeg"], 95)
    assert coded.figures()["psnr"] is None and coded.figures()["ms_ssim"] is None
    json.dumps(coded.figures(), allow_nan=False)


def test_the_pages_files_are_package_data():
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["jaxcodec.serve"]
    static = root / "jaxcodec" / "serve" / "static"
    files = [p.relative_to(static.parent).as_posix() for p in static.rglob("*") if p.is_file()]
    assert {"static/index.html", "static/app.js", "static/style.css", "static/samples/coffee.png"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)] == []


@functools.lru_cache(maxsize=1)
def _files() -> dict[str, tuple[str, bytes]]:
    """Good uploads and streams, to be damaged: (endpoint, bytes)."""
    def saved(fmt: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(PHOTO).save(buf, format=fmt)
        return buf.getvalue()

    files = {f"image {fmt}": ("/v1/compress?model=jpeg", saved(fmt)) for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "BMP")}
    files["stream jxc"] = ("/v1/decompress", jaxcodec.compress(PHOTO, "bmshj2017-factorized", 3))
    files["stream digit"] = ("/v1/decompress", jaxcodec.compress(digit(), "mnist-conv-ae", 4))
    for name in ("jpeg", "webp", "avif", "jpegxl"):
        files[f"stream {name}"] = ("/v1/decompress", registry.get_codec(name).encode(PHOTO, 50))
    return files


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(sorted(_files())), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=6))
def test_damaged_uploads_and_streams_are_answered_never_with_a_500(service, which, cut, flips):
    url, data = _files()[which]
    data = bytearray(data[: max(1, int(len(data) * (0.3 + 0.7 * cut)))])
    for where, mask in flips:
        data[min(len(data) - 1, int(where * len(data)))] ^= mask
    r = call(service, "POST", url, **upload(bytes(data)))
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert_error(r, 400)
