#!/usr/bin/env python3
"""The peer of bench/bench_network: the same network, steps and sizes in PyTorch.

Prints JSON: milliseconds per call (median of repetitions) for the training
step at batch 64, the forward pass at batch 4096 and forward plus input VJP at
batch 4096, with the torch version, its BLAS and its thread count. The network
is the paper's (tools/torch_interop.py holds it); the training step is the
paper's VPSDE.loss (cosine schedule) with torch.optim.AdamW.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_interop import ScoreNet  # noqa: E402

CONFIG = {"event": [5, 3], "embedding": 32, "width": 256, "depth": 5, "activation": "SiLU",
          "unbiased_layer_norm": True, "frequencies": 16, "embedding_hidden": 256}


def timed(function, repetitions, inner):
    function()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = ScoreNet(CONFIG)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    eta = 1e-3

    x64 = torch.randn(64, 5, 3)

    def train_step():
        optimizer.zero_grad()
        t = torch.rand(64)
        alpha = torch.cos(math.acos(math.sqrt(eta)) * t) ** 2
        mu, sigma = alpha[:, None, None], (1 - alpha**2 + eta**2).sqrt()[:, None, None]
        z = torch.randn_like(x64)
        loss = (net(mu * x64 + sigma * z, t) - z).square().mean()
        loss.backward()
        optimizer.step()

    x = torch.randn(4096, 5, 3)
    v = torch.randn(4096, 5, 3)
    t = torch.full((4096,), 0.5)

    def forward():
        with torch.no_grad():
            net(x, t)

    def forward_vjp():
        xr = x.clone().requires_grad_(True)
        eps = net(xr, t)
        torch.autograd.grad(eps, xr, v)

    config = torch.__config__.show()
    blas = next((part.split("=")[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "?")
    libblas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3") if blas == "generic" else ""
    result = {
        "torch": torch.__version__, "blas": blas, "libblas.so.3": libblas, "threads": torch.get_num_threads(),
        "train_step_64_ms": timed(train_step, args.repetitions, 50),
        "forward_4096_ms": timed(forward, args.repetitions, 5),
        "forward_vjp_4096_ms": timed(forward_vjp, args.repetitions, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
