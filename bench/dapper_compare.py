#!/usr/bin/env python3
"""DAPPER against sda's ensemble filters on the same twin experiments.

For each system and seed, DAPPER (Raanes et al., 1.7.1) simulates the truth xx and the
observations yy of its own module (HMM.simulate() after set_seed); DAPPER assimilates them
(xp.assimilate, timed), and bench/dapper_twin (sda's ensemble_transform_smoother, timed
in-process) assimilates the same observations from its own draw of the same initial law.
Both are scored here alike: rmse.a (RMS over the variables of analysis mean minus truth) and
rmv.a (sqrt of the mean ensemble variance), averaged over the analysis times after the
module's BurnIn, with DAPPER's own mean_with_conf (AR(1)-corrected confidence) on both series.

  Lorenz96.sakov2008  n = 40, F = 8, dt = 0.05, every variable observed every step, R = I,
                      x0 ~ N(e_0, 0.001 I), Ko = 1000, BurnIn = 20 (601 analyses averaged)
  Lorenz63.sakov2012  dt = 0.01, observed every 25 steps, R = 2 I, x0 ~ N(x0, 2 I),
                      Ko = 1000, BurnIn = 16

Methods: DAPPER's EnKF('Sqrt', N, infl, rot=True) = sda's ETKF, LETKF(N, infl, rot=True,
loc_rad) = sda's LETKF with GC half-width 1.82 loc_rad; CONFIGS below says where each setting
comes from. Where they differ: DAPPER's sakov2008 localizer analyses batches of two neighbouring
variables (observation distances to the batch's centre) and drops tapers below 1e-3, sda
analyses each variable alone with every taper > 0; the random rotations, and so the ensembles,
are not the same draws. sda's state 0 is t = 0 (no observation), its state i >= 1 is DAPPER's
k = i dko with observation yy[i-1]. A row's interval is the mean over seeds +- u, u = sqrt(time-average CI^2 / seeds
+ seed-to-seed variance / seeds); "agree" when the two intervals +-2u overlap. The paired
column is the mean over seeds of DAPPER minus sda on the same truth (+- its standard error).
DAPPER's seconds are its assimilate(), which includes its per-step statistics (CRPS, skewness,
a spectral decomposition... at every forecast and analysis; --bare times a second run without
them); sda's are the filter call inside the driver. Both use all cores (TBB, numpy's BLAS).

Runs in bench/.venv (pip install dapper==1.7.1), after
`cmake --build build --target dapper_twin`:
  bench/.venv/bin/python bench/dapper_compare.py [--quick] [--seeds 3] [--Ko K] [--bare] [--out FILE]
"""
import argparse
import contextlib
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

with contextlib.redirect_stdout(sys.stderr):  # DAPPER's import-time notes stay off the table
    import dapper.da_methods as da
    import dapper.mods.Lorenz63.sakov2012 as sakov2012
    import dapper.mods.Lorenz96 as lorenz96
    import dapper.mods.Lorenz96.sakov2008 as sakov2008
    import dapper.stats
    import dapper.tools.progressbar
    from dapper.tools.seeding import set_seed
    from dapper.tools.series import mean_with_conf

SYSTEMS = {
    "L96": dict(module=sakov2008, name="lorenz96", forcing=lorenz96.Force),
    "L63": dict(module=sakov2012, name="lorenz63", forcing=0.0),
}

# system, method, N, infl, loc_rad (None: ETKF), published rmse.a, where the setting comes from.
# DAPPER publishes no setting for the rows marked "sweep"; their infl is the one an sda sweep
# chose (infl 1.0, 1.01, 1.02, 1.04, 1.06, 1.08, 1.1, 1.15, 1.2; Ko = 3000; truth seeds 97 and
# 98, neither used here): the lowest mean rmse.a of the two sweep runs (LETKF N=20: 1.01 and
# 1.02 tie at 0.198).
CONFIGS = [
    ("L96", "ETKF", 15, 1.15, None, None, "sweep (infl <= 1.10 diverged on a sweep seed)"),
    ("L96", "ETKF", 20, 1.04, None, 0.20, "sakov2008.py, after bocquet2015 Fig 3"),
    ("L96", "ETKF", 24, 1.013, None, 0.18, "sakov2008.py, after sakov2008 Table 1"),
    ("L96", "ETKF", 40, 1.02, None, None,
     "sweep (infl 1.01, DAPPER's for its N=40 DEnKF and iEnKS, diverged on a sweep seed)"),
    ("L96", "LETKF", 7, 1.04, 4, 0.22, "sakov2008.py"),
    ("L96", "LETKF", 15, 1.02, 4, None, "sweep; loc_rad 4 as DAPPER's N=7 row"),
    ("L96", "LETKF", 20, 1.02, 4, None, "sweep; loc_rad 4 as DAPPER's N=7 row"),
    ("L96", "LETKF", 40, 1.01, 4, None, "sweep; loc_rad 4 as DAPPER's N=7 row"),
    ("L63", "ETKF", 10, 1.02, None, 0.60,
     "sakov2012.py, after sakov2012 Table 1 (DAPPER's docs/examples/basic_2.py: 0.63)"),
]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def write_twin(path, system, HMM, yy):
    """What dapper_twin reads: the model, the initial law, H, R and the observations (no truth)."""
    Obs = HMM.Obs(0)
    H = Obs.linear(HMM.X0.mu)
    R = Obs.noise.C.full
    with open(path, "w") as f:
        def line(key, values):
            f.write(key + " " + " ".join("%.17g" % v for v in np.ravel(values)) + "\n")
        f.write("# DAPPER twin experiment for bench/dapper_twin\n")
        f.write(f"system {system['name']}\nnx {HMM.Dyn.M}\nny {Obs.M}\ndko {HMM.tseq.dko}\n")
        line("dt", [HMM.tseq.dt])
        line("forcing", [system["forcing"]])
        line("mu", HMM.X0.mu)
        line("cov", HMM.X0.C.full)
        line("H", H)
        line("R", R)
        for y in yy:
            line("y", y)


