// sda/mpi/decomposition.hpp: how a batch of trajectories is dealt among the ranks of a
// communicator: `Blocks` cuts every trajectory's L states into contiguous blocks, one per
// rank in rank order (time parallelism); `Ensemble` deals the samples of a batch (ensemble
// parallelism). Each also moves data between the whole and the parts: `local` takes this
// rank's part of a whole tensor, `gather` assembles the parts on one rank.
#pragma once

#include <cstddef>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"
#include "sda/mpi/environment.hpp"

namespace sda::mpi {

namespace detail {

/// [first, first + count) of n items dealt near-evenly over P parts (the first n mod P one longer).
inline std::vector<std::size_t> even_starts(std::size_t n, int parts) {
    std::vector<std::size_t> starts(static_cast<std::size_t>(parts) + 1, 0);
    for (int q = 0; q < parts; ++q)
        starts[q + 1] = starts[q] + n / std::size_t(parts) + (std::size_t(q) < n % std::size_t(parts) ? 1 : 0);
    return starts;
}

inline int to_int(std::size_t n, const char* what) {
    sda::detail::require(n <= std::size_t(std::numeric_limits<int>::max()), "sda::mpi: ", what, " of ", n,
                         " elements exceeds MPI's int counts");
    return static_cast<int>(n);
}

/// Every rank's `count` values, concatenated in rank order on `root` (empty elsewhere). Collective.
template <class T>
std::vector<T> gather_flat(const Communicator& comm, const T* data, std::size_t count, int root) {
    int n = to_int(count, "a gathered part");
    std::vector<int> counts(static_cast<std::size_t>(comm.size()), 0), offsets(counts.size(), 0);
    check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm.get()), "MPI_Gather");
    std::size_t total = 0;
    if (comm.rank() == root)
        for (std::size_t q = 0; q < counts.size(); ++q) offsets[q] = to_int(total, "a gather"), total += std::size_t(counts[q]);
    std::vector<T> out(total);
    check(MPI_Gatherv(data, n, datatype<T>(), out.data(), counts.data(), offsets.data(), datatype<T>(), root, comm.get()),
          "MPI_Gatherv");
    return out;
}

}  // namespace detail

/// Every trajectory's L states in contiguous blocks, one per rank of `comm` in rank order.
class Blocks {
public:
    /// Blocks of the given lengths, `lengths[q]` states for rank q; one per rank.
    Blocks(Communicator comm, std::vector<std::size_t> lengths) : comm_(comm), starts_(lengths.size() + 1, 0) {
        sda::detail::require(lengths.size() == std::size_t(comm_.size()), "sda::mpi::Blocks: ", lengths.size(),
                             " block lengths for a communicator of ", comm_.size(), " ranks");
        for (std::size_t q = 0; q < lengths.size(); ++q) {
            sda::detail::require(lengths[q] >= 1, "sda::mpi::Blocks: the block of rank ", q, " is empty");
            starts_[q + 1] = starts_[q] + lengths[q];
        }
    }
    /// L states in near-equal blocks (the first L mod P ranks one state more).
    static Blocks even(Communicator comm, std::size_t length) {
        sda::detail::require(length >= std::size_t(comm.size()), "sda::mpi::Blocks: ", length,
                             " states cannot be cut into ", comm.size(), " blocks");
        const std::vector<std::size_t> starts = detail::even_starts(length, comm.size());
        std::vector<std::size_t> lengths(starts.size() - 1);
        for (std::size_t q = 0; q < lengths.size(); ++q) lengths[q] = starts[q + 1] - starts[q];
        return Blocks(comm, std::move(lengths));
    }

    const Communicator& communicator() const { return comm_; }
    std::size_t length() const { return starts_.back(); }  ///< L
    std::size_t begin(int q) const { return starts_.at(std::size_t(q)); }
    std::size_t end(int q) const { return starts_.at(std::size_t(q) + 1); }
    std::size_t begin() const { return begin(comm_.rank()); }  ///< this rank's first state
    std::size_t end() const { return end(comm_.rank()); }
    std::size_t size() const { return end() - begin(); }  ///< this rank's states

