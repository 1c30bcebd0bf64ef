// docs/snippets/baselines.cpp: the code docs/baselines.md quotes, built and run by the test
// suite: a Lorenz-96 twin experiment (every variable observed every step with R = I, as Sakov
// and Oke 2008) assimilated by the LETKF, its lag smoother and cycled 4D-Var; exits 1 unless
// each analysis is closer to the truth than the observations are (RMSE below 1, the noise std).
#include <sda/sda.hpp>

#include <cmath>
#include <cstdio>
#include <optional>
#include <vector>

int main() {
    // snippet: twin
    const sda::systems::Lorenz96 model;  // n = 40, F = 8, RK4 with dt 0.05, no model noise
    sda::Generator gen(3);
    const sda::Tensor<double> truth = model.simulate(1, 1000, 200, gen);  // [1, 200, 40] on the attractor

    // y_i = x_i + N(0, I) at every state: one KalmanObservation {H, R, y} per state (empty: none)
    std::vector<std::optional<sda::baselines::KalmanObservation>> obs(200);
    for (std::size_t i = 0; i < 200; ++i) {
        Eigen::VectorXd noise(40);
        sda::fill_normal(noise.data(), 1, 40, gen);
        const Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXd>(truth.data() + i * 40, 40);
        obs[i] = sda::baselines::KalmanObservation{Eigen::MatrixXd::Identity(40, 40), Eigen::MatrixXd::Identity(40, 40),
                                                   x + noise};
    }
    // end snippet

    // snippet: letkf
    // 20 members from the climate, multiplicative inflation 1.04, random rotations (DAPPER's
    // infl and rot), Gaspari-Cohn localization of half-width 7.3 (DAPPER's loc_rad 4) on the circle
    const sda::Tensor<double> climate = model.simulate(20, 1000, 1, gen);
    const sda::baselines::EnsembleTransformOptions letkf{
        .inflation = 1.04, .rotate = true, .lag = 4,
        .localization = sda::baselines::Localization{.half_width = 1.82 * 4, .period = 40}};
    const auto ensemble = sda::baselines::ensemble_transform_smoother(model, sda::rows_view(climate), obs, gen, letkf);
    // ensemble.filtered [20, 200, 40]: each state after its own analysis (the LETKF);
    // ensemble.smoothed: after the analyses of the 4 states that follow as well (the LETKS)
    // end snippet

    // snippet: fourdvar
    // windows of 10 states, each from the forecast of the previous analysis with a static
    // background covariance B (here 0.5^2 I); the first from the climate's mean and covariance
    const Eigen::MatrixXd B = 0.25 * Eigen::MatrixXd::Identity(40, 40);
    const Eigen::VectorXd climate_mean = Eigen::VectorXd::Constant(40, 2.3);
    const Eigen::MatrixXd climate_cov = 3.6 * 3.6 * Eigen::MatrixXd::Identity(40, 40);
    const sda::RowMatrix<double> analysis =
        sda::baselines::cycled_four_d_var(model, climate_mean, climate_cov, B, obs, 10);  // [200, 40]
    // end snippet

    // scores over the last 150 states (after the filters' spin-up)
    auto rmse = [&](auto value) {
        double total = 0;
        for (std::size_t i = 50; i < 200; ++i)
            for (std::size_t k = 0; k < 40; ++k) total += std::pow(value(i, k) - truth(0, i, k), 2);
        return std::sqrt(total / (150.0 * 40.0));
    };
    auto mean_of = [](const sda::Tensor<double>& x) {
        return [&x](std::size_t i, std::size_t k) {
            double m = 0;
            for (std::size_t b = 0; b < x.shape()[0]; ++b) m += x(b, i, k) / double(x.shape()[0]);
            return m;
        };
    };
    const double letkf_rmse = rmse(mean_of(ensemble.filtered)), letks_rmse = rmse(mean_of(ensemble.smoothed));
    const double var_rmse = rmse([&](std::size_t i, std::size_t k) { return analysis(Eigen::Index(i), Eigen::Index(k)); });
    std::printf("RMSE after state 50: LETKF %.3f, LETKS %.3f, 4D-Var %.3f (observation noise 1)\n", letkf_rmse, letks_rmse,
                var_rmse);
    return letkf_rmse < 1.0 && letks_rmse < 1.0 && var_rmse < 1.0 ? 0 : 1;
}
