// sda/core/eigen.hpp: zero-copy Eigen views of sda tensors, for the dense kernels.
//
// A batch `[B, event...]` is viewed as a row-major B x n matrix (n the event
// size): one sample per row, so a linear map of events is one GEMM.
#pragma once

#include <cstddef>

#include <Eigen/Core>

#include "sda/core/tensor.hpp"

namespace sda {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// View of rows [begin, end) of a batch as a (end - begin) x n row-major matrix.
template <class T>
Eigen::Map<const RowMatrix<T>> rows_view(const Tensor<T>& x, std::size_t begin, std::size_t end) {
    const std::size_t n = x.shape()[0] ? x.size() / x.shape()[0] : 0;
    return {x.data() + begin * n, static_cast<Eigen::Index>(end - begin), static_cast<Eigen::Index>(n)};
}
template <class T>
Eigen::Map<RowMatrix<T>> rows_view(Tensor<T>& x, std::size_t begin, std::size_t end) {
    const std::size_t n = x.shape()[0] ? x.size() / x.shape()[0] : 0;
    return {x.data() + begin * n, static_cast<Eigen::Index>(end - begin), static_cast<Eigen::Index>(n)};
}

/// View of a whole batch as a B x n row-major matrix.
template <class T>
Eigen::Map<const RowMatrix<T>> rows_view(const Tensor<T>& x) {
    return rows_view(x, 0, x.shape()[0]);
}
template <class T>
Eigen::Map<RowMatrix<T>> rows_view(Tensor<T>& x) {
    return rows_view(x, 0, x.shape()[0]);
}

}  // namespace sda
