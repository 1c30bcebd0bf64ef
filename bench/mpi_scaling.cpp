// bench/mpi_scaling.cpp: sda::mpi's three kinds of parallelism timed on the ranks of an MPI job
// (bench/mpi_scaling.sh runs it on 1 and 2 ranks and models larger jobs from what it prints).
// A plain MPI program, not a Google Benchmark: every timing is taken between an MPI_Barrier and
// MPI_Wtime on each rank, and the slowest rank's time is the one reported.
//
//   mpirun -np P build/bench/mpi_scaling [--threads N] [--reps R] [--parts time,reductions,ensemble,train]
//          [--length L] [--batch B] [--samples n] [--ensemble-length L] [--steps S] [--sample-reps R]
//          [--train-steps S] [--train-batch B] [--halo-reps R]
//
// Parts (all by default), each on random weights (timing only):
//   time        time parallelism (mpi::Blocks): the Kolmogorov U-Net window prior of
//               examples/kolmogorov (bench/unet_sizes.hpp's cpu_size: [5, 2, 32, 32], channels
//               32, 64, 128, the forcing as context), K = 2, B trajectories of L states. One
//               "guided step's network work" = linearize(x, t) + one vjp(v), what SDA-gamma
//               guidance asks of the prior per evaluation; averaged over R reps after a warm-up.
//               Also: the bytes this rank sends per step (eps_bytes + vjp_bytes), the time spent
//               in MPI_Waitall during the step (the exchanges, including waiting for a slower
//               neighbour), the same messages exchanged alone (halo_seconds), the network FLOPs.
//   reductions  the global reductions of a guided PC run (SDA-gamma, 1 correction, a Mask
//               observation) on a time-parallel Lorenz-63 ResMLP prior: MPI_Allreduce calls per
//               predictor step, and how many of them belong to exact reductions. Counted through
//               MPI's profiling interface (MPI_Allreduce and MPI_Waitall are wrapped below).
//   ensemble    ensemble parallelism (mpi::Ensemble): sda::sample of n trajectories of L states,
//               PredictorCorrector{.steps = S, .corrector = {.corrections = 1}}, unguided, on the
//               Lorenz-63 ResMLP window prior (width 256, depth 5, event [5, 3]).
//   train       data parallelism: DataParallelEngine::step on batches of B windows [5, 3] of
//               random trajectories, the same ResMLP; steps per second.
//
// Output: rank 0 prints one machine-readable line per measurement, "RESULT key=value ...", and a
// human summary (lines starting with "#").
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tbb/global_control.h>

#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/mpi.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/windows.hpp"

#include "unet_sizes.hpp"

// --- MPI's profiling interface: what sda::mpi's inline code calls lands here ------------------
namespace {
struct Counters {
    long allreduce = 0, exact = 0;  // MPI_Allreduce calls; those summing exact_row_sums' 128-bit integers
    double wait = 0;                // seconds inside MPI_Waitall (the halo exchanges)
};
Counters counters;
}  // namespace

extern "C" int MPI_Allreduce(const void* send, void* receive, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
    ++counters.allreduce;
    if (op == sda::mpi::detail::int128_sum()) ++counters.exact;  // the last of an exact reduction's two
    return PMPI_Allreduce(send, receive, count, type, op, comm);
}
extern "C" int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[]) {
    const double t0 = PMPI_Wtime();
    const int rc = PMPI_Waitall(count, requests, statuses);
    counters.wait += PMPI_Wtime() - t0;
    return rc;
}

