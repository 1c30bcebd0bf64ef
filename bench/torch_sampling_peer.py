#!/usr/bin/env python3
"""The peer of bench/bench_torch: the same guided sampling work driven from plain PyTorch.

Reads the weights bench_torch wrote (/tmp/sda_bench_torch_{lorenz,unet,paper}.safetensors,
the same networks as the adapter ran) and times, on --device, with the same
arithmetic as sda's samplers:

  lorenz_step_B   one predictor-corrector step (exponential integrator + one Langevin
                  correction, tau 0.25) of SDA-guided (gamma 3e-2) sampling of the
                  Lorenz-63 setup: windows of 5 states unfolded from 65, centres picked
                  (the Markov blanket composition), x observed every 8th state, std 0.05
  unet_guided     one SDA-guided evaluation (eps + input VJP) of the Kolmogorov U-Net
                  over 16 states of 2 x 32 x 32, 4x4 average-pooled observations
  paper_guided    the same at the paper's size (64 x 64, 96/192/384, 3 blocks, 9 states)

Prints JSON: median milliseconds per call, the torch version, device and threads.
  torch_sampling_peer.py [--device cpu|cuda] [--threads N] [--repeats R] [--skip-paper]
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
import torch_interop  # noqa: E402  the paper's networks

ETA = 1e-3


def mu_sigma(t):
    """sda::VPCosine: alpha = cos(acos(sqrt(eta)) t)^2, sigma = sqrt(1 - alpha^2 + eta^2)."""
    alpha = math.cos(math.acos(math.sqrt(ETA)) * t) ** 2
    return alpha, math.sqrt(1 - alpha**2 + ETA**2)


def composed(net, x, t, k=2):
    """MarkovComposedScore: every window of 2k+1 states in one call, centres picked."""
    b, length = x.shape[:2]
    width = 2 * k + 1
    windows = x.unfold(1, width, 1).movedim(-1, 2)  # [B, W, 2k+1, ...]
    w = windows.shape[1]
    flat = windows.reshape(b * w, *windows.shape[2:])
    e = net(flat, torch.full((b * w,), t, dtype=x.dtype, device=x.device)).reshape(windows.shape)
    return torch.cat((e[:, 0, :k], e[:, :, k], e[:, -1, k + 1 :]), dim=1)


def guided_eps(net, obs, y, variance, x, t, gamma):
    """SDA-gamma: eps - sigma grad_x log N(y | A(x_hat), var + gamma (sigma/mu)^2)."""
    mu, sigma = mu_sigma(t)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        eps = composed(net, x, t)
        x_hat = (x - sigma * eps) / mu
        r = y - obs(x_hat)
        log_p = -0.5 * (r.square() / (variance + gamma * (sigma / mu) ** 2)).sum()
        (grad,) = torch.autograd.grad(log_p, x)
    return eps.detach() - sigma * grad


def pc_step(net, obs, y, variance, x, t, s, gamma, tau=0.25):
    mu_t, sigma_t = mu_sigma(t)
    mu_s, sigma_s = mu_sigma(s)
    ratio = mu_s / mu_t
    x = ratio * x + (sigma_s - ratio * sigma_t) * guided_eps(net, obs, y, variance, x, t, gamma)
    eps = guided_eps(net, obs, y, variance, x, s, gamma)
    energy = eps.square().flatten(1).mean(1, dtype=torch.float64).to(x.dtype)
    delta = (tau / energy).view(-1, *[1] * (x.dim() - 1))
    return x - (delta * eps + (2 * delta).sqrt() * torch.randn_like(x)) * sigma_s


def timed(fn, device, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}

    net, _ = torch_interop.load("/tmp/sda_bench_torch_lorenz.safetensors")
    net = net.to(device).eval()
    every_8th = lambda x: x[:, ::8, 0]  # noqa: E731
    y = torch.randn(9, device=device)
    for batch in (64, 1024):
        x = torch.randn(batch, 65, 3, device=device)
        out[f"lorenz_step_{batch}_ms"] = timed(
            lambda: pc_step(net, every_8th, y, 0.05**2, x, 0.5, 0.5 - 1 / 256, 3e-2), device, args.repeats)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            pc_step(net, every_8th, y, 0.05**2, x, 0.5, 0.5 - 1 / 256, 3e-2)
            out[f"lorenz_step_{batch}_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20

    def pool(x):
        return torch.nn.functional.avg_pool2d(x.flatten(0, -3), 4).reshape(*x.shape[:-2], x.shape[-2] // 4, x.shape[-1] // 4)

    for name, length in (("unet", 16), ("paper", 9)):
        if name == "paper" and args.skip_paper:
            continue
        net, config = torch_interop.load(f"/tmp/sda_bench_torch_{name}.safetensors")
        net = net.to(device).eval()
        n = config["event"][-1]
        x = torch.randn(1, length, 2, n, n, device=device)
        y = torch.randn(length, 2, n // 4, n // 4, device=device)
        out[f"{name}_guided_ms"] = timed(lambda: guided_eps(net, pool, y, 0.01, x, 0.5, 1e-2), device,
                                         args.repeats if name == "unet" else 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    with torch.no_grad():
        main()
