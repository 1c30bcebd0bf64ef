#!/usr/bin/python3
"""Figures of examples/kolmogorov: vorticity of the truth, the observation and
posterior samples at a few times; energy spectra; RMSE over time.

Reads DIR/truth.h5, DIR/<scenario>_{samples,observation}.h5 (vorticity fields
written by the C++ example, dataset "x" [N, L, m, m]), DIR/spectra.csv and
DIR/rmse.csv (default out/kolmogorov); writes DIR/kolmogorov_<scenario>.png,
DIR/kolmogorov_spectra.png and DIR/kolmogorov_rmse.png. Needs Debian's
python3-matplotlib and python3-h5py.
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


def main(out):
    written = []
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