namespace {

using T = float;
using UNet = sda::nn::ScoreUNet<sda::VPCosine>;
using Mlp = sda::nn::ScoreNet<sda::VPCosine>;
constexpr std::size_t K = 2;

struct Options {
    int threads = 0;  // 0: cores / P
    std::size_t reps = 5;
    std::set<std::string> parts{"time", "reductions", "ensemble", "train"};
    std::size_t length = 32, batch = 2;                                // time
    std::size_t samples = 256, ensemble_length = 65, steps = 16;       // ensemble
    std::size_t sample_reps = 1;
    std::size_t train_steps = 100, train_batch = 64;                    // train
    std::size_t halo_reps = 50;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "mpi_scaling: %s\nusage: mpi_scaling [--threads N] [--reps R] [--parts time,reductions,ensemble,train] "
                 "[--length L] [--batch B] [--samples n] [--ensemble-length L] [--steps S] [--sample-reps R] "
                 "[--train-steps S] [--train-batch B] [--halo-reps R]\n",
                 why);
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string key = argv[i], value;
        if (!key.starts_with("--")) usage(("unexpected argument " + key).c_str());
        if (const auto eq = key.find('='); eq != std::string::npos) value = key.substr(eq + 1), key = key.substr(0, eq);
        else if (i + 1 < argc) value = argv[++i];
        else usage((key + " needs a value").c_str());
        const auto count = [&](std::size_t minimum) {
            char* end = nullptr;
            const long long n = std::strtoll(value.c_str(), &end, 10);
            if (end == value.c_str() || *end || n < static_cast<long long>(minimum))
                usage((key + " needs a whole number >= " + std::to_string(minimum) + ", not '" + value + "'").c_str());
            return static_cast<std::size_t>(n);
        };
        if (key == "--threads") o.threads = static_cast<int>(count(1));
        else if (key == "--reps") o.reps = count(1);
        else if (key == "--length") o.length = count(2 * K + 1);
        else if (key == "--batch") o.batch = count(1);
        else if (key == "--samples") o.samples = count(1);
        else if (key == "--ensemble-length") o.ensemble_length = count(2 * K + 1);
        else if (key == "--steps") o.steps = count(1);
        else if (key == "--sample-reps") o.sample_reps = count(1);
        else if (key == "--train-steps") o.train_steps = count(1);
        else if (key == "--train-batch") o.train_batch = count(1);
        else if (key == "--halo-reps") o.halo_reps = count(1);
        else if (key == "--parts") {
            o.parts.clear();
            std::stringstream list(value);
            for (std::string part; std::getline(list, part, ',');) {
                if (part != "time" && part != "reductions" && part != "ensemble" && part != "train")
                    usage(("no part '" + part + "' (time, reductions, ensemble, train)").c_str());
                o.parts.insert(part);
            }
        } else usage(("unknown option " + key).c_str());
    }
    return o;
}

// --- timing and reductions over ranks (PMPI: not counted) -------------------------------------
double max_over_ranks(double v, MPI_Comm comm) {
    PMPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, comm);
    return v;
}
double min_over_ranks(double v, MPI_Comm comm) {
    PMPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MIN, comm);
    return v;
}
std::size_t max_over_ranks(std::size_t v, MPI_Comm comm) {
    unsigned long long u = v;
    PMPI_Allreduce(MPI_IN_PLACE, &u, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm);
    return static_cast<std::size_t>(u);
}

/// Seconds of `work()` on the slowest rank, all ranks starting together.
template <class Work>
double timed(MPI_Comm comm, Work&& work) {
    PMPI_Barrier(comm);
    const double t0 = PMPI_Wtime();
    work();
    return max_over_ranks(PMPI_Wtime() - t0, comm);
}

/// The mean and the smallest of `reps` timings of `work()` (each the slowest rank's).
template <class Work>
std::pair<double, double> repeated(MPI_Comm comm, std::size_t reps, Work&& work) {
    double sum = 0, best = 1e300;
    for (std::size_t r = 0; r < reps; ++r) {
        const double s = timed(comm, work);
        sum += s, best = std::min(best, s);
    }
    return {sum / double(reps), best};
}

struct Report {
    int rank;
    template <class... Args>
    void line(const char* format, Args... args) const {
        if (rank != 0) return;
        std::printf(format, args...);
        std::fflush(stdout);
    }
};

Mlp lorenz_net(std::uint64_t seed) {  // examples/window_prior.hpp's window_network(K, 3, ...)
    sda::nn::ScoreNetConfig config;
    config.event = {2 * K + 1, 3};
    config.width = 256, config.depth = 5;
    sda::Generator init(seed);
    return Mlp(sda::VPCosine{}, config, init);
}

