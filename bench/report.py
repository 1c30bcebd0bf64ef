#!/usr/bin/env python3
"""Prints sda against its PyTorch peers (bench/compare_torch.sh).

Arguments come in pairs, SDA_JSON PEER_JSON, each pair measured at the same
thread count and on the same network (the peer's "model": mlp for
bench_network, unet for bench_unet): every ratio is the peer's time over sda's
in that pair. torch's GFLOP/s count the same FLOPs as sda's counters.
"""
import json
import sys

# label, sda benchmark, peer key, target speed-up (None: none set)
ROWS = {
    "mlp": [("training step, batch 64", "BM_train_step/64", "train_step_64_ms", 3.0),
            ("forward, batch 4096", "BM_forward/4096", "forward_4096_ms", 1.8),
            ("forward + input VJP, batch 4096", "BM_forward_vjp/4096", "forward_vjp_4096_ms", 1.8)],
    "unet": [("training step, batch 32", "BM_train_step/32", "train_step_32_ms", None),
             ("forward, batch 64", "BM_forward/64", "forward_64_ms", None),
             ("forward + input VJP, batch 64", "BM_forward_vjp/64", "forward_vjp_64_ms", None),
             ("paper size: forward, batch 8", "BM_paper_forward/8", "paper_forward_8_ms", 1.5),
             ("paper size: forward + input VJP, batch 8", "BM_paper_forward_vjp/8", "paper_forward_vjp_8_ms", 1.5)],
}
# sda benchmark, its GEMM reference, and what the line says
GEMMS = {
    "mlp": [("BM_forward/4096", "BM_gemm_reference/4096", "forward", 80)],
    "unet": [("BM_forward/64", "BM_gemm_reference/64", "forward", None),
             ("BM_paper_forward/8", "BM_paper_gemm_reference/8", "paper-size forward", None)],
}
NAMES = {"mlp": "the Lorenz-63 ResMLP (bench_network)", "unet": "the Kolmogorov ScoreUNet (bench_unet)"}


def sda_times(path):
    """Median real time [ms] and GFLOP/s of each benchmark, and the run's context."""
    with open(path) as handle:
        report = json.load(handle)
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") not in (None, "median"):
            continue
        name = b.get("run_name", b["name"])
        out[name.split("/real_time")[0]] = (b["real_time"], b.get("GFLOP/s"))
    return out, report.get("context", {})


def main():
    args = sys.argv[1:]
    if len(args) < 2 or len(args) % 2:
        sys.exit("usage: report.py SDA_JSON PEER_JSON [SDA_JSON PEER_JSON ...]")
    context = {}
    for sda_path, peer_path in zip(args[::2], args[1::2]):
        ours, context = sda_times(sda_path)
        with open(peer_path) as handle:
            peer = json.load(handle)
        model = peer.get("model", "mlp")
        threads = context.get("threads", "all")
        onednn = f", oneDNN {'on' if peer['mkldnn'] else 'OFF'}" if "mkldnn" in peer else ""
        print(f"\n== {NAMES[model]}: sda ({threads} threads) vs torch {peer['torch']} ({peer['threads']} threads), "
              f"BLAS {peer['blas']} {peer['libblas.so.3']}{onednn}")
        print(f"{'kernel':34s} {'sda ms':>9s} {'torch ms':>10s} {'speed-up':>9s} {'sda GFLOP/s':>12s} {'torch GFLOP/s':>14s}")
        formats = peer.get("memory_format", {})
        for label, ours_key, peer_key, target in ROWS[model]:
            ms, rate = ours[ours_key]
            theirs = peer[peer_key]
            torch_rate = rate * ms / theirs if rate else float("nan")
            note = f"   (target {target}x)" if target else ""
            if peer_key in formats:
                note += f"   (torch {formats[peer_key]['used']})"
            print(f"{label:34s} {ms:9.1f} {theirs:10.1f} {theirs / ms:8.2f}x {rate:12.1f} {torch_rate:14.1f}{note}")
        for ours_key, gemm_key, what, target in GEMMS[model]:
            rate, gemm = ours[ours_key][1], ours[gemm_key][1]
            goal = f"; target {target}%" if target else ""
            print(f"{what} at {rate:.1f} GFLOP/s = {100 * rate / gemm:.0f}% of plain Eigen GEMMs of the same "
                  f"shapes ({gemm:.1f} GFLOP/s{goal})")
        if model == "mlp":
            print(f"train step {ours['BM_train_step/64'][1]:.1f}, forward + VJP {ours['BM_forward_vjp/4096'][1]:.1f} GFLOP/s")
    print(f"\nmachine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz")


if __name__ == "__main__":
    main()
