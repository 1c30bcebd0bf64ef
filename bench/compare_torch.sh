#!/usr/bin/env bash
# bench/compare_torch.sh: sda's score network against the same network in
# PyTorch on the CPU, in one run, with the ratios the networks issue asks for.
#
#   bench/compare_torch.sh            peer: Debian's python3-torch on OpenBLAS (OpenMP build)
#   bench/compare_torch.sh --pypi     also the current PyTorch wheel from PyPI (MKL), in bench/.venv
#
# Fair peer: Debian's torch calls whatever libblas.so.3 is selected, and the
# reference BLAS is 7 to 20 times slower than OpenBLAS; this script installs
# libopenblas0-openmp and selects it (as root), sets torch's threads to sda's
# and prints which BLAS torch used. Both run on all cores and on one thread,
# and each ratio pairs runs at the same thread count.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

pypi=0
[ "${1:-}" = "--pypi" ] && pypi=1
ensure_packages "${SDA_PACKAGES_BUILD[@]}" libbenchmark-dev python3-torch libopenblas0-openmp
if [ "$(id -u)" -eq 0 ]; then
    update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 >/dev/null
    update-alternatives --set liblapack.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/liblapack.so.3 >/dev/null
else
    echo "not root: leaving libblas.so.3 as $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)" >&2
fi
configure_and_build bench_network

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
for n in "$threads" 1; do
    say "sda (oneTBB, $n threads)"
    "$SDA_BUILD/bench/bench_network" --threads="$n" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
        --benchmark_out="$work/sda-$n.json" --benchmark_out_format=json >/dev/null
done
pairs=("$work/sda-$threads.json" "$work/debian-$threads.json" "$work/sda-1.json" "$work/debian-1.json")
say "PyTorch (Debian python3-torch), $threads threads and 1 thread"
for n in "$threads" 1; do
    /usr/bin/python3 "$SDA_ROOT/bench/torch_peer.py" --threads "$n" > "$work/debian-$n.json"
done
if [ $pypi -eq 1 ]; then
    venv="$SDA_ROOT/bench/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        say "Creating $venv with PyTorch from PyPI (a few GB)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q torch numpy
    fi
    say "PyTorch (PyPI), $threads threads and 1 thread"
    for n in "$threads" 1; do
        "$venv/bin/python" "$SDA_ROOT/bench/torch_peer.py" --threads "$n" > "$work/pypi-$n.json" 2>/dev/null
    done
    pairs+=("$work/sda-$threads.json" "$work/pypi-$threads.json" "$work/sda-1.json" "$work/pypi-1.json")
fi
python3 "$SDA_ROOT/bench/report.py" "${pairs[@]}"
