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
# sda benchmark, its GEMM reference, what the line says, the reference's name, target %
GEMMS = {
    "mlp": [("BM_forward/4096", "BM_gemm_reference/4096", "forward", "plain Eigen GEMMs", 80),
            ("BM_forward/4096", "BM_gemm_onednn/4096", "forward", "plain oneDNN GEMMs", 70)],
    "unet": [("BM_forward/64", "BM_gemm_reference/64", "forward", "plain Eigen GEMMs", None),
             ("BM_paper_forward/8", "BM_paper_gemm_reference/8", "paper-size forward", "plain Eigen GEMMs", None)],
}
# sda's bfloat16 benchmark against its float one (both sda's), and the target speed-up
BFLOAT16 = {
    "mlp": [("forward, batch 4096", "BM_forward_bf16/4096", "BM_forward/4096", 1.6),
            ("forward + input VJP, batch 4096", "BM_forward_vjp_bf16/4096", "BM_forward_vjp/4096", 1.6)],
}
NAMES = {"mlp": "the Lorenz-63 ResMLP (bench_network)", "unet": "the Kolmogorov ScoreUNet (bench_unet)"}


def sda_times(path):
    """Median real time [ms] and GFLOP/s of each benchmark, and the run's context."""
    with open(path) as handle:
        report = json.load(handle)
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") not in (None, "median") or b.get("error_occurred"):
            continue  # an aggregate other than the median, or a benchmark skipped (no bfloat16 here)
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
        for ours_key, gemm_key, what, reference, target in GEMMS[model]:
            if gemm_key not in ours:
                continue
            rate, gemm = ours[ours_key][1], ours[gemm_key][1]
            goal = f"; target {target}%" if target else ""
            print(f"{what} at {rate:.1f} GFLOP/s = {100 * rate / gemm:.0f}% of {reference} of the same "
                  f"shapes ({gemm:.1f} GFLOP/s{goal})")
        for label, low_key, float_key, target in BFLOAT16.get(model, []):
            if low_key not in ours:
                print(f"bfloat16 {label}: not run (no oneDNN or no bfloat16 instructions)")
                continue
            low, full = ours[low_key][0], ours[float_key][0]
            theirs = peer[[r for r in ROWS[model] if r[1] == float_key][0][2]]
            print(f"bfloat16 {label}: {low:.1f} ms = {full / low:.2f}x sda's float path (target {target}x), "
                  f"{theirs / low:.2f}x torch in float")
        if model == "mlp":
            print(f"train step {ours['BM_train_step/64'][1]:.1f}, forward + VJP {ours['BM_forward_vjp/4096'][1]:.1f} GFLOP/s")
    print(f"\nmachine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz")


if __name__ == "__main__":
    main()
