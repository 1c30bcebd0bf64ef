// sda/backend/torch.hpp: `TorchBackend`, the backend of models on libtorch
// tensors (CPU or CUDA), and `TorchScoreModel`, which makes any torch module
// computing eps(x, t) an sda `ScoreModel`.
//
// Needs libtorch (CMake target `sda::torch`, defined when find_package(Torch)
// succeeds); nothing else in sda includes it. Samplers, guidance and
// `MarkovComposedScore` run unchanged on a `TorchScoreModel`: every tensor they
// create lives on the backend's device, per-sample quantities are [B] device
// tensors and scalars are plain doubles, so a sampling run makes no host round
// trip between steps. Input VJPs come from autograd. Scatter-adds use torch's
// index_add_, which on CUDA adds in no fixed order: the sums of overlapping
// windows may then differ in the last bit from run to run.
//
//   auto module = torch::jit::load("window_model.pt");     // exported from PyTorch
//   sda::TorchBackend be{.device = torch::kCUDA};
//   sda::TorchScoreModel model(module, sda::VPCosine{}, {5, 3}, be);
//   sda::MarkovComposedScore<decltype(model), 2> prior(model, 65);
//   auto x = sda::sample(sda::PredictorCorrector{}, prior, 1024, gen);   // [1024, 65, 3] on the GPU
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "sda/backend/concepts.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"
#include "sda/schedule/concepts.hpp"
#include "sda/score/concepts.hpp"

namespace sda {

namespace detail {

inline std::vector<std::int64_t> torch_sizes(const Shape& shape) { return {shape.begin(), shape.end()}; }

inline Shape shape_of_torch(const torch::Tensor& x) {
    Shape shape;
    for (const auto extent : x.sizes()) shape.push_back(static_cast<std::size_t>(extent));
    return shape;
}

}  // namespace detail

/// The array algebra of sda on libtorch tensors of one dtype on one device.
///
/// Noise: with `Noise::device` (the default), `normal` draws on the device from
/// a torch generator seeded by (gen.seed(), draw): reproducible for a seed and a
/// device, but not batch-size invariant and not the numbers `CpuBackend` draws.
/// With `Noise::host` it draws sda's own Philox numbers on the host and copies
/// them over: exactly `CpuBackend`'s noise (for tests and CPU/GPU comparisons),
/// at the price of a host-to-device copy per draw.
///
/// Checks: a sampler checks its samples for NaN and infinity after every step.
/// `Checks::deferred` (the default on a CUDA device) keeps each step's verdict on
/// the device and reads them all once, after the last step, so that a sampling
/// run waits for the device only at its end; `Checks::each_step` (the default on
/// the CPU) reads it at every step, as `CpuBackend` does. A run whose samples go
/// bad then fails after its last step, naming the first step that went bad.
struct TorchBackend {
    using tensor_type = torch::Tensor;
    enum class Noise { device, host };
    enum class Checks { automatic, each_step, deferred };

    torch::Device device = torch::kCPU;
    torch::ScalarType dtype = torch::kFloat32;
    Noise noise = Noise::device;
    Checks checks = Checks::automatic;  ///< deferred on CUDA, each_step elsewhere

    torch::TensorOptions options() const { return torch::TensorOptions().dtype(dtype).device(device); }
    /// `x` as a tensor of this backend (moved to its device and dtype when needed).
    torch::Tensor adopt(const torch::Tensor& x) const { return x.to(options()); }

    // --- creation -----------------------------------------------------------
    Shape shape(const torch::Tensor& x) const { return detail::shape_of_torch(x); }
    torch::Tensor zeros(const Shape& shape) const { return torch::zeros(detail::torch_sizes(shape), options()); }
    torch::Tensor fill_like(const torch::Tensor& x, double a) const { return torch::full_like(x, a); }
    torch::Tensor normal(const Shape& shape, Generator& gen) const {
        const std::uint64_t draw = gen.next_draw();
        const auto sizes = detail::torch_sizes(shape);
        if (noise == Noise::host) {
            detail::require(dtype == torch::kFloat32 || dtype == torch::kFloat64,
                            "sda::TorchBackend::normal: host noise is drawn in float32 or float64, not ", c10::toString(dtype));
            const std::size_t rows = shape.empty() ? 1 : shape[0];
            const std::size_t cols = rows ? element_count(shape) / rows : 0;
            auto host = torch::empty(sizes, torch::TensorOptions().dtype(dtype));
            if (dtype == torch::kFloat64)
                detail::fill_random(host.data_ptr<double>(), rows, cols, gen.seed(), draw, detail::Distribution::normal);
            else
                detail::fill_random(host.data_ptr<float>(), rows, cols, gen.seed(), draw, detail::Distribution::normal);
            return host.to(options());
        }
        auto source = at::globalContext().defaultGenerator(device).clone();
        {
            std::lock_guard<std::mutex> lock(source.mutex());
            // splitmix64 of (seed, draw): distinct streams for distinct draws
            std::uint64_t z = gen.seed() + 0x9e3779b97f4a7c15ULL * (draw + 1);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            source.set_current_seed(z ^ (z >> 31));
        }
        return torch::randn(sizes, source, options());
    }