// --- a) time parallelism: the Kolmogorov U-Net ---------------------------------------------------
void time_parallel(const sda::mpi::Communicator& comm, const Options& o, const Report& out, int threads) {
    const MPI_Comm c = comm.get();
    const int P = comm.size(), r = comm.rank();
    const sda::nn::UNetConfig config = bench::cpu_size();
    sda::Generator init(17);
    const UNet net(sda::VPCosine{}, config, init);
    const auto blocks = sda::mpi::Blocks::even(comm, o.length);
    const sda::mpi::MarkovComposedScore<UNet, K> score(net, blocks);
    const std::size_t L = o.length, B = o.batch, S = sda::element_count(config.event) / (2 * K + 1);
    sda::Generator gen(3);
    const sda::Tensor<T> x = blocks.local(sda::CpuBackend<T>::normal({B, L, 2, 32, 32}, gen));
    const sda::Tensor<T> v = blocks.local(sda::CpuBackend<T>::normal({B, L, 2, 32, 32}, gen));
    const double t = 0.5;

    // the rows (windows x B) this rank evaluates: whole tiles of the global window-major numbering
    const std::size_t windows = L - 2 * K, rows = windows * B, tile = score.tile_rows();
    const std::size_t wlo = r == 0 ? 0 : blocks.begin() - K, whi = r == P - 1 ? windows - 1 : blocks.end() - 1 - K;
    const std::size_t row_begin = wlo * B, row_end = (whi + 1) * B;
    std::size_t evaluated = 0;
    for (std::size_t start = row_begin / tile * tile; start < row_end; start += tile) evaluated += std::min(rows, start + tile) - start;
    const std::size_t evaluated_max = max_over_ranks(evaluated, c);
    const double padding = double(evaluated_max) * double(P) / double(rows);
    const double flops_window = net.forward_flops();  // one window's forward pass; a VJP is about 2 of them
    const double flops_step = 3.0 * flops_window * double(rows);

    sda::Tensor<T> sink;
    auto step = [&] {
        const auto lin = score.linearize(x, t);
        sink = lin.vjp(v);
    };
    step();  // warm-up: first touches of the weights, oneTBB's workers, MPI's connections
    counters = {};
    double sum = 0, best = 1e300;
    for (std::size_t k = 0; k < o.reps; ++k) {
        const double s = timed(c, step);
        sum += s, best = std::min(best, s);
    }
    const double seconds = sum / double(o.reps), wait = counters.wait / double(o.reps);  // this rank's, per step
    const double wait_max = max_over_ranks(wait, c), wait_min = min_over_ranks(wait, c);
    const std::size_t eps_bytes = score.eps_bytes(B), vjp_bytes = score.vjp_bytes(B);
    const std::size_t eps_max = max_over_ranks(eps_bytes, c), vjp_max = max_over_ranks(vjp_bytes, c);

    // the same messages alone: both exchanges of a step, with each neighbour, nothing computed
    double halo = 0;
    if (P > 1) {
        std::vector<int> peers;
        if (r > 0) peers.push_back(r - 1);
        if (r + 1 < P) peers.push_back(r + 1);
        // a rank's sends are split evenly between its neighbours (K states, K windows each way)
        const std::size_t per_eps = eps_bytes / peers.size() / sizeof(T), per_vjp = vjp_bytes / peers.size() / sizeof(T);
        std::vector<std::vector<T>> send(2 * peers.size()), receive(2 * peers.size());
        for (std::size_t k = 0; k < peers.size(); ++k) {
            send[2 * k].assign(per_eps, T(1)), receive[2 * k].resize(per_eps);
            send[2 * k + 1].assign(per_vjp, T(1)), receive[2 * k + 1].resize(per_vjp);
        }
        auto exchanges = [&] {
            for (int phase = 0; phase < 2; ++phase) {  // eps's halo states, then the VJP's window gradients
                std::vector<MPI_Request> requests(2 * peers.size());
                for (std::size_t k = 0; k < peers.size(); ++k) {
                    auto& in = receive[2 * k + phase];
                    const auto& from = send[2 * k + phase];
                    PMPI_Irecv(in.data(), int(in.size()), MPI_FLOAT, peers[k], 90 + phase, c, &requests[2 * k]);
                    PMPI_Isend(from.data(), int(from.size()), MPI_FLOAT, peers[k], 90 + phase, c, &requests[2 * k + 1]);
                }
                PMPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
            }
        };
        exchanges();
        halo = timed(c, [&] {
                   for (std::size_t k = 0; k < o.halo_reps; ++k) exchanges();
               }) /
               double(o.halo_reps);
    }

    out.line("RESULT part=time ranks=%d threads=%d L=%zu B=%zu K=%zu state=%zu reps=%zu seconds=%.6g seconds_min=%.6g "
             "wait_seconds=%.6g wait_seconds_min=%.6g halo_seconds=%.6g eps_bytes=%zu vjp_bytes=%zu eps_bytes_max=%zu "
             "vjp_bytes_max=%zu rows=%zu tile_rows=%zu rows_evaluated_max=%zu padding=%.6g flops_forward_window=%.6g "
             "flops_step=%.6g\n",
             P, threads, L, B, K, S, o.reps, seconds, best, wait_max, wait_min, halo, eps_bytes, vjp_bytes, eps_max, vjp_max,
             rows, tile, evaluated_max, padding, flops_window, flops_step);
    out.line("# time parallel, Kolmogorov U-Net K=%zu, %zu x %zu states on %d rank(s): linearize + vjp %.3f s (min %.3f), "
             "%.1f GFLOP/s; rank 0 sends %zu + %zu B per step (max over ranks %zu + %zu), in MPI_Waitall %.2g s, "
             "the same messages alone %.2g s; padding %.3f (%zu rows of tiles of %zu on the busiest rank, %zu in all)\n",
             K, B, L, P, seconds, best, flops_step / seconds * 1e-9, eps_bytes, vjp_bytes, eps_max, vjp_max, wait_max, halo,
             padding, evaluated_max, tile, rows);
}

