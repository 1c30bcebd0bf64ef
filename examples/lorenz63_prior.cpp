// examples/lorenz63_prior.cpp: the paper's Lorenz-63 window prior, trained and
// checked on a laptop.
//
// 1. Data: 1024 noisy Lorenz-63 trajectories (1024 burn-in transitions, 1024
//    states kept), standardised, split 80/10/10, written as HDF5 (reused when present).
// 2. Training: the window model of 2K+1 = 5 states (ResMLP width 256, depth 5,
//    SiLU, time embedding 32), AdamW lr 1e-3, weight decay 1e-3, batch 64,
//    linear decay; checkpointed every epoch, resumed or reused when present.
// 3. Check: unconditional 5-state windows from the network alone and 65-state
//    trajectories sampled through MarkovComposedScore, against held-out test
//    data: the mean transition log-density under the true noisy dynamics
//    (unstandardised) and the per-coordinate marginals (sd, 1-D Wasserstein
//    distance with the floor of two halves of the held-out data).
//
// Usage: lorenz63_prior [--out DIR] [--epochs N] [--epoch-size N] [--samples N]
//                       [--steps S] [--corrections C] [--seed S] [--quiet]
// Writes DIR/data/*.h5, DIR/window_K2.safetensors, DIR/loss.csv, DIR/prior.csv,
// DIR/marginals.csv; examples/plot_lorenz63_prior.py draws DIR/lorenz63_prior.png.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lorenz63_common.hpp"

#include "sda/io/atomic_file.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/wasserstein1d.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "sda/systems/lorenz63.hpp"


namespace fs = std::filesystem;

namespace {

constexpr std::size_t order = 2, window = 2 * order + 1, length = 65;

struct Options {
    fs::path out = "out/lorenz63";
    std::size_t epochs = 64, epoch_size = 65536, samples = 128, steps = 256, corrections = 1;
    std::uint64_t seed = 42;
    bool quiet = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Non-overlapping windows of `length` states of every trajectory: [count, length, 3].
sda::Tensor<float> cut(const sda::Tensor<float>& trajectories, std::size_t states) {
    const std::size_t n = trajectories.shape()[0], total = trajectories.shape()[1], per = total / states;
    sda::Tensor<float> out = sda::empty_tensor<float>({n * per, states, 3});
    for (std::size_t b = 0; b < n; ++b)
        for (std::size_t k = 0; k < per; ++k)
            std::copy_n(trajectories.data() + (b * total + k * states) * 3, states * 3, out.data() + ((b * per + k) * states) * 3);
    return out;
}

std::vector<double> coordinate(const sda::Tensor<float>& x, std::size_t c) {
    std::vector<double> out;
    out.reserve(x.size() / 3);
    for (std::size_t i = c; i < x.size(); i += 3) out.push_back(double(x.data()[i]));
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Train the paper's Lorenz-63 window prior and check it against held-out data"};
    app.add_option("--out", o.out, "output folder");
    app.add_option("--epochs", o.epochs, "training epochs")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch")->check(CLI::PositiveNumber);
    app.add_option("--samples", o.samples, "65-state trajectories sampled for the check")->check(CLI::PositiveNumber);
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--corrections", o.corrections, "Langevin corrections per step");
    app.add_option("--seed", o.seed, "seed of data, initialisation, training and sampling");
    app.add_flag("--quiet", o.quiet, "no progress display");
    CLI11_PARSE(app, argc, argv);

    try {
        // --- 1. data and 2. training (shared with examples/lorenz63: same files, same seeds) ------
        const lorenz63::Data data = lorenz63::load_or_generate(o.out, o.seed);
        const auto& test_x = data.test;
        auto net = lorenz63::window_network(order, o.seed);
        const auto result = lorenz63::train_window_prior(net, order, data, o.out, o.epochs, o.epoch_size, o.seed, !o.quiet);
        {
            sda::AtomicFile file(o.out / "loss.csv");
            file.stream() << "epoch,train,valid,lr,seconds\n";
            for (const auto& e : result.history)
                file.stream() << e.epoch << ',' << e.train_loss << ',' << e.valid_loss << ',' << e.lr << ',' << e.seconds << '\n';
            file.commit();
        }

        // --- 3. the learned prior against held-out data ------------------------------------------
        // The window model alone (5-state windows) separates what the network learned from
        // what the Markov composition (65 states from overlapping windows) adds or loses.
        const sda::systems::Lorenz63 system;
        const double lp_exact = -1.5 - 1.5 * std::log(2.0 * M_PI * system.dt);
        const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections, .tau = 0.25}};
        const sda::MarkovComposedScore<decltype(net), order> prior(net, length);
        sda::Generator sample_gen(o.seed + 3);
        const auto t0 = std::chrono::steady_clock::now();
        sda::Progress window_progress("sampling 5-state windows", !o.quiet);
        const sda::Tensor<float> windows = sda::sample(sampler, net, o.samples, sample_gen, window_progress);
        sda::Progress progress("sampling 65-state trajectories", !o.quiet);
        const sda::Tensor<float> samples = sda::sample(sampler, prior, o.samples, sample_gen, progress);
        const double sampling_seconds = seconds_since(t0);
        const sda::Tensor<float> held_out = cut(test_x, length), held_out_windows = cut(test_x, window);