    // --- element-wise -----------------------------------------------------------
    torch::Tensor axpby(double a, const torch::Tensor& x, double b, const torch::Tensor& y) const {
        same_shape(x, y, "axpby");
        return torch::add(torch::mul(x, a), y, b);
    }
    torch::Tensor scale(double a, const torch::Tensor& x) const { return torch::mul(x, a); }
    torch::Tensor add_scalar(const torch::Tensor& x, double a) const { return torch::add(x, a); }
    torch::Tensor add(const torch::Tensor& x, const torch::Tensor& y) const { return torch::add(x, y); }
    torch::Tensor sub(const torch::Tensor& x, const torch::Tensor& y) const { return torch::sub(x, y); }
    torch::Tensor mul(const torch::Tensor& x, const torch::Tensor& y) const { return torch::mul(x, y); }
    torch::Tensor div(const torch::Tensor& x, const torch::Tensor& y) const { return torch::div(x, y); }
    torch::Tensor safe_div(const torch::Tensor& x, const torch::Tensor& y) const {
        return torch::where(y == 0, torch::zeros_like(x), x / y);
    }
    torch::Tensor sqrt(const torch::Tensor& x) const { return torch::sqrt(x); }
    torch::Tensor positive(const torch::Tensor& x) const { return (x > 0).to(x.scalar_type()); }

    // --- per sample ---------------------------------------------------------------
    torch::Tensor scale_rows(const torch::Tensor& v, const torch::Tensor& x) const {
        detail::require(x.dim() >= 1 && v.dim() == 1 && v.size(0) == x.size(0), "sda::TorchBackend::scale_rows: ",
                        "per-sample vector of shape ", format_shape(shape(v)), " does not match batch ",
                        format_shape(shape(x)));
        std::vector<std::int64_t> sizes(static_cast<std::size_t>(x.dim()), 1);
        sizes[0] = v.size(0);
        return x * v.view(sizes);
    }
    /// Per-sample sums accumulate in double, as `CpuBackend`'s.
    torch::Tensor dot(const torch::Tensor& x, const torch::Tensor& y) const {
        same_shape(x, y, "dot");
        return rows(x * y).sum(1, false, torch::kFloat64).to(dtype);
    }
    torch::Tensor mean_square(const torch::Tensor& x) const {
        return rows(x.square()).mean(1, false, torch::kFloat64).to(dtype);
    }
    torch::Tensor mean_like(const torch::Tensor& x) const {
        detail::require(x.numel() > 0, "sda::TorchBackend::mean_like: empty tensor");
        return x.mean(torch::kFloat64).to(dtype).expand(x.sizes());
    }

