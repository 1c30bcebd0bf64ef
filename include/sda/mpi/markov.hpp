// sda/mpi/markov.hpp: `mpi::MarkovComposedScore<Model, K>`, the trajectory score of
// sda/score/markov.hpp with its batch split among the ranks of a communicator.
//
// - Time parallelism (built from `Blocks`): each rank holds its block of every trajectory,
//   [B, l1 - l0, S...], and evaluates the windows centred in it (for the first and last
//   rank also the first and last window, which serve K + 1 states each). `eps` first
//   receives K halo states from each neighbour; the VJP sends the gradients of the windows
//   that reach into a neighbour's states to that neighbour, which adds them to its own in
//   window order. Memory per rank is O(L / P + 2K) states.
// - Ensemble parallelism (built from `Ensemble`): each rank holds whole trajectories of its
//   share of the batch. Nothing is exchanged but the sampler's batch-wide reductions.
// Either way the model's backend is `mpi::Backend`, so any sampler, corrector and guidance
// runs on it unchanged, with every global quantity reduced across ranks exactly.
//
// Results are bit for bit those of one process, whatever the number of ranks. Besides
// exact reductions and noise keyed by global indices, that needs the window network to see
// each window at the same place of the same call: a network's output for one row may depend
// on the row's position in its call and on the call's size (a GEMM kernel treats the rows
// of a tile and its remainder differently). Windows are therefore numbered globally, in
// window-major order for time parallelism (b fastest: a rank's windows are contiguous) and
// sample-major for ensembles, and evaluated in fixed tiles of `tile_rows` of that numbering,
// a rank padding with zero rows the parts of its first and last tile that belong to others.
// A window network must be row-local (a row's output depends only on its input, position
// and call size), as sda's CPU networks are; `tile_rows` (by default its `inference_chunk`)
// must be a multiple of its `inference_chunk` when it has one.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <tbb/parallel_for.h>

#include "sda/backend/cpu.hpp"
#include "sda/core/error.hpp"
#include "sda/core/shape.hpp"
#include "sda/mpi/backend.hpp"
#include "sda/mpi/decomposition.hpp"
#include "sda/score/concepts.hpp"

namespace sda::mpi {

template <class Model, std::size_t K>
class MarkovComposedScore {
    static_assert(EpsModel<Model>, "sda::mpi::MarkovComposedScore: the window model must satisfy sda::EpsModel");
    using scalar = typename backend_t<Model>::scalar_type;
    static_assert(std::is_same_v<backend_t<Model>, CpuBackend<scalar>>,
                  "sda::mpi::MarkovComposedScore: the window model must run on sda::CpuBackend");

public:
    using backend_type = Backend<scalar>;
    using tensor_type = Tensor<scalar>;
    using schedule_type = schedule_t<Model>;
    static constexpr std::size_t order = K;
    static constexpr std::size_t window = 2 * K + 1;

    /// Windows per tile: the window network's `inference_chunk` (its own unit of work, so that a
    /// rank pads at most two of them), or 256 for a model that names none.
    static constexpr std::size_t default_tile_rows = [] {
        if constexpr (requires { Model::inference_chunk; }) return std::size_t(Model::inference_chunk);
        else return std::size_t(256);
    }();

    /// Time parallelism: trajectories of `blocks.length()` states, this rank holding its block.
    /// Every block must hold at least K states, the first and the last at least K + 1.
    MarkovComposedScore(Model window_model, const Blocks& blocks, std::size_t tile_rows = default_tile_rows)
        : model_(std::move(window_model)), comm_(blocks.communicator()), split_(Split::states),
          length_(blocks.length()), tile_(tile_rows) {
        init_common();
        const int P = comm_.size();
        for (int q = 0; q < P; ++q) {
            const std::size_t n = blocks.end(q) - blocks.begin(q);
            const bool edge = q == 0 || q == P - 1;
            detail_require(P == 1 || n >= (edge ? K + 1 : K), "the block of rank ", q, " holds ", n, " state",
                           n == 1 ? "" : "s", ", fewer than ", edge ? "K + 1" : "K", " = ", edge ? K + 1 : K,
                           edge ? " (the first and last blocks serve the edge windows, K + 1 states each)"
                                : " (its neighbours' halos are K states)");
        }
        for (int q = 0; q <= P; ++q) starts_.push_back(q < P ? blocks.begin(q) : blocks.end(P - 1));
        // the windows of rank q: those centred in its block; the first and last rank also the edge windows
        for (int q = 0; q < P; ++q) {
            wlo_.push_back(q == 0 ? 0 : starts_[q] - K);
            whi_.push_back(q == P - 1 ? count() - 1 : starts_[q + 1] - 1 - K);
        }
        const int r = comm_.rank();
        first_state_ = starts_[r], states_ = starts_[r + 1] - starts_[r];
        event_ = model_.event_shape();
        event_[0] = states_;
    }

