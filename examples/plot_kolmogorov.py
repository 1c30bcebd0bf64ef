#!/usr/bin/python3
"""Figures of examples/kolmogorov: vorticity of the truth, the observation and
posterior samples at a few times; energy spectra; RMSE over time.

Reads DIR/truth.h5, DIR/<scenario>_{samples,observation}.h5 (vorticity fields
written by the C++ example, dataset "x" [N, L, m, m]), DIR/spectra.csv and
DIR/rmse.csv (default out/kolmogorov); writes DIR/kolmogorov_<scenario>.png,
DIR/kolmogorov_spectra.png and DIR/kolmogorov_rmse.png. Where
examples/kolmogorov_mpi has run, also DIR/kolmogorov_long.png from
DIR/long_{truth,samples}.h5, long_rmse.csv and long_summary.csv: the long
trajectory, a sample, and the RMSE per state with the ranks' blocks. Needs
Debian's python3-matplotlib and python3-h5py.
"""
import csv
import os
import sys
from collections import defaultdict

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def field(path):
    with h5py.File(path, "r") as handle:
        return np.asarray(handle["x"])


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def save(figure, out, name):
    """Lays out, writes OUT/NAME and closes the figure; returns the path."""
    figure.tight_layout()
    path = os.path.join(out, name)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def scenario_figure(out, scenario, truth, samples, observation, shown=3):
    length = truth.shape[1]
    times = np.linspace(0, length - 1, min(5, length)).round().astype(int)
    limit = np.nanpercentile(np.abs(truth), 99)
    count = min(shown, samples.shape[0])
    figure, axes = plt.subplots(2 + count, len(times), figsize=(2.2 * len(times), 2.2 * (2 + count)), squeeze=False)
    observation_all = observation[0]
    panels = [("truth", truth[0])] + [("observation", observation[0])] + [(f"sample {b + 1}", samples[b]) for b in range(count)]
    for r, (label, series) in enumerate(panels):
        for c, i in enumerate(times):
            axis = axes[r, c]
            image = series[i]
            if label == "observation" and image.shape != truth.shape[2:]:
                cmap = "RdBu_r"
                lim = np.nanpercentile(np.abs(image), 99) or 1.0
            else:
                cmap, lim = "RdBu_r", limit
            masked = np.ma.masked_invalid(image.T)
            if label == "observation" and np.isnan(image).any():  # sparse stations: draw them as dots
                axis.imshow(np.zeros(image.shape), cmap="Greys", vmin=0, vmax=1, origin="lower")
                j, i_ = np.nonzero(~np.isnan(image.T))
                if len(j):
                    scale = np.nanmax(np.abs(observation_all)) or 1.0
                    axis.scatter(i_, j, c=image.T[j, i_], cmap="RdBu_r", vmin=-scale, vmax=scale, s=8)
                else:
                    axis.text(0.5, 0.5, "not observed", ha="center", va="center", transform=axis.transAxes, fontsize=8)
            else:
                axis.imshow(masked, cmap=cmap, vmin=-lim, vmax=lim, origin="lower", interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(f"state {i}", fontsize=9)
            if c == 0:
                axis.set_ylabel(label, fontsize=9)
    names = {"coarse": "coarse (4x4 average pooling) observation: its vorticity",
             "sparse": "sparse observation: u at the stations, every other state",
             "saturated": "saturated coarse observation (inverted for display): its vorticity"}
    figure.suptitle(f"Kolmogorov flow, vorticity: {names.get(scenario, scenario)}", fontsize=10)
    return save(figure, out, f"kolmogorov_{scenario}.png")


def even_blocks(length, ranks):
    """The first state of each rank's block: sda::mpi::Blocks::even."""
    starts = [0]
    for q in range(ranks):
        starts.append(starts[-1] + length // ranks + (1 if q < length % ranks else 0))
    return starts


def long_figure(out, shown=8):
    truth = field(os.path.join(out, "long_truth.h5"))[0]
    sample = field(os.path.join(out, "long_samples.h5"))[0]
    summary = rows(os.path.join(out, "long_summary.csv"))[0]
    errors = rows(os.path.join(out, "long_rmse.csv"))
    length, ranks = truth.shape[0], int(summary["ranks"])
    times = np.linspace(0, length - 1, shown).round().astype(int)
    limit = np.percentile(np.abs(truth), 99)
    figure = plt.figure(figsize=(2.0 * shown, 7.2))
    grid = figure.add_gridspec(3, shown, height_ratios=[1, 1, 1.3])
    for r, (label, series) in enumerate((("truth", truth), ("sample 1", sample))):
        for c, i in enumerate(times):
            axis = figure.add_subplot(grid[r, c])
            axis.imshow(series[i].T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_xticks([]), axis.set_yticks([])
            if r == 0:
                axis.set_title(f"state {i}", fontsize=9)
            if c == 0:
                axis.set_ylabel(label)
    axis = figure.add_subplot(grid[2, :])
    for column, style in (("posterior_mean", "-"), ("sample_mean", "--"), ("spread", ":")):
        axis.plot([float(r[column]) for r in errors], style, label=column.replace("_", " "))
    for start in even_blocks(length, ranks)[1:-1]:
        axis.axvline(start - 0.5, color="0.6", linewidth=0.8)
    axis.set_xlim(0, length - 1)
    axis.set_ylim(bottom=0)
    axis.set_xlabel(f"state (grey lines: the blocks of the {ranks} ranks)")
    axis.set_ylabel("RMSE (velocity scale)")
    axis.set_title(f"{length} states assimilated on {ranks} ranks, {summary['samples']} samples, "
                   f"{summary['steps']} steps, {float(summary['seconds']):.0f} s", fontsize=10)
    axis.legend(fontsize=8, loc="upper right")
    return save(figure, out, "kolmogorov_long.png")


def main(out):
    written = []
    if os.path.exists(os.path.join(out, "long_summary.csv")):
        written.append(long_figure(out))
    if not os.path.exists(os.path.join(out, "spectra.csv")):  # examples/kolmogorov has not finished here
        print("Wrote " + ", ".join(written))
        return
    truth = field(os.path.join(out, "truth.h5"))
    spectra = defaultdict(dict)
    for r in rows(os.path.join(out, "spectra.csv")):
        spectra[(r["scenario"], r["source"])][int(r["k"])] = float(r["energy"])
    scenarios = sorted({s for s, source in spectra if s})
    for scenario in scenarios:
        samples = field(os.path.join(out, f"{scenario}_samples.h5"))
        observation = field(os.path.join(out, f"{scenario}_observation.h5"))
        written.append(scenario_figure(out, scenario, truth, samples, observation))

    figure, axis = plt.subplots(figsize=(5.5, 4))
    nyquist = truth.shape[-1] // 2  # shells above it are only partly filled
    for key, series in sorted(spectra.items()):
        k = np.array([i for i in sorted(series) if 1 <= i <= nyquist])
        e = np.array([series[i] for i in k])
        label = "truth" if key[1] == "truth" else f"posterior ({key[0]})"
        axis.loglog(k, e, "k-" if key[1] == "truth" else "-", label=label, linewidth=2 if key[1] == "truth" else 1.2)
    axis.set_xlabel("wavenumber k")
    axis.set_ylabel("energy spectrum E(k)")
    axis.set_title("energy spectrum, averaged over states")
    axis.legend(fontsize=8)
    written.append(save(figure, out, "kolmogorov_spectra.png"))

    series = defaultdict(lambda: defaultdict(list))
    for r in rows(os.path.join(out, "rmse.csv")):
        for column in ("posterior_mean", "sample_mean", "spread", "baseline"):
            series[r["scenario"]][column].append(float(r[column]))
    figure, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.6), squeeze=False)
    for axis, (scenario, values) in zip(axes[0], sorted(series.items())):
        for column, style in (("posterior_mean", "-"), ("sample_mean", "--"), ("spread", ":"), ("baseline", "-.")):
            axis.plot(values[column], style, label=column.replace("_", " "))
        axis.set_xlabel("state")
        axis.set_ylabel("RMSE (units of the velocity scale)")
        axis.set_title(scenario)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
    written.append(save(figure, out, "kolmogorov_rmse.png"))
    print("Wrote " + ", ".join(written))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/kolmogorov")
