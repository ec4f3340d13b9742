"""Load on ``python -m jaxcodec serve``: N concurrent clients for T seconds.

Starts a server on a free local port (or uses ``--url``), warms it with one request, then
runs ``--clients`` threads, each with its own keep-alive connection, posting the same image
to ``/v1/compress`` (or a stream to ``/v1/decompress``) back to back for ``--seconds``::

    python bench/serve_load.py                                   # 8 clients, 30 s, q3 on a 384x256 photo
    python bench/serve_load.py --clients 32 --queue 8            # more clients than places: 503s, clients wait
                                                                 # the Retry-After second (--no-backoff: at once)
    python bench/serve_load.py --endpoint decompress --workers 2
    python bench/serve_load.py --url http://127.0.0.1:8000/ --model jpeg --quality 50

Prints requests/s, latency percentiles (p50, p90, p99, max, over the requests that
completed inside the window) and the errors by kind (any status but 200, or a failed
connection), and ends with one ``summary:`` line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "jaxcodec", "serve", "static", "samples", "coffee.png")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``data`` in the field ``file``, and its content type."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class LocalServer:
    """``python -m jaxcodec serve --port 0`` in a subprocess; its log goes to a file."""

    def __init__(self, args: list[str]):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log", delete=False)
        self.process = subprocess.Popen([sys.executable, "-m", "jaxcodec", "serve", "--port", "0", *args],
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log)

    def url(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited: see {self.log.name}")
            with open(self.log.name) as f:
                match = re.search(r"jaxcodec serve on (http://\S+/)", f.read())
            if match:
                try:
                    with urllib.request.urlopen(match.group(1) + "healthz", timeout=5) as r:
                        if json.load(r).get("status") == "ok":
                            return match.group(1)
                except OSError:
                    pass
            time.sleep(0.5)
        sys.exit(f"server not ready after {timeout:.0f} s: see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def post(connection: http.client.HTTPConnection, path: str, body: bytes, ctype: str) -> tuple[int, bytes, float]:
    """Status, body and the ``Retry-After`` seconds (0 when absent) of one POST."""
    connection.request("POST", path, body=body, headers={"Content-Type": ctype})
    response = connection.getresponse()
    try:
        retry = float(response.getheader("Retry-After") or 0)
    except ValueError:
        retry = 0.0
    return response.status, response.read(), retry


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running server (default: start one)")
    p.add_argument("--clients", type=positive, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--endpoint", choices=("compress", "decompress"), default="compress")
    p.add_argument("--model", default="bmshj2017-factorized")
    p.add_argument("--quality", default="3")
    p.add_argument("--image", default=SAMPLE, help="image file to send (default: the page's coffee sample, 384x256)")
    p.add_argument("--workers", type=positive, default=1, help="server threads (a started server only)")
    p.add_argument("--queue", type=int, default=16, help="server queue places (a started server only)")
    p.add_argument("--no-backoff", action="store_true", help="retry a 503 at once instead of after its Retry-After")
    args = p.parse_args()

    with open(args.image, "rb") as f:
        image = f.read()
    server = None
    if args.url is None:
        server = LocalServer(["--models", args.model, "--workers", str(args.workers), "--queue", str(args.queue),
                              "--no-warmup"])
        url = server.url()
    else:
        url = args.url if args.url.endswith("/") else args.url + "/"
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    try:
        query = urllib.parse.urlencode({"model": args.model, "quality": args.quality})
        warm = http.client.HTTPConnection(host, port, timeout=300)
        status, stream, _ = post(warm, f"/v1/compress?{query}", *multipart(image, os.path.basename(args.image)))
        if status != 200:
            sys.exit(f"warm-up request failed with {status}: {stream[:200]!r}")
        if args.endpoint == "compress":
            path, body = f"/v1/compress?{query}", multipart(image, os.path.basename(args.image))
        else:
            path, body = "/v1/decompress", multipart(stream, "stream.jxc")
            post(warm, path, *body)
        warm.close()

        latencies: list[float] = []
        errors: Counter[str] = Counter()
        lock = threading.Lock()
        start = time.perf_counter()
        deadline = start + args.seconds

        def client() -> None:
            connection = http.client.HTTPConnection(host, port, timeout=300)
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                retry = 0.0
                try:
                    status, _, retry = post(connection, path, *body)
                    kind = None if status == 200 else f"HTTP {status}"
                except (OSError, http.client.HTTPException) as error:
                    kind = type(error).__name__
                    connection.close()
                    connection = http.client.HTTPConnection(host, port, timeout=300)
                t1 = time.perf_counter()
                if t1 > deadline:
                    break  # finished after the window: not counted
                with lock:
                    if kind is None:
                        latencies.append(t1 - t0)
                    else:
                        errors[kind] += 1
                if retry and not args.no_backoff:  # a polite client waits as the server asks
                    time.sleep(min(retry, max(0.0, deadline - time.perf_counter())))
            connection.close()

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        if server is not None:
            server.stop()

    done = len(latencies)
    n_errors = sum(errors.values())
    rate = done / args.seconds
    print(f"{args.endpoint} {args.model} q{args.quality}, {os.path.basename(args.image)} ({len(image)} bytes), "
          f"{args.clients} clients, {args.seconds:g} s (ran {elapsed:.1f} s)"
          + ("" if server is None else f", server: {args.workers} worker(s), queue {args.queue}"))
    print(f"requests answered 200: {done}   requests/s: {rate:.2f}   errors: {n_errors}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(errors.items()))})" if errors else ""))
    if latencies:
        ms = [1000 * v for v in latencies]
        print(f"latency ms: p50 {percentile(ms, 50):.0f}   p90 {percentile(ms, 90):.0f}   "
              f"p99 {percentile(ms, 99):.0f}   max {max(ms):.0f}")
        print(f"summary: {rate:.2f} req/s, p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
              f"{n_errors} errors")
    else:
        print(f"summary: no request answered 200, {n_errors} errors")


if __name__ == "__main__":
    main()