    /// Ensemble parallelism: trajectories of `length` states, this rank drawing its share of
    /// the `ensemble.total()` samples (a batch of exactly `ensemble.count()`).
    MarkovComposedScore(Model window_model, std::size_t length, const Ensemble& ensemble,
                        std::size_t tile_rows = default_tile_rows)
        : model_(std::move(window_model)), comm_(ensemble.communicator()), split_(Split::samples), length_(length),
          tile_(tile_rows), samples_(ensemble.total()), first_sample_(ensemble.first()), share_(ensemble.count()) {
        init_common();
        wlo_.assign(std::size_t(comm_.size()), 0);
        whi_.assign(std::size_t(comm_.size()), count() - 1);
        first_state_ = 0, states_ = length_;
        event_ = model_.event_shape();
        event_[0] = length_;
    }

    backend_type backend() const {
        return split_ == Split::states ? backend_type(comm_, split_, 0, first_state_ * state_)
                                       : backend_type(comm_, split_, first_sample_, 0);
    }
    decltype(auto) schedule() const { return model_.schedule(); }
    /// This rank's events: [its states, S...] (time) or [L, S...] (ensemble).
    const Shape& event_shape() const { return event_; }
    const Model& window_model() const { return model_; }
    Split split() const { return split_; }
    std::size_t length() const { return length_; }
    std::size_t first_state() const { return first_state_; }
    std::size_t tile_rows() const { return tile_; }

    /// eps of this rank's part of a batch; collective (halo exchange, time parallelism).
    tensor_type eps(const tensor_type& x, double t) const {
        const std::size_t batch = check_batch(x);
        const tensor_type windows = unfold(extend(x, batch), batch);
        const Tiles tiles = tiles_of(batch);
        tensor_type e = empty_tensor<scalar>(shape_of(windows));
        tbb::parallel_for(std::size_t{0}, tiles.size(), [&](std::size_t k) {
            tiles.put(k, model_.eps(tiles.input(k, windows), t), e);
        });
        return centres(e, batch);
    }

    /// (d eps / d x)^T v for this rank's part; collective.
    tensor_type vjp(const tensor_type& x, double t, const tensor_type& v) const
        requires ScoreModel<Model>
    {
        return linearize(x, t).vjp(v);
    }

    /// The windows evaluated once per tile; each `vjp(v)` reuses their linearisations.
    auto linearize(const tensor_type& x, double t) const
        requires ScoreModel<Model>
    {
        return Linearized(*this, x, t);
    }

    /// Bytes this rank sends per `eps` (its halo states) and per VJP (the gradients of its
    /// windows that reach into its neighbours' states), for a batch of `batch` trajectories.
    std::size_t eps_bytes(std::size_t batch) const {
        std::size_t states = 0;
        for (const auto& m : halo_sends()) states += m.count;
        return states * batch * state_ * sizeof(scalar);
    }
    std::size_t vjp_bytes(std::size_t batch) const {
        std::size_t windows = 0;
        for (const auto& m : gradient_sends()) windows += m.count;
        return windows * batch * window * state_ * sizeof(scalar);
    }

private:
    template <class... Args>
    static void detail_require(bool ok, const Args&... args) {
        sda::detail::require(ok, "sda::mpi::MarkovComposedScore<K = ", K, ">: ", args...);
    }

