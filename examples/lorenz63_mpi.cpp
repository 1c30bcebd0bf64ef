// examples/lorenz63_mpi.cpp: the Lorenz-63 demo's posterior drawn across the ranks of an MPI
// job (ensemble parallelism): each rank draws its share of the samples.
//
//   mpirun -np 2 build/examples/lorenz63_mpi
//
// Uses the demo's data, prior and observations (examples/lorenz63.cpp, the same folder and
// seeds): the K = 2 window prior is reused from DIR/window_K2.safetensors, or trained across
// the ranks with sda::mpi::fit (the demo's weights, bit for bit); the "lo" or "hi" scenario
// is observed with the demo's noise. The prior is sda::mpi::MarkovComposedScore<ResMLP, 2>
// over sda::mpi::Ensemble: rank q draws samples [first(q), first(q) + count(q)), with the noise
// one process would draw for them, so the gathered posterior is the one-process posterior,
// bit for bit (its checksum is printed to show it). Rank 0 gathers the samples, prints their
// RMSE and spread against the truth and writes DIR/mpi_<scenario>_samples.h5.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lorenz63_common.hpp"
#include "mpi_common.hpp"

#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/hdf5.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/mpi.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"

using sda::Tensor;

namespace {

constexpr std::size_t K = 2, length = 65;

struct Options {
    lorenz63::fs::path out = "out/lorenz63";
    std::string scenario = "lo";
    std::size_t epochs = 16, epoch_size = 65536, samples = 64, steps = 256, corrections = 1, trajectory = 0;
    double gamma = 3e-2, ema = 0.0;
    std::uint64_t seed = 42;
    bool quiet = false;
};

}  // namespace

int main(int argc, char** argv) {
    sda::mpi::Environment environment(argc, argv);
    const sda::mpi::Communicator comm(MPI_COMM_WORLD);
    Options o;
    CLI::App app{"The Lorenz-63 demo's posterior drawn across MPI ranks (SDA, ensemble parallelism)"};
    app.add_option("--out", o.out, "the demo's folder: data, priors; the samples are written there");
    app.add_option("--scenario", o.scenario, "the demo's observations: lo (every 8th state, std 0.05) or hi (every state, std 0.25)")
        ->check(CLI::IsMember({"lo", "hi"}));
    app.add_option("--epochs", o.epochs, "training epochs of the prior (as the demo)")->check(CLI::PositiveNumber);
    app.add_option("--epoch-size", o.epoch_size, "windows per epoch (as the demo)")->check(CLI::PositiveNumber);
    app.add_option("--ema", o.ema, "EMA decay of the prior's weights (as the demo)");
    app.add_option("--samples", o.samples, "posterior samples, dealt among the ranks")->check(CLI::PositiveNumber);
    app.add_option("--steps", o.steps, "sampler steps")->check(CLI::PositiveNumber);
    app.add_option("--corrections", o.corrections, "Langevin corrections per step");
    app.add_option("--gamma", o.gamma, "SDA gamma")->check(CLI::NonNegativeNumber);
    app.add_option("--trajectory", o.trajectory, "held-out trajectory observed");
    app.add_option("--seed", o.seed, "seed of everything (as the demo)");
    app.add_flag("--quiet", o.quiet, "no progress display");
    CLI11_PARSE(app, argc, argv);
    const bool root = examples::print_on_rank_zero(comm);
    if (!root) o.quiet = true;

    return sda::mpi::run(comm, [&] {
        // --- the demo's data (rank 0 generates what is missing, then every rank reads it) and prior ---
        lorenz63::Data data;
        examples::rank_zero_first(comm, [&] { data = lorenz63::load_or_generate(o.out, o.seed); });
        sda::detail::require(o.trajectory < data.test.shape()[0], "lorenz63_mpi: --trajectory ", o.trajectory,
                             " is not among the ", data.test.shape()[0], " held-out trajectories");
        lorenz63::Net net = lorenz63::window_network(K, o.seed);
        lorenz63::train_window_prior(net, K, data, o.out, o.epochs, o.epoch_size, o.seed, !o.quiet, o.ema,
                                     [&](auto&&... args) { return sda::mpi::fit(comm, args...); });

        // --- the demo's observations: both scenarios drawn in its order, one kept ----------------------
        Tensor<float> truth = sda::empty_tensor<float>({1, length, 3});
        std::copy_n(data.test.data() + o.trajectory * data.test.shape()[1] * 3, length * 3, truth.data());
        sda::Generator obs_gen(o.seed + 30);
        std::vector<std::size_t> states;
        Tensor<float> y;
        double std_dev = 0;
        for (const std::string name : {"lo", "hi"}) {
            std::vector<std::size_t> observed;
            for (std::size_t i = 0; i < length; i += (name == "lo" ? 8 : 1)) observed.push_back(i);
            const double s = name == "lo" ? 0.05 : 0.25;
            const sda::observe::Select A(observed, {0});
            const Tensor<float> noise = sda::CpuBackend<float>::normal({1, observed.size(), 1}, obs_gen);
            Tensor<float> drawn = A.apply(truth) + float(s) * noise;
            drawn.reshape(sda::event_shape_of(sda::shape_of(drawn)));
            if (name == o.scenario) states = observed, y = drawn, std_dev = s;
        }
        const sda::GaussianObservation obs(sda::observe::Select(states, {0}), y, std_dev * std_dev);

        // --- the posterior: each rank its share of the samples ---------------------------------------
        const sda::mpi::Ensemble ensemble(comm, o.samples);
        const sda::mpi::MarkovComposedScore<lorenz63::Net, K> prior(net, length, ensemble);
        const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections}};
        std::printf("drawing %zu samples on %d rank%s: samples [%zu, %zu) here\n", o.samples, comm.size(),
                    comm.size() > 1 ? "s" : "", ensemble.first(), ensemble.first() + ensemble.count());
        sda::Generator gen(o.seed + 1000);
        sda::Progress progress("posterior " + o.scenario, !o.quiet);
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor<float> mine =
            sda::sample(sampler, sda::guide(prior, obs, sda::SDA{.gamma = o.gamma}), ensemble.count(), gen, progress);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const Tensor<float> all = ensemble.gather(mine);
        if (!root) return;
        const auto path = o.out / ("mpi_" + o.scenario + "_samples.h5");
        sda::io::write_trajectories(path, all);
        std::printf("\n%s: %zu samples of %zu states on %d ranks in %.1f s; RMSE of the posterior mean %.4f, spread %.4f "
                    "(standardised units)\n  samples checksum %016llx (the same for any number of ranks)\nWrote %s\n",
                    o.scenario.c_str(), o.samples, length, comm.size(), seconds, sda::metrics::rmse(all, truth),
                    sda::metrics::spread(all), static_cast<unsigned long long>(examples::checksum(all)), path.c_str());
    });
}
