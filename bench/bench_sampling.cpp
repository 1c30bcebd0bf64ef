// bench/bench_sampling.cpp: the costs of one sampling step, with a plain Eigen
// GEMM of the same shapes as the yardstick.
//
// Run: build/bench/bench_sampling [--benchmark_filter=...]
// Reading it: BM_gaussian_eps and BM_gemm_reference do the same two GEMMs per
// call (B x n by n x n), so their ratio is the overhead of the model around its
// dense kernel; BM_normal counts the noise a corrector or DDPM step draws.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include "sda/backend/cpu.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/linear_gaussian.hpp"

namespace {

constexpr std::size_t length = 33, dim = 4;
const auto chain = sda::systems::LinearGaussianChain::damped_spring();

sda::GaussianScore<sda::VPCosine> window_score(std::size_t states) {
    auto [mean, cov] = chain.joint_law(states);
    return {sda::VPCosine{}, {states, dim}, mean, cov};
}

template <class T>
void BM_normal(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    sda::Generator gen(1);
    for (auto _ : state) benchmark::DoNotOptimize(sda::CpuBackend<T>::normal({batch, length, dim}, gen));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch * length * dim));
}
BENCHMARK(BM_normal<float>)->Arg(1024)->Arg(16384)->UseRealTime();
BENCHMARK(BM_normal<double>)->Arg(1024)->Arg(16384)->UseRealTime();

/// eps of the exact 33-state trajectory score: two B x 132 by 132 x 132 GEMMs.
void BM_gaussian_eps(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const auto model = window_score(length);
    sda::Generator gen(2);
    const auto x = sda::CpuBackend<double>::normal({batch, length, dim}, gen);
    for (auto _ : state) benchmark::DoNotOptimize(model.eps(x, 0.5));
    state.counters["GFLOP/s"] = benchmark::Counter(4.0 * batch * 132.0 * 132.0 * state.iterations(), benchmark::Counter::kIsRate,
                                                   benchmark::Counter::kIs1000);
}
BENCHMARK(BM_gaussian_eps)->Arg(1024)->UseRealTime();

/// The same two GEMMs on plain Eigen matrices, split over the same threads.
void BM_gemm_reference(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const Eigen::MatrixXd basis = Eigen::MatrixXd::Random(132, 132);
    const sda::RowMatrix<double> x = sda::RowMatrix<double>::Random(static_cast<Eigen::Index>(batch), 132);
    sda::RowMatrix<double> out(static_cast<Eigen::Index>(batch), 132);
    for (auto _ : state) {
        sda::detail::parallel_rows(batch, batch * 132 * 132, [&](std::size_t begin, std::size_t end) {
            const auto rows = static_cast<Eigen::Index>(end - begin), at = static_cast<Eigen::Index>(begin);
            const sda::RowMatrix<double> projected = x.middleRows(at, rows) * basis;
            out.middleRows(at, rows).noalias() = projected * basis.transpose();
        });
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(4.0 * batch * 132.0 * 132.0 * state.iterations(), benchmark::Counter::kIsRate,
                                                   benchmark::Counter::kIs1000);
}
BENCHMARK(BM_gemm_reference)->Arg(1024)->UseRealTime();

/// eps of 33-state trajectories composed from 5-state windows (K = 2).
void BM_markov_eps(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const sda::MarkovComposedScore<sda::GaussianScore<sda::VPCosine>, 2> model(window_score(5), length);
    sda::Generator gen(3);
    const auto x = sda::CpuBackend<double>::normal({batch, length, dim}, gen);
    for (auto _ : state) benchmark::DoNotOptimize(model.eps(x, 0.5));
}
BENCHMARK(BM_markov_eps)->Arg(1024)->UseRealTime();

/// One guided eps on the composed prior: SDA (one VJP) and MMPS (one VJP per CG iteration).
template <class Guidance>
void BM_guided_eps(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const sda::MarkovComposedScore<sda::GaussianScore<sda::VPCosine>, 2> prior(window_score(5), length);
    const sda::Tensor<double> y = xt::zeros<double>({5ul, 2ul});
    const auto posterior = sda::guide(prior, sda::GaussianObservation(sda::observe::Select({0, 8, 16, 24, 32}, {0, 1}), y, 0.01),
                                      Guidance{});
    sda::Generator gen(4);
    const auto x = sda::CpuBackend<double>::normal({batch, length, dim}, gen);
    for (auto _ : state) benchmark::DoNotOptimize(posterior.eps(x, 0.5));
}
BENCHMARK(BM_guided_eps<sda::SDA>)->Arg(1024)->UseRealTime();
BENCHMARK(BM_guided_eps<sda::MMPS>)->Arg(1024)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
