// jaxcodec's page: a client of the server's own API (/v1/...), no library, nothing fetched elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const JXC_MAGIC = [0x4a, 0x58, 0x43]; // "JXC"
const COMPARED = ["jpeg", "webp", "avif"];
const NAMES = { jpeg: "JPEG", webp: "WebP", avif: "AVIF", jpegxl: "JPEG XL" };

// ---------------------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------------------

class ApiError extends Error {}

/** POSTs `blob` as the form field `file`; returns the Response, or throws the server's error line. */
async function post(path, blob, name, signal) {
  const form = new FormData();
  form.append("file", blob, name || "upload");
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("the server cannot be reached (" + error.message + ")");
  }
  if (!response.ok) {
    let line = response.status + " " + response.statusText;
    try { line = (await response.json()).error || line; } catch (_) { /* not JSON */ }
    throw new ApiError(line);
  }
  return response;
}

function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(2) + " MiB";
}
const fmt = (v, digits, unit) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : v.toFixed(digits) + (unit || "");

/** Shows progress with the seconds elapsed; returns a function that hides it. */
function busy(box, text, message) {
  const start = performance.now();
  box.hidden = false;
  const tick = () => { text.textContent = message + " " + ((performance.now() - start) / 1000).toFixed(1) + " s"; };
  tick();
  const timer = setInterval(tick, 100);
  return () => { clearInterval(timer); box.hidden = true; };
}

function showError(box, error) {
  if (error && error.name === "AbortError") return;
  box.textContent = error ? "error: " + error.message : "";
  box.hidden = !error;
}

// ---------------------------------------------------------------------------------------
// Photos
// ---------------------------------------------------------------------------------------

const photo = {
  models: {},          // name -> /v1/models entry
  file: null,          // the original Blob
  fileName: "image.png",
  originalUrl: null,
  decodedUrls: {},     // "learned" | codec -> object/data URL of the decoded image
  streamUrl: null,
  pngUrl: null,
  controller: null,
  split: 50,
  zoomAt: null,        // [x, y] in image pixels
  timer: null,
  runs: 0,
};

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) {
    let line = response.status + " " + response.statusText;
    try { line = (await response.json()).error || line; } catch (_) { /* not JSON */ }
    throw new ApiError(line);
  }
  const body = await response.json();
  const select = $("model");
  select.textContent = "";
  for (const m of body.models) {
    photo.models[m.name] = m;
    if (m.kind === "digit") continue;
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.kind === "standard" ? (NAMES[m.name] || m.name) + " (standard codec)" : m.name;
    select.appendChild(option);
  }
  if (body.default) select.value = body.default;
  photo.limits = body.limits;
  modelChanged(false);
  return body;
}

function modelChanged(recompress) {
  const m = photo.models[$("model").value];
  if (!m) return;
  const slider = $("quality");
  slider.min = m.qualities[0];
  slider.max = m.qualities[m.qualities.length - 1];
  slider.value = m.default_quality;
  $("quality-value").textContent = slider.value;
  $("model-description").textContent = m.description;
  if (recompress) schedule(0);
}

function setFile(blob, name) {
  photo.file = blob;
  photo.fileName = name || "image.png";
  if (photo.originalUrl) URL.revokeObjectURL(photo.originalUrl);
  photo.originalUrl = URL.createObjectURL(blob);
  photo.zoomAt = null;
  $("original").src = photo.originalUrl;
  schedule(0);
}

function schedule(delay) {
  clearTimeout(photo.timer);
  photo.timer = setTimeout(() => { if (photo.file) compressPhoto(); }, delay);
}

function resetDownloads() {
  for (const id of ["download-stream", "download-png"]) {
    const a = $(id);
    a.classList.add("disabled");
    a.setAttribute("aria-disabled", "true");
    a.removeAttribute("href");
  }
}

function enableDownload(id, url, name) {
  const a = $(id);
  a.href = url;
  a.download = name;
  a.classList.remove("disabled");
  a.setAttribute("aria-disabled", "false");
}

