// examples/kolmogorov.cpp: the paper's 2-D turbulence experiment (Kolmogorov
// flow) at CPU size: a U-Net window prior, then zero-shot assimilation of a
// coarse and a sparse observation of a held-out trajectory.
//
// 1. Data: Kolmogorov flow (Re 1000, forcing sin(4y), drag 0.1) simulated on a
//    128^2 grid by the pseudo-spectral solver, velocities average-pooled to
//    32^2, 0.2 time units between states (the paper: 256^2 -> 64^2). HDF5,
//    generated once and reused. Fields are divided by one scale, the velocity
//    standard deviation of the training set.
// 2. Prior: a ScoreUNet on windows of 2K+1 = 5 states stacked along channels,
//    with the forcing as a context channel (the paper's LocalScoreUNet);
//    AdamW, linear decay; checkpointed every epoch, resumed or reused.
// 3. Observations of `--length` states of a held-out trajectory, noise std
//    0.1 (in units of the scale): "coarse" = 4x4 average pooling (8^2 cells)
//    at every state; "sparse" = the velocity at 64 fixed random points (1/16
//    of the grid) at every other state; "saturated" (opt-in) = s tanh(x / s)
//    of the coarse fields, a nonlinear sensor.
// 4. SDA: MarkovComposedScore<U-Net, 2> guided by SDA-gamma, sampled with the
//    predictor-corrector sampler.
//
// Writes DIR/<scenario>_{truth,samples,observation}.h5 (vorticity fields),
// DIR/spectra.csv, DIR/rmse.csv, DIR/summary.csv; examples/plot_kolmogorov.py
// draws DIR/kolmogorov_<scenario>.png, kolmogorov_spectra.png and kolmogorov_rmse.png.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>

#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/hdf5.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/likelihood.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/pool.hpp"
#include "sda/observe/saturation.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/kolmogorov.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/progress.hpp"

#include "kolmogorov_common.hpp"

namespace fs = std::filesystem;
using sda::Tensor;
using namespace examples::kolmogorov;

namespace {

struct Options : FlowOptions, SamplingOptions {
    std::vector<std::string> scenarios{"coarse", "sparse"};
    double saturation = 1.0;
    Options() { length = 16, samples = 4, steps = 128; }
};

/// Energy spectrum averaged over the states of x [N, L, 2, m, m] (times `scale`).
std::vector<double> mean_spectrum(const Tensor<float>& x, double scale) {
    const std::size_t frames = x.shape()[0] * x.shape()[1], m = x.shape()[3];
    std::vector<double> mean, velocity(2 * m * m);
    for (std::size_t f = 0; f < frames; ++f) {
        for (std::size_t i = 0; i < velocity.size(); ++i) velocity[i] = scale * double(x.data()[f * 2 * m * m + i]);
        const std::vector<double> e = sda::systems::energy_spectrum(velocity, m);
        mean.resize(e.size(), 0.0);
        for (std::size_t k = 0; k < e.size(); ++k) mean[k] += e[k] / double(frames);
    }
    return mean;
}

/// One observation scenario: its operator, what it is compared with, and how it is drawn.
struct Scenario {
    std::string name, baseline_name;
    Tensor<float> y, display, baseline;  // y [obs...]; display [1, L, m, m] vorticity-like; baseline [1, L, 2, m, m]
};

/// The sparse stations: 1/16 of the grid points (fixed random), both components, every other state.
xt::xarray<bool> station_mask(const Options& o, std::size_t length, std::size_t m) {
    xt::xarray<bool> mask = xt::zeros<bool>({length, std::size_t(2), m, m});
    std::vector<double> u(m * m);
    sda::Generator station_gen(o.seed + 31);
    sda::fill_uniform(u.data(), 1, m * m, station_gen);
    std::vector<std::size_t> order(m * m);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return u[a] < u[b]; });
    for (std::size_t s = 0; s < length; s += 2)
        for (std::size_t p = 0; p < m * m / 16; ++p)
            for (std::size_t ch = 0; ch < 2; ++ch) mask(s, ch, order[p] / m, order[p] % m) = true;
    return mask;
}

/// y = A(truth) + noise, as one shared observation [obs...].
template <class Op>
Tensor<float> noisy_observation(const Op& op, const Tensor<float>& truth, double noise, sda::Generator& gen) {
    const Tensor<float> clean = op.apply(truth);
    Tensor<float> y = clean + float(noise) * sda::CpuBackend<float>::normal(sda::shape_of(clean), gen);
    y.reshape(sda::event_shape_of(sda::shape_of(clean)));
    return y;
}

