// Data-parallel training against one process: on P ranks the weights after every step are
// those of `sda::train::fit` in one process, bit for bit, and a checkpoint written by either
// resumes in the other.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "sda/mpi.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/windows.hpp"

namespace {

using Net = sda::nn::ScoreNet<sda::VPCosine>;
using T = float;

Net small_net() {
    sda::nn::ScoreNetConfig config;
    config.event = {3, 2};
    config.width = 24, config.depth = 2, config.embedding = 8, config.embedding_hidden = 16;
    sda::Generator init(3);
    return Net(sda::VPCosine{}, config, init);
}

sda::train::WindowDataset<T> dataset(std::uint64_t seed, std::size_t trajectories) {
    sda::Generator gen(seed);
    return sda::train::WindowDataset<T>(sda::CpuBackend<T>::normal({trajectories, 12, 2}, gen), 3);
}

bool same_weights(const Net& a, const Net& b) {
    const auto& x = a.parameters().values();
    const auto& y = b.parameters().values();
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

bool everywhere(bool ok) {
    int value = ok ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return value == 1;
}

/// A path every rank agrees on, fresh for this test (rank 0 names it).
std::filesystem::path shared_path(const std::string& name) {
    char buffer[256] = {};
    if (sda::mpi::Communicator().rank() == 0) {
        const std::string path = (std::filesystem::temp_directory_path() /
                                  ("sda_mpi_" + name + "_" + std::to_string(::getpid()) + ".safetensors")).string();
        std::strncpy(buffer, path.c_str(), sizeof(buffer) - 1);
    }
    MPI_Bcast(buffer, sizeof(buffer), MPI_CHAR, 0, MPI_COMM_WORLD);
    return buffer;
}

sda::train::FitOptions options(std::size_t epochs) {
    sda::train::FitOptions o;
    o.epochs = epochs, o.epoch_size = 300, o.batch_size = 100, o.valid_size = 64;  // 3 steps an epoch, 4 chunks a batch
    o.ema_decay = 0.9;
    return o;
}

}  // namespace

TEST_CASE("data parallel: every step's weights, EMA and losses are one process's, bit for bit") {
    const sda::mpi::Communicator comm;
    const auto train = dataset(1, 40), valid = dataset(2, 8);
    Net one = small_net(), many = small_net();
    sda::Generator gen_one(9), gen_many(9);
    sda::train::CpuEngine<Net> serial(one, options(1).optimizer);
    sda::mpi::DataParallelEngine<Net> parallel(many, options(1).optimizer, comm);
    const auto batch = [&](std::size_t k) {
        std::vector<std::size_t> rows(100);
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = (37 * (k * 100 + i)) % train.size();
        return train.batch(rows);
    };
    serial.reset_ema(), parallel.reset_ema();
    for (std::size_t k = 0; k < 3; ++k) {  // three steps
        serial.begin_epoch(), parallel.begin_epoch();
        serial.step(batch(k), gen_one, 1e-3, 0.0), parallel.step(batch(k), gen_many, 1e-3, 0.0);
        serial.update_ema(0.9), parallel.update_ema(0.9);
        CHECK(everywhere(same_weights(one, many)));
        CHECK(everywhere(serial.loss_sum() == parallel.loss_sum()));
        CHECK(everywhere(std::memcmp(serial.ema().data(), parallel.ema().data(), serial.ema().size() * sizeof(T)) == 0));
    }
    CHECK(gen_one.draws() == gen_many.draws());
}

TEST_CASE("data parallel: a checkpoint of P ranks resumes in one process and the other way round") {
    const sda::mpi::Communicator comm;
    const auto train = dataset(1, 40), valid = dataset(2, 8);
    // reference: two epochs in one process
    Net reference = small_net();
    sda::Generator gen_ref(4);
    const auto straight = sda::train::fit(reference, train, valid, options(2), gen_ref);

    SUBCASE("P ranks, then one process") {
        const auto path = shared_path("p_then_1");
        Net first = small_net();
        sda::Generator gen(4);
        auto o = options(1);
        o.checkpoint = path;
        sda::mpi::fit(comm, first, train, valid, o, gen);  // rank 0 writes epoch 1
        // every rank resumes alone, from its own copy (each writes its epoch 2 there)
        const auto own = std::filesystem::path(path.string() + ".rank" + std::to_string(comm.rank()));
        std::filesystem::copy_file(path, own, std::filesystem::copy_options::overwrite_existing);
        MPI_Barrier(MPI_COMM_WORLD);
        Net resumed = small_net();
        sda::Generator gen2(4);
        o.epochs = 2, o.checkpoint = own;
        const auto result = sda::train::fit(resumed, train, valid, o, gen2);
        std::filesystem::remove(own);
        CHECK(result.resumed_from == 1);
        CHECK(everywhere(same_weights(resumed, reference)));
        CHECK(everywhere(result.history.back().valid_loss == straight.history.back().valid_loss));
        MPI_Barrier(MPI_COMM_WORLD);
        if (comm.rank() == 0) std::filesystem::remove(path);
    }
    SUBCASE("one process, then P ranks") {
        const auto path = shared_path("1_then_p");
        auto o = options(1);
        o.checkpoint = path;
        if (comm.rank() == 0) {
            Net first = small_net();
            sda::Generator gen(4);
            sda::train::fit(first, train, valid, o, gen);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        Net resumed = small_net();
        sda::Generator gen2(4);
        o.epochs = 2;
        const auto result = sda::mpi::fit(comm, resumed, train, valid, o, gen2);
        CHECK(result.resumed_from == 1);
        CHECK(everywhere(same_weights(resumed, reference)));
        MPI_Barrier(MPI_COMM_WORLD);
        if (comm.rank() == 0) std::filesystem::remove(path);
    }
}
