// sda/core/tensor.hpp: the CPU tensor type of sda.
//
// Tensors are row-major xtensor containers with the batch first: a batch of B
// trajectories of L states in R^D is `[B, L, D]`; 2-D fields are `[B, L, C, H, W]`.
// Models see `[B, event...]` and never assume more about the event than its shape.
#pragma once

#include <cstddef>

#include <xtensor/xarray.hpp>

#include "sda/core/memory.hpp"
#include "sda/core/shape.hpp"
#include "sda/fwd.hpp"

namespace sda {

/// Dynamic-rank, row-major, contiguous CPU tensor; its buffers start on a 64-byte
/// boundary (`AlignedAllocator`, sda/core/memory.hpp), so results do not depend on
/// where the heap placed them.
template <class T>
using Tensor = xt::xarray<T, xt::layout_type::row_major, AlignedAllocator<T>>;

template <class E>
Shape shape_of(const E& x) {
    return Shape(x.shape().begin(), x.shape().end());
}

/// A tensor of the given shape, uninitialised for arithmetic T.
template <class T>
Tensor<T> empty_tensor(const Shape& shape) {
    return Tensor<T>::from_shape(shape);
}

}  // namespace sda