/// Coarse scenarios (4x4 pooled fields, optionally through the saturating sensor): the display is the
/// observed velocity's vorticity, the baseline the observation upsampled to the grid.
Scenario coarse_scenario(const std::string& name, Tensor<float> y, const Options& o, std::size_t length, std::size_t m,
                         double scale) {
    Tensor<float> coarse = y;  // [L, 2, m/4, m/4]
    if (name == "saturated")   // invert the sensor (clipped to its range)
        for (float& v : coarse) v = float(o.saturation * std::atanh(std::clamp(double(v) / o.saturation, -0.999, 0.999)));
    Tensor<float> baseline = sda::empty_tensor<float>({1, length, 2, m, m});
    const std::size_t c = m / 4;
    for (std::size_t f = 0; f < length * 2; ++f)
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < m; ++j) baseline.data()[f * m * m + i * m + j] = coarse.data()[f * c * c + (i / 4) * c + j / 4];
    coarse.reshape({1, length, 2, c, c});
    return {name, "upsampled observation", std::move(y), vorticity(coarse, scale), std::move(baseline)};
}

/// The sparse scenario: the display is the observed u component at the stations (NaN elsewhere),
/// the baseline the climatological mean 0.
Scenario sparse_scenario(Tensor<float> y, const xt::xarray<bool>& mask, std::size_t length, std::size_t m, double scale) {
    Tensor<float> display = xt::full_like(Tensor<float>(xt::zeros<float>({std::size_t(1), length, m, m})),
                                          std::numeric_limits<float>::quiet_NaN());
    std::size_t at = 0;
    for (std::size_t s = 0; s < length; ++s)
        for (std::size_t ch = 0; ch < 2; ++ch)
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < m; ++j)
                    if (mask(s, ch, i, j)) {
                        if (ch == 0) display(0, s, i, j) = float(scale) * y.data()[at];
                        ++at;
                    }
    Tensor<float> baseline = xt::zeros<float>({std::size_t(1), length, std::size_t(2), m, m});
    return {"sparse", "climatology (zero)", std::move(y), std::move(display), std::move(baseline)};
}