def run_dapper(HMM, xx, yy, method, N, infl, loc_rad, seed, score=True):
    """rmse.a, rmv.a (UncertainQtty) and seconds of DAPPER's assimilate (the seconds alone
    unless `score`)."""
    if method == "ETKF":
        xp = da.EnKF("Sqrt", N=N, infl=infl, rot=True)
    else:
        xp = da.LETKF(N=N, infl=infl, rot=True, loc_rad=loc_rad)
    set_seed(seed)
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        xp.assimilate(HMM, xx, yy, liveplots=False, fail_gently=True)
        seconds = time.perf_counter() - start
        if not score:
            return seconds
        xp.stats.average_in_time()
    if getattr(xp, "crashed", False):
        nan = mean_with_conf(np.full(10, np.nan))
        return nan, nan, seconds
    return xp.avrgs.rmse.a, xp.avrgs.rmv.a, seconds


@contextlib.contextmanager
def without_statistics():
    """DAPPER's per-step statistics switched off (Stats.assess and Stats.write do nothing)."""
    saved = dapper.stats.Stats.assess, dapper.stats.Stats.write
    dapper.stats.Stats.assess = dapper.stats.Stats.write = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        dapper.stats.Stats.assess, dapper.stats.Stats.write = saved


def time_dapper_bare(HMM, xx, yy, method, N, infl, loc_rad, seed):
    """Seconds of DAPPER's assimilate without its statistics: the filter alone."""
    with without_statistics():
        return run_dapper(HMM, xx, yy, method, N, infl, loc_rad, seed, score=False)


def run_sda(driver, twin, HMM, xx, N, infl, loc_rad, seed, workdir):
    """The same statistics of dapper_twin's analyses, and the seconds of its filter call."""
    output = os.path.join(workdir, "analysis.txt")
    command = [driver, "--input", twin, "--output", output, "--members", str(N), "--inflation", repr(infl),
               "--rotate", "--seed", str(seed)]
    if loc_rad is not None:
        command += ["--loc-rad", repr(loc_rad)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr.strip()}")
    with open(output) as f:
        seconds = float(f.readline().split()[2])
    table = np.loadtxt(output, comments="#", ndmin=2)
    spread, mean = table[:, 0], table[:, 1:]
    truth = xx[HMM.tseq.kko]  # the states at the observation times
    rmse = np.sqrt(np.mean((mean - truth) ** 2, axis=1))
    mask = HMM.tseq.masko
    return mean_with_conf(rmse[mask]), mean_with_conf(spread[mask]), seconds