// --- reductions of a guided PC run, counted ----------------------------------------------------
void reductions(const sda::mpi::Communicator& comm, const Report& out) {
    const MPI_Comm c = comm.get();
    const std::size_t L = 65, B = 2, steps = 4;
    const Mlp net = lorenz_net(21);
    const auto blocks = sda::mpi::Blocks::even(comm, L);
    const sda::mpi::MarkovComposedScore<Mlp, K> prior(net, blocks);
    xt::xarray<bool> mask = xt::zeros<bool>({blocks.size(), std::size_t(3)});
    std::vector<double> y;
    for (std::size_t i = 0; i < blocks.size(); ++i)
        if ((blocks.begin() + i) % 4 == 0) mask(i, 0) = true, y.push_back(0.1 * double(blocks.begin() + i));
    if (y.empty()) mask(0, 1) = true, y.push_back(0.0);
    const sda::Tensor<T> y_tensor = sda::CpuBackend<T>::from_host(y, {y.size()});
    const sda::GaussianObservation obs(sda::observe::Mask(mask), y_tensor, 0.05);
    const auto posterior = sda::guide(prior, obs, sda::SDA{.gamma = 3e-2});
    // one step's reductions: a run of `steps` less one of 1 step (the initial check cancels)
    auto count = [&](std::size_t n) {
        const sda::PredictorCorrector run{.steps = n, .corrector = {.corrections = 1}};
        counters = {};
        sda::Generator g(5);
        (void)sda::sample(run, posterior, B, g);
        return std::pair{counters.allreduce, counters.exact};
    };
    const auto [all_1, exact_1] = count(1);
    const auto [all_n, exact_n] = count(steps);
    const double per_step = double(all_n - all_1) / double(steps - 1), exact = double(exact_n - exact_1) / double(steps - 1);
    PMPI_Barrier(c);
    out.line("RESULT part=reductions ranks=%d allreduce_per_step=%.6g exact_reductions_per_step=%.6g "
             "allreduce_per_exact_reduction=3 network_evaluations_per_step=2 initial_allreduce=%.6g\n",
             comm.size(), per_step, exact, double(all_1) - per_step);
    out.line("# guided PC step (SDA-gamma, 1 correction): %.3g MPI_Allreduce calls, of which %.3g exact reductions x 2 "
             "calls (largest terms, then 128-bit sums with the count); 2 network evaluations\n",
             per_step, exact);
}

