// examples/linear_gaussian.cpp: score-based data assimilation on a linear-Gaussian
// chain, where the exact posterior is known (Kalman/RTS smoother).
//
// A 4-D damped spring (two masses, positions and velocities) is simulated for 33
// states; both positions are observed every 8th state with noise std 0.1. The
// posterior over the whole trajectory is sampled at once with the paper's
// predictor-corrector sampler, from two kinds of prior:
//   - "exact": the analytic score of the whole 33-state trajectory, under each
//     likelihood approximation (MMPS, SDA-gamma, detached SDA, DPS);
//   - "markov K": windows of 2K+1 states composed by MarkovComposedScore, which
//     is what a trained SDA model provides, for K = 1, 2, 4, under MMPS and SDA.
// The table compares each sample set with the smoother: the error of the posterior
// mean (root mean square over all 132 coordinates, in posterior standard
// deviations) and of the marginal standard deviations (mean |ratio - 1|).
//
// Usage: linear_gaussian [--samples N] [--steps S] [--corrections C] [--tau T]
//                        [--seed S] [--out DIR] [--quiet]
// Writes DIR/table.csv, DIR/states.csv, DIR/observations.csv and DIR/samples.csv,
// which examples/plot_linear_gaussian.py turns into DIR/linear_gaussian.png.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "sda/baselines/kalman.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/linear_gaussian.hpp"

