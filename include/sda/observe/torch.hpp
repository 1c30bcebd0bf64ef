// sda/observe/torch.hpp: `TorchOperator`, an observation operator on libtorch
// tensors given by any differentiable torch function, for guidance on a
// `TorchBackend` model (needs libtorch, target `sda::torch`).
//
// A(x) is the function itself; its VJP (dA/dx)^T v is one autograd backward
// pass, and its JVP (dA/dx) dx comes from the double-backward identity
// d/du [(dA/dx)^T u] . dx = (dA/dx) dx, so MMPS works too. Masks, strided
// subsampling, pooling, saturations and their compositions are one-liners:
//
//   sda::TorchOperator every_8th([](const torch::Tensor& x) {   // x [B, 65, 3]
//       return x.index({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 8),
//                       torch::indexing::Slice(0, 1)});
//   }, be);
//   sda::GaussianObservation obs(every_8th, y, 0.25 * 0.25, be);
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "sda/backend/torch.hpp"
#include "sda/core/error.hpp"
#include "sda/observe/concepts.hpp"

namespace sda {

class TorchOperator {
public:
    /// A(x) for a batch x [B, event...], returning [B, obs...]; must be differentiable by autograd.
    using Function = std::function<torch::Tensor(const torch::Tensor&)>;

    explicit TorchOperator(Function function, TorchBackend backend = {})
        : function_(std::move(function)), backend_(backend) {
        detail::require(static_cast<bool>(function_), "sda::TorchOperator: no function");
    }

    /// The observation shape of one event: A applied to one zero event.
    Shape output_shape(const Shape& event) const {
        torch::NoGradGuard no_grad;
        Shape batch{1};
        batch.insert(batch.end(), event.begin(), event.end());
        torch::Tensor out;
        try {
            out = function_(backend_.zeros(batch));
        } catch (const c10::Error& e) {
            detail::fail("sda::TorchOperator: the function does not accept events of shape ", format_shape(event), ": ",
                         e.what_without_backtrace());
        }
        detail::require(out.dim() >= 1 && out.size(0) == 1, "sda::TorchOperator: the function maps a batch of 1 to shape ",
                        format_shape(backend_.shape(out)), ", not a batch of 1");
        return event_shape_of(backend_.shape(out));
    }
    torch::Tensor apply(const torch::Tensor& x) const {
        torch::NoGradGuard no_grad;
        return call(x);
    }
    torch::Tensor vjp(const torch::Tensor& x, const torch::Tensor& v) const {
        torch::AutoGradMode grad(true);
        const torch::Tensor input = x.detach().requires_grad_(true);
        const torch::Tensor out = call(input);
        detail::require(out.sizes() == v.sizes(), "sda::TorchOperator::vjp: cotangent of shape ",
                        format_shape(backend_.shape(v)), " for observations of shape ", format_shape(backend_.shape(out)));
        return pull_back(out, input, v, false);
    }
    torch::Tensor jvp(const torch::Tensor& x, const torch::Tensor& dx) const {
        torch::AutoGradMode grad(true);
        const torch::Tensor input = x.detach().requires_grad_(true);
        const torch::Tensor out = call(input);
        if (!out.requires_grad()) return torch::zeros_like(out);
        // g(u) = (dA/dx)^T u is linear in u; its VJP with dx is (dA/dx) dx.
        const torch::Tensor u = torch::zeros_like(out).requires_grad_(true);
        const torch::Tensor g = pull_back(out, input, u, true);
        if (!g.requires_grad()) return torch::zeros_like(out);
        auto grads = torch::autograd::grad({g}, {u}, {dx}, /*retain_graph=*/false, /*create_graph=*/false,
                                           /*allow_unused=*/true);
        return grads[0].defined() ? grads[0] : torch::zeros_like(out);
    }

private:
    torch::Tensor call(const torch::Tensor& x) const {
        try {
            return function_(x);
        } catch (const c10::Error& e) {
            detail::fail("sda::TorchOperator: the function failed on input of shape ", format_shape(backend_.shape(x)), ": ",
                         e.what_without_backtrace());
        }
    }
    static torch::Tensor pull_back(const torch::Tensor& out, const torch::Tensor& input, const torch::Tensor& v,
                                   bool create_graph) {
        if (!out.requires_grad()) return torch::zeros_like(input);  // A does not depend on x
        auto grads = torch::autograd::grad({out}, {input}, {v}, /*retain_graph=*/create_graph, create_graph,
                                           /*allow_unused=*/true);
        return grads[0].defined() ? grads[0] : torch::zeros_like(input);
    }

    Function function_;
    TorchBackend backend_;
};

static_assert(ObservationOperator<TorchOperator, TorchBackend>);

}  // namespace sda
