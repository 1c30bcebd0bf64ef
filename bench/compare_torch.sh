#!/usr/bin/env bash
# bench/compare_torch.sh: sda's score networks against the same networks in
# PyTorch on the CPU, in one run, with the ratios the networks issue asks for.
#
#   bench/compare_torch.sh [--pypi] [--model mlp|unet|all]
#
#   (default)       peer: Debian's python3-torch on OpenBLAS (OpenMP build)
#   --pypi          also the current PyTorch wheel from PyPI (MKL, oneDNN), in bench/.venv
#   --model mlp     the Lorenz-63 ResMLP only (bench_network); unet: the Kolmogorov
#                   ScoreUNet only (bench_unet); all (the default): both
#   SDA_BENCH_OUT=DIR keeps the raw JSON of every run in DIR
#
# Fair peer: Debian's torch calls whatever libblas.so.3 is selected, and the
# reference BLAS is 7 to 20 times slower than OpenBLAS; this script installs
# libopenblas0-openmp and selects it (as root), sets torch's threads to sda's
# and prints which BLAS torch used. Convolutions run in oneDNN (mkldnn) in both
# torch builds; the peer times NCHW and channels_last and keeps the faster.
# Both run on all cores and on one thread, and each ratio pairs runs at the
# same thread count.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

pypi=0
models=(mlp unet)
while [ $# -gt 0 ]; do
    case "$1" in
        --pypi) pypi=1 ;;
        --model)
            case "${2:-}" in
                mlp | unet) models=("$2") ;;
                all) models=(mlp unet) ;;
                *) echo "compare_torch.sh: --model takes mlp, unet or all" >&2; exit 2 ;;
            esac
            shift ;;
        *) echo "usage: bench/compare_torch.sh [--pypi] [--model mlp|unet|all]" >&2; exit 2 ;;
    esac
    shift
done
declare -A program=([mlp]=bench_network [unet]=bench_unet)

ensure_packages "${SDA_PACKAGES_LIBRARY[@]}" libbenchmark-dev "${SDA_PACKAGES_DNNL[@]}" python3-torch libopenblas0-openmp
if [ "$(id -u)" -eq 0 ]; then
    update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 >/dev/null
    update-alternatives --set liblapack.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/liblapack.so.3 >/dev/null
else
    echo "not root: leaving libblas.so.3 as $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)" >&2
fi
targets=()
for model in "${models[@]}"; do targets+=("${program[$model]}"); done
configure_build SDA_BUILD_BENCHMARKS
build "${targets[@]}"

venv="$SDA_ROOT/bench/.venv"
if [ $pypi -eq 1 ] && [ ! -x "$venv/bin/python" ]; then
    say "Creating $venv with PyTorch from PyPI (a few GB)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch numpy
fi

if [ -n "${SDA_BENCH_OUT:-}" ]; then  # keep the raw JSON there
    work="$SDA_BENCH_OUT"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
threads=$(nproc)
pairs=()
# each thread count: sda, then its peers right after (the machine's speed drifts over minutes)
for model in "${models[@]}"; do
    for n in "$threads" 1; do
        say "sda ${program[$model]} (oneTBB, $n threads)"
        "$SDA_BUILD/bench/${program[$model]}" --threads="$n" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
            --benchmark_out="$work/sda-$model-$n.json" --benchmark_out_format=json >/dev/null
        say "PyTorch (Debian python3-torch), $model, $n threads"
        /usr/bin/python3 "$SDA_ROOT/bench/torch_peer.py" --model "$model" --threads "$n" > "$work/debian-$model-$n.json"
        pairs+=("$work/sda-$model-$n.json" "$work/debian-$model-$n.json")
        if [ $pypi -eq 1 ]; then
            say "PyTorch (PyPI), $model, $n threads"
            "$venv/bin/python" "$SDA_ROOT/bench/torch_peer.py" --model "$model" --threads "$n" > "$work/pypi-$model-$n.json" 2>/dev/null
            pairs+=("$work/sda-$model-$n.json" "$work/pypi-$model-$n.json")
        fi
    done
done
python3 "$SDA_ROOT/bench/report.py" "${pairs[@]}"
