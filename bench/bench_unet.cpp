// bench/bench_unet.cpp: the convolutional score network (sda::nn::ScoreUNet,
// VPCosine, float) at the CPU size of the Kolmogorov experiment: windows of
// 5 velocity fields [5, 2, 32, 32] and a forcing channel, channels 32, 64, 128,
// one block per level, embedding 64, SiLU, circular padding.
//
//   BM_train_step/32          one training step: denoising loss, gradient, AdamW
//   BM_forward/64             eps(x, t) for 64 windows (a sampling step's prior)
//   BM_forward_vjp/64         eps and one input VJP (a guided sampling step)
//   BM_gemm_reference/64      the forward pass's convolution GEMMs alone: the
//                             same im2col shapes, the same 8-sample chunks over
//                             oneTBB, on plain Eigen matrices: the yardstick
//   BM_paper_forward/8        eps at the paper's size: [5, 2, 64, 64], channels
//                             96, 192, 384, three blocks per level
//   BM_paper_forward_vjp/8    eps and one input VJP at the paper's size
//   BM_paper_gemm_reference/8 its convolution GEMMs alone
// GFLOP/s counters count the convolutions' and projections' multiply-adds (2
// per, ScoreUNet::forward_flops); the training step counts three passes, the
// VJP two. `--threads=N` caps oneTBB's workers (default: all cores).
// bench/compare_torch.sh runs this beside the same network in PyTorch
// (bench/torch_peer.py --model unet) at the same thread counts.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <tbb/parallel_for.h>

#include "sda/backend/cpu.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/loss.hpp"

#include "bench_main.hpp"
#include "unet_sizes.hpp"

namespace {

using Net = sda::nn::ScoreUNet<sda::VPCosine, float>;

using bench::cpu_size;
using bench::paper_size;

Net network(const sda::nn::UNetConfig& config) {
    sda::Generator gen(1);
    return Net(sda::VPCosine{}, config, gen);
}

void gflops(benchmark::State& state, double flops_per_iteration) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void train_step(benchmark::State& state, const sda::nn::UNetConfig& config) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    Net net = network(config);
    sda::Generator gen(2);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal(sda::batch_shape(batch, config.event), gen);
    std::vector<float> grad(net.parameters().size());
    sda::train::AdamW<float> adamw(grad.size(), {.lr = 1e-3, .weight_decay = 1e-3});
    for (auto _ : state) {
        std::fill(grad.begin(), grad.end(), 0.f);
        benchmark::DoNotOptimize(sda::train::denoising_loss_gradient(net, x, gen, std::span<float>(grad)));
        adamw.step(net.parameters().values(), grad, 1e-3);
    }
    gflops(state, 3.0 * net.forward_flops() * double(batch));  // forward, input and weight backward
}

void forward(benchmark::State& state, const sda::nn::UNetConfig& config) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const Net net = network(config);
    sda::Generator gen(3);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal(sda::batch_shape(batch, config.event), gen);
    // untimed: the convolutions' weights are reordered (Winograd: transformed) once and cached,
    // as in a sampling run, whose every step reuses them
    benchmark::DoNotOptimize(net.eps(x, 0.5));
    for (auto _ : state) benchmark::DoNotOptimize(net.eps(x, 0.5));
    gflops(state, net.forward_flops() * double(batch));
}

void forward_vjp(benchmark::State& state, const sda::nn::UNetConfig& config) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const Net net = network(config);
    sda::Generator gen(4);
    const sda::Tensor<float> x = sda::CpuBackend<float>::normal(sda::batch_shape(batch, config.event), gen);
    const sda::Tensor<float> v = sda::CpuBackend<float>::normal(sda::batch_shape(batch, config.event), gen);
    benchmark::DoNotOptimize(net.linearize(x, 0.5).vjp(v));  // untimed, as in `forward`
    for (auto _ : state) {
        const auto lin = net.linearize(x, 0.5);
        benchmark::DoNotOptimize(lin.vjp(v));
    }
    gflops(state, 2.0 * net.forward_flops() * double(batch));
}

/// Every convolution GEMM of the forward pass, Y = cols W^T with cols [chunk pixels, taps * in]
/// and W [out, taps * in], over the network's inference chunks in parallel; nothing else
/// (no im2col, no LayerNorm, activation or upsampling).
void gemm_reference(benchmark::State& state, const sda::nn::UNetConfig& config) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const Net net = network(config);
    const std::size_t chunk = Net::inference_chunk, chunks = (batch + chunk - 1) / chunk;
    struct Gemm {
        sda::RowMatrix<float> cols, W;
    };
    std::vector<Gemm> gemms;
    double flops = 0;
    const auto add = [&](const sda::nn::Conv<float>& conv, sda::nn::Grid input) {
        const auto rows = static_cast<Eigen::Index>(std::min(chunk, batch) * conv.output_grid(input).pixels());
        const auto depth = static_cast<Eigen::Index>(conv.taps() * conv.in);
        gemms.push_back({sda::RowMatrix<float>::Random(rows, depth), sda::RowMatrix<float>::Random(Eigen::Index(conv.out), depth)});
        flops += conv.flops(batch, input);
    };
    const auto& levels = net.network().levels();
    for (std::size_t l = 0; l < levels.size(); ++l) {  // down, in the network's order
        add(levels[l].head, l > 0 ? levels[l - 1].grid : net.network().grid());
        for (const auto& block : levels[l].down) add(block.first, levels[l].grid), add(block.second, levels[l].grid);
    }
    for (std::size_t l = levels.size(); l-- > 0;) {  // up
        for (const auto& block : levels[l].up) add(block.first, levels[l].grid), add(block.second, levels[l].grid);
        add(levels[l].tail, l > 0 ? levels[l - 1].grid : net.network().grid());
    }
    for (auto _ : state) {
        tbb::parallel_for(std::size_t{0}, chunks, [&](std::size_t) {
            for (const Gemm& gemm : gemms) {
                sda::RowMatrix<float> Y(gemm.cols.rows(), gemm.W.rows());
                Y.noalias() = gemm.cols * gemm.W.transpose();
                benchmark::DoNotOptimize(Y.data());
            }
        });
    }
    gflops(state, flops);
}

void BM_train_step(benchmark::State& state) { train_step(state, cpu_size()); }
void BM_forward(benchmark::State& state) { forward(state, cpu_size()); }
void BM_forward_vjp(benchmark::State& state) { forward_vjp(state, cpu_size()); }
void BM_gemm_reference(benchmark::State& state) { gemm_reference(state, cpu_size()); }
void BM_paper_forward(benchmark::State& state) { forward(state, paper_size()); }
void BM_paper_forward_vjp(benchmark::State& state) { forward_vjp(state, paper_size()); }
void BM_paper_gemm_reference(benchmark::State& state) { gemm_reference(state, paper_size()); }

BENCHMARK(BM_train_step)->Arg(32)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_forward_vjp)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemm_reference)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_paper_forward)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_paper_forward_vjp)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_paper_gemm_reference)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return bench::run(argc, argv, "bench_unet"); }
