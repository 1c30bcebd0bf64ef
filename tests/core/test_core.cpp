// Tests of sda/core (errors, shapes, the generator) and sda/backend/cpu.hpp.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <numeric>
#include <string>

#include <tbb/task_arena.h>
#include <xtensor/xrandom.hpp>

#include "sda/backend/cpu.hpp"
#include "sda/core/check.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"
#include "support/stats.hpp"

using sda::Shape;
using sda::Tensor;
using Backend = sda::CpuBackend<double>;

namespace {

/// Runs `f` and returns the message of the sda::error it throws ("" if none).
template <class F>
std::string error_message(F&& f) {
    try {
        f();
    } catch (const sda::error& e) {
        return e.what();
    }
    return "";
}

Tensor<double> iota_tensor(const Shape& shape) {
    Tensor<double> x = sda::empty_tensor<double>(shape);
    std::iota(x.begin(), x.end(), 0.0);
    return x;
}

double inner(const Tensor<double>& a, const Tensor<double>& b) {
    return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

}  // namespace

TEST_CASE("shapes: counting, printing, batch and event parts") {
    CHECK(sda::element_count({}) == 1);
    CHECK(sda::element_count({2, 3, 4}) == 24);
    CHECK(sda::format_shape({2, 33, 4}) == "[2, 33, 4]");
    CHECK(sda::batch_shape(8, {33, 4}) == Shape{8, 33, 4});
    CHECK(sda::event_shape_of({8, 33, 4}) == Shape{33, 4});
}

TEST_CASE("checks name what is wrong") {
    Tensor<double> x = xt::zeros<double>({2, 3});
    x(1, 2) = std::nan("");
    const std::string finite = error_message([&] { sda::detail::check_finite(x, "y"); });
    CHECK(finite.find("y has a non-finite entry") != std::string::npos);
    CHECK(finite.find("flat index 5") != std::string::npos);
    CHECK(error_message([] { sda::detail::check_positive(-0.1, "noise"); }).find("noise must be finite and positive, got -0.1") !=
          std::string::npos);
    const std::string batch = error_message([&] { sda::detail::check_batch(x, {3, 2}, "x"); });
    CHECK(batch == "x has shape [2, 3], expected [B, 3, 2] with B >= 1");
    CHECK(error_message([&] { sda::detail::check_batch(x, {3}, "x"); }).empty());
}

TEST_CASE("generator: same seed gives the same numbers, each fill new ones") {
    sda::Generator a(42), b(42), c(43);
    const Tensor<double> xa = Backend::normal({64, 7}, a), xb = Backend::normal({64, 7}, b);
    CHECK(xa == xb);
    CHECK(a.draws() == 1);
    CHECK(Backend::normal({64, 7}, a) != xa);
    CHECK(Backend::normal({64, 7}, c) != xa);
    // the state is (seed, draws): a restored generator continues the stream
    sda::Generator restored(a.seed(), a.draws());
    CHECK(Backend::normal({5, 3}, restored) == Backend::normal({5, 3}, a));
}

TEST_CASE("generator: independent of thread count and of batch size") {
    const Shape shape{300, 1000};  // large enough to run in parallel
    Tensor<double> serial, parallel;
    tbb::task_arena one(1), two(2);
    one.execute([&] {
        sda::Generator gen(7);
        serial = Backend::normal(shape, gen);
    });
    two.execute([&] {
        sda::Generator gen(7);
        parallel = Backend::normal(shape, gen);
    });
    CHECK(serial == parallel);
    // sample b gets the same noise whatever the batch size
    sda::Generator gen(7);
    const Tensor<double> small = Backend::normal({3, 1000}, gen);
    CHECK(xt::view(serial, xt::range(0, 3), xt::all()) == small);
    // float fills follow the same keying
    sda::Generator f1(9), f2(9);
    Tensor<float> big = sda::CpuBackend<float>::normal({50, 33}, f1);
    Tensor<float> few = sda::CpuBackend<float>::normal({2, 33}, f2);
    CHECK(xt::view(big, xt::range(0, 2), xt::all()) == few);
}

TEST_CASE_TEMPLATE("generator: a block at (first_row, first_col) is that block of the whole draw", T, float, double) {
    // what a rank holding samples from first_row, or entries from first_col of each, draws
    const std::size_t rows = 7, cols = 23;
    sda::Generator whole_gen(5);
    std::vector<T> whole(rows * cols);
    sda::fill_normal(whole.data(), rows, cols, whole_gen);
    for (const auto [r0, c0, nr, nc] : {std::array<std::size_t, 4>{0, 0, 7, 23}, {2, 0, 3, 23}, {0, 3, 7, 5},
                                        {1, 5, 4, 1}, {6, 4, 1, 19}, {3, 21, 2, 2}}) {
        INFO("a block of ", nr, " x ", nc, " at (", r0, ", ", c0, ")");
        sda::Generator gen(5);
        std::vector<T> block(nr * nc);
        sda::fill_normal(block.data(), nr, nc, gen, r0, c0);
        bool same = true;
        for (std::size_t r = 0; r < nr; ++r)
            for (std::size_t c = 0; c < nc; ++c) same = same && block[r * nc + c] == whole[(r0 + r) * cols + c0 + c];
        CHECK(same);
    }
}

TEST_CASE_TEMPLATE("generator: normal draws have mean 0 and variance 1", T, float, double) {
    // 2^20 draws: the mean's standard error is 2^-10, the variance's sqrt(2) 2^-10.
    sda::Generator gen(2024);
    const Tensor<T> x = sda::CpuBackend<T>::normal({1024, 1024}, gen);
    double sum = 0, sum_sq = 0, sum_4 = 0;
    for (T v : x) sum += v, sum_sq += double(v) * v, sum_4 += std::pow(double(v), 4);
    const double n = static_cast<double>(x.size()), se = 1.0 / std::sqrt(n);
    CHECK(std::abs(sum / n) < 4.5 * se);
    CHECK(std::abs(sum_sq / n - 1.0) < 4.5 * std::sqrt(2.0) * se);
    CHECK(std::abs(sum_4 / n - 3.0) < 4.5 * std::sqrt(96.0) * se);  // Var(z^4) = 105 - 9 = 96
    // neighbouring entries are uncorrelated
    double lag = 0;
    for (std::size_t i = 0; i + 1 < x.size(); ++i) lag += double(x.data()[i]) * x.data()[i + 1];
    CHECK(std::abs(lag / n) < 4.5 * se);
}

TEST_CASE("generator: uniform draws lie in the unit interval with mean 1/2") {
    sda::Generator gen(5);
    Tensor<double> u = sda::empty_tensor<double>({1000, 100});
    sda::fill_uniform(u.data(), 1000, 100, gen);
    CHECK(xt::amin(u)() > 0.0);
    CHECK(xt::amax(u)() <= 1.0);
    const double se = std::sqrt(1.0 / 12.0 / static_cast<double>(u.size()));
    CHECK(std::abs(xt::mean(u)() - 0.5) < 4.5 * se);
}

TEST_CASE("cpu backend: element-wise and per-sample operations") {
    const Tensor<double> x = iota_tensor({2, 3}), y = xt::ones<double>({2, 3});
    CHECK(Backend::axpby(2.0, x, -1.0, y) == Tensor<double>{{-1, 1, 3}, {5, 7, 9}});
    CHECK(Backend::scale_rows(Tensor<double>{2, -1}, x) == Tensor<double>{{0, 2, 4}, {-3, -4, -5}});
    CHECK(Backend::dot(x, x) == Tensor<double>{5, 50});
    CHECK(xt::allclose(Backend::mean_square(x), Tensor<double>{5.0 / 3.0, 50.0 / 3.0}));
    CHECK(Backend::safe_div(Tensor<double>{1, 2}, Tensor<double>{0, 4}) == Tensor<double>{0, 0.5});
    CHECK(Backend::positive(Tensor<double>{-1, 0, 2e-300, std::nan(""), INFINITY}) == Tensor<double>{0, 0, 1, 0, 1});
    CHECK(Backend::fill_like(x, 3.0) == 3.0 * y);
    // broadcasting of one observation against a batch
    CHECK(Backend::sub(Tensor<double>{1, 1, 1}, x) == Tensor<double>{{1, 0, -1}, {-2, -3, -4}});
    CHECK(Backend::min(x) == 0.0);
    CHECK(Backend::all_finite(x));
    CHECK_THROWS_AS(Backend::axpby(1.0, x, 1.0, Tensor<double>{1, 2}), sda::error);
    CHECK_THROWS_AS(Backend::scale_rows(Tensor<double>{1, 2, 3}, x), sda::error);
}

TEST_CASE("cpu backend: gather, scatter-add and matrix products, with their adjoints") {
    // positions with a run (0, 1, 2), a repeat (2) and a jump back (1): B = 2 samples of 6 entries
    const Tensor<double> x = iota_tensor({2, 3, 2});
    const auto index = Backend::index({0, 1, 2, 2, 5, 1});
    CHECK(index.runs.size() == 4);  // {0,1,2}, {2}, {5}, {1}
    const Tensor<double> g = Backend::gather(x, index, {2, 3});
    CHECK(g == Tensor<double>{{{0, 1, 2}, {2, 5, 1}}, {{6, 7, 8}, {8, 11, 7}}});
    // scatter-add adds repeated positions and leaves the others zero
    const Tensor<double> ones = xt::ones<double>({2, 6});
    const Tensor<double> counts = Backend::scatter_add(ones, index, {3, 2});
    CHECK(counts == Tensor<double>{{{1, 2}, {2, 0}, {0, 1}}, {{1, 2}, {2, 0}, {0, 1}}});
    // <gather(u), v> = <u, scatter_add(v)>
    sda::Generator gen(3);
    const Tensor<double> u = Backend::normal({2, 3, 2}, gen), v = Backend::normal({2, 6}, gen);
    CHECK(inner(Backend::gather(u, index, {6}), v) == doctest::Approx(inner(u, Backend::scatter_add(v, index, {3, 2}))));
    CHECK(Backend::reshape(x, {2, 6}) == Tensor<double>{{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}});
    // out-of-range positions and mismatched sizes are refused
    CHECK(error_message([&] { Backend::gather(x, Backend::index({6}), {1}); }).find("1 positions below 7") !=
          std::string::npos);
    CHECK_THROWS_AS(Backend::gather(x, index, {5}), sda::error);
    CHECK_THROWS_AS(Backend::scatter_add(ones, index, {5}), sda::error);
    CHECK_THROWS_AS(Backend::scatter_add(Tensor<double>(xt::ones<double>({2, 5})), index, {3, 2}), sda::error);
    CHECK_THROWS_AS(Backend::reshape(x, {5}), sda::error);

    // matmul: each sample's flat entries times a^T; matmul_adjoint: its adjoint
    const std::vector<double> values{1, 2, 0, -1, 3, 0.5, 2, 1, 0, 0, 1, -2};
    const Tensor<double> a = Backend::from_host(values, {2, 6});
    CHECK(a(1, 5) == -2.0);
    const Tensor<double> y = Backend::matmul(x, a);
    REQUIRE(sda::shape_of(y) == Shape{2, 2});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t m = 0; m < 2; ++m) {
            double expected = 0;
            for (std::size_t n = 0; n < 6; ++n) expected += values[m * 6 + n] * x.data()[b * 6 + n];
            CHECK(y(b, m) == doctest::Approx(expected));
        }
    const Tensor<double> w = Backend::normal({2, 2}, gen);
    CHECK(inner(Backend::matmul(u, a), w) == doctest::Approx(inner(Backend::reshape(u, {2, 6}), Backend::matmul_adjoint(w, a))));
    CHECK_THROWS_AS(Backend::matmul(Tensor<double>(xt::ones<double>({2, 5})), a), sda::error);
    CHECK_THROWS_AS(Backend::from_host(values, {5}), sda::error);
}
