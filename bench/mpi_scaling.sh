#!/usr/bin/env bash
# bench/mpi_scaling.sh: sda::mpi on 1 and 2 ranks of this machine (bench/mpi_scaling.cpp), one
# table of medians and speed-ups, then a model of the time-parallel efficiency at 8, 64 and 512
# ranks for the Kolmogorov example, computed from the measurements.
#
#   bench/mpi_scaling.sh [--build DIR] [--rounds N] [--no-build] [-- mpi_scaling options...]
#
#   --build DIR    the build folder (default: $SDA_BUILD, else build/); configured with the
#                  benchmarks on and only `mpi_scaling` built, unless --no-build
#   --rounds N     rounds of the three runs below (default 3: the machine is noisy)
#   -- ...         passed to every run of mpi_scaling (e.g. -- --length 64 --reps 3)
#   SDA_BENCH_OUT=DIR keeps every run's output in DIR
#
# Each round runs, in an order rotated from round to round (the machine's speed drifts):
#   P = 1 rank  x 2 oneTBB threads  (all cores)
#   P = 2 ranks x 1 thread each     (the same cores)
#   P = 1 rank  x 1 thread          (the pure-MPI speed-up is read against this one)
# under mpirun --oversubscribe with the OpenMPI settings of the MPI tests (tests/CMakeLists.txt:
# sda_mpi_test_properties: shared memory between the ranks, no binding). About 2 to 3 minutes
# with the defaults on a 2-core machine.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

rounds=3
do_build=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) SDA_BUILD="$(cd "$2" 2>/dev/null && pwd || echo "$2")"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --no-build) do_build=0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "usage: bench/mpi_scaling.sh [--build DIR] [--rounds N] [--no-build] [-- mpi_scaling options...]" >&2
           exit 2 ;;
    esac
    shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "mpi_scaling.sh: --rounds takes a positive count" >&2; exit 2; }

if [ $do_build -eq 1 ]; then
    ensure_packages "${SDA_PACKAGES_LIBRARY[@]}" libbenchmark-dev "${SDA_PACKAGES_MPI[@]}" "${SDA_PACKAGES_DNNL[@]}"
    configure_build SDA_BUILD_BENCHMARKS
    build mpi_scaling
fi
program="$SDA_BUILD/bench/mpi_scaling"
if [ ! -x "$program" ]; then
    echo "mpi_scaling.sh: no $program (is MPI found? sda::mpi needs libopenmpi-dev openmpi-bin)" >&2
    exit 1
fi

# the OpenMPI environment of the MPI tests (tests/CMakeLists.txt, sda_mpi_test_properties)
export OMPI_MCA_plm=isolated OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none \
       OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_hwloc_base_binding_policy=none

if [ -n "${SDA_BENCH_OUT:-}" ]; then
    work="$SDA_BENCH_OUT"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

