// sda/mpi/environment.hpp: MPI as sda uses it: the communicator a decomposition lives on,
// MPI's lifetime, and `mpi::run`, which turns an exception on one rank into the end of the
// whole job with the error printed, instead of the other ranks waiting in a collective.
//
// The optional target sda::mpi (Debian: libopenmpi-dev, openmpi-bin) provides these headers.
// sda calls MPI from the thread that called it only (MPI_THREAD_FUNNELED); oneTBB threads
// inside a rank never touch MPI.
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

// sda uses MPI's C interface only: leave out the C++ bindings (deprecated, and noisy under -Wextra)
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include "sda/core/error.hpp"

namespace sda::mpi {

namespace detail {

/// Throws `sda::error` naming the MPI call and MPI's message unless `rc` is MPI_SUCCESS.
inline void check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char message[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, message, &length);
    sda::detail::fail("sda::mpi: ", call, " failed: ", std::string(message, static_cast<std::size_t>(length)));
}

template <class T>
MPI_Datatype datatype() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "sda::mpi: float or double tensors");
    return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

}  // namespace detail

/// MPI for the lifetime of the object: initialises it (MPI_THREAD_FUNNELED) unless it already
/// is, and finalises it at the end if it initialised it.
class Environment {
public:
    Environment(int& argc, char**& argv) {
        int initialised = 0;
        MPI_Initialized(&initialised);
        if (initialised) return;
        int provided = 0;
        detail::check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owner_ = true;
    }
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;
    ~Environment() {
        int finalised = 0;
        MPI_Finalized(&finalised);
        if (owner_ && !finalised) MPI_Finalize();
    }

private:
    bool owner_ = false;
};

/// A communicator (not owned: the caller keeps it alive) and this process's place in it.
class Communicator {
public:
    explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
        detail::check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        detail::check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }
    MPI_Comm get() const { return comm_; }
    int rank() const { return rank_; }
    int size() const { return size_; }

private:
    MPI_Comm comm_;
    int rank_ = 0, size_ = 1;
};

/// Runs `body()` (returning an exit code, or nothing for 0). An exception escaping it on any
/// rank is printed as "sda: rank r of P: what" on stderr and ends every rank of `comm` with
/// MPI_Abort: the others may be waiting for this rank in a collective and would never return.
template <class Body>
int run(const Communicator& comm, Body&& body) {
    try {
        if constexpr (std::is_void_v<decltype(body())>) {
            body();
            return 0;
        } else {
            return static_cast<int>(body());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sda: rank %d of %d: %s\n", comm.rank(), comm.size(), e.what());
    } catch (...) {
        std::fprintf(stderr, "sda: rank %d of %d: unknown exception\n", comm.rank(), comm.size());
    }
    std::fflush(stderr);
    MPI_Abort(comm.get(), 1);
    return 1;
}

}  // namespace sda::mpi