function setShownOptions(available) {
  for (const input of document.querySelectorAll("input[name=shown]")) {
    input.disabled = !available.includes(input.value);
    if (input.disabled && input.checked) {
      input.checked = false;
      document.querySelector("input[name=shown][value=learned]").checked = true;
    }
  }
}

function rowHtml(cells, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function figuresRow(label, f, cls, note) {
  const name = document.createElement("span");
  name.textContent = label;
  if (note) {
    const n = document.createElement("span");
    n.className = "note";
    n.textContent = " " + note;
    name.appendChild(n);
  }
  const tr = rowHtml([name, String(f.quality), fmtBytes(f.bytes), fmt(f.bpp, 3), f.psnr === null ? "lossless" : fmt(f.psnr, 2, " dB"),
                      fmt(f.ms_ssim, 4)], cls);
  tr.dataset.codec = cls === "learned" ? "learned" : f.codec;
  return tr;
}

async function compressPhoto() {
  if (photo.controller) photo.controller.abort();
  const controller = new AbortController();
  photo.controller = controller;
  const run = ++photo.runs;
  const name = $("model").value;
  const model = photo.models[name];
  const quality = $("quality").value;
  showError($("photo-error"), null);
  const done = busy($("photo-status"), $("photo-status-text"), "Compressing with " + name + " at quality " + quality + "…");
  try {
    const query = "model=" + encodeURIComponent(name) + "&quality=" + encodeURIComponent(quality);
    const response = await post("/v1/compress?" + query, photo.file, photo.fileName, controller.signal);
    const stream = await response.blob();
    const h = response.headers;
    const learned = {
      codec: name, quality: Number(h.get("X-Quality")), bytes: stream.size, bpp: Number(h.get("X-Bpp")),
      psnr: h.get("X-Psnr") === "inf" ? null : Number(h.get("X-Psnr")),
      ms_ssim: h.get("X-Ms-Ssim") === "n/a" ? null : Number(h.get("X-Ms-Ssim")),
    };
    const decodedResponse = await post("/v1/decompress", stream, "compressed", controller.signal);
    const png = await decodedResponse.blob();
    if (run !== photo.runs) return;
    for (const url of [photo.streamUrl, photo.pngUrl]) if (url) URL.revokeObjectURL(url);
    photo.streamUrl = URL.createObjectURL(stream);
    photo.pngUrl = URL.createObjectURL(png);
    photo.decodedUrls = { learned: photo.pngUrl };
    const stem = photo.fileName.replace(/\.[^.]*$/, "") || "image";
    const ending = model.kind === "standard" ? { jpegxl: "jxl" }[name] || name : "jxc";
    enableDownload("download-stream", photo.streamUrl, stem + "-" + name + "-q" + quality + "." + ending);
    enableDownload("download-png", photo.pngUrl, stem + "-" + name + "-q" + quality + "-decoded.png");
    $("shown-learned").textContent = (NAMES[name] || name) + " q" + quality;
    setShownOptions(["learned"]);
    document.querySelector("input[name=shown][value=learned]").checked = true;
    showDecoded("learned", false);
    const body = $("figures-body");
    body.textContent = "";
    body.appendChild(figuresRow((NAMES[name] || name), learned, "learned"));
    $("view").dataset.ready = String(run);
    if (model.kind !== "photo") { done(); return; }
    done();
    const waiting = rowHtml(["JPEG, WebP, AVIF at the same size: measuring…", "", "", "", "", ""]);
    waiting.className = "waiting";
    body.appendChild(waiting);
    const stop = busy($("photo-status"), $("photo-status-text"), "Finding JPEG, WebP and AVIF files of the same size…");
    try {
      const compared = await (await post("/v1/compare?" + query + "&images=1", photo.file, photo.fileName, controller.signal)).json();
      if (run !== photo.runs) return;
      waiting.remove();
      for (const f of compared.standard) {
        photo.decodedUrls[f.codec] = f.png;
        body.appendChild(figuresRow(NAMES[f.codec] || f.codec, f, "", f.below ? "" : "(its smallest file is larger)"));
      }
      setShownOptions(["learned", ...compared.standard.map((f) => f.codec)]);
      $("figures").dataset.compared = String(run);
    } catch (error) {
      waiting.remove();
      throw error;
    } finally {
      stop();
    }
  } catch (error) {
    done();
    if (run === photo.runs) showError($("photo-error"), error);
  }
}

function showDecoded(which, single) {
  const view = $("view");
  view.classList.remove("empty");
  view.classList.toggle("single", Boolean(single));
  $("decoded").src = photo.decodedUrls[which];
  const label = which === "learned" ? $("shown-learned").textContent : NAMES[which];
  $("right-label").textContent = single ? "decoded" : "decoded: " + label;
  const shown = view.classList.contains("no-original") ? "original: this browser cannot show its format" : "original";
  $("left-label").textContent = single ? "" : shown;
  $("zoom-decoded-label").textContent = single ? "decoded" : label;
  for (const tr of $("figures-body").querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.codec === which);
  $("decoded").onload = drawZoom;
}

async function decodeStream(blob, name) {
  if (photo.controller) photo.controller.abort();
  const controller = new AbortController();
  photo.controller = controller;
  const run = ++photo.runs;
  photo.file = null;
  showError($("photo-error"), null);
  const done = busy($("photo-status"), $("photo-status-text"), "Decoding " + name + "…");
  try {
    const response = await post("/v1/decompress", blob, name, controller.signal);
    const png = await response.blob();
    if (run !== photo.runs) return;
    if (photo.pngUrl) URL.revokeObjectURL(photo.pngUrl);
    photo.pngUrl = URL.createObjectURL(png);
    photo.decodedUrls = { learned: photo.pngUrl };
    resetDownloads();
    enableDownload("download-png", photo.pngUrl, name.replace(/\.[^.]*$/, "") + "-decoded.png");
    setShownOptions(["learned"]);
    $("original").removeAttribute("src");
    showDecoded("learned", true);
    const w = Number(response.headers.get("X-Width")), h = Number(response.headers.get("X-Height"));
    const body = $("figures-body");
    body.textContent = "";
    body.appendChild(rowHtml([name + " (decoded)", "–", fmtBytes(blob.size), fmt(blob.size * 8 / (w * h), 3), "–", "–"], "learned"));
    $("view").dataset.ready = String(run);
  } catch (error) {
    if (run === photo.runs) showError($("photo-error"), error);
  } finally {
    done();
  }
}

async function openFile(file) {
  if (!file) return;
  const limit = photo.limits && photo.limits.max_upload_bytes;
  if (limit && file.size > limit) {  // refused here: the server would stop reading it anyway (413)
    showError($("photo-error"), new ApiError(file.name + " is " + fmtBytes(file.size) + "; this server takes files up to " + fmtBytes(limit)));
    return;
  }
  const head = new Uint8Array(await file.slice(0, 3).arrayBuffer());
  const isStream = JXC_MAGIC.every((b, i) => head[i] === b) || /\.jxc$/i.test(file.name);
  if (isStream) decodeStream(file, file.name);
  else setFile(file, file.name);
}

// -- the split view and the zoom ----------------------------------------------------------

function setSplit(percent) {
  photo.split = Math.max(0, Math.min(100, percent));
  $("original-clip").style.clipPath = "inset(0 " + (100 - photo.split) + "% 0 0)";
  const handle = $("split");
  handle.style.left = photo.split + "%";
  handle.setAttribute("aria-valuenow", String(Math.round(photo.split)));
  handle.setAttribute("aria-valuetext", Math.round(photo.split) + "% original");
}

function imagePoint(event) {
  const img = $("decoded");
  const rect = img.getBoundingClientRect();
  const x = (event.clientX - rect.left) / rect.width * img.naturalWidth;
  const y = (event.clientY - rect.top) / rect.height * img.naturalHeight;
  return [x, y];
}

function drawZoom() {
  const decoded = $("decoded");
  if (!decoded.naturalWidth) return;
  if (!photo.zoomAt) photo.zoomAt = [decoded.naturalWidth / 2, decoded.naturalHeight / 2];
  const factor = Number($("zoom-factor").value);
  for (const [canvasId, img] of [["zoom-original", $("original")], ["zoom-decoded", decoded]]) {
    const canvas = $(canvasId);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!img.naturalWidth || !img.getAttribute("src")) continue;
    const w = canvas.width / factor, h = canvas.height / factor;
    const x = Math.max(0, Math.min(img.naturalWidth - w, photo.zoomAt[0] - w / 2));
    const y = Math.max(0, Math.min(img.naturalHeight - h, photo.zoomAt[1] - h / 2));
    ctx.drawImage(img, x, y, w, h, 0, 0, canvas.width, canvas.height);
  }
}

