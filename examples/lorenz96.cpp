// examples/lorenz96.cpp: score-based data assimilation on Lorenz-96 (40 variables, F = 8,
// dt 0.05), beside the classical methods on the same observations: the LETKF, its smoother
// over the whole trajectory (LETKS) and cycled strong-constraint 4D-Var.
//
// 1. Data: 256 deterministic trajectories of 1024 states after 1000 burn-in steps, standardised
//    with the climatology (mean 2.3, scale 3.6), split 80/10/10 (HDF5, reused when present).
// 2. Prior: the window model of order K (2K+1 states of 40 variables; a 1-D U-Net with
//    circular padding over the 40 variables and the 2K+1 states as channels, or with
//    `--network mlp` a ResMLP over the flattened window; AdamW 1e-3, weight decay 1e-3, batch
//    64, linear decay, 24 epochs, sampled with an EMA 0.999 of the weights), trained or resumed
//    from DIR/window_K<k>.safetensors. About 35 minutes on 2 cores with the defaults.
// 3. Observations of 65 states of a held-out trajectory: "sparse", every 4th variable at every
//    4th state with std 1; "dense", every variable at every state with std 2.
// 4. SDA: MarkovComposedScore<window, K> guided by SDA-gamma, predictor-corrector sampler.
//    Baselines, each tuned on the truth over a small grid (the strongest setting of each, an
//    advantage SDA does not get): LETKF/LETKS with `--members` members from the climatology
//    (inflation x Gaspari-Cohn half-width x lag), cycled 4D-Var (window x background std; the first
//    window's background is the climatology).
// 5. Metrics against the truth: RMSE of the mean (per state, overall and over each half of the
//    trajectory: the filters spin up from the climatology in the first), spread/skill, CRPS,
//    rank histograms. With 40 variables no particle smoother is a ground truth: these are
//    scores against the one true trajectory, not distances to the exact posterior.
//
// Writes DIR/results.csv (one row per method and scenario), DIR/series.csv (RMSE and spread
// per state), DIR/fields.csv (truth, observations, means and spreads for the Hovmoller
// diagrams), DIR/ranks.csv; examples/plot_lorenz96.py draws DIR/lorenz96_*.png.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>

#include "window_prior.hpp"

#include "sda/baselines/etkf.hpp"
#include "sda/baselines/fourdvar.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/hdf5.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/health.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/lorenz96.hpp"

namespace fs = std::filesystem;
using sda::Tensor;
using Observations = std::vector<std::optional<sda::baselines::KalmanObservation>>;

