// examples/mpi_common.hpp: what the MPI examples share: only rank 0 prints, rank 0 makes the
// files the others then read, and a checksum of the gathered samples, which is the same for
// any number of ranks.
#pragma once

#include <cstdint>
#include <cstdio>

#include "sda/core/tensor.hpp"
#include "sda/mpi/environment.hpp"

namespace examples {

/// Sends the standard output of every rank but 0 to /dev/null (errors still reach stderr);
/// returns whether this rank is rank 0.
inline bool print_on_rank_zero(const sda::mpi::Communicator& comm) {
    const bool root = comm.rank() == 0;
    if (!root) std::freopen("/dev/null", "w", stdout);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    return root;
}

/// Runs `load()` on rank 0 first (it writes what is missing: data, simulations), then on the
/// other ranks, which find the files. Collective.
template <class Load>
void rank_zero_first(const sda::mpi::Communicator& comm, Load&& load) {
    for (int turn = 0; turn < 2; ++turn) {
        if ((turn == 0) == (comm.rank() == 0)) load();
        sda::mpi::detail::check(MPI_Barrier(comm.get()), "MPI_Barrier");
    }
}

/// FNV-1a of the samples' bytes: equal checksums, equal samples.
inline std::uint64_t checksum(const sda::Tensor<float>& x) {
    std::uint64_t h = 1469598103934665603ull;
    const auto* bytes = reinterpret_cast<const unsigned char*>(x.data());
    for (std::size_t i = 0; i < x.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

}  // namespace examples