    /// This rank's states of whole trajectories [B, L, S...]: [B, size(), S...].
    template <class T>
    Tensor<T> local(const Tensor<T>& whole) const {
        const Shape shape = shape_of(whole);
        sda::detail::require(shape.size() >= 2 && shape[1] == length(), "sda::mpi::Blocks::local: trajectories of shape ",
                             format_shape(shape), " are not [B, L = ", length(), ", ...]");
        Shape part = shape;
        part[1] = size();
        Tensor<T> out = empty_tensor<T>(part);
        const std::size_t state = shape[0] && shape[1] ? whole.size() / (shape[0] * shape[1]) : 0;
        for (std::size_t b = 0; b < shape[0]; ++b)
            std::memcpy(out.data() + b * size() * state, whole.data() + (b * length() + begin()) * state,
                        size() * state * sizeof(T));
        return out;
    }
    /// The blocks [B, size(), S...] of every rank as whole trajectories [B, L, S...] on `root`
    /// (an empty tensor elsewhere). Collective.
    template <class T>
    Tensor<T> gather(const Tensor<T>& part, int root = 0) const {
        const Shape shape = shape_of(part);
        sda::detail::require(shape.size() >= 2 && shape[1] == size(), "sda::mpi::Blocks::gather: a part of shape ",
                             format_shape(shape), " is not this rank's [B, ", size(), ", ...]");
        const std::vector<T> blocks = detail::gather_flat(comm_, part.data(), part.size(), root);
        if (comm_.rank() != root) return {};
        Shape whole = shape;
        whole[1] = length();
        Tensor<T> out = empty_tensor<T>(whole);
        sda::detail::require(blocks.size() == out.size(), "sda::mpi::Blocks::gather: the ranks' parts hold ", blocks.size(),
                             " values in all, whole trajectories of shape ", format_shape(whole), " ", out.size());
        const std::size_t batch = shape[0], state = shape[0] && shape[1] ? part.size() / (shape[0] * shape[1]) : 0;
        std::size_t offset = 0;
        for (int q = 0; q < comm_.size(); ++q) {
            const std::size_t n = end(q) - begin(q);
            for (std::size_t b = 0; b < batch; ++b)
                std::memcpy(out.data() + (b * length() + begin(q)) * state, blocks.data() + offset + b * n * state,
                            n * state * sizeof(T));
            offset += batch * n * state;
        }
        return out;
    }

private:
    Communicator comm_;
    std::vector<std::size_t> starts_;
};

/// The n samples of a batch dealt among the ranks of `comm`: rank q draws samples
/// [first(q), first(q) + count(q)), near-equal shares in rank order.
class Ensemble {
public:
    Ensemble(Communicator comm, std::size_t samples) : comm_(comm), starts_(detail::even_starts(samples, comm.size())) {
        sda::detail::require(samples >= std::size_t(comm.size()), "sda::mpi::Ensemble: ", samples,
                             " samples leave some of the ", comm.size(), " ranks without one");
    }
    const Communicator& communicator() const { return comm_; }
    std::size_t total() const { return starts_.back(); }
    std::size_t first(int q) const { return starts_.at(std::size_t(q)); }
    std::size_t count(int q) const { return starts_.at(std::size_t(q) + 1) - first(q); }
    std::size_t first() const { return first(comm_.rank()); }
    std::size_t count() const { return count(comm_.rank()); }

    /// This rank's samples of a whole batch [n, ...].
    template <class T>
    Tensor<T> local(const Tensor<T>& whole) const {
        const Shape shape = shape_of(whole);
        sda::detail::require(!shape.empty() && shape[0] == total(), "sda::mpi::Ensemble::local: a batch of shape ",
                             format_shape(shape), " is not of ", total(), " samples");
        Shape part = shape;
        part[0] = count();
        Tensor<T> out = empty_tensor<T>(part);
        const std::size_t per = shape[0] ? whole.size() / shape[0] : 0;
        std::memcpy(out.data(), whole.data() + first() * per, count() * per * sizeof(T));
        return out;
    }
    /// Every rank's samples, in order, as one batch [n, ...] on `root` (empty elsewhere). Collective.
    template <class T>
    Tensor<T> gather(const Tensor<T>& part, int root = 0) const {
        sda::detail::require(part.dimension() >= 1 && part.shape()[0] == count(), "sda::mpi::Ensemble::gather: a part of shape ",
                             format_shape(shape_of(part)), " is not this rank's ", count(), " samples");
        const std::vector<T> all = detail::gather_flat(comm_, part.data(), part.size(), root);
        if (comm_.rank() != root) return {};
        Tensor<T> out = empty_tensor<T>(batch_shape(total(), event_shape_of(shape_of(part))));
        sda::detail::require(all.size() == out.size(), "sda::mpi::Ensemble::gather: the ranks' samples differ in shape");
        std::memcpy(out.data(), all.data(), all.size() * sizeof(T));
        return out;
    }

private:
    Communicator comm_;
    std::vector<std::size_t> starts_;
};

}  // namespace sda::mpi