namespace {

constexpr std::size_t length = 65, n = 40;
constexpr double climate_mean = 2.3, climate_scale = 3.6;  // of F = 8: mean 2.3, sd 3.6 per variable

struct Options {
    fs::path out = "out/lorenz96";
    std::string network = "unet";  // measured better than the ResMLP (docs/lorenz96.md)
    std::vector<std::size_t> channels{32, 64, 128};
    std::size_t order = 2, width = 256, epochs = 24, epoch_size = 65536, samples = 64, steps = 256, corrections = 1;
    std::size_t members = 32, trajectory = 0;
    double gamma = 3e-2, ema = 0.999;
    std::uint64_t seed = 7;
    bool quiet = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Scenario {
    std::string name;
    std::size_t every_state, every_variable;
    double std;
    std::vector<std::size_t> states, variables;
    Tensor<double> y;  // [states, variables], physical units
};

struct Estimate {
    std::string method, setting;
    Tensor<double> x;  // [N, 65, 40] physical units (N = 1 for 4D-Var)
    double seconds = 0;
};

Tensor<double> physical(const Tensor<float>& x) {
    Tensor<double> out = xt::cast<double>(x);
    for (auto& v : out) v = v * climate_scale + climate_mean;
    return out;
}

/// Mean and standard deviation over the members of every (state, variable): [2, 65, 40].
Tensor<double> mean_and_spread(const Tensor<double>& x) {
    Tensor<double> out = sda::empty_tensor<double>({2, length, n});
    const std::size_t members = x.shape()[0];
    for (std::size_t i = 0; i < length; ++i)
        for (std::size_t k = 0; k < n; ++k) {
            double m = 0, v = 0;
            for (std::size_t b = 0; b < members; ++b) m += x(b, i, k) / double(members);
            for (std::size_t b = 0; b < members; ++b) v += (x(b, i, k) - m) * (x(b, i, k) - m);
            out(0, i, k) = m;
            out(1, i, k) = members > 1 ? std::sqrt(v / double(members - 1)) : 0.0;
        }
    return out;
}

/// RMSE of the ensemble mean at each state over the 40 variables, from `mean_and_spread`'s result.
std::vector<double> rmse_series(const Tensor<double>& moments, const Tensor<double>& truth) {
    std::vector<double> out(length, 0.0);
    for (std::size_t i = 0; i < length; ++i) {
        for (std::size_t k = 0; k < n; ++k) out[i] += std::pow(moments(0, i, k) - truth(0, i, k), 2) / double(n);
        out[i] = std::sqrt(out[i]);
    }
    return out;
}

/// The climatology of the training data (physical units): mean and covariance of one state.
std::pair<Eigen::VectorXd, Eigen::MatrixXd> climatology(const Tensor<float>& train) {
    const std::size_t count = train.shape()[0] * train.shape()[1];
    const Eigen::Map<const sda::RowMatrix<float>> x(train.data(), static_cast<Eigen::Index>(count), static_cast<Eigen::Index>(n));
    const Eigen::MatrixXd xd = x.cast<double>().array() * climate_scale + climate_mean;
    const Eigen::VectorXd mean = xd.colwise().mean().transpose();
    const Eigen::MatrixXd centred = xd.rowwise() - mean.transpose();
    return {mean, centred.transpose() * centred / double(count - 1)};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Lorenz-96 data assimilation: SDA beside the LETKF, LETKS and 4D-Var on the same observations"};
    app.add_option("--out", o.out, "output folder (data, checkpoint, CSVs, figures)");
    app.add_option("--order", o.order, "window order K (window 2K+1), 1 to 4")->check(CLI::Range(1, 4));
    app.add_option("--network", o.network, "window network: mlp (ResMLP) or unet (1-D circular U-Net)")
        ->check(CLI::IsMember({"mlp", "unet"}));
    app.add_option("--width", o.width, "hidden width of the ResMLP")->check(CLI::Range(16, 4096));
    app.add_option("--channels", o.channels, "channels per level of the U-Net")->delimiter(',');
    app.add_option("--epochs", o.epochs, "training epochs")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch")->check(CLI::PositiveNumber);
    app.add_option("--samples", o.samples, "SDA posterior samples per scenario")->check(CLI::Range(2, 1 << 16));
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--corrections", o.corrections, "Langevin corrections per step");
    app.add_option("--members", o.members, "LETKF/LETKS ensemble members")->check(CLI::Range(2, 1 << 14));
    app.add_option("--trajectory", o.trajectory, "which held-out trajectory is observed");
    app.add_option("--gamma", o.gamma, "SDA gamma");
    app.add_option("--ema", o.ema, "EMA decay of the prior's weights, sampled with (0: none)")->check(CLI::Range(0.0, 0.999999));
    app.add_option("--seed", o.seed, "seed of everything");
    app.add_flag("--quiet", o.quiet, "no progress display");
    CLI11_PARSE(app, argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    try {
        const auto start = std::chrono::steady_clock::now();
        const sda::systems::Lorenz96 system;
        // --- 1. data ------------------------------------------------------------------------------
        const fs::path data_dir = o.out / "data";
        if (!fs::exists(data_dir / "test.h5")) {
            sda::Generator gen(o.seed);
            const Tensor<double> all = system.simulate(256, 1000, 1024, gen);
            Tensor<float> standardised = xt::cast<float>((all - climate_mean) / climate_scale);
            auto split = [&](std::size_t begin, std::size_t end) {
                Tensor<float> part = sda::empty_tensor<float>({end - begin, 1024, n});
                std::copy_n(standardised.data() + begin * 1024 * n, part.size(), part.data());
                return part;
            };
            sda::io::write_trajectories(data_dir / "train.h5", split(0, 204));
            sda::io::write_trajectories(data_dir / "valid.h5", split(204, 230));
            sda::io::write_trajectories(data_dir / "test.h5", split(230, 256));
            std::printf("data: generated 256 trajectories of 1024 states -> %s\n", data_dir.c_str());
        }
        const Tensor<float> train = sda::io::read_trajectories(data_dir / "train.h5"),
                            valid = sda::io::read_trajectories(data_dir / "valid.h5"),
                            test = sda::io::read_trajectories(data_dir / "test.h5");
        sda::detail::require(o.trajectory < test.shape()[0], "lorenz96: --trajectory ", o.trajectory, " is not among the ",
                             test.shape()[0], " held-out trajectories");
        const auto [climate_mu, climate_cov] = climatology(train);

        // --- 2. the window prior --------------------------------------------------------------------
        auto t0 = std::chrono::steady_clock::now();
        // the ResMLP over the flattened window, or a 1-D circular U-Net over the variables with the
        // window's states as channels
        std::variant<examples::WindowNet, examples::UNetWindowNet> network =
            o.network == "mlp" ? std::variant<examples::WindowNet, examples::UNetWindowNet>(
                                     examples::window_network(o.order, n, o.seed, o.width))
                               : examples::unet_window_network(o.order, n, o.seed, o.channels);
        std::visit([&](auto& net) {
            examples::train_window_prior(net, o.order, train, valid, o.out, o.epochs, o.epoch_size, o.seed, !o.quiet, o.ema);
        }, network);
        const double training_seconds = seconds_since(t0);

        // --- 3. observations ------------------------------------------------------------------------
        Tensor<double> truth = sda::empty_tensor<double>({1, length, n});
        for (std::size_t i = 0; i < length * n; ++i)
            truth.data()[i] = double(test.data()[o.trajectory * 1024 * n + i]) * climate_scale + climate_mean;
        std::vector<Scenario> scenarios{{"sparse", 4, 4, 1.0, {}, {}, {}}, {"dense", 1, 1, 2.0, {}, {}, {}}};
        sda::Generator obs_gen(o.seed + 30);
        for (auto& s : scenarios) {
            for (std::size_t i = 0; i < length; i += s.every_state) s.states.push_back(i);
            for (std::size_t k = 0; k < n; k += s.every_variable) s.variables.push_back(k);
            s.y = sda::empty_tensor<double>({s.states.size(), s.variables.size()});
            sda::fill_normal(s.y.data(), s.states.size(), s.variables.size(), obs_gen);
            for (std::size_t j = 0; j < s.states.size(); ++j)
                for (std::size_t v = 0; v < s.variables.size(); ++v)
                    s.y(j, v) = truth(0, s.states[j], s.variables[v]) + s.std * s.y(j, v);
        }

        // --- 4. the methods, per scenario --------------------------------------------------------------
        // the ensembles' first state, drawn from the climate once: every LETKF run starts from it
        // with the generator where this draw left it
        sda::Generator after_start(o.seed + 40);
        const Tensor<double> start_states = system.simulate(o.members, 1000, 1, after_start);
        std::map<std::string, std::vector<Estimate>> estimates;
        for (const auto& s : scenarios) {
            Observations obs(length);
            for (std::size_t j = 0; j < s.states.size(); ++j) {
                const auto m = static_cast<Eigen::Index>(s.variables.size());
                sda::baselines::KalmanObservation ob{Eigen::MatrixXd::Zero(m, n), s.std * s.std * Eigen::MatrixXd::Identity(m, m),
                                                     Eigen::VectorXd(m)};
                for (Eigen::Index v = 0; v < m; ++v) {
                    ob.H(v, static_cast<Eigen::Index>(s.variables[static_cast<std::size_t>(v)])) = 1.0;
                    ob.y(v) = s.y(j, static_cast<std::size_t>(v));
                }
                obs[s.states[j]] = std::move(ob);
            }
            auto& list = estimates[s.name];
            // LETKF and LETKS over a grid of inflations, half-widths and lags: the lowest RMSE of each
            {
                Estimate best_filter{"LETKF", "", {}}, best_smoother{"LETKS", "", {}};
                double best_f = INFINITY, best_s = INFINITY;
                std::size_t runs = 0;
                t0 = std::chrono::steady_clock::now();
                for (const double inflation : {1.0, 1.02, 1.05, 1.1, 1.2})
                    for (const double half_width : {2.0, 4.0, 8.0, 16.0})
                        for (const std::size_t lag : {std::size_t{4}, std::size_t{8}, std::size_t{16}, length - 1}) {
                            sda::Generator gen = after_start;
                            const sda::baselines::EnsembleTransformOptions options{
                                .inflation = inflation, .rotate = true, .lag = lag,
                                .localization = sda::baselines::Localization{.half_width = half_width, .period = double(n)}};
                            sda::baselines::EnsembleTransformResult result;
                            ++runs;
                            try {
                                result = sda::baselines::ensemble_transform_smoother(system, sda::rows_view(start_states),
                                                                                     obs, gen, options);
                            } catch (const sda::error&) {
                                continue;  // an ensemble that diverged: not a candidate
                            }
                            char setting[64];
                            std::snprintf(setting, sizeof setting, "inflation %.2f, half-width %.0f", inflation, half_width);
                            if (const double score = sda::metrics::rmse(result.filtered, truth); score < best_f)
                                best_f = score, best_filter.setting = setting, best_filter.x = result.filtered;
                            std::snprintf(setting, sizeof setting, "inflation %.2f, half-width %.0f, lag %zu", inflation,
                                          half_width, lag);
                            if (const double score = sda::metrics::rmse(result.smoothed, truth); score < best_s)
                                best_s = score, best_smoother.setting = setting, best_smoother.x = result.smoothed;
                        }
                sda::detail::require(best_f < INFINITY, "lorenz96: every LETKF setting diverged on ", s.name);
                best_filter.seconds = best_smoother.seconds = seconds_since(t0) / double(runs);  // per run of the grid
                list.push_back(std::move(best_filter));
                list.push_back(std::move(best_smoother));
            }
            // cycled 4D-Var over a grid of windows and background stds, the lowest RMSE kept
            {
                Estimate best_var{"4D-Var", "", {}};
                double best = INFINITY;
                t0 = std::chrono::steady_clock::now();
                std::size_t runs = 0;
                for (const std::size_t window : {std::size_t{5}, std::size_t{9}, std::size_t{17}})
                    for (const double b : {0.5, 1.0, 2.0}) {
                        Eigen::MatrixXd B(n, n);
                        for (Eigen::Index i = 0; i < Eigen::Index(n); ++i)
                            for (Eigen::Index j = 0; j < Eigen::Index(n); ++j) {
                                const double d = double(std::min(std::abs(i - j), Eigen::Index(n) - std::abs(i - j)));
                                B(i, j) = b * b * sda::baselines::gaspari_cohn(d / 2.0);
                            }
                        ++runs;
                        sda::RowMatrix<double> x;
                        try {
                            x = sda::baselines::cycled_four_d_var(system, climate_mu, climate_cov, B, obs, window);
                        } catch (const sda::error&) {
                            continue;  // a window whose trajectory left the finite numbers: not a candidate
                        }
                        Tensor<double> xt = sda::empty_tensor<double>({1, length, n});
                        std::copy_n(x.data(), x.size(), xt.data());
                        const double score = sda::metrics::rmse(xt, truth);
                        if (score < best) {
                            char setting[64];
                            std::snprintf(setting, sizeof setting, "window %zu, background std %.1f", window, b);
                            best = score, best_var.setting = setting, best_var.x = std::move(xt);
                        }
                    }
                best_var.seconds = seconds_since(t0) / double(runs);
                if (best_var.x.dimension() == 3) list.push_back(std::move(best_var));
            }
            // SDA
            {
                const sda::observe::Select A(s.states, s.variables);
                Tensor<float> y = sda::empty_tensor<float>({s.states.size(), s.variables.size()});
                for (std::size_t e = 0; e < y.size(); ++e) y.data()[e] = float((s.y.data()[e] - climate_mean) / climate_scale);
                const double std_standardised = s.std / climate_scale;
                const sda::GaussianObservation observation(A, y, std_standardised * std_standardised);
                const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections, .tau = 0.25},
                                                      .nonfinite = sda::NonFinite::report};
                char setting[64];
                std::snprintf(setting, sizeof setting, "%s, K %zu, C %zu, gamma %g", o.network.c_str(), o.order, o.corrections,
                              o.gamma);
                Estimate sda_estimate{"SDA", setting, {}};
                std::visit([&](const auto& net) { sda::dispatch_order<4>(o.order, [&](auto K) {
                    const sda::MarkovComposedScore<std::decay_t<decltype(net)>, K> prior(net, length);
                    sda::Generator gen(o.seed + 100 + (s.name == "dense"));
                    sda::Progress progress("SDA " + s.name, !o.quiet);
                    t0 = std::chrono::steady_clock::now();
                    const Tensor<float> x = sda::sample(sampler, sda::guide(prior, observation, sda::SDA{.gamma = o.gamma}),
                                                        o.samples, gen, progress);
                    sda_estimate.seconds = seconds_since(t0);
                    // samples that became non-finite or left 10 standard deviations are counted and left out
                    const auto health = sda::metrics::sample_health(x, 10.0f);
                    if (health.bad() > 0) std::printf("SDA %s: %zu of %zu samples left out (non-finite or beyond 10 sd)\n",
                                                      s.name.c_str(), health.bad(), o.samples);
                    if (health.healthy.size() >= 2)
                        sda_estimate.x = physical(health.bad() ? sda::metrics::take_samples(x, health.healthy) : x);
                }); }, network);
                if (sda_estimate.x.dimension() == 3) list.push_back(std::move(sda_estimate));
                else std::printf("SDA %s: fewer than 2 healthy samples, no row\n", s.name.c_str());
            }
        }

        // --- 5. metrics and files -------------------------------------------------------------------------
        sda::AtomicFile results(o.out / "results.csv"), series(o.out / "series.csv"), fields(o.out / "fields.csv"),
            ranks(o.out / "ranks.csv");
        results.stream() << "scenario,method,setting,members,seconds,rmse,spread,spread_skill,crps,rmse_first_half,"
                            "rmse_second_half\n";
        series.stream() << "scenario,method,state,rmse,spread\n";
        ranks.stream() << "scenario,method,rank,count\n";
        fields.stream() << "scenario,source,state,variable,value\n";
        std::printf("\nLorenz-96, 65 states of 40 variables, trajectory %zu; scores against the truth, physical units\n",
                    o.trajectory);
        for (const auto& s : scenarios) {
            std::printf("\n%s: every %zu%s variable at every %zu%s state, std %.1f\n", s.name.c_str(), s.every_variable,
                        s.every_variable == 1 ? "st" : "th", s.every_state, s.every_state == 1 ? "st" : "th", s.std);
            std::printf("  %-6s %-44s %7s %7s %7s %8s %7s %15s %8s\n", "method", "setting", "members", "RMSE", "spread",
                        "spr/skl", "CRPS", "RMSE 1st / 2nd", "seconds");
            for (std::size_t i = 0; i < length; ++i)
                for (std::size_t k = 0; k < n; ++k)
                    fields.stream() << s.name << ",truth," << i << ',' << k << ',' << truth(0, i, k) << '\n';
            for (std::size_t j = 0; j < s.states.size(); ++j)
                for (std::size_t v = 0; v < s.variables.size(); ++v)
                    fields.stream() << s.name << ",observation," << s.states[j] << ',' << s.variables[v] << ',' << s.y(j, v) << '\n';
            for (const auto& e : estimates.at(s.name)) {
                const std::size_t members = e.x.shape()[0];
                const double rmse = sda::metrics::rmse(e.x, truth);
                const double spread = members > 1 ? sda::metrics::spread(e.x) : NAN;
                const double spread_skill = members > 1 ? spread / rmse : NAN;
                const double crps = sda::metrics::crps(e.x, truth);
                // the RMSE over states 0-31 and 32-64: filters spin up from the climatology, smoothers need not
                const Tensor<double> ms = mean_and_spread(e.x);
                const auto r = rmse_series(ms, truth);
                double first = 0, second = 0;
                for (std::size_t i = 0; i < length; ++i) (i < length / 2 ? first : second) += r[i] * r[i];
                first = std::sqrt(first / double(length / 2)), second = std::sqrt(second / double(length - length / 2));
                std::printf("  %-6s %-44s %7zu %7.3f %7.3f %8.2f %7.3f %7.3f / %5.3f %8.1f\n", e.method.c_str(),
                            e.setting.c_str(), members, rmse, spread, spread_skill, crps, first, second, e.seconds);
                results.stream() << s.name << ',' << e.method << ",\"" << e.setting << "\"," << members << ',' << e.seconds << ','
                                 << rmse << ',' << spread << ',' << spread_skill << ',' << crps << ',' << first << ','
                                 << second << '\n';
                for (std::size_t i = 0; i < length; ++i) {
                    double sp = 0;
                    for (std::size_t k = 0; k < n; ++k) sp += ms(1, i, k) * ms(1, i, k) / double(n);
                    series.stream() << s.name << ',' << e.method << ',' << i << ',' << r[i] << ',' << std::sqrt(sp) << '\n';
                    for (std::size_t k = 0; k < n; ++k) {
                        fields.stream() << s.name << ',' << e.method << " mean," << i << ',' << k << ',' << ms(0, i, k) << '\n';
                        if (members > 1)
                            fields.stream() << s.name << ',' << e.method << " spread," << i << ',' << k << ',' << ms(1, i, k) << '\n';
                    }
                }
                if (members > 1) {
                    const auto histogram = sda::metrics::rank_histogram(e.x, truth);
                    for (std::size_t r = 0; r < histogram.size(); ++r)
                        ranks.stream() << s.name << ',' << e.method << ',' << r << ',' << histogram[r] << '\n';
                }
            }
        }
        results.commit(), series.commit(), fields.commit(), ranks.commit();
        std::printf("\ntime: training %.0f s, total %.0f s\nWrote %s/{results,series,fields,ranks}.csv\n", training_seconds,
                    seconds_since(start), o.out.c_str());
    } catch (const sda::error& e) {
        std::fprintf(stderr, "lorenz96: %s\n", e.what());
        return 1;
    }
    return 0;
}