def combine(values, precs):
    """Mean over seeds and u: time-average CI and seed-to-seed spread of that mean."""
    values, precs = np.asarray(values), np.asarray(precs)
    n = len(values)
    u_time = math.sqrt(np.sum(precs**2)) / n
    u_seed = np.std(values, ddof=1) / math.sqrt(n) if n > 1 else 0.0
    return float(np.mean(values)), math.sqrt(u_time**2 + u_seed**2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: Ko 500, 1 seed")
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default 3; 1 with --quick)")
    parser.add_argument("--Ko", type=int,
                        help="index of the last observation (default: the modules' 1000; 500 with --quick)")
    parser.add_argument("--build", default="build", help="CMake build folder holding bench/dapper_twin")
    parser.add_argument("--bare", action="store_true",
                        help="also time DAPPER without its per-step statistics (a second run of each configuration)")
    parser.add_argument("--only", help="run only the rows whose 'system method' contains this (e.g. L63, 'L96 LETKF')")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    Ko = args.Ko or (500 if args.quick else None)
    driver = os.path.join(args.build, "bench", "dapper_twin")
    if not os.access(driver, os.X_OK):
        sys.exit(f"dapper_compare: {driver} not found; build it: cmake --build {args.build} --target dapper_twin")
    dapper.tools.progressbar.disable_progbar = True
    configs = [c for c in CONFIGS if not args.only or args.only in f"{c[0]} {c[1]}"]

    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    command = shlex.join([python] + sys.argv)
    results = {c: [] for c in configs}  # per seed: (dapper rmse, dapper rmv, dapper s, sda rmse, sda rmv, sda s)
    lengths = {}
    with tempfile.TemporaryDirectory() as workdir:
        for key, system in SYSTEMS.items():
            mine = [c for c in configs if c[0] == key]
            if not mine:
                continue
            HMM = system["module"].HMM.copy()
            if Ko:
                HMM.tseq.Ko = Ko
            lengths[key] = (HMM.tseq.Ko, int(HMM.tseq.masko.sum()))
            for s in range(1, seeds + 1):
                set_seed(s)
                with contextlib.redirect_stdout(sys.stderr):
                    xx, yy = HMM.simulate()
                twin = os.path.join(workdir, f"{key}_seed{s}.txt")
                write_twin(twin, system, HMM, yy)
                for c in mine:
                    _, method, N, infl, loc_rad, _, _ = c
                    seed = 1000 * s + CONFIGS.index(c) + 1  # the ensemble's (each library draws its own)
                    d_rmse, d_rmv, d_s = run_dapper(HMM, xx, yy, method, N, infl, loc_rad, seed)
                    s_rmse, s_rmv, s_s = run_sda(driver, twin, HMM, xx, N, infl, loc_rad, seed, workdir)
                    d_bare = (time_dapper_bare(HMM, xx, yy, method, N, infl, loc_rad, seed) if args.bare
                              else math.nan)
                    results[c].append((d_rmse, d_rmv, d_s, s_rmse, s_rmv, s_s, d_bare))
                    log(f"{key} {method} N={N} seed {s}: DAPPER {d_rmse} ({d_s:.2f} s), sda {s_rmse} ({s_s:.2f} s)")

    def fmt(x, digits=3):
        return "nan" if not np.isfinite(x) else f"{x:.{digits}f}"

    lines = [f"`{command}`", "",
             "Analyses averaged: " + ", ".join(f"{k} Ko={ko} ({n} after BurnIn)" for k, (ko, n) in lengths.items())
             + f"; {seeds} seed(s); {os.cpu_count()} cores.", "",
             "| system | method | N | infl | loc_rad | published rmse.a | DAPPER rmse.a | sda rmse.a "
             "| paired DAPPER-sda "
             "| DAPPER spread | sda spread | DAPPER s | " + ("DAPPER s w/o stats | " if args.bare else "")
             + "sda s | agree? |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.bare else "") + "---|"]
    detail = ["", "Per seed, rmse.a +- its time-average CI (DAPPER / sda):", ""]
    notes = ["", "Settings:", ""]
    for c, rows in results.items():
        key, method, N, infl, loc_rad, published, source = c
        d_m, d_u = combine([r[0].val for r in rows], [r[0].prec for r in rows])
        s_m, s_u = combine([r[3].val for r in rows], [r[3].prec for r in rows])
        diff = np.array([r[0].val - r[3].val for r in rows])
        diff_u = (np.std(diff, ddof=1) / math.sqrt(len(diff)) if len(diff) > 1
                  else math.hypot(rows[0][0].prec, rows[0][3].prec))
        agree = abs(d_m - s_m) <= 2 * (d_u + s_u) if np.isfinite(d_m + s_m) else False
        lines.append(
            f"| {key} | {method} | {N} | {infl:g} | {'-' if loc_rad is None else loc_rad} "
            f"| {'-' if published is None else f'{published:.2f}'} "
            f"| {fmt(d_m)} ± {fmt(d_u)} | {fmt(s_m)} ± {fmt(s_u)} "
            f"| {fmt(np.mean(diff))} ± {fmt(diff_u)} "
            f"| {fmt(np.mean([r[1].val for r in rows]))} | {fmt(np.mean([r[4].val for r in rows]))} "
            f"| {np.mean([r[2] for r in rows]):.2f} | "
            + (f"{np.mean([r[6] for r in rows]):.2f} | " if args.bare else "")
            + f"{np.mean([r[5] for r in rows]):.2f} | {'yes' if agree else 'NO'} |")
        detail.append(f"- {key} {method} N={N}: " + ", ".join(
            f"{fmt(r[0].val)}±{fmt(r[0].prec)} / {fmt(r[3].val)}±{fmt(r[3].prec)}" for r in rows))
        def reproduces(m, u):  # published to two decimals: +-0.005 of rounding, and +-2u
            return "reproduces it" if abs(m - published) <= 0.005 + 2 * u else "does NOT reproduce it"
        notes.append(f"- {key} {method} N={N} infl={infl:g}{'' if loc_rad is None else f' loc_rad={loc_rad}'}: {source}"
                     + ("" if published is None else
                        f"; published {published:.2f}: DAPPER {fmt(d_m)} {reproduces(d_m, d_u)}, "
                        f"sda {fmt(s_m)} {reproduces(s_m, s_u)}"))
    text = "\n".join(lines + detail + notes) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
