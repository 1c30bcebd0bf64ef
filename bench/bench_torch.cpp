// bench/bench_torch.cpp: the libtorch adapter against sda's CPU networks, side by
// side in one run, on whatever device torch is given (`--device=cuda` on a GPU
// machine; the CPU by default). The same weights, observations and guidance in
// both; "sda" is the CPU network (oneTBB + oneDNN or Eigen), "torch" the libtorch module
// wrapped by sda::TorchScoreModel, its tensors never leaving the device.
//
//   BM_lorenz_step/{sda,torch}/B  one predictor-corrector step (exponential
//       integrator + 1 Langevin correction) of SDA-guided (gamma 3e-2) posterior
//       sampling of the Lorenz-63 setup: MarkovComposedScore<ScoreNet, K = 2>
//       over 65 states (ResMLP width 256, depth 5), x observed every 8th state;
//       B trajectories. A step is two guided evaluations (eps + input VJP each).
//   BM_lorenz_step_sda_bf16/B     the same with the CPU network in bfloat16
//       (set_sampling_precision; skipped without oneDNN or bfloat16 instructions).
//   BM_unet_guided/{sda,torch}    one SDA-guided evaluation (eps + input VJP) of
//       the Kolmogorov example's U-Net (channels 32/64/128) composed over 16
//       states of 2 x 32 x 32 (K = 2: 12 windows), 4x4 average-pooled observations.
//   BM_paper_guided/{sda,torch}   the same at the paper's size: 64 x 64 grid,
//       channels 96/192/384, three blocks per level, 9 states (5 windows).
//
// `--threads=N` sets oneTBB's workers and torch's intra-op threads alike
// (default: all cores). Ratios are torch time / sda time within one run.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <vector>


#include "sda/backend/torch.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/safetensors.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/nn/torch.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/pool.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "sda/train/checkpoint.hpp"

#include "bench_main.hpp"
#include "unet_sizes.hpp"

namespace {


torch::Device g_device = torch::kCPU;

sda::TorchBackend backend() { return {.device = g_device, .dtype = torch::kFloat32}; }

/// The CPU network's weights in the libtorch network (through a checkpoint file).
template <class Net>
std::shared_ptr<sda::torch_nn::ScoreNetwork> same_weights(const Net& net, const std::string& name) {
    const std::string path = "/tmp/sda_bench_torch_" + name + ".safetensors";
    sda::train::save_weights(path, net);
    return sda::torch_nn::load(path, sda::VPCosine{});
}

constexpr std::size_t lorenz_length = 65;

/// Every 8th state's first coordinate, the demo's "lo" observation.
sda::observe::Mask every_8th_x() {
    xt::xarray<bool> m = xt::zeros<bool>({lorenz_length, std::size_t(3)});
    for (std::size_t i = 0; i < lorenz_length; i += 8) m(i, 0) = true;
    return sda::observe::Mask(m);
}

void synchronize() {
    if (g_device.is_cuda()) torch::cuda::synchronize();
}

// --- Lorenz-63 -------------------------------------------------------------------


sda::nn::ScoreNetConfig lorenz_config() { return {.event = {5, 3}, .embedding = 32, .width = 256, .depth = 5}; }

template <class Posterior, class Tensor>
void pc_steps(benchmark::State& state, const Posterior& posterior, Tensor x) {
    const sda::PredictorCorrector sampler{.steps = 256, .corrector = {.corrections = 1}};
    sda::Generator gen(5);
    benchmark::DoNotOptimize(sampler.predictor.step(posterior, x, 0.5, 0.5 - 1.0 / 256, gen));  // warm-up, as the peer's
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        auto next = sampler.predictor.step(posterior, x, 0.5, 0.5 - 1.0 / 256, gen);
        benchmark::DoNotOptimize(sampler.corrector.correct(posterior, std::move(next), 0.5 - 1.0 / 256, gen));
        if constexpr (std::is_same_v<Tensor, torch::Tensor>) synchronize();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // a whole 256-step run, per trajectory
    state.counters["ms_per_sample_256_steps"] = seconds * 1e3 / double(state.iterations()) * 256 / double(state.range(0));
}

void BM_lorenz_step_sda(benchmark::State& state, sda::nn::Precision precision) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    sda::Generator gen(1);
    sda::nn::ScoreNet<sda::VPCosine, float> window(sda::VPCosine{}, lorenz_config(), gen);
    try {
        window.set_sampling_precision(precision);
    } catch (const sda::error& e) {  // no bfloat16 here
        state.SkipWithError(e.what());
        return;
    }
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, lorenz_length);
    const sda::Tensor<float> y = sda::CpuBackend<float>::normal({9}, gen);
    const sda::GaussianObservation obs(every_8th_x(), y, 0.05 * 0.05);
    const auto posterior = sda::guide(prior, obs, sda::SDA{.gamma = 3e-2});
    pc_steps(state, posterior, sda::CpuBackend<float>::normal({batch, lorenz_length, 3}, gen));
}

