// examples/quickstart.cpp: the README's example, compiled and run in CI.
#include <sda/sda.hpp>

#include <cstdio>

int main() {
    // A prior over windows of 2K+1 = 5 states. Here it is the exact law of a
    // linear chain; a trained score network takes its place in real use.
    const auto chain = sda::systems::LinearGaussianChain::damped_spring();
    const auto [mean, cov] = chain.joint_law(5);
    const sda::GaussianScore window(sda::VPCosine{}, {5, 4}, mean, cov);

    // Windows composed into a prior over whole trajectories of 65 states.
    const sda::MarkovComposedScore<decltype(window), 2> prior(window, 65);

    // The first coordinate of every 8th state, observed with noise std 0.05.
    sda::Generator gen(42);
    const sda::Tensor<double> truth = chain.simulate(1, 65, gen);
    const sda::observe::Select A({0, 8, 16, 24, 32, 40, 48, 56, 64}, {0});
    const sda::Tensor<double> y = A.apply(truth) + 0.05 * sda::CpuBackend<double>::normal({1, 9, 1}, gen);
    const sda::GaussianObservation obs(A, sda::Tensor<double>(xt::view(y, 0)), 0.05 * 0.05);

    // Zero-shot posterior: the prior score plus an approximate likelihood score.
    const auto posterior = sda::guide(prior, obs, sda::SDA{.gamma = 3e-2});

    // All 65 states at once, with the paper's predictor-corrector sampler.
    const sda::PredictorCorrector sampler{.steps = 256, .corrector = {.corrections = 1, .tau = 0.25}};
    const sda::Tensor<double> x = sda::sample(sampler, posterior, 64, gen);  // [64, 65, 4]

    for (std::size_t state : {16, 20}) {
        const auto samples = xt::view(x, xt::all(), state, 0);
        std::printf("state %zu: truth %+.3f, posterior %+.3f +- %.3f\n", state, truth(0, state, 0), xt::mean(samples)(),
                    xt::stddev(samples)());
    }
}
