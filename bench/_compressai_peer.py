"""CompressAI side of bench/train_speed.py and bench/codec_speed.py (runs under --peer-python).

Not part of jaxcodec: it needs a separate interpreter with torch and compressai
(``python3 -m venv /work/peer-venv && /work/peer-venv/bin/pip install torch==2.13.0 compressai``).
It reads uint8 NHWC images from an ``.npy`` file written by the calling benchmark, so
both sides see the same pixels, and prints one JSON line with its timings.

    PEER train DATA.npy --steps S --warmup W --lmbda L --clip-norm C [--device cuda]
    PEER codec IMAGE.npy --repeats R [--device cuda]

``--device cuda`` runs the network on the GPU (``torch.cuda.synchronize()`` before each
clock read); CompressAI's entropy coder always runs on the CPU.

``import compressai`` imports torchvision (for its dataset transforms; FactorizedPrior
never uses it). PyPI's torchvision 0.28.0 is a CUDA build whose ops library cannot load
beside the CPU torch 2.13.0 wheel, and then its import fails in an unguarded
``register_fake("torchvision::nms")`` ("operator torchvision::nms does not exist"); the
CPU torchvision build lives only on download.pytorch.org. :func:`_torchvision_shim`
declares the two op schemas it needs (never called) in exactly that case.
"""

import argparse
import glob
import importlib.util
import json
import math
import os
import statistics
import time

import numpy as np
import torch


def _torchvision_shim() -> str:
    """Declares ``torchvision::nms``/``qnms`` when torchvision's C++ ops cannot be loaded."""
    spec = importlib.util.find_spec("torchvision")
    libs = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so")) if spec else []
    try:
        for lib in libs:
            torch.ops.load_library(lib)
        return "" if libs else "no torchvision"
    except OSError:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _torchvision_shim.keep = lib  # the definitions live as long as the Library object
        return "torchvision ops unavailable (CUDA build), stubbed"


TORCHVISION_NOTE = _torchvision_shim()
from compressai.models import FactorizedPrior, MeanScaleHyperprior


def to_tensor(x_uint8: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` → float32 ``(B, 3, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(x_uint8.transpose(0, 3, 1, 2))).float().div_(255.0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train(args, net: FactorizedPrior) -> dict:
    """Steps of ``λ·255²·MSE + bpp`` with Adam (lr 1e-4), gradient clipping as jaxcodec's default."""
    pool = [to_tensor(b).to(args.device) for b in np.load(args.data)]  # (n_batches, B, H, W, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step(x: torch.Tensor) -> float:
        out = net(x)
        n, _, h, w = x.shape
        bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * n * h * w)
        loss = args.lmbda * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
        opt.zero_grad()
        loss.backward()
        if args.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip_norm)
        opt.step()
        return loss.item()

    for i in range(args.warmup):
        step(pool[i % len(pool)])
    _sync(args.device)
    t = time.perf_counter()
    for i in range(args.steps):
        loss = step(pool[(args.warmup + i) % len(pool)])
    _sync(args.device)
    dt = time.perf_counter() - t
    return {"steps": args.steps, "seconds": dt, "steps_per_s": args.steps / dt,
            "images_per_s": args.steps * pool[0].shape[0] / dt, "last_loss": loss}


def codec(args, net: FactorizedPrior) -> dict:
    """Median compress()/decompress() seconds of one image after update() and a warm-up."""
    x = to_tensor(np.load(args.data)[None]).to(args.device)
    net.eval()
    net.update(force=True)
    enc, dec = [], []
    with torch.no_grad():
        c = net.compress(x)  # warm-up
        net.decompress(c["strings"], c["shape"])
        for _ in range(args.repeats):
            _sync(args.device)
            t = time.perf_counter()
            c = net.compress(x)
            _sync(args.device)
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            x_hat = net.decompress(c["strings"], c["shape"])["x_hat"]
            _sync(args.device)
            dec.append(time.perf_counter() - t)
    n_bytes = sum(len(s[0]) for s in c["strings"])
    assert x_hat.shape == x.shape, (x_hat.shape, x.shape)
    return {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec), "bytes": n_bytes,
            "encode_all": enc, "decode_all": dec}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "codec"])
    p.add_argument("data")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lmbda", type=float, default=0.0067)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device of the network: cpu or cuda")
    p.add_argument("--model", choices=["factorized", "mbt2018-mean"], default="factorized",
                   help="FactorizedPrior(128, 192) or MeanScaleHyperprior(128, 192)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = (FactorizedPrior if args.model == "factorized" else MeanScaleHyperprior)(128, 192).to(args.device)
    result = train(args, net) if args.mode == "train" else codec(args, net)
    result.update(threads=torch.get_num_threads(), torch=torch.__version__, note=TORCHVISION_NOTE,
                  device=torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
