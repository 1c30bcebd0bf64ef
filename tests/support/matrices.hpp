// tests/support/matrices.hpp: finite-difference helpers for layer tests on
// Eigen matrices and flat parameter buffers, in double precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "sda/core/eigen.hpp"
#include "sda/core/random.hpp"

namespace sda::test {

using Matrix = RowMatrix<double>;

inline Matrix random_matrix(Eigen::Index rows, Eigen::Index cols, sda::Generator& gen) {
    Matrix m(rows, cols);
    sda::fill_normal(m.data(), static_cast<std::size_t>(rows), static_cast<std::size_t>(cols), gen);
    return m;
}

/// max |a - b| / max |b| for Eigen matrices
inline double relative(const Matrix& a, const Matrix& b) { return (a - b).cwiseAbs().maxCoeff() / std::max(1e-300, b.cwiseAbs().maxCoeff()); }

/// Central differences of a scalar function of a matrix.
template <class F>
Matrix gradient_of(F&& f, Matrix x, double h = 1e-6) {
    Matrix g(x.rows(), x.cols());
    for (Eigen::Index i = 0; i < x.size(); ++i) {
        const double keep = x.data()[i];
        x.data()[i] = keep + h;
        const double up = f(x);
        x.data()[i] = keep - h;
        const double down = f(x);
        x.data()[i] = keep;
        g.data()[i] = (up - down) / (2 * h);
    }
    return g;
}

/// Central differences of a scalar function of the parameters.
template <class F>
std::vector<double> parameter_gradient(std::span<double> values, F&& f, double h = 1e-6) {
    std::vector<double> g(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double keep = values[i];
        values[i] = keep + h;
        const double up = f();
        values[i] = keep - h;
        const double down = f();
        values[i] = keep;
        g[i] = (up - down) / (2 * h);
    }
    return g;
}

inline double relative(std::span<const double> a, std::span<const double> b) {
    double worst = 0, scale = 1e-300;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i])), scale = std::max(scale, std::abs(b[i]));
    return worst / scale;
}

}  // namespace sda::test
