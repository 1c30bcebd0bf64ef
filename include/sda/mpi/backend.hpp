// sda/mpi/backend.hpp: `mpi::Backend<T>`, the CPU backend of a model whose batch is split
// among the ranks of a communicator, so that samplers and guidance run unchanged on it.
//
// Two splits (`Split`):
// - `samples` (ensemble parallelism): each rank holds whole samples [first_sample, ...) of
//   the batch. Per-sample reductions are local; `mean_like` (the batch-wide Langevin step)
//   is over all ranks' samples.
// - `states` (time parallelism): each rank holds the same samples, but only its block of
//   each sample's entries (its states of a trajectory, and the observations of those
//   states). Per-sample vectors [B] are the same on every rank; every reduction over a
//   tensor with an event (dot, mean_square, mean_like) is over all ranks' entries.
// Reductions across ranks are exact sums (sda/mpi/reduce.hpp), so results are bit for bit
// the same for any number of ranks. `normal` draws the block of the one-process draw that
// the rank holds (noise keyed by the global sample and entry), `all_finite` and `min` agree
// on every rank (samplers branch on them). Everything else is `CpuBackend<T>`'s.
#pragma once

#include <cstddef>
#include <vector>

#include "sda/backend/cpu.hpp"
#include "sda/core/random.hpp"
#include "sda/mpi/environment.hpp"
#include "sda/mpi/reduce.hpp"

namespace sda::mpi {

/// How a batch is split among ranks: by samples, or by entries of every sample.
enum class Split { samples, states };

template <class T>
class Backend : public CpuBackend<T> {
    using base = CpuBackend<T>;

public:
    using typename base::tensor_type;
    using typename base::index_type;
    using typename base::scalar_type;

    /// This rank's part of the batch: samples from `first_sample` (split `samples`), or the
    /// entries from `first_entry` of each sample's flat event (split `states`).
    Backend(Communicator comm, Split split, std::size_t first_sample = 0, std::size_t first_entry = 0)
        : comm_(comm), split_(split), first_sample_(first_sample), first_entry_(first_entry) {}

    const Communicator& communicator() const { return comm_; }
    Split split() const { return split_; }

    /// N(0, 1) entries for this rank's part: the values one process would draw there.
    tensor_type normal(const Shape& shape, Generator& gen) const {
        tensor_type x = empty_tensor<T>(shape);
        const std::size_t rows = shape.empty() ? 1 : shape[0];
        fill_normal(x.data(), rows, rows ? x.size() / rows : 0, gen, split_ == Split::samples ? first_sample_ : 0,
                    split_ == Split::states ? first_entry_ : 0);
        return x;
    }

    tensor_type dot(const tensor_type& x, const tensor_type& y) const {
        if (split_ == Split::samples) return base::dot(x, y);
        base::same_shape(x, y, "dot");
        const auto [rows, cols] = rows_of(x, "dot");
        const RowSums sums = exact_row_sums(comm_, rows, cols, [&](std::size_t r, std::size_t c) {
            return double(x.data()[r * cols + c]) * double(y.data()[r * cols + c]);
        });
        return to_tensor(sums.sums, 1.0);
    }
    tensor_type mean_square(const tensor_type& x) const {
        if (split_ == Split::samples) return base::mean_square(x);
        const auto [rows, cols] = rows_of(x, "mean_square");
        const RowSums sums = exact_row_sums(comm_, rows, cols, [&](std::size_t r, std::size_t c) {
            const double v = x.data()[r * cols + c];
            return v * v;
        });
        return to_tensor(sums.sums, sums.terms ? double(sums.terms) : 1.0);
    }
    /// Every entry the mean over all ranks' entries of x (for split `states`, a per-sample
    /// vector [B] is the same on every rank and its mean is taken locally).
    tensor_type mean_like(const tensor_type& x) const {
        if (split_ == Split::states && x.dimension() <= 1) return base::mean_like(x);
        const RowSums sums = exact_row_sums(comm_, 1, x.size(), [&](std::size_t, std::size_t c) { return double(x.data()[c]); });
        sda::detail::require(sums.terms > 0, "sda::mpi::Backend::mean_like: empty tensor on every rank");
        return xt::broadcast(static_cast<T>(sums.sums[0] / double(sums.terms)), x.shape());
    }

    /// True on every rank when every rank's x is finite.
    bool all_finite(const tensor_type& x) const {
        int finite = base::all_finite(x) ? 1 : 0;
        detail::check(MPI_Allreduce(MPI_IN_PLACE, &finite, 1, MPI_INT, MPI_MIN, comm_.get()), "MPI_Allreduce");
        return finite != 0;
    }
    /// The local samples (indices into this rank's batch) with a NaN or infinite entry; for
    /// split `states`, those with one on any rank (the same list on every rank).
    std::vector<std::size_t> non_finite_samples(const tensor_type& x) const {
        if (split_ == Split::samples) return base::non_finite_samples(x);
        const std::size_t batch = x.dimension() ? x.shape()[0] : 1;
        std::vector<int> bad(batch, 0);
        for (std::size_t b : base::non_finite_samples(x)) bad[b] = 1;
        detail::check(MPI_Allreduce(MPI_IN_PLACE, bad.data(), static_cast<int>(batch), MPI_INT, MPI_MAX, comm_.get()),
                      "MPI_Allreduce");
        std::vector<std::size_t> out;
        for (std::size_t b = 0; b < batch; ++b)
            if (bad[b]) out.push_back(b);
        return out;
    }
    /// The smallest entry over all ranks.
    double min(const tensor_type& x) const {
        double value = base::min(x);
        detail::check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MIN, comm_.get()), "MPI_Allreduce");
        return value;
    }

private:
    struct Rows {
        std::size_t rows, cols;
    };
    static Rows rows_of(const tensor_type& x, const char* op) {
        sda::detail::require(x.dimension() >= 1, "sda::mpi::Backend::", op, ": a per-sample reduction needs a batch dimension");
        const std::size_t rows = x.shape()[0];
        return {rows, rows ? x.size() / rows : 0};
    }
    static tensor_type to_tensor(const std::vector<double>& values, double divisor) {
        tensor_type out = empty_tensor<T>({values.size()});
        for (std::size_t r = 0; r < values.size(); ++r) out.data()[r] = static_cast<T>(values[r] / divisor);
        return out;
    }

    Communicator comm_;
    Split split_;
    std::size_t first_sample_, first_entry_;
};


}  // namespace sda::mpi

static_assert(sda::Backend<sda::mpi::Backend<float>>, "sda::mpi::Backend<float> must satisfy sda::Backend");
static_assert(sda::Backend<sda::mpi::Backend<double>>, "sda::mpi::Backend<double> must satisfy sda::Backend");
