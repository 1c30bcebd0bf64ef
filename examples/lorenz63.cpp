// examples/lorenz63.cpp: the paper's Lorenz-63 experiment on a laptop, judged
// against a particle-filter ground truth (what `scripts/demo` runs).
//
// 1. Data: 1024 noisy Lorenz-63 trajectories, standardised, split 80/10/10 (HDF5, reused).
// 2. Priors: one window model per K (2K+1 states; ResMLP width 256, depth 5,
//    SiLU, embedding 32; AdamW 1e-3, weight decay 1e-3, batch 64, linear
//    decay), trained or resumed from DIR/window_K<k>.safetensors.
// 3. Observations of a held-out test trajectory over 65 states, first
//    coordinate of the standardised state: "lo" every 8th state with std 0.05,
//    "hi" every state with std 0.25.
// 4. Ground truth: two independent bootstrap particle smoothers (16384
//    particles); the W1 between them is the noise floor. Baseline: an ensemble
//    Kalman smoother.
// 5. SDA: MarkovComposedScore<window, K> guided by SDA-gamma (3e-2), MMPS or
//    DPS (zeta per step as Chung et al.; a list of zetas sweeps them), sampled
//    with the predictor-corrector sampler (256 steps, C corrections, tau
//    0.25), for every (scenario, K, C, method) of the sweep.
//    Metrics against the particle smoother: W1 over whole trajectories (exact
//    assignment) and relative to the floor, MMD, RMSE of the mean and CRPS
//    against the truth, spread/skill, log-prior, observation log-likelihood,
//    over the healthy samples: those that became non-finite or left 10 standard
//    deviations of the data are counted ("bad") and left out.
//
// Writes DIR/results.csv, DIR/trajectories.csv, DIR/observations.csv after every
// configuration; a rerun with the same settings (DIR/settings.txt) reuses the
// rows it finds, so an interrupted sweep resumes, and keeps the rows of other
// configurations, so that runs of parts of a sweep add up to one table. examples/plot_lorenz63.py
// draws DIR/lorenz63_*.png. `--full` runs the paper's sweep at its training
// budget (K 1..4, C 0,1,2,4,8, every method, 256 samples, EMA priors): about a
// day on 2 cores.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <xtensor/xview.hpp>

#include "lorenz63_common.hpp"

#include "sda/baselines/enks.hpp"
#include "sda/baselines/particle_filter.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/assignment.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/health.hpp"
#include "sda/metrics/likelihood.hpp"
#include "sda/metrics/mmd.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/lorenz63.hpp"


namespace fs = std::filesystem;
using sda::Tensor;
using sda::systems::Lorenz63;
using lorenz63::Net;

namespace {

constexpr std::size_t length = 65;

struct Options {
    fs::path out = "out/lorenz63";
    fs::path cache;  // data and priors; empty: out
    std::vector<std::size_t> orders{2, 4};
    std::vector<std::size_t> corrections{0, 1};
    std::vector<std::string> methods{"sda"};
    std::vector<std::string> scenarios{"lo", "hi"};
    std::size_t epochs = 16, epoch_size = 65536, samples = 64, steps = 256, particles = 16384, trajectory = 0;
    double gamma = 3e-2, mmps_gamma = 0.0;
    std::vector<double> zetas{0.1};  // per step; the best of the sweep in docs/lorenz63.md
    std::string dps_convention = "per-step";
    std::vector<std::size_t> cgs{1};  // MMPS conjugate-gradient iterations, one configuration per value
    double ema = 0.0;                 // EMA decay of the priors' weights (0: none)
    std::string precision = "float32";  // of the priors' products when sampling (training is float)
    std::uint64_t seed = 42;
    std::uint64_t sampling_seed = 0;  // 0: seed + 1000; configuration i samples with sampling_seed + i
    bool full = false, quiet = false;