    void init_common() {
        const Shape inner = model_.event_shape();
        detail_require(!inner.empty() && inner[0] == window, "the window model's event shape ", format_shape(inner),
                       " does not start with 2K+1 = ", window, " states");
        detail_require(length_ >= window, "trajectory length L = ", length_, " is below the window 2K+1 = ", window);
        state_ = element_count(inner) / window;
        detail_require(tile_ >= 1, "tile_rows must be at least 1");
        if constexpr (requires { Model::inference_chunk; })
            detail_require(tile_ % Model::inference_chunk == 0, "tile_rows = ", tile_,
                           " is not a multiple of the window network's inference_chunk = ", Model::inference_chunk);
    }

    std::size_t count() const { return length_ - 2 * K; }  // windows per trajectory
    std::size_t wlo() const { return wlo_[std::size_t(comm_.rank())]; }
    std::size_t whi() const { return whi_[std::size_t(comm_.rank())]; }
    std::size_t local_windows() const { return whi() - wlo() + 1; }
    /// The window whose output state i (global) takes (a window is numbered by its first state).
    std::size_t window_of(std::size_t i) const { return i < K ? 0 : (i >= length_ - K ? count() - 1 : i - K); }

    std::size_t check_batch(const tensor_type& x) const {
        const Shape shape = shape_of(x);
        detail_require(shape.size() == event_.size() + 1 && event_shape_of(shape) == event_ && shape[0] >= 1,
                       "this rank's input of shape ", format_shape(shape), " is not a batch of its events ",
                       format_shape(event_));
        if (split_ == Split::samples)
            detail_require(shape[0] == share_, "a batch of ", shape[0], " samples on rank ", comm_.rank(),
                           ", whose share of the ensemble is ", share_);
        return shape[0];
    }

    // --- the global numbering of windows, and its tiles ---------------------------------
    /// This rank's row of window w of sample b (local numbering, the global one shifted).
    std::size_t row(std::size_t b, std::size_t w, std::size_t batch) const {
        return split_ == Split::states ? (w - wlo()) * batch + b : b * count() + w;
    }
    std::size_t first_global_row(std::size_t batch) const {
        return split_ == Split::states ? wlo() * batch : first_sample_ * count();
    }
    std::size_t global_rows(std::size_t batch) const {
        return split_ == Split::states ? count() * batch : samples_ * count();
    }

    /// The tiles of the global numbering that hold this rank's rows.
    struct Tiles {
        struct Tile {
            std::size_t rows;         // the tile's size
            std::size_t offset;       // where this rank's rows start in the tile
            std::size_t first, last;  // this rank's rows [first, last) in its local numbering
        };
        std::vector<Tile> tiles;
        Shape window_shape;
        std::size_t per_row = 0;

        std::size_t size() const { return tiles.size(); }
        /// Tile k's input: this rank's windows in place, zeros elsewhere.
        tensor_type input(std::size_t k, const tensor_type& windows) const {
            const Tile& tile = tiles[k];
            tensor_type in = (tile.offset == 0 && tile.last - tile.first == tile.rows)
                                 ? empty_tensor<scalar>(batch_shape(tile.rows, window_shape))
                                 : tensor_type(xt::zeros<scalar>(batch_shape(tile.rows, window_shape)));
            std::memcpy(in.data() + tile.offset * per_row, windows.data() + tile.first * per_row,
                        (tile.last - tile.first) * per_row * sizeof(scalar));
            return in;
        }
        /// This rank's rows of tile k's output, into `out` (local numbering).
        void put(std::size_t k, const tensor_type& result, tensor_type& out) const {
            const Tile& tile = tiles[k];
            std::memcpy(out.data() + tile.first * per_row, result.data() + tile.offset * per_row,
                        (tile.last - tile.first) * per_row * sizeof(scalar));
        }
    };
    Tiles tiles_of(std::size_t batch) const {
        Tiles out;
        out.window_shape = model_.event_shape();
        out.per_row = window * state_;
        const std::size_t begin = first_global_row(batch), end = begin + local_windows() * batch;
        const std::size_t total = global_rows(batch);
        for (std::size_t start = begin / tile_ * tile_; start < end; start += tile_) {
            const std::size_t stop = std::min(total, start + tile_);
            const std::size_t a = std::max(start, begin), z = std::min(stop, end);
            out.tiles.push_back({stop - start, a - start, a - begin, z - begin});
        }
        return out;
    }