function setupViewer() {
  const view = $("view");
  let dragging = false, moved = false, startX = 0;
  view.addEventListener("pointerdown", (event) => {
    if (view.classList.contains("empty")) return;
    dragging = true; moved = false; startX = event.clientX;
    view.setPointerCapture(event.pointerId);
  });
  view.addEventListener("pointermove", (event) => {
    if (!dragging) return;
    if (Math.abs(event.clientX - startX) > 3) moved = true;
    if (moved && !view.classList.contains("single")) {
      const rect = view.getBoundingClientRect();
      setSplit((event.clientX - rect.left) / rect.width * 100);
    }
  });
  view.addEventListener("pointerup", (event) => {
    if (dragging && !moved) { photo.zoomAt = imagePoint(event); drawZoom(); }
    dragging = false;
  });
  $("split").addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 1 : 5;
    const keys = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step, Home: -100, End: 100 };
    if (event.key in keys) { setSplit(photo.split + keys[event.key]); event.preventDefault(); }
  });
  $("loupe").addEventListener("keydown", (event) => {
    const decoded = $("decoded");
    if (!decoded.naturalWidth) return;
    const step = 40 / Number($("zoom-factor").value);
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const [x, y] = photo.zoomAt || [decoded.naturalWidth / 2, decoded.naturalHeight / 2];
    photo.zoomAt = [Math.max(0, Math.min(decoded.naturalWidth, x + moves[event.key][0])),
                    Math.max(0, Math.min(decoded.naturalHeight, y + moves[event.key][1]))];
    drawZoom();
  });
  $("zoom-factor").addEventListener("change", drawZoom);
  $("original").addEventListener("load", () => { view.classList.remove("no-original"); drawZoom(); });
  $("original").addEventListener("error", () => {
    // A format the browser cannot show (TIFF, PNM): the decoded image alone, and say why.
    if (!$("original").getAttribute("src")) return;
    view.classList.add("no-original");
    $("left-label").textContent = "original: this browser cannot show its format";
  });
  for (const input of document.querySelectorAll("input[name=shown]")) {
    input.addEventListener("change", () => { if (input.checked) showDecoded(input.value, false); });
  }
  setSplit(50);
}

