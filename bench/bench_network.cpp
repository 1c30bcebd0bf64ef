// bench/bench_network.cpp: the score network of the paper's Lorenz-63 window
// model (event [5, 3], ResMLP width 256, depth 5, SiLU, embedding 32), float.
//
//   BM_train_step/64        one training step: denoising loss, gradient, AdamW
//   BM_forward/4096         eps(x, t) for 4096 windows (a sampling step's prior)
//   BM_forward_vjp/4096     eps and one input VJP (a guided sampling step)
//   BM_forward_bf16/4096, BM_forward_vjp_bf16/4096
//                           the same in bfloat16 (set_sampling_precision; skipped
//                           where the build or the CPU has no bfloat16)
//   BM_gemm_reference/4096  the forward pass's GEMMs alone, same shapes and
//                           threads, on plain Eigen matrices: the yardstick
//   BM_gemm_onednn/4096     the same GEMMs through sda's products (oneDNN's
//                           matmul where linked), the float rate to reach
// GFLOP/s counters count the GEMMs' multiply-adds (2 per). `--threads=N` caps
// oneTBB's workers (default: all cores). bench/compare_torch.sh runs this beside
// the same network in PyTorch at the same thread counts and prints the ratios.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include <tbb/parallel_for.h>

#include "sda/backend/cpu.hpp"
#include "sda/nn/matmul.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/loss.hpp"

#include "bench_main.hpp"

namespace {

using Net = sda::nn::ScoreNet<sda::VPCosine, float>;

Net paper_network() {
    sda::nn::ScoreNetConfig config;
    config.event = {5, 3};
    sda::Generator gen(1);
    return Net(sda::VPCosine{}, config, gen);
}

void gflops(benchmark::State& state, double flops_per_iteration) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_train_step(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    Net net = paper_network();
    sda::Generator gen(2);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal({batch, 5, 3}, gen);
    std::vector<float> grad(net.parameters().size());
    sda::train::AdamW<float> adamw(grad.size(), {.lr = 1e-3, .weight_decay = 1e-3});
    for (auto _ : state) {
        std::fill(grad.begin(), grad.end(), 0.f);
        benchmark::DoNotOptimize(sda::train::denoising_loss_gradient(net, x, gen, std::span<float>(grad)));
        adamw.step(net.parameters().values(), grad, 1e-3);
    }
    gflops(state, 3.0 * net.forward_flops() * double(batch));  // forward, input and weight backward
}
BENCHMARK(BM_train_step)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

/// The network in `precision`, or null with the benchmark skipped where that precision cannot run.
std::unique_ptr<Net> network_in(benchmark::State& state, sda::nn::Precision precision) {
    auto net = std::make_unique<Net>(paper_network());
    try {
        net->set_sampling_precision(precision);
    } catch (const sda::error& e) {
        state.SkipWithError(e.what());
        return nullptr;
    }
    return net;
}

void BM_forward(benchmark::State& state, sda::nn::Precision precision) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const auto network = network_in(state, precision);
    if (!network) return;
    const Net& net = *network;
    sda::Generator gen(3);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal({batch, 5, 3}, gen);
    for (auto _ : state) benchmark::DoNotOptimize(net.eps(x, 0.5));
    gflops(state, net.forward_flops() * double(batch));
}
BENCHMARK_CAPTURE(BM_forward, float, sda::nn::Precision::float32)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_forward");
BENCHMARK_CAPTURE(BM_forward, bf16, sda::nn::Precision::bfloat16)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_forward_bf16");

void BM_forward_vjp(benchmark::State& state, sda::nn::Precision precision) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const auto network = network_in(state, precision);
    if (!network) return;
    const Net& net = *network;
    sda::Generator gen(4);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal({batch, 5, 3}, gen);
    const sda::Tensor<float> v = sda::CpuBackend<float>::normal({batch, 5, 3}, gen);
    for (auto _ : state) {
        const auto lin = net.linearize(x, 0.5);
        benchmark::DoNotOptimize(lin.vjp(v));
    }
    gflops(state, 2.0 * net.forward_flops() * double(batch));
}
BENCHMARK_CAPTURE(BM_forward_vjp, float, sda::nn::Precision::float32)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_forward_vjp");
BENCHMARK_CAPTURE(BM_forward_vjp, bf16, sda::nn::Precision::bfloat16)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_forward_vjp_bf16");

/// Every GEMM of the forward pass (same shapes, same 128-row chunks over oneTBB), nothing else:
/// Eigen's products, or sda's (oneDNN's matmul where linked).
void BM_gemm_reference(benchmark::State& state, bool eigen) {
    const auto batch = static_cast<Eigen::Index>(state.range(0));
    const Net net = paper_network();
    struct Layer {
        sda::RowMatrix<float> W;
    };
    std::vector<Layer> layers;
    for (const auto& block : net.network().blocks()) {
        if (block.projected) {
            const auto in = static_cast<Eigen::Index>(&block == &net.network().blocks().front() ? net.features() : block.projection.in);
            layers.push_back({sda::RowMatrix<float>::Random(static_cast<Eigen::Index>(block.projection.out), in)});
        }
        const auto w = static_cast<Eigen::Index>(block.width);
        layers.push_back({sda::RowMatrix<float>::Random(w, w)});
        layers.push_back({sda::RowMatrix<float>::Random(w, w)});
    }
    const sda::RowMatrix<float> x = sda::RowMatrix<float>::Random(batch, static_cast<Eigen::Index>(net.features()));
    const Eigen::Index chunk = 128, chunks = (batch + chunk - 1) / chunk;
    for (auto _ : state) {
        tbb::parallel_for(Eigen::Index{0}, chunks, [&](Eigen::Index c) {
            const Eigen::Index begin = c * chunk, rows = std::min(chunk, batch - begin);
            sda::RowMatrix<float> h = x.middleRows(begin, rows), next;
            for (const Layer& layer : layers) {
                if (eigen) {
                    next.noalias() = h * layer.W.transpose();
                } else {
                    next.resize(h.rows(), layer.W.rows());
                    sda::nn::detail::multiply_transposed<float>(h, layer.W, next, nullptr, false);
                }
                h.swap(next);
            }
            benchmark::DoNotOptimize(h.data());
        });
    }
    gflops(state, net.forward_flops() * double(batch));
}
BENCHMARK_CAPTURE(BM_gemm_reference, eigen, true)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_gemm_reference");
BENCHMARK_CAPTURE(BM_gemm_reference, sda, false)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond)->Name("BM_gemm_onednn");

}  // namespace

int main(int argc, char** argv) { return bench::run(argc, argv, "bench_network"); }