namespace {

constexpr std::size_t length = 33, dim = 4;
constexpr double noise_std = 0.1;
const char* const coordinate_names[dim] = {"p1", "p2", "v1", "v2"};

struct Options {
    std::size_t samples = 512, steps = 256, corrections = 1;
    double tau = 0.25;
    std::uint64_t seed = 2023;
    std::filesystem::path out = "out/linear_gaussian";
    bool quiet = false;
};

/// Per-coordinate posterior moments, state-major (index state * dim + coordinate).
struct Moments {
    Eigen::VectorXd mean, sd;
};

Moments moments_of(const sda::Tensor<double>& x) {
    const auto as_vector = [](const sda::Tensor<double>& t) {
        return Eigen::VectorXd(Eigen::Map<const Eigen::VectorXd>(t.data(), static_cast<Eigen::Index>(t.size())));
    };
    return {as_vector(sda::metrics::ensemble_mean(x)), as_vector(sda::metrics::ensemble_std(x))};
}

struct Row {
    std::string prior, guidance;
    double mean_error, sd_error, seconds;
    Moments moments;
};

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"Score-based data assimilation on a linear-Gaussian chain, judged against the RTS smoother"};
    app.add_option("--samples", options.samples, "posterior samples per method")->check(CLI::PositiveNumber);
    app.add_option("--steps", options.steps, "sampler steps from t = 1 to 0")->check(CLI::PositiveNumber);
    app.add_option("--corrections", options.corrections, "Langevin corrections per step (C)");
    app.add_option("--tau", options.tau, "Langevin step size")->check(CLI::PositiveNumber);
    app.add_option("--seed", options.seed, "seed of the truth, the observation and the samplers");
    app.add_option("--out", options.out, "output folder");
    app.add_flag("--quiet", options.quiet, "no progress display");
    CLI11_PARSE(app, argc, argv);

    try {
        // --- the problem: a trajectory, its observation, and the exact posterior ------------
        const auto chain = sda::systems::LinearGaussianChain::damped_spring();
        sda::Generator gen(options.seed);
        const sda::Tensor<double> truth = chain.simulate(1, length, gen);
        const sda::observe::Select op({0, 8, 16, 24, 32}, {0, 1});
        sda::Tensor<double> y = op.apply(truth) + noise_std * sda::CpuBackend<double>::normal({1, 5, 2}, gen);
        y.reshape({5, 2});
        const sda::GaussianObservation obs(op, y, noise_std * noise_std);

        const Eigen::MatrixXd A = sda::observe::dense_matrix(op, {length, dim});
        const Eigen::VectorXd yv = Eigen::Map<const Eigen::VectorXd>(y.data(), static_cast<Eigen::Index>(y.size()));
        const auto rts = sda::baselines::rts_smoother(
            chain, sda::baselines::per_state_observations(A, yv, Eigen::VectorXd::Constant(yv.size(), noise_std * noise_std),
                                                          length, dim));
        Moments exact{Eigen::VectorXd(length * dim), Eigen::VectorXd(length * dim)};
        for (std::size_t i = 0; i < length; ++i) {
            exact.mean.segment(static_cast<Eigen::Index>(i * dim), dim) = rts.smoothed_mean[i];
            exact.sd.segment(static_cast<Eigen::Index>(i * dim), dim) = rts.smoothed_cov[i].diagonal().cwiseSqrt();
        }

        // --- the priors: the whole trajectory's law, and windows of 2K+1 states ----------
        const auto [trajectory_mean, trajectory_cov] = chain.joint_law(length);
        const sda::GaussianScore exact_prior(sda::VPCosine{}, {length, dim}, trajectory_mean, trajectory_cov);
        auto markov_prior = [&]<std::size_t K>(std::integral_constant<std::size_t, K>) {
            const auto [window_mean, window_cov] = chain.joint_law(2 * K + 1);
            return sda::MarkovComposedScore<sda::GaussianScore<sda::VPCosine>, K>(
                sda::GaussianScore(sda::VPCosine{}, {2 * K + 1, dim}, window_mean, window_cov), length);
        };

        const sda::PredictorCorrector sampler{
            .steps = options.steps, .corrector = {.corrections = options.corrections, .tau = options.tau}};

        std::vector<Row> rows;
        sda::Tensor<double> highlighted;  // samples drawn for the figure
        auto run = [&](const std::string& prior_name, const std::string& guidance_name, const auto& model) {
            sda::Progress progress(prior_name + ", " + guidance_name, !options.quiet);
            sda::Generator sampling(options.seed + rows.size() + 1);
            sda::Tensor<double> x = sda::sample(sampler, model, options.samples, sampling, progress);
            const Moments m = moments_of(x);
            const double mean_error = ((m.mean - exact.mean).array() / exact.sd.array()).matrix().norm() /
                                      std::sqrt(static_cast<double>(length * dim));
            const double sd_error = (m.sd.array() / exact.sd.array() - 1.0).abs().mean();
            rows.push_back({prior_name, guidance_name, mean_error, sd_error, progress.elapsed(), m});
            if (prior_name == "markov K=2" && guidance_name == "MMPS") highlighted = std::move(x);
        };
        // MMPS runs CG to the 10 observations, where it is exact for a Gaussian prior
        run("exact", "none (prior)", exact_prior);
        run("exact", "MMPS", sda::guide(exact_prior, obs, sda::MMPS{.iterations = 10}));
        run("exact", "SDA gamma=3e-2", sda::guide(exact_prior, obs, sda::SDA{.gamma = 3e-2}));
        run("exact", "detached SDA", sda::guide(exact_prior, obs, sda::DetachedSDA{.gamma = 3e-2}));
        run("exact", "DPS zeta=10", sda::guide(exact_prior, obs, sda::DPS{.zeta = 10.0}));
        auto markov_rows = [&]<std::size_t K>(std::integral_constant<std::size_t, K> order) {
            const std::string name = "markov K=" + std::to_string(K);
            run(name, "MMPS", sda::guide(markov_prior(order), obs, sda::MMPS{.iterations = 10}));
            run(name, "SDA gamma=3e-2", sda::guide(markov_prior(order), obs, sda::SDA{.gamma = 3e-2}));
        };
        markov_rows(std::integral_constant<std::size_t, 1>{});
        markov_rows(std::integral_constant<std::size_t, 2>{});
        markov_rows(std::integral_constant<std::size_t, 4>{});

        // --- the table ------------------------------------------------------------------
        std::printf("\nLinear-Gaussian chain: %zu states of %zu coordinates, positions observed every 8th state "
                    "(noise std %.2g)\n", length, dim, noise_std);
        std::printf("Sampler: predictor-corrector, %zu steps, C = %zu, tau = %.2g; %zu samples per method.\n",
                    options.steps, options.corrections, options.tau, options.samples);
        std::printf("Errors against the RTS smoother; Monte-Carlo level of the mean error: %.3f.\n\n",
                    1.0 / std::sqrt(static_cast<double>(options.samples)));
        std::printf("%-12s %-16s %12s %12s %10s\n", "prior", "guidance", "mean error", "sd error", "time [s]");
        std::printf("%s\n", std::string(66, '-').c_str());
        for (const Row& r : rows)
            std::printf("%-12s %-16s %12.3f %12.3f %10.2f\n", r.prior.c_str(), r.guidance.c_str(), r.mean_error,
                        r.sd_error, r.seconds);

        // --- what the table says ----------------------------------------------------------
        auto find = [&](const std::string& prior, const std::string& guidance) {
            for (const Row& r : rows)
                if (r.prior == prior && r.guidance == guidance) return r.mean_error;
            return std::nan("");
        };
        const double level = 1.0 / std::sqrt(static_cast<double>(options.samples));
        std::printf("\nSummary:\n");
        std::printf("  exact prior + MMPS (exact in theory): mean error %.3f, %.1fx the Monte-Carlo level\n",
                    find("exact", "MMPS"), find("exact", "MMPS") / level);
        std::printf("  Markov-composed priors + MMPS, K = 1, 2, 4: mean error %.3f, %.3f, %.3f\n",
                    find("markov K=1", "MMPS"), find("markov K=2", "MMPS"), find("markov K=4", "MMPS"));
        std::printf("  the prior alone: mean error %.3f\n", find("exact", "none (prior)"));

        // --- files for the figure ---------------------------------------------------------
        {
            sda::AtomicFile file(options.out / "table.csv");
            file.stream() << "prior,guidance,mean_error,sd_error,seconds,samples\n";
            for (const Row& r : rows)
                file.stream() << r.prior << ',' << r.guidance << ',' << r.mean_error << ',' << r.sd_error << ','
                              << r.seconds << ',' << options.samples << '\n';
            file.commit();
        }
        {
            sda::AtomicFile file(options.out / "states.csv");
            file.stream() << "series,state,coordinate,mean,sd\n";
            auto write = [&](const std::string& series, const Moments& m) {
                for (std::size_t i = 0; i < length * dim; ++i)
                    file.stream() << series << ',' << i / dim << ',' << coordinate_names[i % dim] << ','
                                  << m.mean(static_cast<Eigen::Index>(i)) << ',' << m.sd(static_cast<Eigen::Index>(i))
                                  << '\n';
            };
            write("truth", {Eigen::Map<const Eigen::VectorXd>(truth.data(), length * dim), Eigen::VectorXd::Zero(length * dim)});
            write("RTS smoother", exact);
            for (const Row& r : rows) write(r.prior + " | " + r.guidance, r.moments);
            file.commit();
        }
        {
            sda::AtomicFile file(options.out / "observations.csv");
            file.stream() << "state,coordinate,value,std\n";
            const std::size_t states[] = {0, 8, 16, 24, 32};
            for (std::size_t k = 0; k < 5; ++k)
                for (std::size_t c = 0; c < 2; ++c)
                    file.stream() << states[k] << ',' << coordinate_names[c] << ',' << y(k, c) << ',' << noise_std << '\n';
            file.commit();
        }
        {
            sda::AtomicFile file(options.out / "samples.csv");
            file.stream() << "series,sample,state,coordinate,value\n";
            for (std::size_t b = 0; b < std::min<std::size_t>(5, highlighted.shape()[0]); ++b)
                for (std::size_t i = 0; i < length; ++i)
                    for (std::size_t c = 0; c < dim; ++c)
                        file.stream() << "markov K=2 | MMPS," << b << ',' << i << ',' << coordinate_names[c] << ','
                                      << highlighted(b, i, c) << '\n';
            file.commit();
        }
        std::printf("\nWrote %s/{table,states,observations,samples}.csv\n", options.out.c_str());
    } catch (const sda::error& e) {
        std::fprintf(stderr, "linear_gaussian: %s\n", e.what());
        return 1;
    }
    return 0;
}
