"""The page of ``python -m jaxcodec serve`` in a real browser, against a real server.

The test starts the server as a subprocess (``python -m jaxcodec serve --port 0``) and
drives Debian's Chromium headless through Selenium and Debian's chromedriver (nothing is
downloaded): it uploads an image, moves the quality slider with the keyboard, waits for
the result and the JPEG/WebP/AVIF comparison, downloads the ``.jxc`` and the decoded PNG
and checks that the stream decodes to that PNG, shows a refused upload's error line,
codes a sample digit, and saves a screenshot in the test's temporary folder.

Chromium and chromedriver come from ``apt-get install chromium chromium-driver`` (``.ci/run``
installs them). Where they are missing the test is skipped with that reason, except under
CI (``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

import jaxcodec

ROOT = Path(__file__).resolve().parents[1]
MODELS = "bmshj2017-factorized,mnist-conv-ae,mnist-deep-ae,jpeg,webp,avif"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")


def _browser() -> tuple[str, str]:
    """Debian's Chromium and its chromedriver, or a skip (a failure under CI) naming what is missing."""
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    missing = [name for name, path in (("chromium", chromium), ("chromedriver (chromium-driver)", driver)) if not path]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"the page test must run in CI: {reason}")
        pytest.skip(reason)
    return chromium, driver


class Server:
    """``python -m jaxcodec serve`` in a subprocess, with its log lines collected."""

    def __init__(self, *args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jaxcodec", "serve", "--port", "0", *args],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.lines: list[str] = []
        self._port = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"jaxcodec serve on (http://\S+/)", line)
            if match:
                self.url = match.group(1)
                self._port.set()

    def wait_ready(self, timeout: float = 240) -> None:
        """Waits for the address, then for ``/healthz`` to say ok."""
        deadline = time.monotonic() + timeout
        if not self._port.wait(timeout):
            raise AssertionError("server did not start:\n" + "\n".join(self.lines))
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("server exited:\n" + "\n".join(self.lines))
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=5) as r:
                    if json.load(r) == {"status": "ok"}:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("server never became ready:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server():
    server = Server("--models", MODELS, "--no-warmup", "--max-upload-mb", "2", "--body-timeout", "2")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    chromium, chromedriver = _browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never looks for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(chromedriver), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def downloaded(folder: Path, ending: str, timeout: float = 30) -> Path:
    """The one finished download ending in ``ending``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(ending)]
        if done and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {ending} download in {sorted(p.name for p in folder.iterdir())}")


def screenshot(driver, path: Path) -> None:
    """The whole page, not only the window."""
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_page_compresses_an_upload_and_its_download_decodes(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = skimage.data.astronaut()[40:136, 150:278]  # 96x128
    upload = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(upload)
    driver = browser
    driver.get(server.url)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert driver.find_element(By.ID, "model").get_attribute("value") == "bmshj2017-factorized"

    driver.find_element(By.ID, "file").send_keys(str(upload))
    wait(driver, lambda d: d.find_element(By.ID, "figures").get_attribute("data-compared"))
    slider = driver.find_element(By.ID, "quality")
    assert slider.get_attribute("value") == "5"
    slider.send_keys(Keys.ARROW_RIGHT)  # quality 6, from the keyboard
    first_run = driver.find_element(By.ID, "figures").get_attribute("data-compared")
    wait(driver, lambda d: d.find_element(By.ID, "figures").get_attribute("data-compared") not in (None, first_run))
    rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#figures-body tr")]
    assert rows[0].startswith("bmshj2017-factorized 6 ") and "dB" in rows[0]
    assert [r.split()[0] for r in rows[1:]] == ["JPEG", "WebP", "AVIF"]

    driver.find_element(By.ID, "download-stream").click()
    stream = downloaded(browser.downloads, ".jxc").read_bytes()
    assert jaxcodec.info(stream)["quality"] == 6
    decoded = jaxcodec.decompress(stream)
    assert decoded.shape == photo.shape
    driver.find_element(By.ID, "download-png").click()
    png = np.asarray(Image.open(downloaded(browser.downloads, "-decoded.png")))
    np.testing.assert_array_equal(png, decoded)

    # The split moves from the keyboard; another codec can be shown right of it.
    split = driver.find_element(By.ID, "split")
    split.send_keys(Keys.ARROW_LEFT)
    assert split.get_attribute("aria-valuenow") == "45"
    driver.find_element(By.CSS_SELECTOR, "input[name=shown][value=webp]").click()
    assert driver.find_element(By.ID, "right-label").text == "decoded: WebP"

    # The digit panel: a sample digit through both autoencoders, with their codes.
    driver.find_element(By.ID, "pad-sample").click()
    wait(driver, lambda d: d.find_element(By.ID, "digit-results").get_attribute("data-ready"))
    cards = driver.find_elements(By.CSS_SELECTOR, ".digit-card")
    assert [c.get_attribute("data-model") for c in cards] == ["mnist-conv-ae", "mnist-deep-ae"]
    codes = [c.find_element(By.CSS_SELECTOR, ".code-numbers").text.split() for c in cards]
    assert [len(c) for c in codes] == [28, 196]

    origin = server.url.rstrip("/")
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith((origin, "data:", "blob:")) for r in resources), resources
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    screenshot(driver, tmp_path / "page.png")
    assert Image.open(tmp_path / "page.png").size[0] == 1280

    # A format the browser cannot show (TIFF) is still coded; the page says why its original is missing.
    tiff = tmp_path / "astronaut.tif"
    Image.fromarray(photo).save(tiff)
    driver.find_element(By.ID, "file").send_keys(str(tiff))
    wait(driver, lambda d: d.find_element(By.ID, "left-label").text == "original: this browser cannot show its format")
    wait(driver, lambda d: d.find_element(By.ID, "figures").get_attribute("data-compared") not in (None, first_run)
         and len(d.find_elements(By.CSS_SELECTOR, "#figures-body tr")) == 4 and "astronaut-" in
         d.find_element(By.ID, "download-stream").get_attribute("download"))

    # A refused upload shows the server's own error line.
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are notes, not a picture")
    driver.find_element(By.ID, "file").send_keys(str(bad))
    error = wait(driver, lambda d: d.find_element(By.ID, "photo-error").is_displayed()
                 and d.find_element(By.ID, "photo-error"))
    assert error.text == "error: upload is not an image file (unrecognised data)"
    assert any('"POST /v1/compress?model=bmshj2017-factorized&quality=6" 400' in line for line in server.lines)


def test_real_server_refuses_an_oversized_body_with_a_json_413(server):
    address = server.url.split("//")[1].rstrip("/")
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = b"x" * (3 << 20)
    connection.putrequest("POST", "/v1/compress")
    connection.putheader("Content-Type", "multipart/form-data; boundary=b")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    try:
        connection.send(body)
    except OSError:
        pass  # the server may close before the whole body is sent: it answered already
    response = connection.getresponse()
    assert response.status == 413
    assert "upload limit" in json.loads(response.read())["error"]
    connection.close()
    with urllib.request.urlopen(server.url + "v1/models", timeout=10) as r:  # still serving
        assert {m["name"] for m in json.load(r)["models"]} == set(MODELS.split(","))


def test_real_server_answers_a_stalled_body_with_a_408(server):
    import socket

    address = server.url.split("//")[1].rstrip("/")
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/compress HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 1000\r\n\r\n--b\r\n")  # then nothing more
        start = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 1.5 < time.monotonic() - start < 15
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request body stalled for more than 2 s"
