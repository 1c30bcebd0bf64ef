// bench/dapper_twin.cpp: sda's ETKF/LETKF on a twin experiment that DAPPER made, so that
// bench/dapper_compare.py can hold the two implementations side by side on the same truth and
// the same observations (Raanes et al., DAPPER; its Lorenz96.sakov2008 and Lorenz63.sakov2012).
//
// The input (written by dapper_compare.py) holds the system, the law N(mu, cov) of the initial
// state, H, R and the observations y_0 .. y_Ko, observation k at DAPPER's time index (k+1) dko;
// never the truth. sda's states are t = 0 (the initial ensemble, no observation) and the
// observation times: one transition is dko deterministic RK4 steps.
//
// Run: build/bench/dapper_twin --input twin.txt --members 24 --inflation 1.013 --rotate
//      [--loc-rad 4] --seed 1 --output analysis.txt
// Writes one line per observation time: the analysis spread (sqrt of the mean ensemble variance
// over the variables, unbiased) and the analysis mean; the first line is "# seconds T", the
// in-process time of ensemble_transform_smoother alone.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <tbb/parallel_for.h>

#include "sda/baselines/etkf.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/systems/lorenz63.hpp"
#include "sda/systems/lorenz96.hpp"

namespace {

using sda::RowMatrix;
using sda::baselines::KalmanObservation;

/// DAPPER's transition between two observation times: `dko` RK4 steps of `system`, no noise.
template <class System>
struct Steps {
    System system;
    std::size_t dko = 1;