    // --- the halo exchange --------------------------------------------------------------
    /// One message: `count` consecutive states (or windows) from `first` (global), to or from `peer`.
    struct Message {
        int peer;
        std::size_t first, count;
    };
    /// Consecutive states (or windows) [first, first + count), global indices.
    struct Range {
        std::size_t first, count;
    };
    /// The states of rank `from` that the windows of rank `to` read ([wlo_to, whi_to + 2K]).
    Range halo(int from, int to) const {
        const std::size_t a = std::max(starts_[from], wlo_[to]), b = std::min(starts_[from + 1], whi_[to] + 2 * K + 1);
        return {a, b > a ? b - a : 0};
    }
    /// The windows of rank `from` that reach into the states of rank `to` (window w holds [w, w + 2K]).
    Range gradients(int from, int to) const {
        const std::size_t s0 = starts_[to], s1 = starts_[to + 1];
        const std::size_t a = std::max(wlo_[from], s0 >= 2 * K ? s0 - 2 * K : 0), b = std::min(whi_[from] + 1, s1);
        return {a, b > a ? b - a : 0};
    }
    /// This rank's messages to its neighbours (`sending`) or from them, `part(from, to)` each:
    /// what one rank sends is by construction what its neighbour receives.
    template <class Part>
    std::vector<Message> messages(Part part, bool sending) const {
        std::vector<Message> out;
        if (split_ != Split::states) return out;
        const int r = comm_.rank();
        for (const int q : {r - 1, r + 1}) {
            if (q < 0 || q >= comm_.size()) continue;
            const Range range = sending ? (this->*part)(r, q) : (this->*part)(q, r);
            if (range.count > 0) out.push_back({q, range.first, range.count});
        }
        return out;
    }
    std::vector<Message> halo_sends() const { return messages(&MarkovComposedScore::halo, true); }
    std::vector<Message> halo_receives() const { return messages(&MarkovComposedScore::halo, false); }
    std::vector<Message> gradient_sends() const { return messages(&MarkovComposedScore::gradients, true); }
    std::vector<Message> gradient_receives() const { return messages(&MarkovComposedScore::gradients, false); }

    /// Posts the receives and sends of one exchange and waits for all of them.
    void exchange(std::vector<std::pair<int, std::vector<scalar>*>> receives,
                  std::vector<std::pair<int, const std::vector<scalar>*>> sends, int tag) const {
        std::vector<MPI_Request> requests;
        for (auto& [peer, buffer] : receives) {
            requests.emplace_back();
            detail::check(MPI_Irecv(buffer->data(), detail::to_int(buffer->size(), "a halo message"), detail::datatype<scalar>(),
                                    peer, tag, comm_.get(), &requests.back()),
                          "MPI_Irecv");
        }
        for (auto& [peer, buffer] : sends) {
            requests.emplace_back();
            detail::check(MPI_Isend(buffer->data(), detail::to_int(buffer->size(), "a halo message"), detail::datatype<scalar>(),
                                    peer, tag, comm_.get(), &requests.back()),
                          "MPI_Isend");
        }
        detail::check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    }