    // --- windows of a trajectory ------------------------------------------------
    /// [B, L, S...] -> [B (L-w+1), w, S...]: every stride-1 window of w states, on the device.
    /// Positions into one sample's flat entries, as an int64 tensor on the device.
    struct Index {
        torch::Tensor positions;
        std::size_t count = 0, bound = 0;  // positions, 1 + the largest
    };
    using index_type = Index;
    Index index(std::vector<std::size_t> positions) const {
        Index out;
        out.count = positions.size();
        for (std::size_t p : positions) out.bound = std::max(out.bound, p + 1);
        const std::vector<std::int64_t> values(positions.begin(), positions.end());
        out.positions = torch::tensor(values, torch::kInt64).to(device);
        return out;
    }
    torch::Tensor gather(const torch::Tensor& x, const Index& index, const Shape& shape) const {
        detail::require(x.dim() >= 1 && element_count(shape) == index.count &&
                            index.bound <= static_cast<std::size_t>(x.numel() / std::max<std::int64_t>(x.size(0), 1)),
                        "sda::TorchBackend::gather: ", index.count, " positions below ", index.bound,
                        " into samples of shape ", format_shape(this->shape(x)), " for an output of shape ",
                        format_shape(shape));
        return x.reshape({x.size(0), -1}).index_select(1, index.positions).reshape(sizes_of(x.size(0), shape));
    }
    torch::Tensor scatter_add(const torch::Tensor& v, const Index& index, const Shape& shape) const {
        detail::require(v.dim() >= 1 && v.numel() == v.size(0) * static_cast<std::int64_t>(index.count) &&
                            index.bound <= element_count(shape),
                        "sda::TorchBackend::scatter_add: ", index.count, " positions below ", index.bound,
                        " from samples of shape ", format_shape(this->shape(v)), " into an output of shape ",
                        format_shape(shape));
        const auto cols = static_cast<std::int64_t>(element_count(shape));
        return torch::zeros({v.size(0), cols}, v.options())
            .index_add_(1, index.positions, v.reshape({v.size(0), -1}))
            .reshape(sizes_of(v.size(0), shape));
    }
    torch::Tensor reshape(const torch::Tensor& x, const Shape& shape) const {
        detail::require(static_cast<std::size_t>(x.numel()) == element_count(shape), "sda::TorchBackend::reshape: ",
                        format_shape(this->shape(x)), " cannot become ", format_shape(shape));
        return x.reshape(detail::torch_sizes(shape));
    }

    torch::Tensor from_host(std::span<const double> values, const Shape& shape) const {
        detail::require(values.size() == element_count(shape), "sda::TorchBackend::from_host: ", values.size(),
                        " values for shape ", format_shape(shape));
        return torch::tensor(std::vector<double>(values.begin(), values.end()), torch::kFloat64)
            .reshape(detail::torch_sizes(shape))
            .to(options());
    }
    torch::Tensor matmul(const torch::Tensor& x, const torch::Tensor& a) const {
        detail::require(a.dim() == 2 && x.dim() >= 1 && x.numel() == x.size(0) * a.size(1),
                        "sda::TorchBackend::matmul: samples of shape ", format_shape(shape(x)),
                        " against a matrix of shape ", format_shape(shape(a)));
        return torch::matmul(x.reshape({x.size(0), -1}), a.t());
    }
    torch::Tensor matmul_adjoint(const torch::Tensor& v, const torch::Tensor& a) const {
        detail::require(a.dim() == 2 && v.dim() == 2 && v.size(1) == a.size(0),
                        "sda::TorchBackend::matmul_adjoint: cotangent of shape ", format_shape(shape(v)),
                        " against a matrix of shape ", format_shape(shape(a)));
        return torch::matmul(v, a);
    }

    bool all_finite(const torch::Tensor& x) const { return torch::isfinite(x).all().item<bool>(); }
    /// Whether samplers should collect `finite_flag`s and read them once (`Checks`).
    bool defers_checks() const { return checks == Checks::deferred || (checks == Checks::automatic && device.is_cuda()); }
    /// Whether x is finite, as a boolean scalar on the device: no wait.
    torch::Tensor finite_flag(const torch::Tensor& x) const { return torch::isfinite(x).all(); }
    /// The index of the first false flag, or flags.size() when all hold (one copy to the host).
    std::size_t first_false(const std::vector<torch::Tensor>& flags) const {
        if (flags.empty()) return 0;
        const torch::Tensor bad = (~torch::stack(flags)).nonzero().flatten().to(torch::kCPU);
        return bad.numel() == 0 ? flags.size() : static_cast<std::size_t>(bad[0].item<std::int64_t>());
    }
    /// The indices b of the samples x[b] with a NaN or infinite entry (copied to the host).
    std::vector<std::size_t> non_finite_samples(const torch::Tensor& x) const {
        const torch::Tensor bad = (~torch::isfinite(x)).reshape({x.size(0), -1}).any(1).nonzero().flatten().to(torch::kCPU);
        std::vector<std::size_t> out;
        for (std::int64_t i = 0; i < bad.size(0); ++i) out.push_back(static_cast<std::size_t>(bad[i].item<std::int64_t>()));
        return out;
    }
    double min(const torch::Tensor& x) const {
        detail::require(x.numel() > 0, "sda::TorchBackend::min: empty tensor");
        return x.min().item<double>();
    }

private:
    void same_shape(const torch::Tensor& x, const torch::Tensor& y, const char* op) const {
        detail::require(x.sizes() == y.sizes(), "sda::TorchBackend::", op, ": shapes ", format_shape(shape(x)),
                        " and ", format_shape(shape(y)), " differ");
    }
    static std::vector<std::int64_t> sizes_of(std::int64_t batch, const Shape& shape) {
        std::vector<std::int64_t> sizes{batch};
        sizes.insert(sizes.end(), shape.begin(), shape.end());
        return sizes;
    }
    static torch::Tensor rows(const torch::Tensor& x) {
        detail::require(x.dim() >= 1, "sda::TorchBackend: a per-sample reduction needs a batch dimension");
        return x.reshape({x.size(0), -1});
    }
};

static_assert(Backend<TorchBackend>, "TorchBackend must satisfy sda::Backend");

/// An sda tensor as a torch tensor of `backend` (a copy, on its device).
template <class T>
torch::Tensor to_torch(const Tensor<T>& x, const TorchBackend& backend = {}) {
    const auto dtype = std::is_same_v<T, double> ? torch::kFloat64 : torch::kFloat32;
    static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>, "sda::to_torch: float or double tensors");
    const Tensor<T> contiguous = x;
    return torch::from_blob(const_cast<T*>(contiguous.data()), detail::torch_sizes(shape_of(x)),
                            torch::TensorOptions().dtype(dtype))
        .to(backend.options(), /*non_blocking=*/false, /*copy=*/true);
}