function setupPhoto() {
  const drop = $("drop");
  $("pick").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => { openFile($("file").files[0]); $("file").value = ""; });
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const kind of ["dragleave", "drop"]) drop.addEventListener(kind, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); openFile(event.dataTransfer.files[0]); });
  // A file dropped anywhere else on the photo section is taken too, not opened by the browser.
  $("photo").addEventListener("dragover", (event) => event.preventDefault());
  $("photo").addEventListener("drop", (event) => { event.preventDefault(); openFile(event.dataTransfer.files[0]); });
  $("model").addEventListener("change", () => modelChanged(true));
  const slider = $("quality");
  slider.addEventListener("input", () => { $("quality-value").textContent = slider.value; schedule(350); });
  for (const name of ["coffee", "chelsea", "rocket"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-label", "sample photo: " + name);
    button.dataset.sample = name;
    const img = document.createElement("img");
    img.src = "/static/samples/" + name + ".png";
    img.alt = "";
    button.appendChild(img);
    button.addEventListener("click", async () => {
      const response = await fetch("/static/samples/" + name + ".png");
      setFile(await response.blob(), name + ".png");
    });
    $("samples").appendChild(button);
  }
  setupViewer();
}

// ---------------------------------------------------------------------------------------
// Digits
// ---------------------------------------------------------------------------------------

