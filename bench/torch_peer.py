#!/usr/bin/env python3
"""The peer of bench/bench_network and bench/bench_unet: the same networks, steps and sizes in PyTorch.

Prints JSON: milliseconds per call (median of repetitions), with the torch
version, its BLAS, whether oneDNN (mkldnn) is on and which convolution kernel
ran, and the thread count. The networks are the paper's (tools/torch_interop.py
holds them); the training step is the paper's VPSDE.loss (cosine schedule) with
torch.optim.AdamW.

  --model mlp   (bench_network) the Lorenz-63 ResMLP: training step at batch 64,
                forward and forward + input VJP at batch 4096
  --model unet  (bench_unet) the Kolmogorov ScoreUNet, [5, 2, 32, 32] and a context
                channel, channels 32, 64, 128: training step at batch 32, forward
                and forward + input VJP at batch 64; the paper's size, [5, 2, 64, 64],
                channels 96, 192, 384, three blocks: forward and forward + input VJP at batch 8

For the U-Net every kernel is timed with the default (NCHW) and the channels_last
memory format, and the faster is reported (the strongest peer), with both times.
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
from torch_interop import ScoreNet, ScoreUNet  # noqa: E402

MLP = {"event": [5, 3], "embedding": 32, "width": 256, "depth": 5, "activation": "SiLU",
       "unbiased_layer_norm": True, "frequencies": 16, "embedding_hidden": 256}


def kolmogorov(n, channels, blocks):
    """bench_unet's configurations (sda::nn::UNetConfig::to_json)."""
    return {"kind": "unet", "event": [5, 2, n, n], "spatial": 2, "channels": channels, "blocks": blocks, "kernel": 3,
            "padding": "circular", "activation": "SiLU", "embedding": 64, "frequencies": 16, "embedding_hidden": 256,
            "unbiased_layer_norm": True,
            "context": [math.sin(4 * 2 * math.pi * i / n) for i in range(n) for _ in range(n)]}


def timed(function, repetitions, inner):
    function()
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        samples.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(samples)


def train_step_of(net, x):
    """The paper's denoising loss (VPSDE, cosine schedule, eta = 1e-3) and one AdamW step."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    eta = 1e-3
    batch = x.shape[0]
    expand = (slice(None),) + (None,) * (x.dim() - 1)

    def train_step():
        optimizer.zero_grad()
        t = torch.rand(batch)
        alpha = torch.cos(math.acos(math.sqrt(eta)) * t) ** 2
        mu, sigma = alpha[expand], (1 - alpha**2 + eta**2).sqrt()[expand]
        z = torch.randn_like(x)
        loss = (net(mu * x + sigma * z, t) - z).square().mean()
        loss.backward()
        optimizer.step()

    return train_step


def forward_of(net, x):
    t = torch.full((x.shape[0],), 0.5)

    def forward():
        with torch.no_grad():
            net(x, t)

    return forward


def forward_vjp_of(net, x):
    t = torch.full((x.shape[0],), 0.5)
    v = torch.randn_like(x)

    def forward_vjp():
        xr = x.clone().requires_grad_(True)
        eps = net(xr, t)
        torch.autograd.grad(eps, xr, v)

    return forward_vjp


def mlp(args):
    torch.manual_seed(0)
    net = ScoreNet(MLP)
    x64, x = torch.randn(64, 5, 3), torch.randn(4096, 5, 3)
    return {
        "train_step_64_ms": timed(train_step_of(net, x64), args.repetitions, 50),
        "forward_4096_ms": timed(forward_of(net, x), args.repetitions, 5),
        "forward_vjp_4096_ms": timed(forward_vjp_of(net, x), args.repetitions, 3),
    }


def convolution_kernels(net, x):
    """The aten convolution ops one forward pass runs (aten::mkldnn_convolution: oneDNN)."""
    from torch.profiler import profile

    with torch.no_grad(), profile() as prof:
        forward_of(net, x)()
    return sorted({e.key for e in prof.key_averages() if "conv" in e.key and e.key not in
                   ("aten::conv1d", "aten::conv2d", "aten::convolution", "aten::_convolution")})


def unet(args):
    result, formats = {}, {}
    kernels = [
        ("train_step_32_ms", kolmogorov(32, [32, 64, 128], [1, 1, 1]), 32, train_step_of, 3),
        ("forward_64_ms", kolmogorov(32, [32, 64, 128], [1, 1, 1]), 64, forward_of, 3),
        ("forward_vjp_64_ms", kolmogorov(32, [32, 64, 128], [1, 1, 1]), 64, forward_vjp_of, 2),
        ("paper_forward_8_ms", kolmogorov(64, [96, 192, 384], [3, 3, 3]), 8, forward_of, 1),
        ("paper_forward_vjp_8_ms", kolmogorov(64, [96, 192, 384], [3, 3, 3]), 8, forward_vjp_of, 1),
    ]
    for key, config, batch, make, inner in kernels:
        times = {}
        for name, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            torch.manual_seed(0)
            net = ScoreUNet(config)
            net.memory_format = memory_format
            net = net.to(memory_format=memory_format)
            x = torch.randn(batch, *config["event"])
            if key == "forward_64_ms":
                result[f"convolution_kernels_{name}"] = convolution_kernels(net, x)
            times[name] = timed(make(net, x), args.repetitions, inner)
        best = min(times, key=times.get)
        result[key] = times[best]
        formats[key] = {"used": best, **{f"{name}_ms": ms for name, ms in times.items()}}
    result["memory_format"] = formats
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("mlp", "unet"), default="mlp")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True  # the default; oneDNN runs torch's CPU convolutions

    config = torch.__config__.show()
    blas = next((part.split("=")[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "?")
    libblas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3") if blas == "generic" else ""
    result = {
        "model": args.model, "torch": torch.__version__, "blas": blas, "libblas.so.3": libblas,
        "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "threads": torch.get_num_threads(),
        **(mlp(args) if args.model == "mlp" else unet(args)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
