#!/usr/bin/env python3
"""An independent check of sda's guided Lorenz-63 posteriors: azula's MMPS and DPS
on sda's own window prior and observations.

`examples/lorenz63` writes a run folder with the trained window prior
(window_K<k>.safetensors), the observations (observations.csv), the particle
smoother's draws (trajectories.csv) and the floor (results.csv). This script
loads the same weights into PyTorch (tools/torch_interop.py), composes them
over the 65 states as MarkovComposedScore does (the paper's unfold and fold),
wraps the result as an azula denoiser with sda's cosine VP schedule, and
samples with azula's own guidance:

  mmps  azula.guidance.MMPSDenoiser (conjugate gradient, 1 or more iterations,
        the published MMPS: no curvature guard, no gamma) under azula's
        PCSampler (DDIM predictor, the paper's exponential integrator, with
        azula's Langevin corrector when --corrections > 0)
  dps   azula.guidance.DPSSampler (DDPM with zeta times the gradient of the
        residual's norm after every step, Chung et al.'s convention), one
        sample at a time: azula takes the norm over the whole batch

It prints, per scenario and method, how many samples went bad (non-finite or
beyond 10 standard deviations of the data, as sda's sample_health) and W1 to
the particle smoother over the others, relative to the run's floor.

Runs in bench/.venv (PyPI torch and azula; never a dependency of sda):
  bench/.venv/bin/pip install torch azula scipy
  bench/.venv/bin/python bench/azula_lorenz63.py --run out/lorenz63 --order 2
"""
import argparse
import csv
import math
import os
import sys
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import azula.denoise
import azula.guidance
import azula.linalg.covariance
import azula.noise
import azula.sample

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_interop  # noqa: E402

LENGTH = 65


class CosineVP(azula.noise.Schedule):
    """sda::VPCosine: alpha = cos(acos(sqrt(eta)) t)^2, sigma = sqrt(1 - alpha^2 + eta^2)."""

    def __init__(self, eta=1e-3):
        self.eta = eta

    def __call__(self, t):
        t = torch.as_tensor(t, dtype=torch.float32)
        alpha = torch.cos(math.acos(math.sqrt(self.eta)) * t) ** 2
        sigma = torch.sqrt(1 - alpha**2 + self.eta**2)
        return alpha, sigma


class MarkovDenoiser(azula.denoise.Denoiser):
    """E[x | x_t] = (x_t - sigma eps(x_t, t)) / alpha, eps composed from windows of 2K+1
    states: each state takes the window centred on it, the first and last K states the
    first and last window's (the paper's MCScoreNet)."""

    def __init__(self, net, order):
        super().__init__()
        self.net, self.order, self.schedule = net, order, CosineVP()

    def eps(self, x, t):
        k, batch = self.order, x.shape[0]
        windows = x.unfold(1, 2 * k + 1, 1).movedim(-1, 2)  # [B, L - 2K, 2K + 1, 3]
        count = windows.shape[1]
        t = torch.as_tensor(t, dtype=x.dtype).expand(batch * count)
        e = self.net(windows.reshape(batch * count, 2 * k + 1, 3), t).reshape(batch, count, 2 * k + 1, 3)
        return torch.cat((e[:, 0, :k], e[:, :, k], e[:, -1, -k:]), dim=1)

    def forward(self, x_t, t, **kwargs):
        alpha, sigma = self.schedule(t)
        return azula.denoise.DiracPosterior(mean=(x_t - sigma * self.eps(x_t, t)) / alpha)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def trajectories(rows, scenario, source):
    samples = {}
    for r in rows:
        if r["scenario"] == scenario and r["source"] == source:
            samples.setdefault(int(r["sample"]), []).append([float(r["x"]), float(r["y"]), float(r["z"])])
    return np.array([samples[b] for b in sorted(samples)])


