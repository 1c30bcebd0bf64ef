// examples/kolmogorov_common.hpp: what the Kolmogorov-flow examples share: the flow's data
// (simulated once into DIR/data/*.h5 and reused), the velocity scale, the U-Net window prior
// (its configuration, training options and checkpoint DIR/window_K2.safetensors) and the
// vorticity of velocity fields. examples/kolmogorov.cpp assimilates short windows in one
// process; examples/kolmogorov_mpi.cpp a long trajectory across the ranks of an MPI job,
// with the same data and the same prior.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "sda/io/hdf5.hpp"
#include "sda/io/progress.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/systems/kolmogorov.hpp"
#include "sda/train/fit.hpp"

namespace examples::kolmogorov {

namespace fs = std::filesystem;
using sda::Tensor;
using Net = sda::nn::ScoreUNet<sda::VPCosine>;

constexpr std::size_t K = 2;

/// The flow, its data and the window prior.
struct FlowOptions {
    fs::path out = "out/kolmogorov";
    std::size_t grid = 128, coarsen = 4, trajectories = 32, states = 128;
    double spacing = 0.2, burn_in = 20;
    std::vector<std::size_t> channels{32, 64, 128}, blocks{1, 1, 1};
    std::size_t epochs = 32, epoch_size = 2048, batch = 32;
    double lr = 1e-3;
    std::uint64_t seed = 7;
    bool quiet = false;