    /// Everything a result depends on but the sweep's own axes (scenario, K, C, method):
    /// rows of an earlier run with the same settings are reused, not recomputed.
    std::string settings() const {
        char text[512];
        std::snprintf(text, sizeof text,
                      "samples=%zu steps=%zu particles=%zu trajectory=%zu seed=%llu epochs=%zu epoch_size=%zu ema=%g "
                      "gamma=%g mmps_gamma=%g dps_convention=%s%s",
                      samples, steps, particles, trajectory, static_cast<unsigned long long>(seed), epochs, epoch_size,
                      ema, gamma, mmps_gamma, dps_convention.c_str(),
                      (precision == "float32" ? std::string() : " precision=" + precision).c_str());
        if (sampling_seed != 0) return text + (" sampling_seed=" + std::to_string(sampling_seed));
        return text;
    }
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Scenario {
    std::string name;
    std::vector<std::size_t> states;
    double std;
    Tensor<float> y;  // [states, 1], standardised units
};

struct Metrics {
    double w1, w1_relative, w1_physical, mmd, rmse, crps, spread_skill, log_prior, log_likelihood;
    std::size_t bad = 0;  // samples left out: non-finite, or beyond 10 standard deviations of the data
};

/// One line of results.csv, split at commas (no field holds one).
std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out(1);
    for (const char c : line) {
        if (c == ',') out.emplace_back();
        else out.back() += c;
    }
    return out;
}

Tensor<double> to_double(const Tensor<float>& x) { return xt::cast<double>(x); }

/// The first `count` samples of x.
Tensor<double> head(const Tensor<double>& x, std::size_t count) {
    Tensor<double> out = sda::empty_tensor<double>({count, x.shape()[1], x.shape()[2]});
    std::copy_n(x.data(), out.size(), out.data());
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Lorenz-63 data assimilation with SDA, judged against a particle-filter ground truth"};
    app.add_option("--out", o.out, "output folder (data, checkpoints, CSVs, figures)");
    app.add_option("--cache", o.cache, "folder of the data and the trained priors, to share them between runs "
                                       "(default: the output folder)");
    app.add_option("--orders", o.orders, "window orders K (window 2K+1), each 1 to 4")->delimiter(',');
    app.add_option("--corrections", o.corrections, "Langevin corrections C per step")->delimiter(',');
    app.add_option("--methods", o.methods, "likelihood guidance: sda, mmps, dps")->delimiter(',')
        ->check(CLI::IsMember({"sda", "mmps", "dps"}));
    app.add_option("--scenarios", o.scenarios, "observation scenarios: lo, hi")->delimiter(',')
        ->check(CLI::IsMember({"lo", "hi"}));
    app.add_option("--epochs", o.epochs, "training epochs per window model")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch")->check(CLI::PositiveNumber);
    app.add_option("--samples", o.samples, "posterior samples per configuration (and particle-smoother draws)")
        ->check(CLI::Range(2, 1 << 20));
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--particles", o.particles, "particles of the ground-truth smoother")->check(CLI::Range(16, 1 << 24));
    app.add_option("--trajectory", o.trajectory, "which held-out test trajectory is observed");
    app.add_option("--gamma", o.gamma, "SDA gamma");
    app.add_option("--zeta", o.zetas, "DPS step sizes (a list sweeps them)")->delimiter(',')->check(CLI::PositiveNumber);
    app.add_option("--dps-convention", o.dps_convention,
                   "DPS zeta per sampler step as Chung et al. (per-step), or per unit of time (continuous)")
        ->check(CLI::IsMember({"per-step", "continuous"}));
    app.add_option("--cg", o.cgs, "MMPS conjugate-gradient iterations (a list runs each)")->delimiter(',')
        ->check(CLI::PositiveNumber);
    app.add_option("--ema", o.ema, "EMA decay of the priors' weights, sampled with (0: none; priors trained with "
                                   "another value are not reused)")->check(CLI::Range(0.0, 0.999999));
    app.add_option("--mmps-gamma", o.mmps_gamma, "MMPS denoiser-error variance gamma (sigma/mu)^2 (0: the published MMPS)");
    app.add_option("--precision", o.precision, "arithmetic of the priors' products when sampling: float32, or "
                   "bfloat16 (oneDNN on a CPU with AVX512-BF16 or AMX; training stays float32)")
        ->check(CLI::IsMember({"float32", "bfloat16"}));
    app.add_option("--seed", o.seed, "seed of everything");
    app.add_option("--sampling-seed", o.sampling_seed, "seed of the posterior sampling alone (default: seed + 1000), "
                   "to repeat the sampling with the same data, priors and ground truth");
    app.add_flag("--full", o.full, "the paper's sweep at its training budget: K 1..4, C 0,1,2,4,8, SDA, MMPS (1 and 3 "
                                   "CG iterations) and DPS, 256 samples; priors with EMA 0.999 for 52 epochs");
    app.add_flag("--quiet", o.quiet, "no progress display");
    CLI11_PARSE(app, argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach logs as they are printed
    if (o.full) {
        // 52 epochs of 65536 windows: the paper's 4096 epochs of 13 batches of 64 (one window per training trajectory)
        o.orders = {1, 2, 3, 4}, o.corrections = {0, 1, 2, 4, 8}, o.methods = {"sda", "mmps", "dps"}, o.cgs = {1, 3};
        o.samples = 256, o.epochs = 52, o.ema = 0.999;
    }
    if (o.cache.empty()) o.cache = o.out;

    try {
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::pair<std::string, double>> stage_seconds;
        // --- 1. data ------------------------------------------------------------------------------
        auto t0 = std::chrono::steady_clock::now();
        const lorenz63::Data data = lorenz63::load_or_generate(o.cache, o.seed);
        const Tensor<float>& test_x = data.test;
        sda::detail::require(o.trajectory < test_x.shape()[0] && test_x.shape()[1] >= length,
                             "lorenz63: --trajectory ", o.trajectory, " is not among the ", test_x.shape()[0],
                             " held-out trajectories");
        stage_seconds.emplace_back("data", seconds_since(t0));

        // --- 2. window priors, one per K ------------------------------------------------------------
        t0 = std::chrono::steady_clock::now();
        std::map<std::size_t, Net> nets;
        for (const std::size_t k : o.orders) {
            sda::detail::require(k >= 1 && k <= 4, "lorenz63: K must be 1 to 4, got ", k);
            Net net = lorenz63::window_network(k, o.seed);
            lorenz63::train_window_prior(net, k, data, o.cache, o.epochs, o.epoch_size, o.seed, !o.quiet, o.ema);
            net.set_sampling_precision(o.precision == "bfloat16" ? sda::nn::Precision::bfloat16 : sda::nn::Precision::float32);
            nets.emplace(k, std::move(net));
        }
        stage_seconds.emplace_back("training", seconds_since(t0));

        // --- 3. observations of a held-out trajectory -----------------------------------------------
        Tensor<float> truth = sda::empty_tensor<float>({1, length, 3});
        std::copy_n(test_x.data() + o.trajectory * test_x.shape()[1] * 3, length * 3, truth.data());
        std::vector<Scenario> scenarios;
        // both scenarios' noise is drawn, in this order, whichever are run: "hi" observes the same
        // values alone as beside "lo", so that runs of parts of a sweep share their observations
        sda::Generator obs_gen(o.seed + 30);
        for (const std::string name : {"lo", "hi"}) {
            Scenario s{name, {}, name == "lo" ? 0.05 : 0.25, {}};
            for (std::size_t i = 0; i < length; i += (name == "lo" ? 8 : 1)) s.states.push_back(i);
            const sda::observe::Select A(s.states, {0});
            const Tensor<float> noise = sda::CpuBackend<float>::normal({1, s.states.size(), 1}, obs_gen);
            const Tensor<float> y = A.apply(truth) + float(s.std) * noise;
            s.y = Tensor<float>(xt::view(y, 0));
            if (std::find(o.scenarios.begin(), o.scenarios.end(), name) != o.scenarios.end())
                scenarios.push_back(std::move(s));
        }

        // --- 4. ground truth and baseline per scenario ------------------------------------------------
        t0 = std::chrono::steady_clock::now();
        const Lorenz63 system;
        struct Reference {
            Tensor<double> pf, pf_other, enks;  // standardised, [samples, 65, 3]
            double floor;
        };
        std::map<std::string, Reference> reference;
        const Tensor<double> truth_d = to_double(truth);
        for (const auto& s : scenarios) {
            std::vector<std::optional<sda::baselines::KalmanObservation>> observations(length);
            for (std::size_t j = 0; j < s.states.size(); ++j) {
                // standardised first coordinate (x - 0) / 8 = H x, unstandardised x
                Eigen::MatrixXd H = Eigen::MatrixXd::Zero(1, 3);
                H(0, 0) = 1.0 / Lorenz63::scale()(0);
                const double y = double(s.y(j, 0)) + Lorenz63::mean()(0) / Lorenz63::scale()(0);
                observations[s.states[j]] = sda::baselines::KalmanObservation{
                    H, Eigen::MatrixXd::Constant(1, 1, s.std * s.std), Eigen::VectorXd::Constant(1, y)};
            }
            Reference r;
            auto run_pf = [&](std::uint64_t seed) {
                sda::Generator gen(seed);
                // x_1 from the law of the data: the initial law burnt in for 1024 transitions
                const Tensor<double> start = system.simulate(o.particles, 1024, 1, gen);
                const sda::RowMatrix<double> initial = sda::rows_view(start);
                const auto result = sda::baselines::particle_smoother(system, initial, observations, o.samples, gen);
                std::size_t fewest = result.unique_ancestors[0];
                for (auto u : result.unique_ancestors) fewest = std::min(fewest, u);
                std::printf("particle smoother (%s, %zu particles): log p(y) %.2f, %zu resamplings, >= %zu distinct "
                            "ancestors per state\n", s.name.c_str(), o.particles, result.log_likelihood,
                            result.resamplings, fewest);
                return to_double(Lorenz63::standardise<float>(result.trajectories));
            };
            r.pf = run_pf(o.seed + 40);
            r.pf_other = run_pf(o.seed + 41);
            {
                sda::Generator gen(o.seed + 42);
                const Tensor<double> start = system.simulate(o.samples, 1024, 1, gen);
                const auto ensemble = sda::baselines::ensemble_kalman_smoother(system, sda::rows_view(start), observations, gen);
                r.enks = to_double(Lorenz63::standardise<float>(ensemble));
            }
            r.floor = sda::metrics::wasserstein1(r.pf, r.pf_other);
            reference.emplace(s.name, std::move(r));
        }
        stage_seconds.emplace_back("ground truth", seconds_since(t0));

        // Metrics of the healthy samples; with some left out, W1 and its floor are taken at their count
        auto evaluate = [&](const Scenario& s, const Tensor<double>& all) {
            const Reference& r = reference.at(s.name);
            const sda::observe::Select A(s.states, {0});
            const sda::GaussianObservation obs(A, to_double(s.y), s.std * s.std);
            const auto health = sda::metrics::sample_health(all, 10.0);
            Metrics m{};
            m.bad = health.bad();
            if (health.healthy.size() < 2) {
                m.w1 = m.w1_relative = m.w1_physical = m.mmd = m.rmse = m.crps = m.spread_skill = m.log_prior = m.log_likelihood = NAN;
                return m;
            }
            const Tensor<double> x = m.bad ? sda::metrics::take_samples(all, health.healthy) : all;
            const std::size_t n = x.shape()[0];
            const Tensor<double> pf = m.bad ? head(r.pf, n) : r.pf;
            m.w1 = sda::metrics::wasserstein1(x, pf);
            m.w1_relative = m.w1 / (m.bad ? sda::metrics::wasserstein1(pf, head(r.pf_other, n)) : r.floor);
            m.w1_physical = sda::metrics::wasserstein1(Lorenz63::unstandardise(x), Lorenz63::unstandardise(pf));
            m.mmd = sda::metrics::mmd(x, pf);
            m.rmse = sda::metrics::rmse(x, truth_d);
            m.crps = sda::metrics::crps(x, truth_d);
            m.spread_skill = sda::metrics::spread_skill(x, truth_d);
            m.log_prior = system.mean_log_transition(Lorenz63::unstandardise(x));
            m.log_likelihood = sda::metrics::observation_log_likelihood(obs, x);
            return m;
        };

        // --- 5. SDA over the sweep ---------------------------------------------------------------------
        // results.csv and trajectories.csv are rewritten after every configuration; a run with the
        // same settings (settings.txt) reuses the rows it finds there instead of sampling them again
        // and keeps those of configurations it does not run
        t0 = std::chrono::steady_clock::now();
        const fs::path results_path = o.out / "results.csv", settings_path = o.out / "settings.txt",
                       trajectories_path = o.out / "trajectories.csv";
        struct Row {
            std::string scenario, k, c, method;
            double seconds;
            Metrics m;
        };
        std::map<std::string, Row> earlier;  // by "scenario name", e.g. "lo sda K=2 C=1"
        auto config_name = [](const std::string& method, const std::string& k, const std::string& c) {
            return method + " K=" + k + " C=" + c;
        };
        if (fs::exists(results_path)) {
            std::string settings;
            if (std::ifstream settings_file(settings_path); settings_file) std::getline(settings_file, settings);
            if (settings == o.settings()) {
                std::ifstream results_file(results_path);
                std::string line;
                std::getline(results_file, line);  // header
                while (std::getline(results_file, line)) {
                    const auto f = fields(line);
                    if (f.size() != 16 || f[1].empty()) continue;  // the references are recomputed
                    try {
                        Row r{f[0], f[1], f[2], f[3], std::stod(f[6]), {}};
                        r.m = {std::stod(f[7]), std::stod(f[8]), std::stod(f[9]), std::stod(f[10]), std::stod(f[11]),
                               std::stod(f[12]), std::stod(f[13]), std::stod(f[14]), std::stod(f[15]), std::stoul(f[5])};
                        earlier.emplace(r.scenario + " " + config_name(r.method, r.k, r.c), r);
                    } catch (const std::exception&) {
                        // a damaged row: its configuration is sampled again
                    }
                }
            } else {
                // results of other settings are set aside, not overwritten
                fs::rename(results_path, o.out / "results.previous.csv");
                if (fs::exists(settings_path)) fs::rename(settings_path, o.out / "settings.previous.txt");
                std::printf("%s came from other settings: moved to results.previous.csv\n", results_path.c_str());
            }
        }
        std::vector<Row> rows;
        auto save_results = [&] {
            sda::AtomicFile csv(results_path);
            csv.stream() << "scenario,K,C,method,samples,bad,seconds,w1,w1_relative,w1_physical,mmd,rmse,crps,"
                            "spread_skill,log_prior,log_likelihood\n";
            std::vector<const Row*> all;
            for (const Row& r : rows) all.push_back(&r);
            for (const auto& entry : earlier) all.push_back(&entry.second);  // other configurations: kept
            for (const Row* r : all) {
                const auto& [scenario, k, c, method, seconds, m] = *r;
                csv.stream() << scenario << ',' << k << ',' << c << ',' << method << ',' << o.samples << ',' << m.bad << ','
                             << seconds << ',' << m.w1 << ',' << m.w1_relative << ',' << m.w1_physical << ',' << m.mmd << ','
                             << m.rmse << ',' << m.crps << ',' << m.spread_skill << ',' << m.log_prior << ','
                             << m.log_likelihood << '\n';
            }
            csv.commit();
        };
        std::map<std::string, std::vector<std::pair<std::string, Metrics>>> table;
        struct Shown {
            std::string name;
            double w1_relative;
            Tensor<double> x;
        };
        std::map<std::string, Shown> shown;  // the figure's samples: the closest configuration without bad samples
        if (!earlier.empty() && fs::exists(trajectories_path)) {
            // the samples an earlier run showed, as long as their configuration is reused
            std::map<std::string, std::pair<std::string, std::vector<double>>> values;  // scenario -> (name, x y z...)
            std::set<std::string> damaged;
            std::ifstream file(trajectories_path);
            std::string line;
            std::getline(file, line);
            while (std::getline(file, line)) {
                const auto f = fields(line);
                if (f.size() != 7 || f[1].rfind("posterior ", 0) != 0) continue;
                auto& [name, x] = values[f[0]];
                name = f[1].substr(10);
                try {
                    for (std::size_t j = 4; j < 7; ++j) x.push_back(std::stod(f[j]));
                } catch (const std::exception&) {
                    damaged.insert(f[0]);  // a damaged line: that scenario's samples are not restored
                }
            }
            for (auto& [scenario, entry] : values) {
                const auto found = earlier.find(scenario + " " + entry.first);
                const std::size_t count = entry.second.size() / (3 * length);
                if (found == earlier.end() || damaged.count(scenario) || count == 0 ||
                    count * 3 * length != entry.second.size())
                    continue;
                Tensor<double> x = sda::empty_tensor<double>({count, length, 3});
                std::copy(entry.second.begin(), entry.second.end(), x.data());
                shown[scenario] = {entry.first, found->second.m.w1_relative, std::move(x)};
            }
        }
        auto save_trajectories = [&] {
            sda::AtomicFile file(trajectories_path);
            file.stream() << "scenario,source,sample,state,x,y,z\n";
            auto write = [&](const std::string& scenario, const std::string& source, const Tensor<double>& x, std::size_t count) {
                for (std::size_t b = 0; b < std::min(count, x.shape()[0]); ++b)
                    for (std::size_t i = 0; i < length; ++i)
                        file.stream() << scenario << ',' << source << ',' << b << ',' << i << ',' << x(b, i, 0) << ','
                                      << x(b, i, 1) << ',' << x(b, i, 2) << '\n';
            };
            for (const auto& s : scenarios) {
                write(s.name, "truth", truth_d, 1);
                write(s.name, "particle smoother", reference.at(s.name).pf, o.samples);
                if (shown.count(s.name)) write(s.name, "posterior " + shown.at(s.name).name, shown.at(s.name).x, 16);
            }
            file.commit();
        };
        for (const auto& s : scenarios) {
            const Reference& r = reference.at(s.name);
            const Metrics pf = evaluate(s, r.pf_other), enks = evaluate(s, r.enks);
            rows.push_back({s.name, "", "", "particle smoother (2nd run)", 0, pf});
            rows.push_back({s.name, "", "", "EnKS", 0, enks});
            table[s.name].push_back({"particle smoother, 2nd run", pf});
            table[s.name].push_back({"EnKS", enks});
        }
        save_results();  // before settings.txt: a results.csv of other settings is never paired with these
        {
            sda::AtomicFile file(settings_path);
            file.stream() << o.settings() << '\n';
            file.commit();
            sda::AtomicFile obs_file(o.out / "observations.csv");
            obs_file.stream() << "scenario,state,y,std\n";
            for (const auto& s : scenarios)
                for (std::size_t j = 0; j < s.states.size(); ++j)
                    obs_file.stream() << s.name << ',' << s.states[j] << ',' << s.y(j, 0) << ',' << s.std << '\n';
            obs_file.commit();
        }
        save_trajectories();  // the truth and the particle smoother's draws, before any configuration
        struct Variant {
            std::string method, name;
            double zeta = 0.0;
            std::size_t cg = 1;
        };
        std::vector<Variant> variants;  // the methods, DPS once per zeta, MMPS once per CG count
        for (const auto& method : o.methods) {
            if (method == "sda") variants.push_back({method, method});
            char name[32];
            if (method == "mmps")
                for (const std::size_t cg : o.cgs) {
                    std::snprintf(name, sizeof name, "mmps cg=%zu", cg);
                    variants.push_back({method, cg == 1 ? std::string("mmps") : name, 0.0, cg});
                }
            if (method == "dps")
                for (const double zeta : o.zetas) {
                    std::snprintf(name, sizeof name, "dps zeta=%g", zeta);
                    variants.push_back({method, name, zeta});
                }
        }
        const std::size_t configurations = o.scenarios.size() * o.orders.size() * o.corrections.size() * variants.size();
        std::size_t done = 0, reused = 0;
        for (const auto& s : scenarios) {
            const sda::observe::Select A(s.states, {0});
            const sda::GaussianObservation obs(A, s.y, s.std * s.std);
            for (const std::size_t k : o.orders) {
                sda::dispatch_order<4>(k, [&](auto K) {
                    const sda::MarkovComposedScore<Net, K> prior(nets.at(k), length);
                    for (const std::size_t c : o.corrections)
                        for (const auto& [method, method_name, zeta, cg] : variants) {
                            ++done;
                            const std::string name = config_name(method_name, std::to_string(k), std::to_string(c));
                            if (const auto found = earlier.find(s.name + " " + name); found != earlier.end()) {
                                rows.push_back(found->second);
                                table[s.name].push_back({name, found->second.m});
                                earlier.erase(found);
                                ++reused;
                                continue;
                            }
                            char label[96];
                            std::snprintf(label, sizeof label, "[%zu/%zu] %s %s", done, configurations, s.name.c_str(),
                                          name.c_str());
                            sda::Progress progress(label, !o.quiet);
                            const sda::PredictorCorrector sampler{.steps = o.steps,
                                                                  .corrector = {.corrections = c, .tau = 0.25},
                                                                  .nonfinite = sda::NonFinite::report};
                            sda::Generator gen((o.sampling_seed ? o.sampling_seed : o.seed + 1000) + done);
                            const auto t1 = std::chrono::steady_clock::now();
                            Tensor<float> x;
                            if (method == "sda") x = sda::sample(sampler, sda::guide(prior, obs, sda::SDA{.gamma = o.gamma}), o.samples, gen, progress);
                            if (method == "mmps") x = sda::sample(sampler, sda::guide(prior, obs, sda::MMPS{.iterations = cg, .gamma = o.mmps_gamma}), o.samples, gen, progress);
                            if (method == "dps") {
                                const sda::DPS dps = o.dps_convention == "per-step" ? sda::DPS::per_step(zeta, sampler) : sda::DPS{.zeta = zeta};
                                x = sda::sample(sampler, sda::guide(prior, obs, dps), o.samples, gen, progress);
                            }
                            const double seconds = seconds_since(t1);
                            const Tensor<double> xd = to_double(x);
                            const Metrics m = evaluate(s, xd);
                            rows.push_back({s.name, std::to_string(k), std::to_string(c), method_name, seconds, m});
                            table[s.name].push_back({name, m});
                            const auto best = shown.find(s.name);
                            save_results();
                            if (m.bad == 0 && (best == shown.end() || m.w1_relative < best->second.w1_relative)) {
                                shown[s.name] = {name, m.w1_relative, head(xd, std::min<std::size_t>(16, o.samples))};
                                save_trajectories();  // only when the figure's samples change
                            }
                        }
                });
            }
        }
        save_results();
        if (reused) std::printf("reused %zu of %zu configurations from %s (same settings)\n", reused, configurations,
                                results_path.c_str());
        if (!earlier.empty())
            std::printf("kept %zu rows of other configurations of earlier runs with the same settings in %s\n",
                        earlier.size(), results_path.c_str());
        stage_seconds.emplace_back("assimilation", seconds_since(t0));

        // --- summary ---------------------------------------------------------------------------------------
        std::printf("\nLorenz-63, 65 states, %zu samples per method, %zu steps, tau 0.25; against a particle smoother "
                    "(%zu particles)\n", o.samples, o.steps, o.particles);
        for (const auto& s : scenarios) {
            std::printf("\n%s: x observed at %zu states, std %.2f; W1 floor (two particle-smoother runs) %.3f\n",
                        s.name.c_str(), s.states.size(), s.std, reference.at(s.name).floor);
            std::printf("  %-28s %4s %8s %8s %8s %8s %8s %8s %10s %8s\n", "method", "bad", "W1", "W1/floor", "MMD", "RMSE",
                        "CRPS", "spr/skl", "log-prior", "log-lik");
            for (const auto& [name, m] : table[s.name])
                std::printf("  %-28s %4zu %8.4g %8.4g %8.4g %8.4g %8.4g %8.3g %10.4g %8.4g\n", name.c_str(), m.bad, m.w1,
                            m.w1_relative, m.mmd, m.rmse, m.crps, m.spread_skill, m.log_prior, m.log_likelihood);
        }
        std::printf("\nlog-prior of held-out data: %.3f (expectation under the true dynamics %.3f)\n",
                    system.mean_log_transition(Lorenz63::unstandardise(test_x)),
                    -1.5 - 1.5 * std::log(2.0 * M_PI * system.dt));
        std::printf("time: ");
        for (const auto& [stage, seconds] : stage_seconds) std::printf("%s %.0f s, ", stage.c_str(), seconds);
        std::printf("total %.0f s\nWrote %s/{results,trajectories,observations}.csv\n", seconds_since(start), o.out.c_str());
    } catch (const sda::error& e) {
        std::fprintf(stderr, "lorenz63: %s\n", e.what());
        return 1;
    }
    return 0;
}
