// A rank that fails mid-run ends the whole job: run under mpirun by ctest, which expects a
// non-zero exit with the failing rank's message ("sda: rank 1 of P: ...") within its timeout,
// where, without sda::mpi::run, the other ranks would wait forever in the next halo exchange.
#include <cstdio>

#include "sda/mpi.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"

namespace {

using Net = sda::nn::ScoreNet<sda::VPCosine>;

/// Counts the sampler's steps and throws on rank 1 at the third.
struct FailOnRankOne {
    int rank;
    void on_step(std::size_t k, std::size_t, double) const {
        if (rank == 1 && k == 3) throw sda::error("a failure injected at step 3");
    }
};

}  // namespace

int main(int argc, char** argv) {
    sda::mpi::Environment environment(argc, argv);
    const sda::mpi::Communicator comm(MPI_COMM_WORLD);
    return sda::mpi::run(comm, [&] {
        sda::nn::ScoreNetConfig config;
        config.event = {5, 3};
        config.width = 16, config.depth = 1;
        sda::Generator init(1);
        const sda::mpi::MarkovComposedScore<Net, 2> prior(Net(sda::VPCosine{}, config, init),
                                                          sda::mpi::Blocks::even(comm, 12 * std::size_t(comm.size())));
        sda::Generator gen(2);
        sda::sample(sda::PredictorCorrector{.steps = 50}, prior, 4, gen, FailOnRankOne{comm.rank()});
        std::printf("rank %d finished without the injected failure\n", comm.rank());
    });
}