    std::size_t dim() const { return system.dim(); }
    void propagate(RowMatrix<double>& x, sda::Generator&) const {
        tbb::parallel_for(Eigen::Index{0}, x.rows(), [&](Eigen::Index r) {
            typename System::State s = x.row(r).transpose();
            for (std::size_t k = 0; k < dko; ++k) s = system.rk4(s);
            for (Eigen::Index v = 0; v < s.size(); ++v) x(r, v) = s(v);  // not x.row(r) = ...: GCC 12 -Warray-bounds
        });
    }
};

struct Twin {
    std::string system;
    double dt = 0.0, forcing = 8.0;
    std::size_t nx = 0, ny = 0, dko = 0;
    Eigen::VectorXd mu;
    Eigen::MatrixXd cov, H, R;
    std::vector<Eigen::VectorXd> y;
};

/// Reads `count` numbers from the rest of a line of the input.
Eigen::VectorXd numbers(std::istringstream& line, std::size_t count, const std::string& key) {
    Eigen::VectorXd out(static_cast<Eigen::Index>(count));
    for (Eigen::Index k = 0; k < out.size(); ++k)
        sda::detail::require(static_cast<bool>(line >> out(k)), "'", key, "' needs ", count, " numbers");
    return out;
}

Eigen::MatrixXd matrix(std::istringstream& line, std::size_t rows, std::size_t cols, const std::string& key) {
    const Eigen::VectorXd v = numbers(line, rows * cols, key);
    return Eigen::Map<const RowMatrix<double>>(v.data(), static_cast<Eigen::Index>(rows),
                                               static_cast<Eigen::Index>(cols));
}

/// The input: one "key values..." line each; nx, ny before the vectors and matrices.
Twin read_twin(const std::string& path) {
    std::ifstream in(path);
    sda::detail::require(in.good(), "cannot read ", path);
    Twin t;
    std::string text;
    while (std::getline(in, text)) {
        std::istringstream line(text);
        std::string key;
        if (!(line >> key) || key[0] == '#') continue;
        if (key == "system") line >> t.system;
        else if (key == "dt") line >> t.dt;
        else if (key == "forcing") line >> t.forcing;
        else if (key == "nx") line >> t.nx;
        else if (key == "ny") line >> t.ny;
        else if (key == "dko") line >> t.dko;
        else if (key == "mu") t.mu = numbers(line, t.nx, key);
        else if (key == "cov") t.cov = matrix(line, t.nx, t.nx, key);
        else if (key == "H") t.H = matrix(line, t.ny, t.nx, key);
        else if (key == "R") t.R = matrix(line, t.ny, t.ny, key);
        else if (key == "y") t.y.push_back(numbers(line, t.ny, key));
        else sda::detail::fail("unknown key '", key, "' in ", path);
    }
    sda::detail::require(t.nx > 0 && t.ny > 0 && t.dko > 0 && t.dt > 0.0, path, " lacks nx, ny, dko or dt");
    sda::detail::require(t.mu.size() > 0 && t.cov.size() > 0 && t.H.size() > 0 && t.R.size() > 0 && !t.y.empty(),
                         path, " lacks mu, cov, H, R or y");
    return t;
}

struct Options {
    std::string input, output;
    Eigen::Index members = 20;
    double inflation = 1.0, loc_rad = 0.0;
    bool rotate = false;
    std::uint64_t seed = 1;
};

/// Assimilates with `model`; returns the analysis ensembles [N, L, D] and the seconds taken.
template <class Model>
std::pair<sda::Tensor<double>, double> assimilate(const Model& model, const Twin& twin, const Options& options) {
    sda::Generator gen(options.seed);
    RowMatrix<double> initial(options.members, static_cast<Eigen::Index>(twin.nx));  // x_0 ~ N(mu, cov)
    sda::fill_normal(initial.data(), static_cast<std::size_t>(options.members), twin.nx, gen);
    const Eigen::LLT<Eigen::MatrixXd> llt(twin.cov);
    sda::detail::require(llt.info() == Eigen::Success, "the initial covariance is not positive definite");
    initial = (initial * llt.matrixL().transpose()).rowwise() + twin.mu.transpose();

    std::vector<std::optional<KalmanObservation>> observations{std::nullopt};  // t = 0: none
    for (const Eigen::VectorXd& y : twin.y) observations.push_back(KalmanObservation{twin.H, twin.R, y});

    sda::baselines::EnsembleTransformOptions filter{.inflation = options.inflation, .rotate = options.rotate};
    if (options.loc_rad > 0.0)
        filter.localization =
            sda::baselines::Localization{.half_width = 1.82 * options.loc_rad, .period = double(twin.nx)};
    const auto start = std::chrono::steady_clock::now();
    auto result = sda::baselines::ensemble_transform_smoother(model, initial, observations, gen, filter);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {std::move(result.filtered), seconds};
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"sda's ETKF/LETKF on a DAPPER twin experiment (see bench/dapper_compare.py)"};
    app.add_option("--input", options.input, "twin experiment written by dapper_compare.py")->required();
    app.add_option("--output", options.output, "per observation time: analysis spread and mean")->required();
    app.add_option("--members", options.members, "ensemble size N")->check(CLI::Range(2, 100000));
    app.add_option("--inflation", options.inflation, "anomalies times this after each analysis (DAPPER infl)");
    app.add_flag("--rotate", options.rotate, "random mean-preserving rotation after each analysis (DAPPER rot)");
    app.add_option("--loc-rad", options.loc_rad, "LETKF with DAPPER's loc_rad (GC half-width 1.82 loc_rad); 0: ETKF");
    app.add_option("--seed", options.seed, "seed of the initial ensemble and the rotations");
    CLI11_PARSE(app, argc, argv);
    try {
        const Twin twin = read_twin(options.input);
        std::pair<sda::Tensor<double>, double> run;
        if (twin.system == "lorenz96") {
            const sda::systems::Lorenz96 system{.n = twin.nx, .forcing = twin.forcing, .dt = twin.dt};
            system.validate();
            run = assimilate(Steps<sda::systems::Lorenz96>{system, twin.dko}, twin, options);
        } else if (twin.system == "lorenz63") {
            sda::detail::require(twin.nx == 3, "Lorenz-63 has 3 variables, the input ", twin.nx);
            run = assimilate(Steps<sda::systems::Lorenz63>{{.dt = twin.dt}, twin.dko}, twin, options);
        } else {
            sda::detail::fail("unknown system '", twin.system, "' (lorenz96 or lorenz63)");
        }
        const auto& [filtered, seconds] = run;

        const std::size_t N = filtered.shape()[0], L = filtered.shape()[1], D = filtered.shape()[2];
        std::ofstream out(options.output);
        sda::detail::require(out.good(), "cannot write ", options.output);
        out << "# seconds " << seconds << '\n';
        char number[32];
        for (std::size_t i = 1; i < L; ++i) {  // the observation times
            const auto n = static_cast<Eigen::Index>(N), d = static_cast<Eigen::Index>(D);
            RowMatrix<double> e(n, d);
            for (Eigen::Index b = 0; b < n; ++b)
                e.row(b) = Eigen::Map<const Eigen::RowVectorXd>(filtered.data() + (std::size_t(b) * L + i) * D, d);
            const Eigen::RowVectorXd mean = e.colwise().mean();
            const double variance = (e.rowwise() - mean).squaredNorm() / double(N - 1) / double(D);
            std::snprintf(number, sizeof number, "%.17g", std::sqrt(variance));
            out << number;
            for (Eigen::Index v = 0; v < d; ++v) {
                std::snprintf(number, sizeof number, " %.17g", mean(v));
                out << number;
            }
            out << '\n';
        }
        sda::detail::require(out.good(), "writing ", options.output, " failed");
        std::printf("dapper_twin: %zu analyses of %zu members in %.3f s\n", L - 1, N, seconds);
    } catch (const sda::error& e) {
        std::fprintf(stderr, "dapper_twin: %s\n", e.what());
        return 1;
    }
    return 0;
}