/// What the summary reports of one scenario (RMSEs in units of the velocity scale, averaged over states).
struct Row {
    std::string name, baseline_name;
    std::size_t observed;
    double seconds, rmse_mean, rmse_samples, spread, rmse_baseline, chi2;
};


}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Kolmogorov-flow data assimilation with a U-Net window prior (SDA)"};
    add_flow_options(app, o);
    app.add_option("--scenarios", o.scenarios, "observations: coarse, sparse, saturated")->delimiter(',')
        ->check(CLI::IsMember({"coarse", "sparse", "saturated"}));
    add_sampling_options(app, o);
    CLI11_PARSE(app, argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    try {
        o.validate();
        const std::size_t m = o.cells();
        sda::detail::require(o.length <= o.states, "kolmogorov: --length ", o.length, " exceeds --states ", o.states);
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::pair<std::string, double>> stage_seconds;

        // --- 1. data ------------------------------------------------------------------------------------
        auto t0 = std::chrono::steady_clock::now();
        const FlowData data = load_flow_data(o);
        const Tensor<float>& test = data.test;
        const double scale = data.scale;
        stage_seconds.emplace_back("data", seconds_since(t0));

        // --- 2. the window prior ------------------------------------------------------------------------
        t0 = std::chrono::steady_clock::now();
        Net net = window_network(o);
        {
            const sda::train::WindowDataset<float> train_set(data.train, 2 * K + 1), valid_set(data.valid, 2 * K + 1);
            sda::Generator train_gen = fit_generator(o);
            const auto result = sda::train::fit(net, train_set, valid_set, fit_options(o), train_gen,
                                                sda::train::TrainingProgress("U-Net K=2", !o.quiet));
            report_fit(net, result, o.epochs);
        }
        stage_seconds.emplace_back("training", seconds_since(t0));

        // --- 3. and 4. observe a held-out trajectory, assimilate ---------------------------------------------
        const std::size_t L = o.length;
        Tensor<float> truth = sda::empty_tensor<float>({1, L, 2, m, m});
        std::copy_n(test.data(), truth.size(), truth.data());  // the first held-out trajectory
        const sda::MarkovComposedScore<Net, K> prior(net, L);
        const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections, .tau = o.tau}};
        const std::vector<double> truth_spectrum = mean_spectrum(truth, scale);

        sda::AtomicFile spectra(o.out / "spectra.csv"), rmse(o.out / "rmse.csv"), summary(o.out / "summary.csv");
        spectra.stream() << "scenario,source,k,energy\n";
        for (std::size_t k = 0; k < truth_spectrum.size(); ++k) spectra.stream() << ",truth," << k << ',' << truth_spectrum[k] << '\n';
        rmse.stream() << "scenario,state,posterior_mean,sample_mean,spread,baseline\n";
        summary.stream() << "scenario,observed,seconds,rmse_mean,rmse_samples,spread,rmse_baseline,baseline,chi2\n";
        std::vector<Row> rows;
        sda::io::write_trajectories(o.out / "truth.h5", vorticity(truth, scale));

        sda::Generator obs_gen(o.seed + 30);
        for (const std::string& name : o.scenarios) {
            t0 = std::chrono::steady_clock::now();
            const std::size_t index = rows.size() + 1;
            // the scenario's observation, drawn, then assimilated
            auto assimilate = [&](const auto& op, Scenario scenario) {
                const sda::GaussianObservation obs(op, scenario.y, o.noise * o.noise);
                sda::Generator gen(o.seed + 1000 + index);
                char label[64];
                std::snprintf(label, sizeof label, "[%zu/%zu] %s", index, o.scenarios.size(), name.c_str());
                sda::Progress progress(label, !o.quiet);
                const Tensor<float> x = sda::sample(sampler, sda::guide(prior, obs, sda::SDA{.gamma = o.gamma}), o.samples, gen, progress);
                return std::tuple{std::move(scenario), x, sda::metrics::chi_square(obs, x)};
            };
            const sda::observe::AvgPool pool(4);
            const auto saturated = sda::observe::compose(sda::observe::Saturation(o.saturation), pool);
            const xt::xarray<bool> mask = station_mask(o, L, m);
            const auto [scenario, x, chi2] =
                name == "coarse"      ? assimilate(pool, coarse_scenario(name, noisy_observation(pool, truth, o.noise, obs_gen), o, L, m, scale))
                : name == "saturated" ? assimilate(saturated, coarse_scenario(name, noisy_observation(saturated, truth, o.noise, obs_gen), o, L, m, scale))
                                      : assimilate(sda::observe::Mask(mask), sparse_scenario(noisy_observation(sda::observe::Mask(mask), truth, o.noise, obs_gen), mask, L, m, scale));
            const double seconds = seconds_since(t0);

            // scores per state, in units of the velocity scale
            const std::vector<double> mean_rmse = sda::metrics::rmse_per_state(x, truth),
                                      sample_rmse = sda::metrics::member_rmse_per_state(x, truth),
                                      spread = sda::metrics::spread_per_state(x),
                                      baseline_rmse = sda::metrics::rmse_per_state(scenario.baseline, truth);
            for (std::size_t s = 0; s < L; ++s)
                rmse.stream() << name << ',' << s << ',' << mean_rmse[s] << ',' << sample_rmse[s] << ',' << spread[s] << ','
                              << baseline_rmse[s] << '\n';
            const Row row{name, scenario.baseline_name, scenario.y.size(), seconds, average(mean_rmse), average(sample_rmse),
                          average(spread), average(baseline_rmse), chi2};
            const std::vector<double> spectrum = mean_spectrum(x, scale);
            for (std::size_t k = 0; k < spectrum.size(); ++k) spectra.stream() << name << ",posterior," << k << ',' << spectrum[k] << '\n';
            summary.stream() << name << ',' << row.observed << ',' << seconds << ',' << row.rmse_mean << ',' << row.rmse_samples
                             << ',' << row.spread << ',' << row.rmse_baseline << ',' << row.baseline_name << ',' << chi2 << '\n';
            sda::io::write_trajectories(o.out / (name + "_samples.h5"), vorticity(x, scale));
            sda::io::write_trajectories(o.out / (name + "_observation.h5"), scenario.display);
            rows.push_back(row);
        }
        spectra.commit(), rmse.commit(), summary.commit();
        stage_seconds.emplace_back("assimilation", 0);
        for (const Row& r : rows) stage_seconds.back().second += r.seconds;

        // --- summary --------------------------------------------------------------------------------------
        std::printf("\nKolmogorov flow, %zu states of %zu^2 velocity fields, %zu posterior samples, %zu steps, C = %zu, "
                    "gamma %.3g; RMSE in units of the velocity scale (%.3f)\n", L, m, o.samples, o.steps, o.corrections,
                    o.gamma, scale);
        std::printf("  %-10s %9s %9s %11s %11s %8s %11s %9s  %s\n", "scenario", "observed", "seconds", "RMSE mean",
                    "RMSE sample", "spread", "RMSE base", "chi2/obs", "baseline");
        for (const Row& r : rows)
            std::printf("  %-10s %9zu %9.0f %11.4f %11.4f %8.4f %11.4f %9.3f  %s\n", r.name.c_str(), r.observed, r.seconds,
                        r.rmse_mean, r.rmse_samples, r.spread, r.rmse_baseline, r.chi2, r.baseline_name.c_str());
        std::printf("time: ");
        for (const auto& [stage, seconds] : stage_seconds) std::printf("%s %.0f s, ", stage.c_str(), seconds);
        std::printf("total %.0f s\nWrote %s/{summary,rmse,spectra}.csv and vorticity fields (*.h5)\n", seconds_since(start),
                    o.out.c_str());
    } catch (const sda::error& e) {
        std::fprintf(stderr, "kolmogorov: %s\n", e.what());
        return 1;
    }
    return 0;
}
