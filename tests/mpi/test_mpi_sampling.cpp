// The MPI decompositions against one process: on P ranks (ctest runs P = 1, 2, 3, 4), the
// time- and ensemble-parallel trajectory scores, their VJPs and whole guided runs give bit
// for bit what one process gives. Each rank computes that one-process reference itself, on
// MPI_COMM_SELF, and compares its own part with it.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/mpi.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/markov.hpp"

namespace {

using Net = sda::nn::ScoreNet<sda::VPCosine>;
using T = float;
constexpr std::size_t K = 2, S = 3;

Net window_net() {
    sda::nn::ScoreNetConfig config;
    config.event = {2 * K + 1, S};
    config.width = 32, config.depth = 2, config.embedding = 8, config.embedding_hidden = 16;
    sda::Generator init(7);
    return Net(sda::VPCosine{}, config, init);
}

sda::mpi::Communicator world() { return sda::mpi::Communicator(MPI_COMM_WORLD); }
sda::mpi::Communicator self() { return sda::mpi::Communicator(MPI_COMM_SELF); }

bool same_bits(const sda::Tensor<T>& a, const sda::Tensor<T>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Whether every rank's `ok` holds.
bool everywhere(bool ok) {
    int value = ok ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return value == 1;
}

sda::Tensor<T> random_batch(std::size_t batch, std::size_t length, std::uint64_t seed) {
    sda::Generator gen(seed);
    return sda::CpuBackend<T>::normal({batch, length, S}, gen);
}

/// Block lengths of L states over P ranks that differ: 1, 2, 3, ... parts, the first and last K + 1 at least.
std::vector<std::size_t> unequal_lengths(std::size_t length, int ranks) {
    if (ranks == 1) return {length};
    std::vector<std::size_t> lengths(static_cast<std::size_t>(ranks));
    std::size_t used = 0;
    for (int q = 0; q + 1 < ranks; ++q) lengths[q] = (q == 0 ? K + 1 : K) + std::size_t(q) * 3, used += lengths[q];
    REQUIRE(length > used + K + 1);
    lengths.back() = length - used;
    return lengths;
}

}  // namespace

TEST_CASE("exact_row_sums: the same sum for any split of the terms, within one rounding of the exact one") {
    const auto comm = world();
    const std::size_t rows = 3, total = 1000;
    // terms that a left-to-right double sum gets wrong: large cancelling ones around small ones
    auto term = [](std::size_t r, std::size_t c) {
        const double big = std::ldexp(1.0, 60 + int(r)), small = 1.0 + double(c % 7) / 8.0;
        return c % 3 == 0 ? big : (c % 3 == 1 ? -big : small);
    };
    const auto blocks = sda::mpi::Blocks::even(comm, total);
    const auto mine = sda::mpi::exact_row_sums(comm, rows, blocks.size(),
                                               [&](std::size_t r, std::size_t c) { return term(r, blocks.begin() + c); });
    const auto one = sda::mpi::exact_row_sums(self(), rows, total, term);
    CHECK(mine.terms == total);
    for (std::size_t r = 0; r < rows; ++r) {
        double exact = 0;  // the small terms alone: the big ones cancel in pairs (333 of each sign + 1 big)
        for (std::size_t c = 0; c < total; ++c)
            if (c % 3 == 2) exact += term(r, c);
        exact += std::ldexp(1.0, 60 + int(r));  // c = 999 is a 0 mod 3 term without its partner
        CHECK(mine.sums[r] == one.sums[r]);
        CHECK(mine.sums[r] == exact);
    }
    // non-finite terms
    const auto special = sda::mpi::exact_row_sums(comm, 3, 1, [&](std::size_t r, std::size_t) {
        if (comm.rank() != 0) return 1.0;
        return r == 0 ? std::numeric_limits<double>::quiet_NaN() : (r == 1 ? -std::numeric_limits<double>::infinity() : 0.0);
    });
    CHECK(std::isnan(special.sums[0]));
    CHECK(special.sums[1] == -std::numeric_limits<double>::infinity());
    CHECK(special.sums[2] == double(comm.size() - 1));
}

TEST_CASE("time parallel: eps and VJP of every block equal one process's, bit for bit, for even and unequal blocks") {
    const auto comm = world();
    const std::size_t L = 40, B = 16;  // 36 windows x 16 = 576 rows: 3 tiles of 256
    const Net net = window_net();
    const sda::Tensor<T> x = random_batch(B, L, 1), v = random_batch(B, L, 2);
    const sda::mpi::MarkovComposedScore<Net, K> whole(net, sda::mpi::Blocks(self(), {L}));
    const sda::Tensor<T> eps_one = whole.eps(x, 0.4), vjp_one = whole.vjp(x, 0.4, v);
    // the one-process decomposition is the composition of sda/score/markov.hpp, to float rounding
    const sda::MarkovComposedScore<Net, K> serial(net, L);
    CHECK(xt::allclose(eps_one, serial.eps(x, 0.4), 1e-5, 1e-6));
    CHECK(xt::allclose(vjp_one, serial.vjp(x, 0.4, v), 1e-5, 1e-6));

    for (const bool even : {true, false}) {
        CAPTURE(even);
        const auto blocks = even ? sda::mpi::Blocks::even(comm, L) : sda::mpi::Blocks(comm, unequal_lengths(L, comm.size()));
        const sda::mpi::MarkovComposedScore<Net, K> part(net, blocks);
        CHECK(part.event_shape() == sda::Shape{blocks.size(), S});
        const auto lin = part.linearize(blocks.local(x), 0.4);
        const sda::Tensor<T> vjp = lin.vjp(blocks.local(v));
        CHECK(everywhere(same_bits(part.eps(blocks.local(x), 0.4), blocks.local(eps_one))));
        CHECK(everywhere(same_bits(lin.eps(), blocks.local(eps_one))));
        CHECK(everywhere(same_bits(vjp, blocks.local(vjp_one))));
        // and gathered back into whole trajectories on rank 0
        const sda::Tensor<T> gathered = blocks.gather(vjp);
        if (comm.rank() == 0) CHECK(same_bits(gathered, vjp_one));
    }
}

namespace {

/// A guided PC run of `guidance` on prior `prior`, observing the first coordinate of every
/// third state of this rank's block (a Mask sliced to the block), y drawn from a fixed truth.
template <class Prior, class G, class Sampler>
sda::Tensor<T> guided_run(const Prior& prior, const sda::mpi::Blocks& blocks, const G& guidance,
                          const Sampler& sampler, std::size_t batch) {
    const std::size_t L = blocks.length();
    const sda::Tensor<T> truth = random_batch(1, L, 99);
    xt::xarray<bool> mask = xt::zeros<bool>({blocks.size(), S});
    std::vector<double> y;
    for (std::size_t i = 0; i < blocks.size(); ++i)
        if ((blocks.begin() + i) % 3 == 0) mask(i, 0) = true, y.push_back(truth.data()[(blocks.begin() + i) * S] + 0.1);
    if (y.empty()) mask(0, 1) = true, y.push_back(truth.data()[blocks.begin() * S + 1]);
    sda::Tensor<T> y_tensor = sda::CpuBackend<T>::from_host(y, {y.size()});
    const sda::GaussianObservation obs(sda::observe::Mask(mask), y_tensor, 0.05);
    sda::Generator gen(5);
    return sda::sample(sampler, sda::guide(prior, obs, guidance), batch, gen);
}

}  // namespace

TEST_CASE("time parallel: whole guided PC runs (SDA-gamma, MMPS) equal one process's, bit for bit") {
    const auto comm = world();
    const std::size_t L = 24, B = 6;
    const Net net = window_net();
    const auto blocks = sda::mpi::Blocks(comm, unequal_lengths(L, comm.size()));
    const sda::mpi::Blocks one_block(self(), {L});
    const sda::mpi::MarkovComposedScore<Net, K> part(net, blocks), whole(net, one_block);

    sda::PredictorCorrector pc{.steps = 6, .corrector = {.corrections = 1, .tau = 0.25}};
    SUBCASE("SDA-gamma, the paper's per-sample Langevin step") {
        const auto mine = guided_run(part, blocks, sda::SDA{.gamma = 3e-2}, pc, B);
        const auto one = guided_run(whole, one_block, sda::SDA{.gamma = 3e-2}, pc, B);
        CHECK(everywhere(same_bits(mine, blocks.local(one))));
        CHECK(everywhere(xt::all(xt::isfinite(mine))));
    }
    SUBCASE("MMPS, 3 CG iterations, batch-wide Langevin step") {
        pc.corrector.step = sda::correctors::LangevinStep::batch;
        const auto mine = guided_run(part, blocks, sda::MMPS{.iterations = 3, .gamma = 1e-2}, pc, B);
        const auto one = guided_run(whole, one_block, sda::MMPS{.iterations = 3, .gamma = 1e-2}, pc, B);
        CHECK(everywhere(same_bits(mine, blocks.local(one))));
        CHECK(everywhere(xt::all(xt::isfinite(mine))));
    }
}

TEST_CASE("ensemble parallel: each rank's samples are one process's, bit for bit, and gather to the whole batch") {
    const auto comm = world();
    const std::size_t L = 20, n = 11;  // shares of 11 / P samples, unequal for P = 2, 3, 4
    const Net net = window_net();
    const sda::mpi::Ensemble ensemble(comm, n), one(self(), n);
    const sda::mpi::MarkovComposedScore<Net, K> part(net, L, ensemble), whole(net, L, one);
    CHECK(part.event_shape() == sda::Shape{L, S});

    const sda::Tensor<T> x = random_batch(n, L, 3), v = random_batch(n, L, 4);
    CHECK(everywhere(same_bits(part.eps(ensemble.local(x), 0.7), ensemble.local(whole.eps(x, 0.7)))));
    CHECK(everywhere(same_bits(part.vjp(ensemble.local(x), 0.7, ensemble.local(v)), ensemble.local(whole.vjp(x, 0.7, v)))));

    const sda::PredictorCorrector pc{.steps = 5, .corrector = {.corrections = 1, .step = sda::correctors::LangevinStep::batch}};
    sda::Generator gen(11), gen_one(11);
    const sda::Tensor<T> mine = sda::sample(pc, part, ensemble.count(), gen);
    const sda::Tensor<T> all = sda::sample(pc, whole, n, gen_one);
    CHECK(everywhere(same_bits(mine, ensemble.local(all))));
    const sda::Tensor<T> gathered = ensemble.gather(mine);
    if (comm.rank() == 0) CHECK(same_bits(gathered, all));

    // the ensemble numbers and tiles windows as sda::MarkovComposedScore does in one call: with
    // per-sample reductions only (the paper's Langevin step), it draws that model's samples exactly
    const sda::MarkovComposedScore<Net, K> serial(net, L);
    CHECK(everywhere(same_bits(part.eps(ensemble.local(x), 0.7), ensemble.local(serial.eps(x, 0.7)))));
    CHECK(everywhere(same_bits(part.vjp(ensemble.local(x), 0.7, ensemble.local(v)), ensemble.local(serial.vjp(x, 0.7, v)))));
    const sda::PredictorCorrector paper{.steps = 5, .corrector = {.corrections = 1}};
    sda::Generator gen_paper(12), gen_serial(12);
    const sda::Tensor<T> drawn = sda::sample(paper, part, ensemble.count(), gen_paper);
    CHECK(everywhere(same_bits(drawn, ensemble.local(sda::sample(paper, serial, n, gen_serial)))));
}

TEST_CASE("bad decompositions are refused with sda::error") {
    const auto comm = world();
    const Net net = window_net();
    using Score = sda::mpi::MarkovComposedScore<Net, K>;
    // a block count that is not the communicator's size
    CHECK_THROWS_WITH_AS(sda::mpi::Blocks(comm, std::vector<std::size_t>(std::size_t(comm.size()) + 1, 10)),
                         doctest::Contains("block lengths for a communicator of"), sda::error);
    // L < 2K + 1
    CHECK_THROWS_WITH_AS(Score(net, sda::mpi::Blocks(self(), {2 * K})), doctest::Contains("is below the window"), sda::error);
    // an ensemble batch that is not the rank's share
    const sda::mpi::Ensemble ensemble(comm, std::size_t(2 * comm.size()));
    const Score members(net, 12, ensemble);
    CHECK_THROWS_WITH_AS(members.eps(random_batch(ensemble.count() + 1, 12, 1), 0.5), doctest::Contains("share of the ensemble"),
                         sda::error);
    // a batch that is not of this rank's events (its states, S)
    const auto blocks = sda::mpi::Blocks::even(comm, 24);
    const Score part(net, blocks);
    CHECK_THROWS_WITH_AS(part.eps(sda::Tensor<T>(xt::zeros<T>({std::size_t(2), blocks.size(), S + 1})), 0.5),
                         doctest::Contains("is not a batch of its events"), sda::error);
    // tiles that cut the network's chunks
    CHECK_THROWS_WITH_AS(Score(net, sda::mpi::Blocks(self(), {12}), 100), doctest::Contains("inference_chunk"), sda::error);
    if (comm.size() >= 2) {
        // a middle or edge block shorter than its halo
        std::vector<std::size_t> lengths(std::size_t(comm.size()), 2 * K + 2);
        lengths[comm.size() == 2 ? 0 : 1] = comm.size() == 2 ? K : K - 1;
        CHECK_THROWS_WITH_AS(Score(net, sda::mpi::Blocks(comm, lengths)), doctest::Contains("fewer than"), sda::error);
    }
}