configs=("1 2" "2 1" "1 1")  # ranks, threads per rank
start=$SECONDS
for ((round = 1; round <= rounds; ++round)); do
    for ((k = 0; k < ${#configs[@]}; ++k)); do
        read -r ranks threads <<< "${configs[$(( (k + round - 1) % ${#configs[@]} ))]}"
        say "round $round/$rounds: $ranks rank(s) x $threads thread(s) (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        mpirun --oversubscribe --allow-run-as-root -np "$ranks" "$program" --threads "$threads" "${extra[@]}" \
            > "$work/round$round-p$ranks-t$threads.txt"
        grep '^#' "$work/round$round-p$ranks-t$threads.txt" | sed 's/^/  /' >&2
    done
done
say "$rounds rounds in $((SECONDS - start)) s (load average now $(cut -d' ' -f1-3 /proc/loadavg); another busy process slows the 2-rank runs most: their ranks work in lockstep)"

python3 - "$work" <<'PY'
import glob, math, os, re, statistics, sys

work = sys.argv[1]
runs = {}  # (ranks, threads) -> part -> [records, one per round]
for path in sorted(glob.glob(os.path.join(work, "round*-p*-t*.txt"))):
    ranks, threads = map(int, re.search(r"-p(\d+)-t(\d+)\.txt$", path).groups())
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        rec = {}
        for field in line.split()[1:]:
            key, value = field.split("=", 1)
            try:
                rec[key] = float(value)
            except ValueError:
                rec[key] = value
        runs.setdefault((ranks, threads), {}).setdefault(rec["part"], []).append(rec)

A, B, C = (1, 2), (2, 1), (1, 1)  # P=1 x 2 threads, P=2 x 1 thread, P=1 x 1 thread
def med(config, part, key):
    recs = runs.get(config, {}).get(part, [])
    return statistics.median(r[key] for r in recs) if recs else float("nan")
def every(config, part, key):
    return [r[key] for r in runs.get(config, {}).get(part, [])]

rounds = len(runs.get(A, {}).get("setup", []))
print()
print(f"sda::mpi scaling on this machine ({int(med(A, 'setup', 'cores'))} cores), {rounds} rounds; "
      "every timing is the slowest rank's (MPI_Barrier + MPI_Wtime)")
print("  P1x2t = 1 rank x 2 oneTBB threads, P2x1t = 2 ranks x 1 thread (the same 2 cores), P1x1t = 1 rank x 1 thread")
print("  S(same cores) = P1x2t / P2x1t, S(vs 1 thread) = P1x1t / P2x1t, E = S(vs 1 thread) / 2 (P2's parallel efficiency),")
print("  E(threads) = P1x1t / P1x2t / 2 (oneTBB's, for comparison)")
print()
rows = [  # label, part, key, unit
    ("a) time ||: Kolmogorov U-Net, linearize+vjp", "time", "seconds", "s/step"),
    ("b) ensemble ||: Lorenz-63 PC sampling", "ensemble", "seconds", "s"),
    ("c) data ||: training step, batch 64", "train", "seconds", "s"),
]
def table(title, aggregate):
    head = f"{title:44} {'unit':>7} {'P1x2t':>9} {'P2x1t':>9} {'P1x1t':>9} {'S(same)':>8} {'S(1t)':>7} {'E':>6} {'E(thr)':>7}"
    print(head)
    print("-" * len(head))
    for label, part, key, unit in rows:
        a, b, c = (aggregate(every(cfg, part, key)) if every(cfg, part, key) else float("nan") for cfg in (A, B, C))
        if part == "train":  # seconds per step
            steps = med(A, part, "steps")
            a, b, c, unit = a / steps, b / steps, c / steps, "s/step"
        print(f"{label:44} {unit:>7} {a:9.4g} {b:9.4g} {c:9.4g} {a / b:8.3f} {c / b:7.3f} {c / b / 2:6.1%} {c / a / 2:7.1%}")
    print()

table(f"median of {rounds} rounds", statistics.median)
table(f"best of {rounds} rounds (least disturbed)", min)
print("every round (s):")
for label, part, key, unit in rows:
    print(f"  {part:9}" + "".join(f"  {name} " + " ".join(f"{v:.4g}" for v in every(cfg, part, key))
                                  for name, cfg in (("P1x2t", A), ("P2x1t", B), ("P1x1t", C))))

if "time" not in runs.get(B, {}) or "time" not in runs.get(C, {}) or "reductions" not in runs.get(B, {}):
    print("(no part 'time' or 'reductions' on 2 ranks and on 1 thread: no halo figures, no model)")
    sys.exit(0)

# --- a)'s communication against its computation -----------------------------------------------------
t2 = runs[B]["time"][0]
L, Bt, K, S = int(t2["L"]), int(t2["B"]), int(t2["K"]), int(t2["state"])
step2 = med(B, "time", "seconds")
bytes_max = t2["eps_bytes_max"] + t2["vjp_bytes_max"]
flops_rank = t2["flops_forward_window"] * 3 * t2["rows_evaluated_max"]
print()
print(f"a) at P=2 (K={K}, {Bt} x {L} states of {S} floats):")
print(f"  halo bytes sent per step by the busiest rank: {t2['eps_bytes_max']:.0f} (eps: K states) + "
      f"{t2['vjp_bytes_max']:.0f} (VJP: K windows) = {bytes_max / 1024:.0f} KiB")
print(f"  network work per step on the busiest rank: {t2['rows_evaluated_max']:.0f} windows (tiles of "
      f"{t2['tile_rows']:.0f}, padding {t2['padding']:.3f}) x 3 x {t2['flops_forward_window'] / 1e9:.3f} GFLOP = "
      f"{flops_rank / 1e9:.1f} GFLOP, {flops_rank / bytes_max:.0f} FLOP per halo byte")
print(f"  the step {step2 * 1e3:.1f} ms; inside MPI_Waitall {med(B, 'time', 'wait_seconds') * 1e3:.2f} ms (busiest "
      f"rank: exchanges + waiting for the slower neighbour), the same messages alone "
      f"{med(B, 'time', 'halo_seconds') * 1e6:.0f} us (shared memory)")

# --- the model ------------------------------------------------------------------------------------------
red = runs[B]["reductions"][0]
allreduce_per_eval = red["allreduce_per_step"] / red["network_evaluations_per_step"]
t_row = med(C, "time", "seconds") / t2["rows"]          # one window, linearize + VJP, one core
alpha, beta = 2e-6, 10e9
Lm, Bm = 256, 2
tile = int(t2["tile_rows"])
# per-neighbour message bytes, from the measured ones (P=2: each rank has one neighbour), scaled to B = Bm
eps_msg = t2["eps_bytes_max"] * Bm / Bt
vjp_msg = t2["vjp_bytes_max"] * Bm / Bt

def blocks_even(n, p):
    starts = [0]
    for q in range(p):
        starts.append(starts[-1] + n // p + (1 if q < n % p else 0))
    return starts

def model(P, Lm=Lm):
    """T(P) per guided network evaluation of Lm states x Bm samples (None where impossible)."""
    starts = blocks_even(Lm, P)
    sizes = [starts[q + 1] - starts[q] for q in range(P)]
    ok = Lm >= P and all(n >= (K + 1 if q in (0, P - 1) else K) for q, n in enumerate(sizes)) if P > 1 else True
    if not ok:
        return None
    windows = Lm - 2 * K
    rows = windows * Bm
    busiest = 0
    for q in range(P):  # as sda::mpi::MarkovComposedScore: its windows, in whole tiles of the global numbering
        wlo = 0 if q == 0 else starts[q] - K
        whi = windows - 1 if q == P - 1 else starts[q + 1] - 1 - K
        lo, hi = wlo * Bm, (whi + 1) * Bm
        evaluated, start = 0, lo // tile * tile
        while start < hi:
            evaluated += min(rows, start + tile) - start
            start += tile
        busiest = max(busiest, evaluated)
    compute = t_row * busiest
    neighbours = min(2, P - 1)
    halo = neighbours * ((alpha + eps_msg / beta) + (alpha + vjp_msg / beta))
    reduce = allreduce_per_eval * alpha * math.ceil(math.log2(P)) if P > 1 else 0.0
    return dict(compute=compute, halo=halo, reduce=reduce, total=compute + halo + reduce, padding=busiest * P / rows,
                per_rank=Lm / P, serial=t_row * rows)

print()
print("MODEL (not a measurement): time parallelism of the Kolmogorov example, 256 states x B = 2 samples, K = 2,")
print("per guided network evaluation (linearize + VJP; a PC step with 1 correction makes 2 of them):")
for text, what in ((f"  T(P) = t_window x windows on the busiest rank (whole tiles of {tile}: the padding)", "compute"),
                   ("       + neighbours (2) x 2 exchanges x (alpha + bytes / beta)", "halo"),
                   (f"       + {allreduce_per_eval:g} MPI_Allreduce per evaluation x alpha x ceil(log2 P)", "reductions")):
    print(f"{text:<84} [{what}]")
print(f"  t_window = {t_row * 1e3:.2f} ms: the measured P1x1t step / {t2['rows']:.0f} windows (one core per rank; "
      "the network's speed at one core, without cache effects of smaller blocks)")
print(f"  messages per neighbour: {eps_msg / 1024:.0f} KiB (eps, K states) and {vjp_msg / 1024:.0f} KiB (VJP, K windows), "
      "the bytes measured at P=2")
print(f"  reductions: {red['allreduce_per_step']:g} MPI_Allreduce per PC step, measured ({red['exact_reductions_per_step']:g} "
      f"exact reduction = 2 calls, + all_finite), {allreduce_per_eval:g} per evaluation; "
      "latency only (a few doubles each)")
print(f"  network: InfiniBand class, alpha = {alpha * 1e6:g} us, beta = {beta / 1e9:g} GB/s; no overlap of exchanges with "
      "computation; the sampler's own vector work and load imbalance beyond the tiles ignored")
print()
print(f"{'P':>5} {'states/rank':>11} {'padding':>8} {'compute':>10} {'halo':>9} {'reduce':>9} {'T(P)':>10} {'speed-up':>9} {'efficiency':>10}")
for P in (1, 2, 8, 64, 512):
    m = model(P)
    if m is None:
        print(f"{P:>5} {Lm / P:>11.3g}   impossible: {Lm} states cannot give every block K = {K} states (the first "
              f"and last K + 1 = {K + 1}); even blocks allow at most P = {(Lm - 2) // K}")
        continue
    speed = m["serial"] / m["total"]
    print(f"{P:>5} {m['per_rank']:>11.3g} {m['padding']:>8.3f} {m['compute'] * 1e3:>8.2f}ms {m['halo'] * 1e6:>7.1f}us "
          f"{m['reduce'] * 1e6:>7.1f}us {m['total'] * 1e3:>8.2f}ms {speed:>9.1f} {speed / P:>10.1%}")
print(f"  note: below 2K+1 = {2 * K + 1} states per rank (P > {Lm // (2 * K + 1)} here) a rank's halo (2K states) is as "
      "large as its own block or larger: allowed (blocks of >= K states), but the exchanged data then equals the work's input")
if Bt == Bm:
    m2 = model(2, L)
    print(f"  check: at the measured size ({L} states, P = 2) the model gives {m2['total'] * 1e3:.1f} ms, measured P2x1t "
          f"{step2 * 1e3:.1f} ms (shared memory, 2 ranks on 2 cores)")
PY