/// A torch tensor (any device) as an sda tensor on the host.
template <class T>
Tensor<T> from_torch(const torch::Tensor& x) {
    static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>, "sda::from_torch: float or double tensors");
    const auto host = x.detach().to(torch::kCPU, std::is_same_v<T, double> ? torch::kFloat64 : torch::kFloat32).contiguous();
    Tensor<T> out = empty_tensor<T>(detail::shape_of_torch(host));
    std::copy_n(host.template data_ptr<T>(), out.size(), out.data());
    return out;
}

/// A pointer-like handle to a C++ torch module computing eps(x, t): a `torch::nn::ModuleHolder`
/// (`TORCH_MODULE`) or a `std::shared_ptr` to a `torch::nn::Module` with `forward(x, t)`.
template <class M>
concept TorchModulePointer = requires(M& m, const torch::Tensor& x) {
    { m->forward(x, x) } -> std::convertible_to<torch::Tensor>;
    m->to(torch::kCPU, torch::kFloat32);
    m->eval();
};

/// eps(x, t) of a torch model: `x` [B, event...] and `t` [B], both on the backend's device.
using TorchForward = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

/// Any torch computation of eps(x, t) as an sda `ScoreModel` on a `TorchBackend`.
///
/// The wrapped module takes `(x, t)`: x a batch [B, event...] and t the diffusion
/// times [B], in the backend's dtype on its device, and returns eps shaped like x
/// (the convention of the paper's ScoreNet and ScoreUNet). `eps` runs without
/// autograd; `vjp` and `linearize` differentiate with respect to x only. The
/// model holds the module by shared pointer: copies share it.
template <NoiseSchedule Schedule>
class TorchScoreModel {
public:
    using backend_type = TorchBackend;
    using tensor_type = torch::Tensor;
    using schedule_type = Schedule;

    /// A model from a callable `forward(x, t)`.
    TorchScoreModel(TorchForward forward, Schedule schedule, Shape event, TorchBackend backend = {})
        : forward_(std::move(forward)), schedule_(std::move(schedule)), event_(std::move(event)), backend_(backend) {
        detail::require(static_cast<bool>(forward_), "sda::TorchScoreModel: no forward function");
        detail::require(!event_.empty(), "sda::TorchScoreModel: the event shape needs at least one axis");
    }
    /// A model from a C++ module (a `torch::nn::ModuleHolder` such as `sda::torch_nn::ScoreNet`,
    /// or a `std::shared_ptr` to a module) with `forward(x, t)`; the module is moved to the
    /// backend's device and dtype and set to evaluation mode.
    template <TorchModulePointer Module>
    TorchScoreModel(Module module, Schedule schedule, Shape event, TorchBackend backend = {})
        : TorchScoreModel(prepare(std::move(module), backend), std::move(schedule), std::move(event), backend) {}
    /// A model from a TorchScript module (`torch::jit::load`); moved to the backend's
    /// device and dtype, evaluation mode.
    TorchScoreModel(torch::jit::Module module, Schedule schedule, Shape event, TorchBackend backend = {})
        : TorchScoreModel(prepare_script(std::move(module), backend), std::move(schedule), std::move(event),
                          backend) {}
    /// A TorchScript model from a file written by `torch.jit.save` / `ScriptModule.save`.
    static TorchScoreModel load(const std::string& path, Schedule schedule, Shape event, TorchBackend backend = {}) {
        torch::jit::Module module;
        try {
            module = torch::jit::load(path, backend.device);
        } catch (const c10::Error& e) {
            detail::fail("sda::TorchScoreModel::load: cannot load TorchScript module ", path, ": ",
                         e.what_without_backtrace());
        }
        return TorchScoreModel(std::move(module), std::move(schedule), std::move(event), backend);
    }

