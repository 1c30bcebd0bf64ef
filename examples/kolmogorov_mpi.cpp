// examples/kolmogorov_mpi.cpp: a long Kolmogorov-flow trajectory assimilated across the ranks
// of an MPI job (time parallelism), with the U-Net window prior of examples/kolmogorov.cpp.
//
//   mpirun -np 4 build/examples/kolmogorov_mpi --length 256
//
// 1. Data and prior as examples/kolmogorov.cpp, in the same folder: its data and checkpoint
//    are reused when present. Otherwise rank 0 simulates the data, and every rank trains
//    the prior on its share of every batch (sda::mpi::fit: the weights are those one process
//    would train, bit for bit).
// 2. A held-out trajectory of --length states (DIR/data/long_<L>.h5, simulated once), seen
//    through 4x4 average pooling at every state with noise std 0.1 (in units of the scale).
// 3. Each rank holds a block of the trajectory's states (sda::mpi::Blocks::even) and the
//    observations of those states; the prior is sda::mpi::MarkovComposedScore<U-Net, 2>, so
//    sampling exchanges K = 2 halo states per neighbour per evaluation and the gradients of
//    the windows at the block edges per VJP. The samples are those one process would draw,
//    bit for bit, for any number of ranks (their checksum is printed to show it).
// 4. Rank 0 gathers the samples and writes DIR/long_{truth,samples}.h5 (vorticity),
//    DIR/long_rmse.csv (per state) and DIR/long_summary.csv. Only rank 0 prints.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/io/atomic_file.hpp"
#include "sda/io/hdf5.hpp"
#include "sda/io/progress.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/mpi.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/pool.hpp"
#include "sda/sample/sample.hpp"
#include "sda/train/progress.hpp"

#include "kolmogorov_common.hpp"
#include "mpi_common.hpp"

using namespace examples::kolmogorov;

namespace {

struct Options : FlowOptions, SamplingOptions {
    Options() { length = 256, samples = 2, steps = 64; }
};

}  // namespace

int main(int argc, char** argv) {
    sda::mpi::Environment environment(argc, argv);
    const sda::mpi::Communicator comm(MPI_COMM_WORLD);
    Options o;
    CLI::App app{"A long Kolmogorov-flow trajectory assimilated across MPI ranks (SDA, time parallelism)"};
    add_flow_options(app, o);
    add_sampling_options(app, o);
    CLI11_PARSE(app, argc, argv);
    const bool root = examples::print_on_rank_zero(comm);

    return sda::mpi::run(comm, [&] {
        o.validate();
        const auto start = std::chrono::steady_clock::now();
        const std::size_t m = o.cells(), L = o.length;
        // --- 1. data and prior: rank 0 simulates what is missing, then every rank reads it -------------
        if (!root) o.quiet = true;
        FlowData data;
        Tensor<float> truth;
        examples::rank_zero_first(comm, [&] {
            data = load_flow_data(o);
            truth = load_or_simulate(o, "long_" + std::to_string(L), 1, L, o.seed + 3) / float(data.scale);
        });
        Net net = window_network(o);
        {
            const sda::train::WindowDataset<float> train_set(data.train, 2 * K + 1), valid_set(data.valid, 2 * K + 1);
            sda::Generator train_gen = fit_generator(o);
            const auto result = sda::mpi::fit(comm, net, train_set, valid_set, fit_options(o), train_gen,
                                              sda::train::TrainingProgress("U-Net K=2", !o.quiet));
            report_fit(net, result, o.epochs);
        }
        const double prepared = seconds_since(start);

        // --- 2. the observation: every rank draws the whole y, and keeps its states' part -------------
        const sda::mpi::Blocks blocks = sda::mpi::Blocks::even(comm, L);
        const sda::observe::AvgPool pool(4);
        sda::Generator obs_gen(o.seed + 40);
        Tensor<float> y = pool.apply(truth);
        y += float(o.noise) * sda::CpuBackend<float>::normal(sda::shape_of(y), obs_gen);
        Tensor<float> y_local = blocks.local(y);  // [1, states of this rank, 2, m/4, m/4]
        y_local.reshape(sda::event_shape_of(sda::shape_of(y_local)));  // one observation shared by the samples
        const sda::GaussianObservation obs(pool, y_local, o.noise * o.noise);

        // --- 3. the posterior, each rank its block ----------------------------------------------------
        const sda::mpi::MarkovComposedScore<Net, K> prior(net, blocks);
        const sda::PredictorCorrector sampler{.steps = o.steps, .corrector = {.corrections = o.corrections, .tau = o.tau}};
        std::printf("assimilating %zu states of %zu^2 velocity fields on %d rank%s: states [%zu, %zu) here, "
                    "%zu windows per sample; per guided evaluation this rank sends %.1f kB (halo) + %.1f kB (VJP)\n",
                    L, m, comm.size(), comm.size() > 1 ? "s" : "", blocks.begin(), blocks.end(), L - 2 * K,
                    prior.eps_bytes(o.samples) / 1e3, prior.vjp_bytes(o.samples) / 1e3);
        sda::Generator gen(o.seed + 1000);
        sda::Progress progress("posterior", !o.quiet);
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor<float> x = sda::sample(sampler, sda::guide(prior, obs, sda::SDA{.gamma = o.gamma}), o.samples, gen, progress);
        const double seconds = seconds_since(t0);

        // --- 4. gathered on rank 0: scores and fields -----------------------------------------------
        const Tensor<float> all = blocks.gather(x);
        if (!root) return;
        const std::vector<double> mean_rmse = sda::metrics::rmse_per_state(all, truth),
                                  sample_rmse = sda::metrics::member_rmse_per_state(all, truth),
                                  spread = sda::metrics::spread_per_state(all);
        sda::AtomicFile rmse(o.out / "long_rmse.csv"), summary(o.out / "long_summary.csv");
        rmse.stream() << "state,posterior_mean,sample_mean,spread\n";
        for (std::size_t s = 0; s < L; ++s) rmse.stream() << s << ',' << mean_rmse[s] << ',' << sample_rmse[s] << ',' << spread[s] << '\n';
        char sum[32];
        std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(examples::checksum(all)));
        summary.stream() << "ranks,states,samples,steps,corrections,seconds,rmse_mean,rmse_samples,spread,checksum\n"
                         << comm.size() << ',' << L << ',' << o.samples << ',' << o.steps << ',' << o.corrections << ','
                         << seconds << ',' << average(mean_rmse) << ',' << average(sample_rmse) << ',' << average(spread) << ','
                         << sum << '\n';
        rmse.commit(), summary.commit();
        sda::io::write_trajectories(o.out / "long_truth.h5", vorticity(truth, data.scale));
        sda::io::write_trajectories(o.out / "long_samples.h5", vorticity(all, data.scale));
        std::printf("\n%zu states, %zu samples, %zu steps, C = %zu on %d ranks: %.0f s sampling (%.0f s data and prior)\n"
                    "  RMSE of the posterior mean %.4f, of a sample %.4f, spread %.4f (units of the velocity scale)\n"
                    "  samples checksum %s (the same for any number of ranks)\n"
                    "Wrote %s/long_{summary,rmse}.csv and long_{truth,samples}.h5\n",
                    L, o.samples, o.steps, o.corrections, comm.size(), seconds, prepared, average(mean_rmse),
                    average(sample_rmse), average(spread), sum, o.out.c_str());
    });
}