// --- b) ensemble parallelism: PC sampling of n Lorenz-63 trajectories --------------------------
void ensemble_parallel(const sda::mpi::Communicator& comm, const Options& o, const Report& out, int threads) {
    const MPI_Comm c = comm.get();
    const Mlp net = lorenz_net(11);
    const sda::mpi::Ensemble ensemble(comm, o.samples);
    const sda::mpi::MarkovComposedScore<Mlp, K> score(net, o.ensemble_length, ensemble);
    const sda::PredictorCorrector pc{.steps = o.steps, .corrector = {.corrections = 1}};
    // a short run first (weights and oneTBB warm), then the timed ones
    {
        const sda::PredictorCorrector warm{.steps = 1, .corrector = {.corrections = 1}};
        sda::Generator gen(1);
        (void)sda::sample(warm, score, ensemble.count(), gen);
    }
    sda::Tensor<T> sink;
    const auto [seconds, best] = repeated(c, o.sample_reps, [&] {
        sda::Generator gen(2);
        sink = sda::sample(pc, score, ensemble.count(), gen);
    });
    const double windows = double(o.samples) * double(o.ensemble_length - 2 * K);
    const double flops = 2.0 * double(o.steps) * windows * net.forward_flops();  // predictor + 1 correction, forward only
    out.line("RESULT part=ensemble ranks=%d threads=%d samples=%zu L=%zu steps=%zu corrections=1 reps=%zu seconds=%.6g "
             "seconds_min=%.6g flops=%.6g\n",
             comm.size(), threads, o.samples, o.ensemble_length, o.steps, o.sample_reps, seconds, best, flops);
    out.line("# ensemble parallel, Lorenz-63 ResMLP, %zu x %zu states, PC %zu steps x (1 + 1 correction): %.3f s "
             "(min %.3f), %.1f GFLOP/s\n",
             o.samples, o.ensemble_length, o.steps, seconds, best, flops / seconds * 1e-9);
}

// --- c) data-parallel training --------------------------------------------------------------
void data_parallel(const sda::mpi::Communicator& comm, const Options& o, const Report& out, int threads) {
    const MPI_Comm c = comm.get();
    Mlp net = lorenz_net(31);
    sda::Generator data_gen(8);
    const sda::train::WindowDataset<T> train(sda::CpuBackend<T>::normal({64, 65, 3}, data_gen), 2 * K + 1);
    std::vector<sda::Tensor<T>> batches;
    for (std::size_t k = 0; k <= o.train_steps; ++k) {
        std::vector<std::size_t> rows(o.train_batch);
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = (37 * (k * o.train_batch + i)) % train.size();
        batches.push_back(train.batch(rows));
    }
    sda::mpi::DataParallelEngine<Mlp> engine(net, {.lr = 1e-3, .weight_decay = 1e-3}, comm);
    sda::Generator gen(9);
    engine.reset_ema();
    engine.begin_epoch();
    engine.step(batches[0], gen, 1e-3, 0.0);  // warm-up
    const double seconds = timed(c, [&] {
        for (std::size_t k = 1; k <= o.train_steps; ++k) engine.step(batches[k], gen, 1e-3, 0.0);
    });
    const std::size_t parameters = net.parameters().size();
    out.line("RESULT part=train ranks=%d threads=%d batch=%zu steps=%zu seconds=%.6g steps_per_second=%.6g parameters=%zu "
             "gradient_bytes=%zu\n",
             comm.size(), threads, o.train_batch, o.train_steps, seconds, double(o.train_steps) / seconds, parameters,
             parameters * sizeof(T));
    out.line("# data parallel training, ResMLP [5, 3], batch %zu: %.1f steps/s (%zu steps in %.3f s); the chain passes "
             "%zu-byte gradients %d time(s) and broadcasts them\n",
             o.train_batch, double(o.train_steps) / seconds, o.train_steps, seconds, parameters * sizeof(T),
             comm.size() - 1);
}

}  // namespace

int main(int argc, char** argv) {
    sda::mpi::Environment environment(argc, argv);
    const sda::mpi::Communicator comm;
    return sda::mpi::run(comm, [&] {
        const Options o = parse(argc, argv);
        const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
        const bool defaulted = o.threads == 0;
        const int threads = defaulted ? std::max(1, int(cores) / comm.size()) : o.threads;
        const tbb::global_control workers(tbb::global_control::max_allowed_parallelism, std::size_t(threads));
        const Report out{comm.rank()};
        out.line("# mpi_scaling: %d rank(s) x %d oneTBB thread(s)%s; %u cores on this node\n", comm.size(), threads,
                 defaulted ? " (the default: cores / ranks, at least 1)" : " (--threads)", cores);
        out.line("RESULT part=setup ranks=%d threads=%d threads_defaulted=%d cores=%u\n", comm.size(), threads,
                 defaulted ? 1 : 0, cores);
        if (o.parts.count("time")) time_parallel(comm, o, out, threads);
        if (o.parts.count("reductions")) reductions(comm, out);
        if (o.parts.count("ensemble")) ensemble_parallel(comm, o, out, threads);
        if (o.parts.count("train")) data_parallel(comm, o, out, threads);
    });
}