    const TorchBackend& backend() const { return backend_; }
    const Schedule& schedule() const { return schedule_; }
    const Shape& event_shape() const { return event_; }

    torch::Tensor eps(const torch::Tensor& x, double t) const {
        torch::NoGradGuard no_grad;
        return call(x, t);
    }
    torch::Tensor vjp(const torch::Tensor& x, double t, const torch::Tensor& v) const {
        return linearize(x, t).vjp(v);
    }

    /// eps at (x, t) with its autograd graph kept: each `vjp(v)` is one backward pass.
    class Linearized {
    public:
        Linearized(const TorchScoreModel& model, const torch::Tensor& x, double t) {
            torch::AutoGradMode grad(true);
            input_ = x.detach().requires_grad_(true);
            output_ = model.call(input_, t);
            eps_ = output_.detach();
        }
        const torch::Tensor& eps() const { return eps_; }
        torch::Tensor vjp(const torch::Tensor& v) const {
            detail::require(v.sizes() == eps_.sizes(), "sda::TorchScoreModel::vjp: cotangent of shape ",
                            format_shape(detail::shape_of_torch(v)), " for eps of shape ",
                            format_shape(detail::shape_of_torch(eps_)));
            if (!output_.requires_grad()) return torch::zeros_like(input_);  // eps does not depend on x
            auto grads = torch::autograd::grad({output_}, {input_}, {v}, /*retain_graph=*/true,
                                               /*create_graph=*/false, /*allow_unused=*/true);
            return grads[0].defined() ? grads[0] : torch::zeros_like(input_);
        }

    private:
        torch::Tensor input_, output_, eps_;
    };
    Linearized linearize(const torch::Tensor& x, double t) const { return Linearized(*this, x, t); }

private:
    torch::Tensor call(const torch::Tensor& x, double t) const {
        detail::require(x.dim() == static_cast<std::int64_t>(event_.size()) + 1 &&
                            event_shape_of(detail::shape_of_torch(x)) == event_,
                        "sda::TorchScoreModel: input of shape ", format_shape(detail::shape_of_torch(x)),
                        " is not a batch of events ", format_shape(event_));
        detail::require(std::isfinite(t) && t >= 0.0 && t <= 1.0, "sda::TorchScoreModel: the diffusion time t = ", t,
                        " is outside [0, 1]");
        const torch::Tensor times = torch::full({x.size(0)}, t, x.options().requires_grad(false));
        torch::Tensor out;
        try {
            out = forward_(x, times);
        } catch (const c10::Error& e) {
            detail::fail("sda::TorchScoreModel: the module failed on input of shape ", format_shape(detail::shape_of_torch(x)),
                         " (", c10::toString(x.scalar_type()), " on ", x.device().str(), "): ", e.what_without_backtrace());
        }
        detail::require(out.sizes() == x.sizes(), "sda::TorchScoreModel: the module returned shape ",
                        format_shape(detail::shape_of_torch(out)), " for input ", format_shape(detail::shape_of_torch(x)));
        return out;
    }
    template <class Module>
    static TorchForward prepare(Module module, const TorchBackend& backend) {
        module->to(backend.device, backend.dtype);
        module->eval();
        return [module](const torch::Tensor& x, const torch::Tensor& t) mutable -> torch::Tensor { return module->forward(x, t); };
    }
    static TorchForward prepare_script(torch::jit::Module module, const TorchBackend& backend) {
        module.to(backend.device, backend.dtype);
        module.eval();
        auto shared = std::make_shared<torch::jit::Module>(std::move(module));
        return [shared](const torch::Tensor& x, const torch::Tensor& t) -> torch::Tensor {
            return shared->forward({x, t}).toTensor();
        };
    }

    TorchForward forward_;
    Schedule schedule_;
    Shape event_;
    TorchBackend backend_;
};

}  // namespace sda