    /// The side of the states' grid.
    std::size_t cells() const { return grid / coarsen; }
    /// Throws `sda::error` unless the grid, pooling and U-Net levels fit together.
    void validate() const {
        sda::detail::require(grid % coarsen == 0, "kolmogorov: --coarsen ", coarsen, " does not divide --grid ", grid);
        const std::size_t m = cells();
        sda::detail::require(m % 4 == 0 && m % (std::size_t(1) << (channels.size() - 1)) == 0, "kolmogorov: states of ",
                             m, "^2 cannot be halved by the U-Net's ", channels.size(), " levels nor pooled 4x4");
    }
};

/// How the posterior is drawn: the assimilated states, the sampler and the observation noise.
/// Each example sets its own defaults.
struct SamplingOptions {
    std::size_t length = 0, samples = 0, steps = 0, corrections = 1;
    double tau = 0.25, gamma = 1e-2, noise = 0.1;
};

/// The command-line options of `SamplingOptions`.
inline void add_sampling_options(CLI::App& app, SamplingOptions& o) {
    app.add_option("--length", o.length, "assimilated states (>= 5)")->check(CLI::Range(5, 100000));
    app.add_option("--samples", o.samples, "posterior samples")->check(CLI::PositiveNumber);
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--corrections", o.corrections, "Langevin corrections per step");
    app.add_option("--tau", o.tau, "Langevin step size")->check(CLI::PositiveNumber);
    app.add_option("--gamma", o.gamma, "SDA gamma")->check(CLI::NonNegativeNumber);
    app.add_option("--noise", o.noise, "observation noise std, in units of the velocity scale")->check(CLI::PositiveNumber);
}

/// The mean of per-state scores.
inline double average(const std::vector<double>& values) {
    double sum = 0;
    for (double v : values) sum += v;
    return sum / double(values.size());
}

/// The command-line options of `FlowOptions`.
inline void add_flow_options(CLI::App& app, FlowOptions& o) {
    app.add_option("--out", o.out, "output folder (data, checkpoint, fields, CSVs, figures)");
    app.add_option("--grid", o.grid, "solver grid (points per axis)")->check(CLI::Range(16, 1024));
    app.add_option("--coarsen", o.coarsen, "average-pooling factor from the solver grid to the states")->check(CLI::PositiveNumber);
    app.add_option("--trajectories", o.trajectories, "training trajectories")->check(CLI::PositiveNumber);
    app.add_option("--states", o.states, "states per training trajectory")->check(CLI::Range(8, 100000));
    app.add_option("--burn-in", o.burn_in, "time discarded before the first state");
    app.add_option("--channels", o.channels, "U-Net channels per level")->delimiter(',');
    app.add_option("--blocks", o.blocks, "U-Net residual blocks per level")->delimiter(',');
    app.add_option("--epochs", o.epochs, "training epochs")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch")->check(CLI::PositiveNumber);
    app.add_option("--batch", o.batch, "windows per training step")->check(CLI::PositiveNumber);
    app.add_option("--lr", o.lr, "AdamW learning rate (linear decay to 0)")->check(CLI::PositiveNumber);
    app.add_option("--seed", o.seed, "seed of everything");
    app.add_flag("--quiet", o.quiet, "no progress display");
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// DIR/data/<name>.h5: `trajectories` trajectories of `states` states, simulated when absent.
inline Tensor<float> load_or_simulate(const FlowOptions& o, const std::string& name, std::size_t trajectories,
                                      std::size_t states, std::uint64_t seed) {
    const fs::path path = o.out / "data" / (name + ".h5");
    if (fs::exists(path)) {
        Tensor<float> x = sda::io::read_trajectories(path);
        const std::size_t m = o.cells();
        sda::detail::require(sda::shape_of(x) == sda::Shape{trajectories, states, 2, m, m}, "kolmogorov: ", path.string(),
                             " holds ", sda::format_shape(sda::shape_of(x)), ", not the data these options ask for; remove it "
                             "or choose another --out");
        std::printf("data: reusing %s\n", path.c_str());
        return x;
    }
    sda::systems::KolmogorovConfig flow;
    flow.grid = o.grid;
    sda::systems::KolmogorovData data;
    data.trajectories = trajectories, data.states = states, data.coarsen = o.coarsen;
    data.spacing = o.spacing, data.burn_in = o.burn_in, data.seed = seed;
    sda::Progress progress("simulating " + name, !o.quiet);
    const auto t0 = std::chrono::steady_clock::now();
    Tensor<float> x = sda::systems::kolmogorov_trajectories(flow, data, [&](std::size_t done) { progress.update(done, trajectories); });
    sda::io::write_trajectories(path, x);
    std::printf("data: %zu trajectories of %zu states on %zu^2 -> %zu^2 in %.1f s -> %s\n", trajectories, states, o.grid,
                o.cells(), seconds_since(t0), path.c_str());
    return x;
}

/// The training and validation sets, and the test trajectories (seeds seed, seed + 1, seed + 2).
struct FlowData {
    Tensor<float> train, valid, test;
    double scale = 1;  ///< the velocity scale: the rms of the training set; every set is divided by it
};
inline FlowData load_flow_data(const FlowOptions& o) {
    FlowData d;
    d.train = load_or_simulate(o, "train", o.trajectories, o.states, o.seed);
    d.valid = load_or_simulate(o, "valid", std::max<std::size_t>(2, o.trajectories / 8), o.states, o.seed + 1);
    d.test = load_or_simulate(o, "test", 2, o.states, o.seed + 2);
    double sum2 = 0;
    for (float v : d.train) sum2 += double(v) * double(v);
    d.scale = std::sqrt(sum2 / double(d.train.size()));
    for (auto* x : {&d.train, &d.valid, &d.test}) *x /= float(d.scale);
    std::printf("data: velocity scale (rms of the training set) %.4f\n", d.scale);
    return d;
}

/// The forcing sin(4 y) at the cell centres of the coarse grid (y along the last axis), the context channel.
inline std::vector<double> forcing_context(const FlowOptions& o) {
    const std::size_t m = o.cells();
    std::vector<double> context(m * m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < m; ++j) {
            const double y = 2.0 * M_PI * (double(j * o.coarsen) + 0.5 * double(o.coarsen - 1)) / double(o.grid);
            context[i * m + j] = std::sin(4.0 * y);
        }
    return context;
}

/// A freshly initialised window prior: a ScoreUNet on 2K+1 = 5 states stacked along channels,
/// with the forcing as a context channel (the paper's LocalScoreUNet).
inline Net window_network(const FlowOptions& o) {
    sda::nn::UNetConfig config;
    config.event = {2 * K + 1, 2, o.cells(), o.cells()};
    config.channels = o.channels, config.blocks = o.blocks;
    config.context = forcing_context(o);
    sda::Generator init(o.seed + 10);
    return Net(sda::VPCosine{}, config, init);
}

/// The prior's training: AdamW, linear decay, checkpointed every epoch to DIR/window_K2.safetensors.
inline sda::train::FitOptions fit_options(const FlowOptions& o) {
    sda::train::FitOptions fit;
    fit.epochs = o.epochs, fit.epoch_size = o.epoch_size, fit.batch_size = o.batch;
    fit.valid_size = 512;
    fit.optimizer = {.lr = o.lr, .weight_decay = 1e-3};
    fit.schedule = sda::train::LrSchedule::linear;
    fit.checkpoint = o.out / "window_K2.safetensors";
    return fit;
}
/// The generator the prior's training draws from.
inline sda::Generator fit_generator(const FlowOptions& o) { return sda::Generator(o.seed + 20); }

/// Prints what training did: trained, resumed or reused, the loss and the time per epoch.
inline void report_fit(const Net& net, const sda::train::FitResult& result, std::size_t epochs) {
    double seconds = 0;
    for (const auto& e : result.history) seconds += e.seconds;
    std::printf("prior: %s, %zu parameters, %.0f MFLOP per window, loss %.4f (train) %.4f (valid) after %zu epochs, "
                "%.1f s per epoch\n",
                result.resumed_from >= epochs ? "reused checkpoint" : (result.resumed_from ? "resumed" : "trained"),
                net.parameters().size(), net.forward_flops() / 1e6, result.history.back().train_loss,
                result.history.back().valid_loss, result.history.size(), seconds / double(result.history.size()));
}

/// Vorticity of each [2, m, m] velocity of x [N, L, 2, m, m] (times `scale`): [N, L, m, m].
inline Tensor<float> vorticity(const Tensor<float>& x, double scale) {
    const std::size_t n = x.shape()[0], l = x.shape()[1], m = x.shape()[3];
    Tensor<float> out = sda::empty_tensor<float>({n, l, m, m});
    std::vector<double> velocity(2 * m * m);
    for (std::size_t f = 0; f < n * l; ++f) {
        for (std::size_t i = 0; i < velocity.size(); ++i) velocity[i] = scale * double(x.data()[f * 2 * m * m + i]);
        const std::vector<double> w = sda::systems::spectral_vorticity(velocity, m);
        for (std::size_t i = 0; i < m * m; ++i) out.data()[f * m * m + i] = float(w[i]);
    }
    return out;
}

}  // namespace examples::kolmogorov
