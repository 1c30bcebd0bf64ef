#!/usr/bin/python3
"""Figures of examples/lorenz96: Hovmoller diagrams, RMSE over time, rank histograms.

Reads DIR/{fields,series,ranks}.csv (default out/lorenz96) and writes
DIR/lorenz96_hovmoller.png and DIR/lorenz96_scores.png. Needs only Debian's
python3-matplotlib and python3-numpy.
"""
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STATES, VARIABLES = 65, 40
COLOURS = {"SDA": "C3", "LETKF": "C0", "LETKS": "C2", "4D-Var": "C1"}


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main(out):
    fields = defaultdict(lambda: np.full((VARIABLES, STATES), np.nan))  # (scenario, source) -> [variable, state]
    for r in rows(os.path.join(out, "fields.csv")):
        fields[r["scenario"], r["source"]][int(r["variable"]), int(r["state"])] = float(r["value"])
    scenarios = list(dict.fromkeys(s for s, _ in fields))

    # --- Hovmoller diagrams: truth, observations, SDA mean and spread, the LETKS and 4D-Var means ---
    panels = [("truth", "truth"), ("observation", "observations"), ("SDA mean", "SDA mean"),
              ("SDA spread", "SDA spread"), ("LETKS mean", "LETKS mean"), ("4D-Var mean", "4D-Var")]
    figure, axes = plt.subplots(len(scenarios), len(panels), figsize=(3.0 * len(panels), 3.2 * len(scenarios)),
                                squeeze=False, constrained_layout=True)
    truth_range = np.nanmax(np.abs(fields[scenarios[0], "truth"]))
    for row, scenario in enumerate(scenarios):
        for col, (source, title) in enumerate(panels):
            axis = axes[row, col]
            value = fields.get((scenario, source))
            if value is None:
                axis.set_axis_off()
                continue
            spread = source.endswith("spread")
            image = axis.imshow(value, aspect="auto", origin="lower", interpolation="nearest",
                                cmap="magma" if spread else "RdBu_r",
                                vmin=0 if spread else -truth_range, vmax=truth_range / 3 if spread else truth_range)
            if source == "observation":
                axis.set_facecolor("0.85")
            axis.set_title(f"{scenario}: {title}", fontsize=9)
            axis.set_xlabel("state (dt 0.05)")
            if col == 0:
                axis.set_ylabel("variable")
            if col in (0, 3):
                figure.colorbar(image, ax=axis, fraction=0.05)
    path = os.path.join(out, "lorenz96_hovmoller.png")
    figure.savefig(path, dpi=110)
    print("wrote", path)

    # --- RMSE over time and rank histograms ---
    series = defaultdict(lambda: defaultdict(dict))  # scenario -> method -> state -> (rmse, spread)
    for r in rows(os.path.join(out, "series.csv")):
        series[r["scenario"]][r["method"]][int(r["state"])] = (float(r["rmse"]), float(r["spread"]))
    ranks = defaultdict(lambda: defaultdict(list))
    for r in rows(os.path.join(out, "ranks.csv")):
        ranks[r["scenario"]][r["method"]].append(float(r["count"]))
    figure, axes = plt.subplots(2, len(scenarios), figsize=(6.5 * len(scenarios), 7.5), squeeze=False,
                                constrained_layout=True)
    for col, scenario in enumerate(scenarios):
        axis = axes[0, col]
        for method, values in series[scenario].items():
            states = sorted(values)
            colour = COLOURS.get(method, "k")
            axis.plot(states, [values[i][0] for i in states], color=colour, label=f"{method} RMSE")
            if method != "4D-Var":
                axis.plot(states, [values[i][1] for i in states], color=colour, linestyle=":", linewidth=1)
        axis.set_title(f"{scenario}: RMSE of the mean (solid) and spread (dotted) per state")
        axis.set_xlabel("state")
        axis.set_ylabel("RMSE over the 40 variables")
        axis.legend(fontsize=8)
        axis = axes[1, col]
        for method, counts in ranks[scenario].items():
            total = sum(counts)
            # relative frequency per bin over the uniform 1 / (N + 1): flat at 1 when calibrated
            centres = (np.arange(len(counts)) + 0.5) / len(counts)
            axis.step(centres, np.array(counts) / total * len(counts), where="mid", color=COLOURS.get(method, "k"),
                      label=f"{method} ({len(counts) - 1} members)")
        axis.axhline(1.0, color="0.5", linewidth=0.8)
        axis.set_title(f"{scenario}: rank histograms of the truth (flat = calibrated)")
        axis.set_xlabel("rank / (members + 1)")
        axis.set_ylabel("frequency / uniform")
        axis.legend(fontsize=8)
    path = os.path.join(out, "lorenz96_scores.png")
    figure.savefig(path, dpi=110)
    print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/lorenz96")
