#!/usr/bin/python3
"""Figure of examples/lorenz63_prior: training curves and the learned prior.

Reads DIR/loss.csv and DIR/prior.csv (default out/lorenz63) and writes
DIR/lorenz63_prior.png. Needs only Debian's python3-matplotlib.
"""
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main(out):
    loss = rows(os.path.join(out, "loss.csv"))
    prior = rows(os.path.join(out, "prior.csv"))
    series = defaultdict(lambda: defaultdict(list))  # source -> sample -> [(x, y, z)]
    for r in prior:
        series[r["source"]][r["sample"]].append((float(r["x"]), float(r["y"]), float(r["z"])))

    figure = plt.figure(figsize=(13, 8))
    grid = figure.add_gridspec(2, 3, top=0.9, bottom=0.08, left=0.06, right=0.98, hspace=0.35, wspace=0.25)

    axis = figure.add_subplot(grid[0, 0])
    epochs = [int(r["epoch"]) for r in loss]
    axis.plot(epochs, [float(r["train"]) for r in loss], label="training")
    axis.plot(epochs, [float(r["valid"]) for r in loss], label="validation")
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("denoising loss")
    axis.set_title("training")
    axis.legend()

    for k, (source, colour) in enumerate([("data", "0.3"), ("samples", "tab:blue")]):
        axis = figure.add_subplot(grid[0, 1 + k])
        for n, trajectory in enumerate(list(series[source].values())[:6]):
            axis.plot([p[0] for p in trajectory], [p[2] for p in trajectory], color=colour, lw=0.8, alpha=0.8)
        axis.set_xlabel("x (standardised)")
        axis.set_ylabel("z (standardised)")
        axis.set_title("held-out trajectories" if source == "data" else "trajectories sampled from the learned prior")
        axis.set_xlim(-2.6, 2.6)
        axis.set_ylim(-2.6, 2.6)

    for c, name in enumerate("xyz"):
        axis = figure.add_subplot(grid[1, c])
        for source, colour in [("data", "0.5"), ("samples", "tab:blue")]:
            values = [p[c] for trajectory in series[source].values() for p in trajectory]
            axis.hist(values, bins=60, range=(-3, 3), density=True, histtype="step", color=colour, lw=1.5,
                      label="held-out data" if source == "data" else "learned prior")
        axis.set_title(f"marginal of {name}")
        axis.set_xlabel(f"{name} (standardised)")
        if c == 0:
            axis.legend()
    figure.suptitle("Lorenz-63: the learned window prior (K = 2) composed into 65-state trajectories", fontsize=13)
    target = os.path.join(out, "lorenz63_prior.png")
    figure.savefig(target + ".tmp.png", dpi=100)
    os.replace(target + ".tmp.png", target)
    print(f"Wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/lorenz63")
