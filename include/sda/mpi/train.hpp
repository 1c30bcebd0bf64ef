// sda/mpi/train.hpp: data-parallel training across the ranks of an MPI job.
//
// Every rank reads the same global batch (the same permutation of the same data, the same
// t and noise from the same generator) and computes the gradients of its share of the
// batch's chunks, the `training_chunk` rows that sda's networks process as one task (a
// model without `training_chunk` is one chunk, which rank 0 computes alone). The chunk
// gradients are then added in chunk order along the chain of ranks (rank 0 adds its
// chunks and passes the sum to rank 1, which adds its own, ...) and the total is broadcast:
// exactly the additions, in the same order, that one process makes. The weights after
// every step are therefore those of `sda::train::fit` in one process, bit for bit, for any
// number of ranks; every rank holds them, and its own copy of the optimiser and EMA.
// Checkpoints are written by rank 0 (every rank must see the file: a shared file system on
// a cluster) and read by every rank, so a run resumes on any number of ranks. The chain
// costs P - 1 sequential messages of the parameters per step, and a broadcast.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <tbb/parallel_for.h>

#include "sda/core/memory.hpp"
#include "sda/mpi/decomposition.hpp"
#include "sda/mpi/environment.hpp"
#include "sda/nn/chunks.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/loss.hpp"

namespace sda::mpi {

/// The `Gradient` of a `train::CpuEngine` that shares each batch's chunks among the ranks. It
/// keeps its gradient buffers between steps, so one object serves one engine's steps, one at a time
/// (as the communicator's collectives must).
class DataParallelGradient {
public:
    explicit DataParallelGradient(Communicator comm) : comm_(comm) {}
    const Communicator& communicator() const { return comm_; }

    template <nn::TrainableScoreModel M>
    double operator()(const M& model, const Tensor<typename M::scalar_type>& x, Generator& gen,
                      std::span<typename M::scalar_type> grad) const {
        using T = typename M::scalar_type;
        const auto noised = train::noise_batch(model.schedule(), x, gen);  // the whole batch's: same on every rank
        const std::size_t batch = x.shape()[0], n = x.size() / batch;
        std::size_t chunk = batch;
        if constexpr (requires { M::training_chunk; }) chunk = M::training_chunk;
        const std::size_t chunks = (batch + chunk - 1) / chunk;
        const std::vector<std::size_t> share = detail::even_starts(chunks, comm_.size());
        const std::size_t first = share[std::size_t(comm_.rank())], last = share[std::size_t(comm_.rank()) + 1];

        // this rank's chunks, each from zero, as one process computes them
        const double scale = 1.0 / static_cast<double>(batch * n);
        const std::vector<double> weights = train::detail::normalised_weights(std::span<const T>{}, batch);
        // buffers kept from step to step: a fresh 2.8 MB gradient per chunk and step cost the
        // Lorenz-63 training step 2.5 -> 4.8 ms once earlier work had fragmented the heap
        auto& parts = buffers<T>().parts;
        parts.resize(last - first);
        std::vector<double> losses(last - first, 0.0);
        tbb::parallel_for(first, last, [&](std::size_t c) {
            const std::size_t begin = c * chunk, rows = std::min(batch, begin + chunk) - begin;
            Shape shape = shape_of(x);
            shape[0] = rows;
            Tensor<T> xt = empty_tensor<T>(shape);
            std::copy_n(noised.xt.data() + begin * n, rows * n, xt.data());
            AlignedVector<T>& part = parts[c - first];
            part.assign(grad.size(), T(0));
            losses[c - first] = model.accumulate_gradient(xt, std::span<const double>(noised.t.data() + begin, rows),
                                                          train::detail::denoising_row_loss(noised, n, weights, scale, begin),
                                                          std::span<T>(part));
        });

        // the chain: the sum so far from the previous rank, this rank's chunks added in order
        AlignedVector<T>& sum = buffers<T>().sum;
        sum.resize(grad.size());  // received, or set by the first chunk
        double loss = 0;
        const int rank = comm_.rank(), ranks = comm_.size();
        const int count = detail::to_int(sum.size(), "a gradient");
        if (rank > 0) {
            check(MPI_Recv(sum.data(), count, datatype<T>(), rank - 1, 3, comm_.get(), MPI_STATUS_IGNORE), "MPI_Recv");
            check(MPI_Recv(&loss, 1, MPI_DOUBLE, rank - 1, 4, comm_.get(), MPI_STATUS_IGNORE), "MPI_Recv");
        }
        nn::detail::add_in_order<T>(sum, parts, /*onto=*/rank > 0);
        for (double part_loss : losses) loss += part_loss;
        if (rank + 1 < ranks) {
            check(MPI_Send(sum.data(), count, datatype<T>(), rank + 1, 3, comm_.get()), "MPI_Send");
            check(MPI_Send(&loss, 1, MPI_DOUBLE, rank + 1, 4, comm_.get()), "MPI_Send");
        }
        check(MPI_Bcast(sum.data(), count, datatype<T>(), ranks - 1, comm_.get()), "MPI_Bcast");
        check(MPI_Bcast(&loss, 1, MPI_DOUBLE, ranks - 1, comm_.get()), "MPI_Bcast");
        nn::detail::add_in_order<T>(grad, std::span<const AlignedVector<T>>(&sum, 1), /*onto=*/true);
        return loss;
    }

private:
    template <class T>
    struct Buffers {
        std::vector<AlignedVector<T>> parts;  // this rank's chunk gradients
        AlignedVector<T> sum;                 // the chain's running sum
    };
    /// The step's buffers, kept between steps (an engine's steps run one at a time).
    template <class T>
    Buffers<T>& buffers() const {
        if constexpr (std::is_same_v<T, float>) {
            return float_buffers_;
        } else {
            static_assert(std::is_same_v<T, double>, "sda::mpi::DataParallelGradient: float or double gradients");
            return double_buffers_;
        }
    }