    /// This rank's trajectories with their halos: [B, states wlo .. whi + 2K, S...] as a flat
    /// buffer (time parallelism); the trajectories themselves for an ensemble.
    struct Extended {
        const scalar* data;
        std::size_t first, states;  // the global index of its first state, and its states per sample
        std::vector<scalar> storage;
    };
    Extended extend(const tensor_type& x, std::size_t batch) const {
        if (split_ == Split::samples) return {x.data(), 0, length_, {}};
        const std::size_t first = wlo(), states = whi() + 2 * K - wlo() + 1, S = state_;
        Extended out{nullptr, first, states, std::vector<scalar>(batch * states * S)};
        const auto copy_states = [&](scalar* to, std::size_t to_states, std::size_t to_first, const scalar* from,
                                     std::size_t from_states, std::size_t from_first, std::size_t a, std::size_t n) {
            for (std::size_t b = 0; b < batch; ++b)
                std::memcpy(to + (b * to_states + a - to_first) * S, from + (b * from_states + a - from_first) * S,
                            n * S * sizeof(scalar));
        };
        copy_states(out.storage.data(), states, first, x.data(), states_, first_state_, first_state_, states_);
        const auto sends = halo_sends(), receives = halo_receives();
        std::vector<std::vector<scalar>> outgoing(sends.size()), incoming(receives.size());
        std::vector<std::pair<int, const std::vector<scalar>*>> send_list;
        std::vector<std::pair<int, std::vector<scalar>*>> receive_list;
        for (std::size_t k = 0; k < sends.size(); ++k) {
            outgoing[k].resize(batch * sends[k].count * S);
            copy_states(outgoing[k].data(), sends[k].count, sends[k].first, x.data(), states_, first_state_,
                        sends[k].first, sends[k].count);
            send_list.emplace_back(sends[k].peer, &outgoing[k]);
        }
        for (std::size_t k = 0; k < receives.size(); ++k) {
            incoming[k].resize(batch * receives[k].count * S);
            receive_list.emplace_back(receives[k].peer, &incoming[k]);
        }
        exchange(std::move(receive_list), std::move(send_list), 1);
        for (std::size_t k = 0; k < receives.size(); ++k)
            copy_states(out.storage.data(), states, first, incoming[k].data(), receives[k].count, receives[k].first,
                        receives[k].first, receives[k].count);
        out.data = out.storage.data();
        return out;
    }

    // --- windows, centres and their adjoints -----------------------------------------------
    /// This rank's windows [local windows x B, 2K+1, S...] (local numbering).
    tensor_type unfold(const Extended& ext, std::size_t batch) const {
        tensor_type out = empty_tensor<scalar>(batch_shape(local_windows() * batch, model_.event_shape()));
        const std::size_t per = window * state_;
        tbb::parallel_for(std::size_t{0}, batch, [&](std::size_t b) {
            for (std::size_t w = wlo(); w <= whi(); ++w)
                std::memcpy(out.data() + row(b, w, batch) * per, ext.data + (b * ext.states + w - ext.first) * state_,
                            per * sizeof(scalar));
        });
        return out;
    }
    /// State i from the window that serves it: [B, this rank's states, S...].
    tensor_type centres(const tensor_type& e, std::size_t batch) const {
        tensor_type out = empty_tensor<scalar>(batch_shape(batch, event_));
        tbb::parallel_for(std::size_t{0}, batch, [&](std::size_t b) {
            for (std::size_t i = 0; i < states_; ++i) {
                const std::size_t g = first_state_ + i, w = window_of(g);
                std::memcpy(out.data() + (b * states_ + i) * state_,
                            e.data() + (row(b, w, batch) * window + g - w) * state_, state_ * sizeof(scalar));
            }
        });
        return out;
    }
    /// The adjoint of `centres`: v placed in zero windows.
    tensor_type centres_adjoint(const tensor_type& v, std::size_t batch) const {
        tensor_type out = xt::zeros<scalar>(batch_shape(local_windows() * batch, model_.event_shape()));
        tbb::parallel_for(std::size_t{0}, batch, [&](std::size_t b) {
            for (std::size_t i = 0; i < states_; ++i) {
                const std::size_t g = first_state_ + i, w = window_of(g);
                std::memcpy(out.data() + (row(b, w, batch) * window + g - w) * state_,
                            v.data() + (b * states_ + i) * state_, state_ * sizeof(scalar));
            }
        });
        return out;
    }
    /// The adjoint of `unfold`: each state the sum, in window order, of what the windows that
    /// hold it (this rank's and its neighbours') give it. Collective (time parallelism).
    tensor_type windows_adjoint(const tensor_type& g, std::size_t batch) const {
        const std::size_t per = window * state_;
        const auto sends = gradient_sends(), receives = gradient_receives();
        std::vector<std::vector<scalar>> outgoing(sends.size()), incoming(receives.size());
        std::vector<std::pair<int, const std::vector<scalar>*>> send_list;
        std::vector<std::pair<int, std::vector<scalar>*>> receive_list;
        for (std::size_t k = 0; k < sends.size(); ++k) {  // window-major rows: one block of rows
            const scalar* from = g.data() + row(0, sends[k].first, batch) * per;
            outgoing[k].assign(from, from + sends[k].count * batch * per);
            send_list.emplace_back(sends[k].peer, &outgoing[k]);
        }
        for (std::size_t k = 0; k < receives.size(); ++k) {
            incoming[k].resize(receives[k].count * batch * per);
            receive_list.emplace_back(receives[k].peer, &incoming[k]);
        }
        if (split_ == Split::states) exchange(std::move(receive_list), std::move(send_list), 2);
        // the row of window w of sample b, wherever it lives
        const auto source = [&](std::size_t b, std::size_t w) -> const scalar* {
            if (w >= wlo() && w <= whi()) return g.data() + row(b, w, batch) * per;
            for (std::size_t k = 0; k < receives.size(); ++k)
                if (w >= receives[k].first && w < receives[k].first + receives[k].count)
                    return incoming[k].data() + ((w - receives[k].first) * batch + b) * per;
            sda::detail::fail("sda::mpi::MarkovComposedScore: window ", w, " reaches rank ", comm_.rank(),
                              "'s states but was not received (a bug of the exchange plan)");
        };
        tensor_type out = xt::zeros<scalar>(batch_shape(batch, event_));
        tbb::parallel_for(std::size_t{0}, batch, [&](std::size_t b) {
            for (std::size_t i = 0; i < states_; ++i) {
                const std::size_t s = first_state_ + i;
                scalar* o = out.data() + (b * states_ + i) * state_;
                const std::size_t w_first = s >= 2 * K ? s - 2 * K : 0, w_last = std::min(s, count() - 1);
                for (std::size_t w = w_first; w <= w_last; ++w) {
                    const scalar* in = source(b, w) + (s - w) * state_;
                    for (std::size_t c = 0; c < state_; ++c) o[c] += in[c];
                }
            }
        });
        return out;
    }

