#!/usr/bin/env python3
"""Prints sda against its PyTorch peers (bench/compare_torch.sh).

Arguments come in pairs, SDA_JSON PEER_JSON, each pair measured at the same
thread count: every ratio is the peer's time over sda's in that pair.
"""
import json
import sys

ROWS = [("training step, batch 64", "BM_train_step/64", "train_step_64_ms", 3.0),
        ("forward, batch 4096", "BM_forward/4096", "forward_4096_ms", 1.8),
        ("forward + input VJP, batch 4096", "BM_forward_vjp/4096", "forward_vjp_4096_ms", 1.8)]


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
    for sda_path, peer_path in zip(args[::2], args[1::2]):
        ours, context = sda_times(sda_path)
        with open(peer_path) as handle:
            peer = json.load(handle)
        threads = context.get("threads", "all")
        print(f"\n== sda ({threads} threads) vs torch {peer['torch']} ({peer['threads']} threads), "
              f"BLAS {peer['blas']} {peer['libblas.so.3']}")
        print(f"{'kernel':34s} {'sda ms':>9s} {'torch ms':>10s} {'speed-up':>9s}")
        for label, ours_key, peer_key, target in ROWS:
            ms = ours[ours_key][0]
            print(f"{label:34s} {ms:9.3f} {peer[peer_key]:10.3f} {peer[peer_key] / ms:8.2f}x   (target {target}x)")
        forward, gemm = ours["BM_forward/4096"][1], ours["BM_gemm_reference/4096"][1]
        print(f"forward at {forward:.1f} GFLOP/s = {100 * forward / gemm:.0f}% of plain Eigen GEMMs of the same "
              f"shapes ({gemm:.1f} GFLOP/s; target 80%); train step {ours['BM_train_step/64'][1]:.1f}, "
              f"forward + VJP {ours['BM_forward_vjp/4096'][1]:.1f} GFLOP/s")
    print(f"\nmachine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz")


if __name__ == "__main__":
    main()
