// Samples a 2-D Gaussian through the installed umbrella header; exits 1 unless
// the sample mean lands near the true mean.
#include <sda/sda.hpp>
#include <xtensor/xview.hpp>

#include <cmath>
#include <cstdio>

int main() {
    const Eigen::Vector2d mean(1.0, -2.0);
    const Eigen::Matrix2d cov = Eigen::Matrix2d::Identity();
    const sda::GaussianScore model(sda::VPCosine{}, {2}, mean, cov);
    sda::Generator gen(1);
    const sda::Tensor<double> x = sda::sample(sda::DDIM{.steps = 64}, model, 4096, gen);
    const double m0 = xt::mean(xt::view(x, xt::all(), 0))(), m1 = xt::mean(xt::view(x, xt::all(), 1))();
    std::printf("sample mean (%.3f, %.3f), expected (1, -2)\n", m0, m1);
    return std::abs(m0 - 1.0) < 0.1 && std::abs(m1 + 2.0) < 0.1 ? 0 : 1;
}