    class Linearized {
        using inner_type = decltype(sda::linearize(std::declval<const Model&>(), std::declval<const tensor_type&>(), 0.0));

    public:
        Linearized(const MarkovComposedScore& composed, const tensor_type& x, double t)
            : composed_(&composed), batch_(composed.check_batch(x)), tiles_(composed.tiles_of(batch_)) {
            const tensor_type windows = composed.unfold(composed.extend(x, batch_), batch_);
            inner_.resize(tiles_.size());
            tensor_type e = empty_tensor<scalar>(shape_of(windows));
            tbb::parallel_for(std::size_t{0}, tiles_.size(), [&](std::size_t k) {
                inner_[k].emplace(sda::linearize(composed.model_, tiles_.input(k, windows), t));
                tiles_.put(k, inner_[k]->eps(), e);
            });
            eps_ = composed.centres(e, batch_);
        }
        const tensor_type& eps() const { return eps_; }
        tensor_type vjp(const tensor_type& v) const {
            const Shape shape = shape_of(v);
            composed_->detail_require(shape == shape_of(eps_), "a cotangent of shape ", format_shape(shape),
                                      " for this rank's batch of shape ", format_shape(shape_of(eps_)));
            const tensor_type cotangent = composed_->centres_adjoint(v, batch_);
            tensor_type g = empty_tensor<scalar>(shape_of(cotangent));
            tbb::parallel_for(std::size_t{0}, tiles_.size(), [&](std::size_t k) {
                tiles_.put(k, inner_[k]->vjp(tiles_.input(k, cotangent)), g);
            });
            return composed_->windows_adjoint(g, batch_);
        }

    private:
        const MarkovComposedScore* composed_;
        std::size_t batch_;
        Tiles tiles_;
        std::vector<std::optional<inner_type>> inner_;
        tensor_type eps_;
    };

    Model model_;
    Communicator comm_;
    Split split_;
    std::size_t length_, tile_;
    std::size_t samples_ = 0, first_sample_ = 0, share_ = 0;  // ensemble
    std::vector<std::size_t> starts_;                         // time: block starts, P + 1
    std::vector<std::size_t> wlo_, whi_;                      // each rank's windows [wlo, whi]
    std::size_t state_ = 0, first_state_ = 0, states_ = 0;
    Shape event_;
};

}  // namespace sda::mpi