        std::printf("\nLearned prior against held-out test data (%zu samples, %zu steps, C = %zu, tau 0.25; %.1f s)\n",
                    o.samples, o.steps, o.corrections, sampling_seconds);
        std::printf("log-prior: mean log N(x_{i+1} | RK4(x_i), dt I), unstandardised; its expectation under the true "
                    "dynamics is %.3f.\nPer coordinate (standardised): sd, and the 1-D W1 to held-out data "
                    "(floor: W1 between two halves of the held-out data).\n\n", lp_exact);
        std::printf("  %-30s %9s   %7s %7s %7s   %15s %15s %15s\n", "", "log-prior", "sd x", "sd y", "sd z", "W1 x (floor)",
                    "W1 y (floor)", "W1 z (floor)");
        sda::AtomicFile marginals(o.out / "marginals.csv");
        marginals.stream() << "source,log_prior,coordinate,mean,sd,w1,w1_floor\n";
        auto report = [&](const char* label, const sda::Tensor<float>& x, const sda::Tensor<float>& data) {
            const double lp = system.mean_log_transition(sda::systems::Lorenz63::unstandardise(x));
            std::printf("  %-30s %9.4g  ", label, lp);
            std::string w1s;
            for (std::size_t c = 0; c < 3; ++c) {
                const auto a = coordinate(x, c), b = coordinate(data, c);
                double m = 0, v = 0;
                for (double value : a) m += value / double(a.size());
                for (double value : a) v += (value - m) * (value - m) / double(a.size() - 1);
                const auto middle = b.begin() + static_cast<std::ptrdiff_t>(b.size() / 2);
                const double w1 = sda::metrics::wasserstein1_1d(a, b);
                const double floor = sda::metrics::wasserstein1_1d({b.begin(), middle}, {middle, b.end()});
                std::printf(" %7.4g", std::sqrt(v));
                char cell[32];
                std::snprintf(cell, sizeof cell, " %7.4g (%5.3f)", w1, floor);
                w1s += cell;
                marginals.stream() << label << ',' << lp << ',' << "xyz"[c] << ',' << m << ',' << std::sqrt(v) << ','
                                   << w1 << ',' << floor << '\n';
            }
            std::printf("  %s\n", w1s.c_str());
        };
        report("held-out data, 65 states", held_out, held_out);
        report("window model, 5 states", windows, held_out_windows);
        report("composed prior K=2, 65 states", samples, held_out);
        marginals.commit();
        {
            sda::AtomicFile file(o.out / "prior.csv");
            file.stream() << "source,sample,state,x,y,z\n";
            auto write = [&](const char* source, const sda::Tensor<float>& x, std::size_t count) {
                for (std::size_t b = 0; b < std::min(count, x.shape()[0]); ++b)
                    for (std::size_t i = 0; i < length; ++i)
                        file.stream() << source << ',' << b << ',' << i << ',' << x(b, i, 0) << ',' << x(b, i, 1) << ','
                                      << x(b, i, 2) << '\n';
            };
            write("samples", samples, samples.shape()[0]);
            write("data", held_out, samples.shape()[0]);
            file.commit();
        }
        std::printf("\nWrote %s/{loss,marginals,prior}.csv and %s/window_K2.safetensors\n", o.out.c_str(), o.out.c_str());
    } catch (const sda::error& e) {
        std::fprintf(stderr, "lorenz63_prior: %s\n", e.what());
        return 1;
    }
    return 0;
}