const digits = { samples: [], next: 0, cursor: [14, 14], timer: null, controller: null, runs: 0, painting: false };

function padContext() { return $("pad").getContext("2d", { willReadFrequently: true }); }

function clearPad() {
  const ctx = padContext();
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, 28, 28);
}

/** Adds ink around (x, y): full at the centre, less on the neighbours, as MNIST's pen strokes. */
function ink(x, y, erase) {
  const ctx = padContext();
  const image = ctx.getImageData(0, 0, 28, 28);
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const px = Math.round(x) + dx, py = Math.round(y) + dy;
      if (px < 0 || py < 0 || px > 27 || py > 27) continue;
      const d = Math.hypot(px - x, py - y);
      const amount = Math.max(0, 1 - d / 1.6) * 255;
      const i = (py * 28 + px) * 4;
      const value = erase ? Math.max(0, image.data[i] - amount * 2) : Math.min(255, image.data[i] + amount);
      image.data[i] = image.data[i + 1] = image.data[i + 2] = value;
      image.data[i + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function drawCursor() {
  // A frame over the pad (never on the canvas, whose pixels are the digit), shown while it has the focus.
  const [x, y] = digits.cursor;
  const cursor = $("pad-cursor");
  cursor.style.left = (x * 10) + "px";
  cursor.style.top = (y * 10) + "px";
}

function scheduleDigit(delay) {
  clearTimeout(digits.timer);
  digits.timer = setTimeout(codeDigit, delay);
}

function padBlob() {
  return new Promise((resolve) => $("pad").toBlob(resolve, "image/png"));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function codeView(model) {
  const box = el("div", "code");
  if (!model.code) {
    box.appendChild(el("div", "code-title", "Code: 32 numbers recovered by gradient descent on the generator's input (500 Adam steps, 4 starts); not shown, as recovering them takes a second or two."));
    return box;
  }
  const n = model.code.length, top = model.code_levels - 1;
  box.appendChild(el("div", "code-title", "Code: " + n + " numbers of " + Math.log2(model.code_levels) + " bits each (0 … " + top + ")"));
  if (n <= 64) {
    const bars = el("div", "code-bars");
    bars.setAttribute("role", "img");
    bars.setAttribute("aria-label", "code values: " + model.code.join(", "));
    for (const v of model.code) {
      const bar = el("span");
      bar.style.height = (100 * v / top) + "%";
      bar.title = String(v);
      bars.appendChild(bar);
    }
    box.appendChild(bars);
  } else {
    const grid = el("div", "code-grid");
    grid.setAttribute("role", "img");
    grid.setAttribute("aria-label", n + " code values, shaded from 0 (white) to " + top + " (blue)");
    for (const v of model.code) {
      const cell = el("span");
      const t = v / top;
      cell.style.background = "rgb(" + Math.round(255 - 212 * t) + "," + Math.round(255 - 166 * t) + "," + Math.round(255 - 60 * t) + ")";
      cell.title = String(v);
      grid.appendChild(cell);
    }
    box.appendChild(grid);
  }
  box.appendChild(el("div", "code-numbers", model.code.join(" ")));
  return box;
}

function digitCard(model) {
  const card = el("article", "digit-card");
  card.dataset.model = model.codec;
  card.appendChild(el("h3", "", model.codec));
  card.appendChild(el("p", "desc", model.description));
  const recon = el("div", "recon");
  const img = el("img");
  img.src = model.png;
  img.alt = "reconstruction by " + model.codec;
  recon.appendChild(img);
  const dl = el("dl");
  const rows = [["file", model.bytes + " B = " + model.bits + " bits"], ["rate", fmt(model.bpp, 3) + " bpp"],
                ["PSNR", model.psnr === null ? "lossless" : fmt(model.psnr, 2, " dB")], ["MS-SSIM", fmt(model.ms_ssim, 4)],
                ["bits/value", String(model.quality)]];
  for (const [k, v] of rows) { dl.appendChild(el("dt", "", k)); dl.appendChild(el("dd", "", v)); }
  recon.appendChild(dl);
  card.appendChild(recon);
  card.appendChild(codeView(model));
  return card;
}

async function codeDigit() {
  if (digits.controller) digits.controller.abort();
  const controller = new AbortController();
  digits.controller = controller;
  const run = ++digits.runs;
  showError($("digit-error"), null);
  const bits = $("bits").value;
  const done = busy($("digit-status"), $("digit-status-text"), "Coding the digit with three models…");
  try {
    const response = await post("/v1/digit?bits=" + bits, await padBlob(), "digit.png", controller.signal);
    const body = await response.json();
    if (run !== digits.runs) return;
    const results = $("digit-results");
    results.textContent = "";
    const order = (m) => (m.code ? 0 : 1) * 100 + (m.code ? m.code.length : 0) / 1000;
    for (const model of [...body.models].sort((a, b) => order(a) - order(b))) results.appendChild(digitCard(model));
    results.dataset.ready = String(run);
  } catch (error) {
    if (run === digits.runs) showError($("digit-error"), error);
  } finally {
    done();
  }
}

function loadSampleDigit() {
  if (!digits.samples.length) return;
  const sample = digits.samples[digits.next++ % digits.samples.length];
  const bytes = Uint8Array.from(atob(sample.pixels), (c) => c.charCodeAt(0));
  const ctx = padContext();
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = bytes[i];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  scheduleDigit(0);
}

function setupDigits() {
  const pad = $("pad");
  clearPad();
  const point = (event) => {
    const rect = pad.getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width * 28 - 0.5, (event.clientY - rect.top) / rect.height * 28 - 0.5];
  };
  let last = null;
  pad.addEventListener("pointerdown", (event) => {
    digits.painting = true;
    pad.setPointerCapture(event.pointerId);
    last = point(event);
    ink(...last, event.button === 2);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!digits.painting) return;
    const p = point(event);
    const steps = Math.ceil(Math.hypot(p[0] - last[0], p[1] - last[1]) * 2) || 1;
    for (let i = 1; i <= steps; i++) ink(last[0] + (p[0] - last[0]) * i / steps, last[1] + (p[1] - last[1]) * i / steps, false);
    last = p;
  });
  const finish = () => { if (digits.painting) { digits.painting = false; scheduleDigit(150); } };
  pad.addEventListener("pointerup", finish);
  pad.addEventListener("pointercancel", finish);
  pad.addEventListener("contextmenu", (event) => event.preventDefault());
  pad.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key in moves) {
      const [dx, dy] = moves[event.key];
      digits.cursor = [Math.max(0, Math.min(27, digits.cursor[0] + dx)), Math.max(0, Math.min(27, digits.cursor[1] + dy))];
      if (event.shiftKey) { ink(...digits.cursor, false); scheduleDigit(600); }
      drawCursor();
    } else if (event.key === " " || event.key === "Enter") {
      ink(...digits.cursor, false); scheduleDigit(600);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      ink(...digits.cursor, true); scheduleDigit(600);
    } else {
      return;
    }
    event.preventDefault();
  });
  $("pad-clear").addEventListener("click", () => { clearPad(); $("digit-results").textContent = ""; });
  $("pad-sample").addEventListener("click", loadSampleDigit);
  const bits = $("bits");
  bits.addEventListener("input", () => { $("bits-value").textContent = bits.value; scheduleDigit(300); });
  fetch("/static/digits.json").then((r) => r.json()).then((body) => { digits.samples = body.digits; }).catch(() => {});
  drawCursor();
}

// ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  setupPhoto();
  setupDigits();
  try {
    const body = await loadModels();
    if (!body.models.some((m) => m.kind === "digit")) $("digits").hidden = true;
    document.body.dataset.ready = "true";
  } catch (error) {
    showError($("photo-error"), error);
    document.body.dataset.ready = "error";
  }
});