    static void check(int rc, const char* call) { detail::check(rc, call); }
    template <class T>
    static MPI_Datatype datatype() { return detail::datatype<T>(); }

    Communicator comm_;
    mutable Buffers<float> float_buffers_;
    mutable Buffers<double> double_buffers_;
};

/// `train::CpuEngine` with `DataParallelGradient`; checkpoints written by rank 0 alone.
template <nn::TrainableScoreModel M>
class DataParallelEngine : public train::CpuEngine<M, DataParallelGradient> {
    using base = train::CpuEngine<M, DataParallelGradient>;

public:
    DataParallelEngine(M& model, const train::AdamWOptions& optimizer, Communicator comm)
        : base(model, optimizer, DataParallelGradient(comm)), comm_(comm) {}

    /// Rank 0 writes the checkpoint (atomically); every rank returns once it is written. Collective.
    void save(const std::filesystem::path& path, double ema_decay, const train::TrainingState& state) const {
        if (comm_.rank() == 0) base::save(path, ema_decay, state);
        detail::check(MPI_Barrier(comm_.get()), "MPI_Barrier");
    }

private:
    Communicator comm_;
};

/// `train::fit` on the ranks of `comm`, each with its share of every batch: the weights of a
/// one-process `train::fit` with the same options and generator, on every rank. Collective.
template <nn::TrainableScoreModel M, class Callback = train::NoTrainingCallback>
train::FitResult fit(const Communicator& comm, M& model, const train::WindowDataset<typename M::scalar_type>& train,
                     const train::WindowDataset<typename M::scalar_type>& valid, const train::FitOptions& options,
                     Generator& gen, Callback&& callback = {}) {
    DataParallelEngine<M> engine(model, options.optimizer, comm);
    return train::fit(engine, train, valid, options, gen, std::forward<Callback>(callback));
}

}  // namespace sda::mpi