void BM_lorenz_step_torch(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    sda::Generator gen(1);
    const sda::nn::ScoreNet<sda::VPCosine, float> cpu(sda::VPCosine{}, lorenz_config(), gen);
    const sda::TorchScoreModel window(same_weights(cpu, "lorenz"), sda::VPCosine{}, cpu.event_shape(), backend());
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, lorenz_length);
    const torch::Tensor y = sda::to_torch(sda::CpuBackend<float>::normal({9}, gen), backend());
    const sda::GaussianObservation obs(every_8th_x(), y, 0.05 * 0.05, backend());  // the same Mask, bound to the device
    const auto posterior = sda::guide(prior, obs, sda::SDA{.gamma = 3e-2});
    pc_steps(state, posterior, backend().normal({batch, lorenz_length, 3}, gen));
}

// --- Kolmogorov U-Nets -------------------------------------------------------------------


template <class Posterior, class Tensor>
void guided_evaluations(benchmark::State& state, const Posterior& posterior, const Tensor& x) {
    benchmark::DoNotOptimize(posterior.eps(x, 0.5));  // warm-up (allocator, oneDNN primitives), as the peer's
    for (auto _ : state) {
        benchmark::DoNotOptimize(posterior.eps(x, 0.5));
        if constexpr (std::is_same_v<Tensor, torch::Tensor>) synchronize();
    }
}

void unet_sda(benchmark::State& state, const sda::nn::UNetConfig& config, std::size_t length) {
    sda::Generator gen(2);
    const sda::nn::ScoreUNet<sda::VPCosine, float> window(sda::VPCosine{}, config, gen);
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, length);
    const std::size_t n = config.event.back();
    const sda::Tensor<float> y = sda::CpuBackend<float>::normal({length, 2, n / 4, n / 4}, gen);
    const sda::GaussianObservation obs(sda::observe::AvgPool(4), y, 0.01);
    const auto posterior = sda::guide(prior, obs, sda::SDA{});
    guided_evaluations(state, posterior, sda::CpuBackend<float>::normal({1, length, 2, n, n}, gen));
}

void unet_torch(benchmark::State& state, const sda::nn::UNetConfig& config, std::size_t length, const char* name) {
    sda::Generator gen(2);
    const sda::nn::ScoreUNet<sda::VPCosine, float> cpu(sda::VPCosine{}, config, gen);
    const sda::TorchScoreModel window(same_weights(cpu, name), sda::VPCosine{}, config.event, backend());
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, length);
    const auto n = static_cast<std::int64_t>(config.event.back());
    const torch::Tensor y = sda::to_torch(sda::CpuBackend<float>::normal({length, 2, std::size_t(n / 4), std::size_t(n / 4)}, gen), backend());
    const sda::GaussianObservation obs(sda::observe::AvgPool(4), y, 0.01, backend());  // bound to the device
    const auto posterior = sda::guide(prior, obs, sda::SDA{});
    guided_evaluations(state, posterior, backend().normal({1, std::size_t(length), 2, std::size_t(n), std::size_t(n)}, gen));
}

using bench::cpu_size;
using bench::paper_size;

void BM_unet_guided_sda(benchmark::State& state) { unet_sda(state, cpu_size(), 16); }
void BM_unet_guided_torch(benchmark::State& state) { unet_torch(state, cpu_size(), 16, "unet"); }
void BM_paper_guided_sda(benchmark::State& state) { unet_sda(state, paper_size(), 9); }
void BM_paper_guided_torch(benchmark::State& state) { unet_torch(state, paper_size(), 9, "paper"); }

}  // namespace

BENCHMARK_CAPTURE(BM_lorenz_step_sda, float, sda::nn::Precision::float32)->Name("BM_lorenz_step_sda")->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_lorenz_step_sda, bf16, sda::nn::Precision::bfloat16)->Name("BM_lorenz_step_sda_bf16")->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lorenz_step_torch)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_unet_guided_sda)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_unet_guided_torch)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_paper_guided_sda)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_paper_guided_torch)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

int main(int argc, char** argv) {
    // torch's intra-op threads follow oneTBB's (Debian's libtorch would start with one)
    bench::MainOptions options;
    options.always = true;
    options.on_threads = [](int threads) {  // called once the arguments are parsed
        torch::set_num_threads(threads);
        benchmark::AddCustomContext("torch device", g_device.str());
    };
    options.option = [](std::string_view arg) {
        if (!arg.starts_with("--device=")) return false;
        g_device = torch::Device(std::string(arg.substr(9)));
        return true;
    };
    return bench::run(argc, argv, "bench_torch", options);
}