def w1(x, y):
    cost = np.linalg.norm(x.reshape(len(x), 1, -1) - y.reshape(1, len(y), -1), axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="out/lorenz63", help="folder of an examples/lorenz63 run")
    parser.add_argument("--weights", help="window prior (default RUN/window_K<order>.safetensors)")
    parser.add_argument("--order", type=int, default=2)
    parser.add_argument("--scenarios", default="lo,hi")
    parser.add_argument("--methods", default="mmps,dps")
    parser.add_argument("--cg", default="1", help="MMPS CG iterations, a list")
    parser.add_argument("--zeta", type=float, default=0.1, help="DPS step size (per step)")
    parser.add_argument("--corrections", type=int, default=0, help="azula PCSampler corrections (MMPS)")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--samples", type=int, default=0, help="default: as many as the particle smoother's draws")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    weights = args.weights or os.path.join(args.run, f"window_K{args.order}.safetensors")
    net, config = torch_interop.load(weights)
    net.eval().requires_grad_(False)
    assert config["event"] == [2 * args.order + 1, 3], f"{weights} holds windows {config['event']}, not K={args.order}"
    denoiser = MarkovDenoiser(net, args.order)
    observations = read_rows(os.path.join(args.run, "observations.csv"))
    stored = read_rows(os.path.join(args.run, "trajectories.csv"))
    results = read_rows(os.path.join(args.run, "results.csv"))

    print(f"azula {azula.__version__ if hasattr(azula, '__version__') else ''} on {weights}, {args.steps} steps, torch {torch.__version__}")
    print(f"{'scenario':8} {'method':22} {'bad':>4} {'W1':>8} {'W1/floor':>9} {'seconds':>8}")
    for scenario in args.scenarios.split(","):
        obs = [r for r in observations if r["scenario"] == scenario]
        states = [int(r["state"]) for r in obs]
        y = torch.tensor([float(r["y"]) for r in obs])
        std = float(obs[0]["std"])
        pf = trajectories(stored, scenario, "particle smoother")
        floor = next(float(r["w1"]) for r in results if r["scenario"] == scenario and r["method"].startswith("particle smoother"))
        n = args.samples or len(pf)
        assert n <= len(pf), f"{n} samples but {len(pf)} particle-smoother draws in {args.run}"

        def A(x):
            return x[..., states, 0]

        variants = []
        for method in args.methods.split(","):
            if method == "mmps":
                variants += [(f"azula mmps cg={c} C={args.corrections}", "mmps", int(c)) for c in args.cg.split(",")]
            elif method == "dps":
                variants.append((f"azula dps zeta={args.zeta:g}", "dps", 0))
            else:
                sys.exit(f"unknown method {method}")
        for name, method, iterations in variants:
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            if method == "mmps":
                guided = azula.guidance.MMPSDenoiser(
                    denoiser, y, A, azula.linalg.covariance.DiagonalCovariance(torch.full_like(y, std**2)),
                    solver="cg", iterations=iterations)
                sampler = azula.sample.PCSampler(guided, corrections=args.corrections, steps=args.steps, silent=True)
                x = sampler(sampler.init((n, LENGTH, 3)))
            else:
                sampler = azula.guidance.DPSSampler(denoiser, y, A, zeta=args.zeta, steps=args.steps, silent=True)
                x = torch.cat([sampler(sampler.init((1, LENGTH, 3))) for _ in range(n)])
            seconds = time.perf_counter() - start
            x = x.double().numpy()
            healthy = np.isfinite(x).all(axis=(1, 2)) & (np.abs(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)) <= 10).all(axis=(1, 2))
            bad = int((~healthy).sum())
            kept = x[healthy]
            if len(kept) >= 2:
                distance = w1(kept, pf[: len(kept)])
                # the floor depends on the count: with samples left out, only W1 is comparable
                relative = distance / floor if bad == 0 else float("nan")
                print(f"{scenario:8} {name:22} {bad:4d} {distance:8.4g} {relative:9.4g} {seconds:8.1f}")
            else:
                print(f"{scenario:8} {name:22} {bad:4d} {'-':>8} {'-':>9} {seconds:8.1f}")


if __name__ == "__main__":
    main()
