// tests/support/tensors.hpp: building small tensors in tests.
#pragma once

#include <algorithm>
#include <initializer_list>

#include "sda/core/tensor.hpp"

namespace sda::test {

/// A tensor of the given shape holding `values` in row-major order (xtensor's
/// nested braces are ambiguous for trailing extents of 1).
inline Tensor<double> tensor(const Shape& shape, std::initializer_list<double> values) {
    Tensor<double> out = empty_tensor<double>(shape);
    std::copy(values.begin(), values.end(), out.begin());
    return out;
}

}  // namespace sda::test
