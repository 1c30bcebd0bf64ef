#!/usr/bin/python3
"""Figures of examples/lorenz63: SDA posteriors against the particle smoother.

Reads DIR/results.csv, DIR/trajectories.csv and DIR/observations.csv (default
out/lorenz63) and writes
  DIR/lorenz63_posterior.png  the observed trajectory, samples of the configuration
                              closest to the particle smoother (W1/floor, no bad
                              sample) and its 5-95% band, per coordinate;
  DIR/lorenz63_w1.png         W1 to the particle smoother over the floor against C,
                              one line per K, lo and hi, one row per guidance (the
                              paper's Figure 3), floor and EnKS as horizontal lines;
  DIR/lorenz63_quality.png    log-prior and log-likelihood of the samples against C.
Needs only Debian's python3-matplotlib.
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


def quantile(values, q):
    values = sorted(values)
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def posterior_figure(out, trajectories, observations):
    scenarios = sorted({r["scenario"] for r in trajectories}, reverse=True)  # lo first
    series = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # scenario -> source -> sample -> rows
    for r in trajectories:
        series[r["scenario"]][r["source"]][r["sample"]].append(r)
    figure, axes = plt.subplots(len(scenarios), 3, figsize=(15, 3.6 * len(scenarios)), squeeze=False)
    for row, scenario in enumerate(scenarios):
        pf = list(series[scenario]["particle smoother"].values())
        states = [int(r["state"]) for r in pf[0]]
        for c, coordinate in enumerate("xyz"):
            axis = axes[row][c]
            band = [[float(sample[i][coordinate]) for sample in pf] for i in range(len(states))]
            axis.fill_between(states, [quantile(b, 0.05) for b in band], [quantile(b, 0.95) for b in band],
                              color="tab:gray", alpha=0.35, lw=0, label="particle smoother 5-95%")
            for source in (name for name in series[scenario] if name.startswith("posterior ")):
                for k, sample in enumerate(series[scenario][source].values()):
                    axis.plot(states, [float(r[coordinate]) for r in sample], color="tab:blue", lw=0.6, alpha=0.5,
                              label=f"samples, {display(source[len('posterior '):])}" if k == 0 else None)
            truth = next(iter(series[scenario]["truth"].values()))
            axis.plot(states, [float(r[coordinate]) for r in truth], color="black", lw=1.2, label="truth")
            if coordinate == "x":
                obs = [r for r in observations if r["scenario"] == scenario]
                axis.errorbar([int(r["state"]) for r in obs], [float(r["y"]) for r in obs],
                              yerr=[float(r["std"]) for r in obs], fmt="o", ms=3, color="tab:red", lw=0.8,
                              label="observations")
            axis.set_title(f"{scenario}: {coordinate}")
            axis.set_xlabel("state")
            if c == 0:
                axis.set_ylabel("standardised")
                axis.legend(fontsize=7, loc="upper right")
    figure.suptitle("Lorenz-63: posterior samples of the closest configuration against the particle smoother")
    figure.tight_layout()
    path = os.path.join(out, "lorenz63_posterior.png")
    figure.savefig(path, dpi=110)
    return path


def display(method):
    """'sda' -> 'SDA', 'dps zeta=0.1' -> 'DPS zeta=0.1'."""
    name, _, options = method.partition(" ")
    return f"{name.upper()} {options}".strip()


def sweep_figure(out, results, metrics, name, title):
    sweep = [r for r in results if r["K"]]
    scenarios = sorted({r["scenario"] for r in sweep}, reverse=True)
    figure, axes = plt.subplots(len(metrics), len(scenarios), figsize=(5.5 * len(scenarios), 3.8 * len(metrics)),
                                squeeze=False)
    for col, scenario in enumerate(scenarios):
        lines = defaultdict(list)
        for r in sweep:
            if r["scenario"] == scenario:
                lines[(r["method"], int(r["K"]))].append(r)
        for row, (metric, label) in enumerate(metrics):
            axis = axes[row][col]
            for (method, k), points in sorted(lines.items()):
                points.sort(key=lambda r: int(r["C"]))
                axis.plot([int(r["C"]) for r in points], [float(r[metric]) for r in points], marker="o",
                          label=f"{display(method)} K={k}")
            for r in results:
                if r["scenario"] == scenario and not r["K"] and metric in ("w1", "w1_relative", "log_prior", "log_likelihood"):
                    reference = float(r[metric])
                    style = ":" if r["method"] == "EnKS" else "--"
                    axis.axhline(reference, color="gray", ls=style, lw=1, label=r["method"])
            axis.set_xticks(sorted({int(r["C"]) for r in sweep}))
            axis.set_xlabel("Langevin corrections C")
            axis.set_ylabel(label)
            axis.set_title(f"{scenario}: {label}")
            if metric == "w1":
                axis.set_yscale("log")
            axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    path = os.path.join(out, name)
    figure.savefig(path, dpi=110)
    return path


def figure3(out, results):
    """The paper's Figure 3 once per guidance: W1/floor against C, one line per K, lo and hi,
    with the floor (1) and the EnKS as horizontal lines."""
    sweep = [r for r in results if r["K"]]
    scenarios = sorted({r["scenario"] for r in sweep}, reverse=True)  # lo first
    methods = sorted({r["method"] for r in sweep}, key=lambda m: (["sda", "mmps", "dps"].index(m.split()[0]), m))
    figure, axes = plt.subplots(len(methods), len(scenarios), figsize=(5.5 * len(scenarios), 3.6 * len(methods)),
                                squeeze=False, sharey=True)
    corrections = sorted({int(r["C"]) for r in sweep})
    for row, method in enumerate(methods):
        for col, scenario in enumerate(scenarios):
            axis = axes[row][col]
            lines = defaultdict(list)
            for r in sweep:
                if r["scenario"] == scenario and r["method"] == method:
                    lines[int(r["K"])].append(r)
            for k, points in sorted(lines.items()):
                points.sort(key=lambda r: int(r["C"]))
                axis.plot([int(r["C"]) for r in points], [float(r["w1_relative"]) for r in points], marker="o",
                          color=f"C{k - 1}", label=f"K={k}")  # one colour per K in every panel
                for r in points:  # configurations with samples left out are marked
                    if int(r["bad"]):
                        axis.annotate(f"{r['bad']} bad", (int(r["C"]), float(r["w1_relative"])), fontsize=6,
                                      color="tab:red", textcoords="offset points", xytext=(3, 3))
            axis.axhline(1.0, color="gray", ls="--", lw=1, label="floor (2nd particle-smoother run)")
            for r in results:
                if r["scenario"] == scenario and r["method"] == "EnKS":
                    axis.axhline(float(r["w1_relative"]), color="gray", ls=":", lw=1.2, label="EnKS")
            axis.set_yscale("log")
            axis.set_xticks(corrections)
            axis.set_xlabel("Langevin corrections C")
            axis.set_ylabel("W1 / floor")
            axis.set_title(f"{display(method)}: {scenario}")
            axis.legend(fontsize=7)
    samples = sweep[0]["samples"] if sweep else "?"
    figure.suptitle(f"W1 to the particle smoother relative to the floor, {samples} samples (the paper's Figure 3, "
                    "per guidance)")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    path = os.path.join(out, "lorenz63_w1.png")
    figure.savefig(path, dpi=110)
    return path


def main(out):
    results = rows(os.path.join(out, "results.csv"))
    trajectories = rows(os.path.join(out, "trajectories.csv"))
    observations = rows(os.path.join(out, "observations.csv"))
    written = [posterior_figure(out, trajectories, observations),
               figure3(out, results),
               sweep_figure(out, results, [("log_prior", "log-prior"), ("log_likelihood", "log-likelihood")],
                            "lorenz63_quality.png", "Log-prior and observation log-likelihood of the samples")]
    for path in written:
        print(f"Wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/lorenz63")
