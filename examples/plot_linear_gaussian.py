#!/usr/bin/python3
"""Figure of examples/linear_gaussian: the SDA posterior against the RTS smoother.

Reads the CSV files the example wrote in OUT (default out/linear_gaussian) and
writes OUT/linear_gaussian.png. Needs only Debian's python3-matplotlib.
"""
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HIGHLIGHT = "markov K=2 | MMPS"


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main(out):
    states = defaultdict(lambda: defaultdict(list))  # series -> coordinate -> [(state, mean, sd)]
    for r in rows(os.path.join(out, "states.csv")):
        states[r["series"]][r["coordinate"]].append((int(r["state"]), float(r["mean"]), float(r["sd"])))
    samples = defaultdict(lambda: defaultdict(list))  # sample -> coordinate -> [(state, value)]
    for r in rows(os.path.join(out, "samples.csv")):
        samples[r["sample"]][r["coordinate"]].append((int(r["state"]), float(r["value"])))
    observations = defaultdict(list)
    for r in rows(os.path.join(out, "observations.csv")):
        observations[r["coordinate"]].append((int(r["state"]), float(r["value"]), float(r["std"])))
    table = rows(os.path.join(out, "table.csv"))

    figure = plt.figure(figsize=(12, 10.5))
    grid = figure.add_gridspec(3, 2, height_ratios=[1, 1, 1.1], top=0.88, bottom=0.08, left=0.06, right=0.98,
                               hspace=0.42, wspace=0.12)
    names = {"p1": "position 1", "p2": "position 2", "v1": "velocity 1", "v2": "velocity 2"}
    for k, coordinate in enumerate(["p1", "p2", "v1", "v2"]):
        axis = figure.add_subplot(grid[k // 2, k % 2])
        i, m, s = zip(*sorted(states["RTS smoother"][coordinate]))
        axis.fill_between(i, [a - 2 * b for a, b in zip(m, s)], [a + 2 * b for a, b in zip(m, s)],
                          color="0.8", label="RTS smoother, mean ± 2 sd")
        axis.plot(i, m, color="0.4", lw=1.5)
        j, mh, sh = zip(*sorted(states[HIGHLIGHT][coordinate]))
        axis.plot(j, [a - 2 * b for a, b in zip(mh, sh)], color="tab:blue", lw=1, ls="--")
        axis.plot(j, [a + 2 * b for a, b in zip(mh, sh)], color="tab:blue", lw=1, ls="--",
                  label="SDA (Markov K=2, MMPS), mean ± 2 sd")
        axis.plot(j, mh, color="tab:blue", lw=1.5)
        for n, sample in enumerate(samples.values()):
            t, v = zip(*sorted(sample[coordinate]))
            axis.plot(t, v, color="tab:blue", lw=0.6, alpha=0.5, label="SDA samples" if n == 0 else None)
        t, v, _ = zip(*sorted(states["truth"][coordinate]))
        axis.plot(t, v, color="black", ls=":", lw=1.2, label="truth")
        if coordinate in observations:
            o, v, e = zip(*observations[coordinate])
            axis.errorbar(o, v, yerr=[2 * x for x in e], fmt="o", color="tab:red", ms=4, label="observations ± 2 std")
        axis.set_title(names[coordinate])
        axis.set_xlabel("state")
        if k == 0:
            figure.legend(*axis.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=5,
                          fontsize=9, frameon=False)

    axis = figure.add_subplot(grid[2, :])
    labels = [f"{r['prior']}\n{r['guidance']}" for r in table]
    x = range(len(table))
    axis.bar([a - 0.2 for a in x], [float(r["mean_error"]) for r in table], width=0.4, label="mean error (posterior sd)")
    axis.bar([a + 0.2 for a in x], [float(r["sd_error"]) for r in table], width=0.4, label="sd error (|ratio - 1|)")
    level = float(table[0]["samples"]) ** -0.5
    axis.axhline(level, color="black", ls="--", lw=1, label=f"Monte-Carlo level of the mean error (1/sqrt({table[0]['samples']}))")
    axis.set_yscale("log")
    axis.set_xticks(list(x))
    axis.set_xticklabels(labels, fontsize=7)
    axis.set_title("error of each sample set against the RTS smoother")
    axis.legend(fontsize=8)
    figure.suptitle("Score-based data assimilation on a linear-Gaussian chain (33 states)", y=0.985, fontsize=14)
    target = os.path.join(out, "linear_gaussian.png")
    partial = target + ".tmp.png"
    figure.savefig(partial, dpi=110)
    os.replace(partial, target)  # atomic: never a half-written figure
    print(f"Wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/linear_gaussian")
