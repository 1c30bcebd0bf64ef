#!/usr/bin/env bash
# bench/compare_adapter.sh: the libtorch adapter against sda's CPU networks and
# against the same work driven from plain PyTorch, in one run.
#
#   bench/compare_adapter.sh [--device cpu|cuda] [--threads N] [--skip-paper]
#
# Runs build/bench/bench_torch (sda's CPU networks and the adapter, same weights)
# and then bench/torch_sampling_peer.py (plain PyTorch on those weights, with the
# python3 that has torch: Debian's python3-torch here, the CUDA wheel on a GPU
# machine), at the same thread count, and prints the ratios. OpenMP threads wait
# passively (OMP_WAIT_POLICY=PASSIVE): spinning OpenMP workers slow Debian's
# libtorch by 1.5x on this 2-core machine, for the adapter and for PyTorch alike.
# SDA_BENCH_OUT=DIR keeps the JSON.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

device=cpu
threads=$(nproc)
paper=1
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift ;;
        --threads) threads="$2"; shift ;;
        --skip-paper) paper=0 ;;
        *) echo "usage: bench/compare_adapter.sh [--device cpu|cuda] [--threads N] [--skip-paper]" >&2; exit 2 ;;
    esac
    shift
done

ensure_packages "${SDA_PACKAGES_LIBRARY[@]}" libbenchmark-dev python3-torch libtorch-dev
configure_build SDA_BUILD_BENCHMARKS SDA_WITH_TORCH
build bench_torch
out="${SDA_BENCH_OUT:-$(mktemp -d)}"
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
filter='.*'
[ $paper -eq 1 ] || filter='lorenz|unet'
say "sda CPU networks and the libtorch adapter on $device, $threads threads"
"$SDA_BUILD/bench/bench_torch" --device="$device" --threads="$threads" --benchmark_filter="$filter" \
    --benchmark_min_time=2 --benchmark_out="$out/bench_torch.json" --benchmark_out_format=json
say "plain PyTorch on the same weights"
python="${SDA_PEER_PYTHON:-/usr/bin/python3}"
peer_args=(--device "$device" --threads "$threads")
[ $paper -eq 1 ] || peer_args+=(--skip-paper)
"$python" "$SDA_ROOT/bench/torch_sampling_peer.py" "${peer_args[@]}" > "$out/peer.json"
cat "$out/peer.json"
"$python" - "$out/bench_torch.json" "$out/peer.json" <<'PY'
import json, sys
bench = {b["name"]: b["real_time"] for b in json.load(open(sys.argv[1]))["benchmarks"] if not b.get("error_occurred")}
peer = json.load(open(sys.argv[2]))
rows = [("Lorenz PC step, 64 samples", "BM_lorenz_step_{}/64/real_time", "lorenz_step_64_ms"),
        ("Lorenz PC step, 1024 samples", "BM_lorenz_step_{}/1024/real_time", "lorenz_step_1024_ms"),
        ("U-Net guided eval, 32^2", "BM_unet_guided_{}/real_time", "unet_guided_ms"),
        ("U-Net guided eval, paper 64^2", "BM_paper_guided_{}/iterations:2/real_time", "paper_guided_ms")]
print(f"{'workload':32} {'sda CPU ms':>11} {'adapter ms':>11} {'PyTorch ms':>11} {'CPU/adapter':>12} "
      f"{'PyTorch/adapter':>16} {'PyTorch/sda CPU':>16}")
for label, key, peer_key in rows:
    sda, adapter = bench.get(key.format("sda")), bench.get(key.format("torch"))
    if sda is None or adapter is None or peer_key not in peer:
        continue
    print(f"{label:32} {sda:11.1f} {adapter:11.1f} {peer[peer_key]:11.1f} {sda / adapter:12.2f} "
          f"{peer[peer_key] / adapter:16.2f} {peer[peer_key] / sda:16.2f}")
# sda's CPU network in bfloat16 (PyTorch in float): against PyTorch and against sda's float path
for label, key, peer_key in rows[:2]:
    low, full = bench.get(key.format("sda_bf16")), bench.get(key.format("sda"))
    if low and full and peer_key in peer:
        print(f"{label + ', bfloat16':32} {low:11.1f} {'':11} {peer[peer_key]:11.1f} {'':12} {'':16} "
              f"{peer[peer_key] / low:16.2f}   ({full / low:.2f}x sda in float)")
PY
