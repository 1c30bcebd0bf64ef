// The code docs/mpi.md quotes: a trajectory's posterior with its states split among the ranks
// (time parallelism), the same posterior's samples dealt among them (ensemble parallelism),
// and a prior trained on shares of every batch (data parallelism). Run by the tests on 2
// ranks; exits non-zero unless each gathered result equals what one process computes.
#include <cstdio>
#include <cstring>

#include "sda/guidance/guided.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/mpi.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"
#include "sda/train/fit.hpp"

using Net = sda::nn::ScoreNet<sda::VPCosine>;
using sda::Tensor;

namespace {

Net window_network() {
    sda::nn::ScoreNetConfig config;
    config.event = {5, 3};  // windows of 2K+1 = 5 states of 3 coordinates
    config.width = 64, config.depth = 2;
    sda::Generator init(1);
    return Net(sda::VPCosine{}, config, init);
}

/// The first coordinate of every 4th state of `truth` [L, 3], plus noise: y [L/4, 1] and its states.
std::pair<std::vector<std::size_t>, Tensor<float>> observe_every_4th(const Tensor<float>& truth) {
    std::vector<std::size_t> states;
    std::vector<double> y;
    for (std::size_t i = 0; i < truth.shape()[0]; i += 4) states.push_back(i), y.push_back(truth(i, 0) + 0.1);
    return {states, sda::CpuBackend<float>::from_host(y, {y.size(), 1})};
}

bool same(const Tensor<float>& a, const Tensor<float>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    // snippet: run
    sda::mpi::Environment environment(argc, argv);  // MPI_Init_thread ... MPI_Finalize
    const sda::mpi::Communicator comm(MPI_COMM_WORLD);
    return sda::mpi::run(comm, [&] {  // an exception on one rank ends the job, with its message
        // ... the program ...
        // end snippet
        const Net net = window_network();
        sda::Generator truth_gen(2);
        const Tensor<float> truth = sda::CpuBackend<float>::normal({64, 3}, truth_gen);
        const sda::PredictorCorrector sampler{.steps = 16, .corrector = {.corrections = 1}};

        // snippet: time
        // each rank holds a block of the 64 states of every trajectory (K = 2 states at least)
        const sda::mpi::Blocks blocks = sda::mpi::Blocks::even(comm, 64);
        const sda::mpi::MarkovComposedScore<Net, 2> prior(net, blocks);  // events [its states, 3]

        // and the observations of its states, with an operator built for its block
        std::vector<std::size_t> observed;  // this rank's observed states, numbered within its block
        std::vector<double> values;
        for (std::size_t i = blocks.begin(); i < blocks.end(); ++i)
            if (i % 4 == 0) observed.push_back(i - blocks.begin()), values.push_back(truth(i, 0) + 0.1);
        const sda::GaussianObservation obs(sda::observe::Select(observed, {0}),
                                           sda::CpuBackend<float>::from_host(values, {values.size(), 1}), 0.01);

        sda::Generator gen(3);
        const Tensor<float> mine = sda::sample(sampler, sda::guide(prior, obs, sda::SDA{.gamma = 1e-2}), 8, gen);
        const Tensor<float> posterior = blocks.gather(mine);  // [8, 64, 3] on rank 0, empty elsewhere
        // end snippet

        // snippet: ensemble
        // each rank draws its share of the 8 samples of the whole trajectory
        const sda::mpi::Ensemble ensemble(comm, 8);
        const sda::mpi::MarkovComposedScore<Net, 2> members(net, 64, ensemble);  // events [64, 3]
        const auto [states, y] = observe_every_4th(truth);
        const sda::GaussianObservation all_obs(sda::observe::Select(states, {0}), y, 0.01);
        sda::Generator member_gen(3);
        const Tensor<float> share =
            sda::sample(sampler, sda::guide(members, all_obs, sda::SDA{.gamma = 1e-2}), ensemble.count(), member_gen);
        const Tensor<float> samples = ensemble.gather(share);  // [8, 64, 3] on rank 0
        // end snippet

        // snippet: training
        Net trained = window_network();
        sda::Generator data_gen(4);
        const sda::train::WindowDataset<float> train(sda::CpuBackend<float>::normal({16, 32, 3}, data_gen), 5);
        sda::train::FitOptions fit;
        fit.epochs = 2, fit.epoch_size = 256, fit.batch_size = 64;
        sda::Generator fit_gen(5);
        sda::mpi::fit(comm, trained, train, train, fit, fit_gen);  // every rank: the weights of one process
        // end snippet

        // what one process computes, on rank 0
        if (comm.rank() != 0) return 0;
        const sda::mpi::Communicator self(MPI_COMM_SELF);
        const sda::mpi::MarkovComposedScore<Net, 2> whole(net, sda::mpi::Blocks(self, {64}));
        const auto [states_all, y_all] = observe_every_4th(truth);
        const sda::GaussianObservation obs_all(sda::observe::Select(states_all, {0}), y_all, 0.01);
        sda::Generator gen_one(3), gen_serial(3);
        const Tensor<float> one = sda::sample(sampler, sda::guide(whole, obs_all, sda::SDA{.gamma = 1e-2}), 8, gen_one);
        // the ensemble numbers windows as sda::MarkovComposedScore does: the same samples as one process's
        const sda::MarkovComposedScore<Net, 2> serial(net, 64);
        const Tensor<float> serial_samples = sda::sample(sampler, sda::guide(serial, obs_all, sda::SDA{.gamma = 1e-2}), 8, gen_serial);
        Net trained_one = window_network();
        sda::Generator fit_gen_one(5);
        sda::train::fit(trained_one, train, train, fit, fit_gen_one);
        const bool weights = std::memcmp(trained.parameters().values().data(), trained_one.parameters().values().data(),
                                         trained.parameters().size() * sizeof(float)) == 0;
        std::printf("on %d ranks: time-parallel posterior %s, ensemble %s, trained weights %s one process's\n", comm.size(),
                    same(posterior, one) ? "equals" : "DIFFERS FROM", same(samples, serial_samples) ? "equals" : "DIFFERS FROM",
                    weights ? "equal" : "DIFFER FROM");
        return same(posterior, one) && same(samples, serial_samples) && weights ? 0 : 1;
    });
}
