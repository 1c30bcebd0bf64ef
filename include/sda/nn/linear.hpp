// sda/nn/linear.hpp: the fully connected layer Y = X W^T + b, PyTorch's
// nn.Linear with its weight layout [out, in] and its default initialisation.
//
// Batches are row-major matrices (one sample per row), so forward and both
// backward products are single GEMMs on maps of the parameter buffer
// (sda/nn/matmul.hpp: oneDNN's for float where linked, else Eigen's). The
// sampling products take the parameters in bfloat16 too (`low`, null for the
// scalar type's own precision).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/nn/matmul.hpp"
#include "sda/nn/parameters.hpp"

namespace sda::nn {

template <class T>
struct Linear {
    using ConstRef = Eigen::Ref<const RowMatrix<T>>;
    using Ref = Eigen::Ref<RowMatrix<T>>;

    std::size_t in = 0, out = 0;
    std::size_t weight = 0, bias = 0;  ///< offsets in the parameter buffer

    Linear() = default;
    /// Registers "<name>.weight" [out, in] and "<name>.bias" [out].
    Linear(ParameterSet<T>& params, const std::string& name, std::size_t in_features, std::size_t out_features)
        : in(in_features), out(out_features), weight(params.add(name + ".weight", {out_features, in_features})),
          bias(params.add(name + ".bias", {out_features})) {}

    Eigen::Map<const RowMatrix<T>> W(const T* p) const {
        return {p + weight, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in)};
    }
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(const T* p) const {
        return {p + bias, static_cast<Eigen::Index>(out)};
    }

    /// torch.nn.Linear's default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
    void initialise(ParameterSet<T>& params, const std::string& name, Generator& gen) const {
        const double bound = 1.0 / std::sqrt(static_cast<double>(in));
        params.fill_uniform(params.find(name + ".weight"), bound, gen);
        params.fill_uniform(params.find(name + ".bias"), bound, gen);
    }

    /// Y = X W^T + b (or Y += with `accumulate`); `low`: the parameters in bfloat16, or null
    void forward(const T* p, const ConstRef& X, Ref Y, const BFloat16* low = nullptr, bool accumulate = false) const {
        detail::multiply_transposed<T>(X, W(p), Y, p + bias, accumulate, low ? low + weight : nullptr);
    }
    /// dX = dY W (or dX += when `accumulate`); `low` as for `forward`
    void backward_input(const T* p, const ConstRef& dY, Ref dX, bool accumulate = false,
                        const BFloat16* low = nullptr) const {
        detail::multiply<T>(dY, W(p), dX, accumulate, low ? low + weight : nullptr);
    }
    /// gW += dY^T X, gb += column sums of dY
    void backward_params(const ConstRef& X, const ConstRef& dY, T* g) const {
        Eigen::Map<RowMatrix<T>> gW(g + weight, static_cast<Eigen::Index>(out), static_cast<Eigen::Index>(in));
        detail::add_transposed<T>(dY, X, gW);
        detail::add_column_sums<T>(dY, g + bias);
    }
};

}  // namespace sda::nn
