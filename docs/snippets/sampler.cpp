// docs/snippets/sampler.cpp: the code docs/concepts/sampler.md quotes, built and run by the test
// suite: each sampler draws from a 32-dimensional Gaussian N(m, I); exits 1 unless every
// coordinate's sample mean is within 6 standard errors of m (the event is large enough for the
// per-sample Langevin step to be unbiased to that level: docs/design.md).
#include <sda/sda.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

int main() {
    const Eigen::VectorXd m = Eigen::VectorXd::LinSpaced(32, -2.0, 2.0);
    const sda::GaussianScore model(sda::VPCosine{}, {32}, m, Eigen::MatrixXd::Identity(32, 32));
    // snippet: samplers
    const sda::PredictorCorrector pc{.steps = 256, .corrector = {.corrections = 1, .tau = 0.25}};
    const sda::DDIM ddim{.steps = 64, .predictor = {.eta = 0.5}};
    const sda::ReverseDiffusion<sda::predictors::Heun, sda::correctors::Langevin> heun{.steps = 64};
    // end snippet
    bool ok = true;
    auto check = [&](const auto& sampler, const char* name) {
        sda::Generator gen(1);
        const std::size_t n = 2048;
        const sda::Tensor<double> x = sda::sample(sampler, model, n, gen);
        double worst = 0;  // in standard errors of the mean, 1 / sqrt(n)
        for (std::size_t i = 0; i < 32; ++i)
            worst = std::max(worst, std::abs(xt::mean(xt::view(x, xt::all(), i))() - m(Eigen::Index(i))) * std::sqrt(double(n)));
        std::printf("%s: worst coordinate mean off by %.2f standard errors\n", name, worst);
        ok = ok && worst < 6.0;
    };
    check(pc, "PredictorCorrector");
    check(ddim, "DDIM");
    check(heun, "Heun with Langevin");
    return ok ? 0 : 1;
}
