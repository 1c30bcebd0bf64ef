// The libtorch adapter (sda/backend/torch.hpp, sda/observe/torch.hpp, sda/nn/torch.hpp)
// against the CPU code it mirrors: the backend's algebra against CpuBackend, models
// through autograd against analytic scores and central differences, sampling,
// guidance and the Markov composition against the same runs on the CPU (host noise:
// the same random numbers), the libtorch networks against the CPU networks on the
// same checkpoint, and training against sda::train::fit. Runs on torch's CPU device;
// the CUDA case runs when a CUDA device is present and says it is skipped otherwise.
// libtorch first: Debian's build logs through glog, whose CHECK macros doctest's replace.
#include "sda/backend/torch.hpp"
#include "sda/nn/torch.hpp"
#include "sda/observe/torch.hpp"
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <Eigen/Dense>

#include "sda/backend/cpu.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
#include "sda/observe/pool.hpp"
#include "sda/observe/saturation.hpp"
#include "sda/sample/sample.hpp"
#include "sda/schedule/ve.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"

namespace {

using sda::Shape;
using sda::Tensor;
using sda::TorchBackend;
namespace fs = std::filesystem;

const TorchBackend cpu64{.device = torch::kCPU, .dtype = torch::kFloat64, .noise = TorchBackend::Noise::host};
const TorchBackend cpu32{.device = torch::kCPU, .dtype = torch::kFloat32, .noise = TorchBackend::Noise::host};

Tensor<double> random_tensor(const Shape& shape, std::uint64_t seed) {
    sda::Generator gen(seed);
    return sda::CpuBackend<double>::normal(shape, gen);
}

/// max |a - b| / max(1, max |b|)
template <class T>
double relative_error(const Tensor<T>& a, const Tensor<T>& b) {
    REQUIRE(sda::shape_of(a) == sda::shape_of(b));
    double diff = 0, scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::abs(double(a.data()[i]) - double(b.data()[i])));
        scale = std::max(scale, std::abs(double(b.data()[i])));
    }
    return diff / scale;
}
double relative_error(const torch::Tensor& a, const Tensor<double>& b) {
    return relative_error(sda::from_torch<double>(a), b);
}

fs::path scratch(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("sda_torch_tests_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

/// A smooth nonlinear eps(x, t) on events [S...]: tanh(W vec(x) + b t) reshaped, a torch module.
struct ToyNetImpl : torch::nn::Module {
    explicit ToyNetImpl(std::int64_t n) {
        torch::manual_seed(3);
        weight = register_parameter("weight", torch::randn({n, n}, torch::kFloat64) / std::sqrt(double(n)));
        bias = register_parameter("bias", torch::randn({n}, torch::kFloat64));
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
        const torch::Tensor flat = x.reshape({x.size(0), -1});
        return torch::tanh(torch::matmul(flat, weight.t()) + t.unsqueeze(-1) * bias + flat.square() * 0.1)
            .reshape(x.sizes());
    }
    torch::Tensor weight, bias;
};
TORCH_MODULE(ToyNet);

/// The analytic eps of N(mean, cov) under `schedule`, written with torch ops (a TorchScript-free module).
struct GaussianEpsImpl : torch::nn::Module {
    GaussianEpsImpl(const Eigen::VectorXd& m, const Eigen::MatrixXd& c) {
        const auto n = m.size();
        mean = register_buffer("mean", torch::from_blob(const_cast<double*>(m.data()), {n}, torch::kFloat64).clone());
        // Eigen is column-major: the transpose of a symmetric matrix is itself
        cov = register_buffer("cov", torch::from_blob(const_cast<double*>(c.data()), {n, n}, torch::kFloat64).clone());
    }
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
        const torch::Tensor flat = x.reshape({x.size(0), -1});
        std::vector<torch::Tensor> rows;
        for (std::int64_t b = 0; b < flat.size(0); ++b) {
            const double tb = t[b].item<double>();
            const double mu = schedule.mu(tb), sigma = schedule.sigma(tb);
            const torch::Tensor s = mu * mu * cov + sigma * sigma * torch::eye(cov.size(0), cov.options());
            // eps = sigma S^-1 (x - mu m)
            rows.push_back(sigma * torch::linalg::solve(s, flat[b] - mu * mean, true));
        }
        return torch::stack(rows).reshape(x.sizes());
    }
    sda::VPCosine schedule;
    torch::Tensor mean, cov;
};
TORCH_MODULE(GaussianEps);

std::pair<Eigen::VectorXd, Eigen::MatrixXd> random_gaussian(Eigen::Index n, unsigned seed) {
    std::srand(seed);
    const Eigen::MatrixXd a = Eigen::MatrixXd::Random(n, n);
    return {Eigen::VectorXd::Random(n), a * a.transpose() / double(n) + 0.2 * Eigen::MatrixXd::Identity(n, n)};
}

}  // namespace

TEST_SUITE("torch") {

TEST_CASE("torch backend: the algebra equals CpuBackend's") {
    const sda::CpuBackend<double> cpu;
    const TorchBackend& be = cpu64;
    const Tensor<double> x = random_tensor({3, 7, 2}, 1), y = random_tensor({3, 7, 2}, 2);
    const Tensor<double> v = random_tensor({3}, 3);
    const torch::Tensor tx = sda::to_torch(x, be), ty = sda::to_torch(y, be), tv = sda::to_torch(v, be);

    CHECK(be.shape(tx) == Shape{3, 7, 2});
    CHECK(relative_error(be.axpby(0.3, tx, -1.7, ty), cpu.axpby(0.3, x, -1.7, y)) < 1e-15);
    CHECK(relative_error(be.add_scalar(tx, 2.5), cpu.add_scalar(x, 2.5)) < 1e-15);
    CHECK(relative_error(be.mul(tx, ty), cpu.mul(x, y)) < 1e-15);
    CHECK(relative_error(be.scale_rows(tv, tx), cpu.scale_rows(v, x)) < 1e-15);
    CHECK(relative_error(be.dot(tx, ty), cpu.dot(x, y)) < 1e-14);
    CHECK(relative_error(be.mean_square(tx), cpu.mean_square(x)) < 1e-14);
    CHECK(relative_error(be.mean_like(tx), cpu.mean_like(x)) < 1e-14);
    CHECK(relative_error(be.sqrt(be.mul(tx, tx)), cpu.sqrt(cpu.mul(x, x))) < 1e-15);
    // y [event] broadcast against x [B, event]
    const Tensor<double> e = random_tensor({7, 2}, 4);
    CHECK(relative_error(be.sub(tx, sda::to_torch(e, be)), cpu.sub(x, e)) < 1e-15);
    Tensor<double> z = y;
    z(0, 0, 0) = 0, z(2, 3, 1) = 0;
    CHECK(relative_error(be.safe_div(tx, sda::to_torch(z, be)), cpu.safe_div(x, z)) < 1e-15);
    CHECK(relative_error(be.positive(be.sub(tx, ty)), cpu.positive(cpu.sub(x, y))) == 0);
    CHECK(be.min(tx) == cpu.min(x));
    CHECK(be.all_finite(tx));
    torch::Tensor bad = tx.clone();
    bad[1][2][0] = std::nan("");
    CHECK_FALSE(be.all_finite(bad));

    CHECK_THROWS_AS(be.axpby(1, tx, 1, tx.narrow(1, 0, 3)), sda::error);
    CHECK_THROWS_AS(be.scale_rows(sda::to_torch(random_tensor({2}, 5), be), tx), sda::error);
    CHECK_THROWS_AS(be.gather(tx, be.index({100}), {1}), sda::error);
    CHECK_THROWS_AS(be.reshape(tx, {5}), sda::error);
}

TEST_CASE("torch backend: gather, scatter-add and matrix products equal CpuBackend's") {
    const sda::CpuBackend<double> cpu;
    const TorchBackend& be = cpu64;
    const Tensor<double> x = random_tensor({3, 4, 5}, 10);
    const torch::Tensor tx = sda::to_torch(x, be);
    const std::vector<std::size_t> positions{0, 1, 2, 2, 19, 7, 8, 9, 3};
    const Tensor<double> g = cpu.gather(x, cpu.index(positions), {3, 3});
    CHECK(relative_error(be.gather(tx, be.index(positions), {3, 3}), g) < 1e-15);
    const Tensor<double> v = random_tensor({3, 9}, 11);
    CHECK(relative_error(be.scatter_add(sda::to_torch(v, be), be.index(positions), {4, 5}),
                         cpu.scatter_add(v, cpu.index(positions), {4, 5})) < 1e-15);
    CHECK(relative_error(be.reshape(tx, {3, 20}), cpu.reshape(x, {3, 20})) < 1e-15);
    const std::vector<double> values = [] {
        std::vector<double> out(6 * 20);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::sin(double(i));
        return out;
    }();
    const torch::Tensor ta = be.from_host(values, {6, 20});
    const Tensor<double> a = cpu.from_host(values, {6, 20});
    CHECK(relative_error(ta, a) < 1e-15);
    CHECK(relative_error(be.matmul(tx, ta), cpu.matmul(x, a)) < 1e-14);
    const Tensor<double> w = random_tensor({3, 6}, 12);
    CHECK(relative_error(be.matmul_adjoint(sda::to_torch(w, be), ta), cpu.matmul_adjoint(w, a)) < 1e-14);
}

TEST_CASE("torch backend: every shipped observation operator, bound to the device, equals the CPU one") {
    const sda::CpuBackend<double> cpu;
    const TorchBackend& be = cpu64;
    const Shape event{8, 2, 4, 4};
    const Tensor<double> x = random_tensor({3, 8, 2, 4, 4}, 30);
    const torch::Tensor tx = sda::to_torch(x, be);
    auto check = [&](const auto& op, const char* name) {
        CAPTURE(name);
        const auto on_cpu = sda::bind(op, event, cpu);
        const auto on_device = sda::bind(op, event, be);
        const Tensor<double> y = on_cpu.apply(x);
        CHECK(relative_error(on_device.apply(tx), y) < 1e-14);
        const Tensor<double> v = random_tensor(sda::shape_of(y), 31);
        CHECK(relative_error(on_device.vjp(tx, sda::to_torch(v, be)), on_cpu.vjp(x, v)) < 1e-14);
        const Tensor<double> dx = random_tensor(sda::shape_of(x), 32);
        CHECK(relative_error(on_device.jvp(tx, sda::to_torch(dx, be)), on_cpu.jvp(x, dx)) < 1e-14);
    };
    namespace observe = sda::observe;
    check(observe::Identity{}, "Identity");
    check(observe::Select({0, 3, 7}, {1, 5, 31}), "Select");
    xt::xarray<bool> mask = xt::zeros<bool>(event);
    mask(2, 1, 3, 0) = mask(7, 0, 0, 0) = mask(0, 1, 2, 2) = true;
    check(observe::Mask(mask), "Mask");
    check(observe::Subsample(3, 1), "Subsample");
    check(observe::AvgPool(2), "AvgPool");
    check(observe::AvgPool::last_axis(4), "AvgPool::last_axis");
    check(observe::Saturation(0.7), "Saturation");
    Eigen::MatrixXd matrix = Eigen::MatrixXd::Random(5, 8 * 2 * 4 * 4);
    check(observe::Linear<double>(matrix), "Linear");
    check(observe::compose(observe::Saturation(2.0), observe::compose(observe::AvgPool(2), observe::Subsample(2))),
          "Saturation o AvgPool o Subsample");
}

TEST_CASE("torch backend: host noise is CpuBackend's, device noise is seeded, fresh per draw, and N(0, 1)") {
    sda::Generator a(7), b(7);
    const Tensor<double> cpu = sda::CpuBackend<double>::normal({5, 6}, a);
    CHECK(relative_error(cpu64.normal({5, 6}, b), cpu) == 0.0);
    CHECK(a.draws() == b.draws());

    const TorchBackend device{.dtype = torch::kFloat64};
    sda::Generator g1(11), g2(11), g3(12);
    const torch::Tensor first = device.normal({200, 500}, g1), again = device.normal({200, 500}, g2);
    CHECK(torch::equal(first, again));
    CHECK_FALSE(torch::equal(device.normal({200, 500}, g1), first));  // the next draw differs
    CHECK_FALSE(torch::equal(device.normal({200, 500}, g3), first));  // another seed differs
    // mean and variance of 1e5 N(0, 1) values: within 5 standard errors
    const double n = 1e5, mean = first.mean().item<double>(), var = first.var().item<double>();
    CHECK(std::abs(mean) < 5 / std::sqrt(n));
    CHECK(std::abs(var - 1) < 5 * std::sqrt(2 / n));
}

TEST_CASE("torch model: eps and the autograd VJP of a module, against central differences in double") {
    const Shape event{3, 2};
    sda::TorchScoreModel model(ToyNet(6), sda::VPCosine{}, event, cpu64);
    static_assert(sda::ScoreModel<decltype(model)>);
    const Tensor<double> x = random_tensor({4, 3, 2}, 30), v = random_tensor({4, 3, 2}, 31);
    const torch::Tensor tx = sda::to_torch(x, cpu64), tv = sda::to_torch(v, cpu64);
    const double t = 0.37;
    const torch::Tensor vjp = model.vjp(tx, t, tv);
    const auto lin = model.linearize(tx, t);
    CHECK(torch::equal(lin.eps(), model.eps(tx, t)));
    CHECK(torch::allclose(lin.vjp(tv), vjp, 0, 0));  // the kept graph gives the same product, twice
    CHECK(torch::allclose(lin.vjp(2 * tv), 2 * vjp, 1e-15, 1e-15));
    CHECK_FALSE(model.eps(tx, t).requires_grad());
    // (d eps / dx)^T v entry by entry: d/dx_i <v, eps(x)> by central differences
    const double h = 1e-6;
    double worst = 0;
    for (std::int64_t i = 0; i < tx.numel(); ++i) {
        torch::Tensor plus = tx.clone(), minus = tx.clone();
        plus.view(-1)[i] += h, minus.view(-1)[i] -= h;
        const double fd = ((model.eps(plus, t) - model.eps(minus, t)) * tv).sum().item<double>() / (2 * h);
        worst = std::max(worst, std::abs(fd - vjp.view(-1)[i].item<double>()));
    }
    CHECK(worst < 1e-8);
    // bad input: wrong event, wrong output shape
    CHECK_THROWS_AS(model.eps(sda::to_torch(random_tensor({4, 2, 3}, 32), cpu64), t), sda::error);
    sda::TorchScoreModel wrong([](const torch::Tensor& x, const torch::Tensor&) { return x.sum(-1); },
                               sda::VPCosine{}, event, cpu64);
    CHECK_THROWS_AS(wrong.eps(tx, t), sda::error);
    CHECK_THROWS_AS(sda::TorchScoreModel(sda::TorchForward{}, sda::VPCosine{}, event, cpu64), sda::error);
    // a module that fails inside torch: an sda::error naming the input
    sda::TorchScoreModel failing([](const torch::Tensor& x, const torch::Tensor&) { return x.matmul(torch::ones({5, 5}, x.options())); },
                                 sda::VPCosine{}, event, cpu64);
    CHECK_THROWS_WITH_AS(failing.eps(tx, t), doctest::Contains("[4, 3, 2]"), sda::error);
    sda::TorchBackend half = cpu64;
    half.dtype = torch::kFloat16;
    sda::Generator gen(1);
    CHECK_THROWS_AS(half.normal({2, 2}, gen), sda::error);
}

TEST_CASE("torch model: a TorchScript module from a file equals the same computation in C++") {
    torch::jit::Module script("Toy");
    script.register_parameter("weight", torch::randn({6, 6}, torch::kFloat64), false);
    script.define(R"(
def forward(self, x, t):
    flat = x.reshape(x.shape[0], -1)
    return (torch.tanh(flat @ self.weight.t()) * t.unsqueeze(-1)).reshape(x.shape)
)");
    const fs::path path = scratch("toy.pt");
    script.save(path.string());
    const auto weight = script.attr("weight").toTensor();
    auto model = sda::TorchScoreModel<sda::VPCosine>::load(path.string(), sda::VPCosine{}, {2, 3}, cpu64);
    const torch::Tensor x = sda::to_torch(random_tensor({5, 2, 3}, 40), cpu64);
    const torch::Tensor expected = torch::tanh(x.reshape({5, 6}).matmul(weight.t())).mul(0.6).reshape({5, 2, 3});
    CHECK(torch::allclose(model.eps(x, 0.6), expected, 1e-14, 1e-14));
    // the VJP flows through TorchScript too: for a linear-in-v product, <v, J u> = <J^T v, u>
    const torch::Tensor v = torch::randn_like(x), u = torch::randn_like(x) * 1e-6;
    const double jvp = ((model.eps(x + u, 0.6) - model.eps(x - u, 0.6)) * v).sum().item<double>() / 2;
    CHECK((model.vjp(x, 0.6, v) * u).sum().item<double>() == doctest::Approx(jvp).epsilon(1e-6));
    // missing and corrupt files
    CHECK_THROWS_AS(sda::TorchScoreModel<sda::VPCosine>::load(scratch("missing.pt").string(), sda::VPCosine{}, {2, 3}), sda::error);
    std::ofstream(scratch("garbage.pt")) << "not a zip archive";
    CHECK_THROWS_AS(sda::TorchScoreModel<sda::VPCosine>::load(scratch("garbage.pt").string(), sda::VPCosine{}, {2, 3}), sda::error);
}

TEST_CASE("torch model: sampling, SDA and MMPS guidance on a Gaussian equal the CPU runs with the same noise") {
    const auto [mean, cov] = random_gaussian(8, 5);
    const Shape event{4, 2};
    const sda::GaussianScore<sda::VPCosine> cpu_prior(sda::VPCosine{}, event, mean, cov);
    const sda::TorchScoreModel torch_prior(GaussianEps(mean, cov), sda::VPCosine{}, event, cpu64);
    const sda::PredictorCorrector sampler{.steps = 16, .corrector = {.corrections = 1}};

    sda::Generator g_cpu(9), g_torch(9);
    const Tensor<double> prior_cpu = sda::sample(sampler, cpu_prior, 6, g_cpu);
    const torch::Tensor prior_torch = sda::sample(sampler, torch_prior, 6, g_torch);
    CHECK(relative_error(prior_torch, prior_cpu) < 1e-10);

    // observe states 0 and 2 through tanh: y = tanh(x[:, ::2])
    const Tensor<double> y = random_tensor({2, 2}, 50) * 0.5;
    const sda::observe::Subsample every_2nd(2);
    const sda::GaussianObservation cpu_obs(every_2nd, y, 0.01);
    using torch::indexing::Slice;
    const sda::TorchOperator torch_op([](const torch::Tensor& x) { return x.index({Slice(), Slice(0, x.size(1), 2)}); },
                                      cpu64);
    const sda::GaussianObservation torch_obs(torch_op, sda::to_torch(y, cpu64), 0.01, cpu64);
    CHECK(torch_op.output_shape(event) == every_2nd.output_shape(event));

    for (int which = 0; which < 2; ++which) {
        CAPTURE(which);
        sda::Generator a(13), b(13);
        Tensor<double> cpu;
        torch::Tensor dev;
        if (which == 0) {
            cpu = sda::sample(sampler, sda::guide(cpu_prior, cpu_obs, sda::SDA{.gamma = 0.1}), 6, a);
            dev = sda::sample(sampler, sda::guide(torch_prior, torch_obs, sda::SDA{.gamma = 0.1}), 6, b);
        } else {
            cpu = sda::sample(sampler, sda::guide(cpu_prior, cpu_obs, sda::MMPS{.iterations = 3}), 6, a);
            dev = sda::sample(sampler, sda::guide(torch_prior, torch_obs, sda::MMPS{.iterations = 3}), 6, b);
        }
        CHECK(relative_error(dev, cpu) < 1e-9);
    }
    CHECK_THROWS_AS(sda::GaussianObservation(torch_op, sda::to_torch(y, cpu64), -1.0, cpu64), sda::error);
    CHECK_THROWS_AS(sda::guide(torch_prior, sda::GaussianObservation(torch_op, torch::zeros({3, 2}, torch::kFloat64), 0.1, cpu64),
                               sda::SDA{}),
                    sda::error);
}

namespace {

/// A torch model whose sample 2 turns NaN once t < 0.5 (as tests/sample's Poisoned).
template <class Model>
struct PoisonedTorch {
    Model model;
    auto backend() const { return model.backend(); }
    const auto& schedule() const { return model.schedule(); }
    const auto& event_shape() const { return model.event_shape(); }
    torch::Tensor eps(const torch::Tensor& x, double t) const {
        torch::Tensor out = model.eps(x, t);
        if (t < 0.5 && out.size(0) > 2) out[2][0][0] = std::nan("");
        return out;
    }
};

}  // namespace

TEST_CASE("torch backend: deferred checks read the device once and name the same first bad step") {
    const auto [mean, cov] = random_gaussian(8, 5);
    const Shape event{4, 2};
    TorchBackend deferred = cpu64, each_step = cpu64;
    deferred.checks = TorchBackend::Checks::deferred;
    each_step.checks = TorchBackend::Checks::each_step;
    CHECK_FALSE(cpu64.defers_checks());  // automatic: deferred on CUDA only
    CHECK(deferred.defers_checks());
    CHECK(TorchBackend{.device = torch::kCUDA}.defers_checks());
    const sda::DDIM sampler{.steps = 16};
    const auto model = [&](const TorchBackend& be) { return sda::TorchScoreModel(GaussianEps(mean, cov), sda::VPCosine{}, event, be); };
    // healthy runs: the same samples
    sda::Generator g1(4), g2(4);
    const torch::Tensor a = sda::sample(sampler, model(deferred), 4, g1);
    const torch::Tensor b = sda::sample(sampler, model(each_step), 4, g2);
    CHECK(torch::equal(a, b));
    // a sample going bad: both fail naming step 10 (the deferred run after its last step)
    for (const TorchBackend& be : {deferred, each_step}) {
        CAPTURE(be.defers_checks());
        const PoisonedTorch<decltype(model(be))> poisoned{model(be)};
        sda::Generator gen(5);
        CHECK_THROWS_WITH_AS(sda::sample(sampler, poisoned, 4, gen),
                             doctest::Contains("sample(s) 2 of 4 became NaN or infinite at step 10 of 16 (t = 0.375)"), sda::error);
        torch::Tensor start = torch::zeros({3, 4, 2}, be.options());
        start[1][2][1] = std::numeric_limits<double>::infinity();
        CHECK_THROWS_WITH_AS(sampler.run(poisoned, start, gen), doctest::Contains("the initial state x(1) has NaN or infinite"),
                             sda::error);
    }
}

TEST_CASE("torch observation: VJP and JVP by autograd equal the CPU operator's") {
    const Shape event{5, 3};
    const sda::observe::Saturation saturation(0.7);
    const sda::TorchOperator op([](const torch::Tensor& x) { return 0.7 * torch::tanh(x / 0.7); }, cpu64);
    const Tensor<double> x = random_tensor({2, 5, 3}, 60), v = random_tensor({2, 5, 3}, 61);
    const torch::Tensor tx = sda::to_torch(x, cpu64), tv = sda::to_torch(v, cpu64);
    CHECK(relative_error(op.apply(tx), saturation.apply(x)) < 1e-15);
    CHECK(relative_error(op.vjp(tx, tv), saturation.vjp(x, v)) < 1e-15);
    CHECK(relative_error(op.jvp(tx, tv), saturation.jvp(x, v)) < 1e-15);
    const sda::TorchOperator constant([](const torch::Tensor& x) { return torch::ones({x.size(0), 2}, x.options()); });
    CHECK(torch::equal(constant.vjp(tx, torch::ones({2, 2}, torch::kFloat64)), torch::zeros_like(tx)));
    CHECK_THROWS_AS(op.vjp(tx, tv.narrow(1, 0, 2)), sda::error);
    const sda::TorchOperator failing([](const torch::Tensor& x) { return x.matmul(torch::ones({5, 5}, x.options())); }, cpu64);
    CHECK_THROWS_AS(failing.apply(tx), sda::error);
    CHECK_THROWS_AS(failing.output_shape(event), sda::error);
}

TEST_CASE("torch model: MarkovComposedScore unfolds on the device and equals the CPU composition") {
    // window model: a Gaussian over 5 states of 2 coordinates
    const auto [mean, cov] = random_gaussian(10, 6);
    const sda::GaussianScore<sda::VPCosine> cpu_window(sda::VPCosine{}, {5, 2}, mean, cov);
    const sda::TorchScoreModel torch_window(GaussianEps(mean, cov), sda::VPCosine{}, {5, 2}, cpu64);
    const sda::MarkovComposedScore<decltype(cpu_window), 2> cpu(cpu_window, 11);
    const sda::MarkovComposedScore<decltype(torch_window), 2> dev(torch_window, 11);
    const Tensor<double> x = random_tensor({3, 11, 2}, 70), v = random_tensor({3, 11, 2}, 71);
    const torch::Tensor tx = sda::to_torch(x, cpu64), tv = sda::to_torch(v, cpu64);
    CHECK(relative_error(dev.eps(tx, 0.4), cpu.eps(x, 0.4)) < 1e-12);
    CHECK(relative_error(dev.vjp(tx, 0.4, tv), cpu.vjp(x, 0.4, v)) < 1e-12);
    const auto lin = dev.linearize(tx, 0.4);
    CHECK(relative_error(lin.vjp(tv), cpu.vjp(x, 0.4, v)) < 1e-12);
    CHECK_THROWS_AS((sda::MarkovComposedScore<decltype(torch_window), 2>(torch_window, 4)), sda::error);
}

TEST_CASE("torch networks: the same checkpoint gives the CPU networks' eps, parameter for parameter") {
    sda::Generator gen(80);
    // MLP, both LayerNorm variances
    for (bool unbiased : {true, false}) {
        sda::nn::ScoreNetConfig config{.event = {5, 3}, .embedding = 8, .width = 32, .depth = 3};
        config.unbiased_layer_norm = unbiased;
        config.activation = unbiased ? sda::nn::Activation::silu : sda::nn::Activation::gelu;
        const sda::nn::ScoreNet<sda::VPCosine> cpu(sda::VPCosine{}, config, gen);
        const fs::path path = scratch("mlp.safetensors");
        sda::train::save_weights(path, cpu);
        const auto net = sda::torch_nn::load(path, sda::VPCosine{});
        // same names, shapes and order as the CPU network's parameters
        const auto params = net->named_parameters();
        REQUIRE(params.size() == cpu.parameters().infos().size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            CHECK(params[i].key() == cpu.parameters().infos()[i].name);
            CHECK(sda::detail::shape_of_torch(params[i].value()) == cpu.parameters().infos()[i].shape);
        }
        const sda::TorchScoreModel model(net, sda::VPCosine{}, config.event, cpu32);
        const Tensor<float> x = sda::CpuBackend<float>::normal({16, 5, 3}, gen);
        for (double t : {0.05, 0.5, 0.95}) CHECK(relative_error(sda::from_torch<float>(model.eps(sda::to_torch(x, cpu32), t)), cpu.eps(x, t)) < 1e-5);
        const Tensor<float> v = sda::CpuBackend<float>::normal({16, 5, 3}, gen);
        CHECK(relative_error(sda::from_torch<float>(model.vjp(sda::to_torch(x, cpu32), 0.3, sda::to_torch(v, cpu32))),
                             cpu.vjp(x, 0.3, v)) < 1e-5);
    }
    // U-Nets: 2-D circular with a context channel, 1-D zero padding
    sda::nn::UNetConfig two_d;
    two_d.event = {3, 2, 8, 16}, two_d.channels = {8, 12, 16}, two_d.blocks = {1, 2, 1};
    two_d.embedding = 8, two_d.frequencies = 4, two_d.embedding_hidden = 16;
    two_d.context.resize(8 * 16);
    for (std::size_t i = 0; i < two_d.context.size(); ++i) two_d.context[i] = std::sin(0.37 * double(i));
    sda::nn::UNetConfig one_d;
    one_d.event = {2, 3, 24}, one_d.spatial = 1, one_d.channels = {6, 10}, one_d.blocks = {2, 1}, one_d.kernel = 5;
    one_d.padding = sda::nn::Padding::zeros, one_d.activation = sda::nn::Activation::gelu;
    one_d.embedding = 5, one_d.frequencies = 3, one_d.embedding_hidden = 7, one_d.unbiased_layer_norm = false;
    for (const auto& config : {two_d, one_d}) {
        CAPTURE(config.to_json().dump());
        const sda::nn::ScoreUNet<sda::VPCosine> cpu(sda::VPCosine{}, config, gen);
        const fs::path path = scratch("unet.safetensors");
        sda::train::save_weights(path, cpu);
        const auto net = sda::torch_nn::load(path, sda::VPCosine{});
        const auto params = net->named_parameters();
        std::set<std::string> ours, theirs;
        for (const auto& p : params) ours.insert(p.key());
        for (const auto& info : cpu.parameters().infos()) theirs.insert(info.name);
        CHECK(ours == theirs);
        const sda::TorchScoreModel model(net, sda::VPCosine{}, config.event, cpu32);
        Shape batch{4};
        batch.insert(batch.end(), config.event.begin(), config.event.end());
        const Tensor<float> x = sda::CpuBackend<float>::normal(batch, gen), v = sda::CpuBackend<float>::normal(batch, gen);
        CHECK(relative_error(sda::from_torch<float>(model.eps(sda::to_torch(x, cpu32), 0.7)), cpu.eps(x, 0.7)) < 1e-5);
        CHECK(relative_error(sda::from_torch<float>(model.vjp(sda::to_torch(x, cpu32), 0.2, sda::to_torch(v, cpu32))),
                             cpu.vjp(x, 0.2, v)) < 1e-5);
    }
}

TEST_CASE("torch networks: weights written by libtorch load into the CPU network, bad checkpoints throw") {
    sda::nn::UNetConfig config;
    config.event = {3, 1, 8, 8}, config.channels = {4, 8}, config.blocks = {1, 1};
    config.embedding = 6, config.frequencies = 3, config.embedding_hidden = 8;
    torch::manual_seed(1);
    sda::torch_nn::ScoreUNet net(config);  // torch's own initialisation
    const fs::path path = scratch("from_torch.safetensors");
    sda::torch_nn::save_weights(path, *net, sda::VPCosine{});
    sda::nn::ScoreUNet<sda::VPCosine> cpu(sda::VPCosine{}, config);
    sda::train::load_weights(path, cpu);
    sda::Generator gen(90);
    const Tensor<float> x = sda::CpuBackend<float>::normal({3, 3, 1, 8, 8}, gen);
    const sda::TorchScoreModel model(net, sda::VPCosine{}, config.event, cpu32);
    CHECK(relative_error(sda::from_torch<float>(model.eps(sda::to_torch(x, cpu32), 0.5)), cpu.eps(x, 0.5)) < 1e-5);

    // a double-precision CPU network's checkpoint loads too (as float32)
    const sda::nn::ScoreUNet<sda::VPCosine, double> cpu64_net(sda::VPCosine{}, config, gen);
    sda::train::save_weights(scratch("double.safetensors"), cpu64_net);
    const sda::TorchScoreModel from_double(sda::torch_nn::load(scratch("double.safetensors"), sda::VPCosine{}), sda::VPCosine{}, config.event, cpu32);
    const Tensor<double> xd = x;
    CHECK(relative_error(sda::from_torch<double>(from_double.eps(sda::to_torch(x, cpu32), 0.5)), cpu64_net.eps(xd, 0.5)) < 1e-5);

    auto other = config;
    other.channels = {4, 6};
    sda::torch_nn::ScoreUNet wrong(other);
    CHECK_THROWS_AS(sda::torch_nn::load_weights(path, *wrong, sda::VPCosine{}), sda::error);
    // the schedule it was trained with is recorded: another one is refused
    CHECK_THROWS_WITH_AS(sda::torch_nn::load_weights(path, *net, sda::VE{}), doctest::Contains("noise schedule"), sda::error);
    CHECK_THROWS_WITH_AS(sda::torch_nn::load(path, sda::VPLinear{}), doctest::Contains("noise schedule"), sda::error);
    std::ofstream(scratch("truncated.safetensors"), std::ios::binary) << "\x10\0\0\0\0\0\0\0{\"a\":";
    CHECK_THROWS_AS(sda::torch_nn::load(scratch("truncated.safetensors"), sda::VPCosine{}), sda::error);
    CHECK_THROWS_AS(sda::torch_nn::load(scratch("nothing.safetensors"), sda::VPCosine{}), sda::error);
    // the architecture is read from the file: a configuration nested 100,000 levels deep, or one
    // declaring a width of 2^40, is refused before anything is built
    const auto with_config = [&](const std::string& name, const std::string& stored) {
        sda::io::SafetensorsWriter writer;
        const std::vector<float> w(4, 0.f);
        writer.add<float>("w", w, {4});
        writer.metadata("sda.config", stored);
        writer.write(scratch(name));
        return scratch(name);
    };
    CHECK_THROWS_WITH_AS(sda::torch_nn::load(with_config("deep.safetensors", std::string(100000, '[') + std::string(100000, ']')),
                                             sda::VPCosine{}),
                         doctest::Contains("nests deeper than 64 levels"), sda::error);
    nlohmann::json wide = sda::nn::ScoreNetConfig{.event = {5, 3}}.to_json();
    wide["width"] = std::uint64_t(1) << 40;
    CHECK_THROWS_WITH_AS(sda::torch_nn::load(with_config("wide.safetensors", wide.dump()), sda::VPCosine{}),
                         doctest::Contains("\"width\" must be a whole number from 0 to 2^24"), sda::error);
}

TEST_CASE("torch model: networks exported from PyTorch as TorchScript give the CPU networks' eps and VJP") {
    if (std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") != 0) {
        std::printf("skipped: /usr/bin/python3 cannot import torch (Debian: python3-torch)\n");
        return;
    }
    sda::Generator gen(120);
    const sda::nn::ScoreNet<sda::VPCosine> mlp(sda::VPCosine{}, {.event = {5, 3}, .embedding = 8, .width = 32, .depth = 2}, gen);
    sda::nn::UNetConfig config;
    config.event = {3, 2, 8, 8}, config.channels = {4, 8}, config.blocks = {1, 1}, config.embedding = 6;
    config.context.assign(64, 0.5);
    const sda::nn::ScoreUNet<sda::VPCosine> unet(sda::VPCosine{}, config, gen);
    sda::train::save_weights(scratch("export_mlp.safetensors"), mlp);
    sda::train::save_weights(scratch("export_unet.safetensors"), unet);
    const std::string tool = std::string("/usr/bin/python3 ") + SDA_SOURCE_DIR + "/tools/torch_interop.py export ";
    for (const char* name : {"mlp", "unet"}) {
        const std::string command = tool + scratch(std::string("export_") + name + ".safetensors").string() + " " +
                                    scratch(std::string("export_") + name + ".pt").string() + " 2>/dev/null";
        REQUIRE(std::system(command.c_str()) == 0);
    }
    const auto check = [&](const auto& cpu, const char* name) {
        const Shape event = cpu.event_shape();
        auto model = sda::TorchScoreModel<sda::VPCosine>::load(scratch(std::string("export_") + name + ".pt").string(),
                                                               sda::VPCosine{}, event, cpu32);
        Shape batch{5};  // the trace was recorded at batch 2
        batch.insert(batch.end(), event.begin(), event.end());
        const Tensor<float> x = sda::CpuBackend<float>::normal(batch, gen), v = sda::CpuBackend<float>::normal(batch, gen);
        CHECK(relative_error(sda::from_torch<float>(model.eps(sda::to_torch(x, cpu32), 0.4)), cpu.eps(x, 0.4)) < 1e-5);
        CHECK(relative_error(sda::from_torch<float>(model.vjp(sda::to_torch(x, cpu32), 0.4, sda::to_torch(v, cpu32))),
                             cpu.vjp(x, 0.4, v)) < 1e-5);
    };
    check(mlp, "mlp");
    check(unet, "unet");
}

TEST_CASE("torch training: fit on torch follows sda::train::fit step for step, and resumes") {
    // a damped-spring-like set of trajectories
    sda::Generator data(100);
    Tensor<float> trajectories = sda::CpuBackend<float>::normal({6, 24, 2}, data);
    for (std::size_t n = 0; n < 6; ++n)
        for (std::size_t i = 1; i < 24; ++i)
            for (std::size_t d = 0; d < 2; ++d)
                trajectories(n, i, d) = 0.9f * trajectories(n, i - 1, d) + 0.3f * trajectories(n, i, d);
    const sda::train::WindowDataset<float> train(trajectories, 5), valid(trajectories, 5);
    const sda::nn::ScoreNetConfig config{.event = {5, 2}, .embedding = 8, .width = 32, .depth = 2};
    sda::train::FitOptions options;
    options.epochs = 3, options.epoch_size = 0, options.batch_size = 16, options.valid_size = 32;
    options.optimizer = {.lr = 3e-3, .weight_decay = 1e-2};
    options.clip = 1.0;
    options.ema_decay = 0.75;

    sda::Generator init(101);
    sda::nn::ScoreNet<sda::VPCosine> cpu(sda::VPCosine{}, config, init);
    const fs::path start = scratch("start.safetensors");
    sda::train::save_weights(start, cpu);
    auto net = sda::torch_nn::load(start, sda::VPCosine{});

    sda::Generator g_cpu(102), g_torch(102);
    auto cpu_options = options, torch_options = options;  // checkpoints to compare the EMAs
    cpu_options.checkpoint = scratch("cpu_ema.safetensors"), torch_options.checkpoint = scratch("torch_ema.safetensors");
    fs::remove(cpu_options.checkpoint), fs::remove(torch_options.checkpoint);
    const auto cpu_result = sda::train::fit(cpu, train, valid, cpu_options, g_cpu);
    const auto torch_result = sda::torch_nn::fit(*net, sda::VPCosine{}, train, valid, torch_options, g_torch, cpu32);
    CHECK(g_cpu.draws() == g_torch.draws());
    REQUIRE(torch_result.history.size() == 3);
    for (std::size_t e = 0; e < 3; ++e) {
        CHECK(torch_result.history[e].train_loss == doctest::Approx(cpu_result.history[e].train_loss).epsilon(1e-4));
        CHECK(torch_result.history[e].valid_loss == doctest::Approx(cpu_result.history[e].valid_loss).epsilon(1e-4));
    }
    // 3 epochs x 4 steps of AdamW from the same start: the weights agree to float rounding
    const fs::path trained = scratch("trained.safetensors");
    sda::torch_nn::save_weights(trained, *net, sda::VPCosine{});
    sda::nn::ScoreNet<sda::VPCosine> back(sda::VPCosine{}, config);
    sda::train::load_weights(trained, back);
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < back.parameters().size(); ++i) {
        diff = std::max(diff, double(std::abs(back.parameters().data()[i] - cpu.parameters().data()[i])));
        scale = std::max(scale, double(std::abs(cpu.parameters().data()[i])));
    }
    CHECK(diff / scale < 1e-4);
    // the weights moved: the comparison is not between two untouched copies
    sda::nn::ScoreNet<sda::VPCosine> initial(sda::VPCosine{}, config);
    sda::train::load_weights(start, initial);
    double moved = 0;
    for (std::size_t i = 0; i < back.parameters().size(); ++i)
        moved = std::max(moved, double(std::abs(back.parameters().data()[i] - initial.parameters().data()[i])));
    CHECK(moved > 100 * diff);
    // the one EMA of the one training loop, on both engines
    sda::nn::ScoreNet<sda::VPCosine> cpu_ema(sda::VPCosine{}, config), torch_ema(sda::VPCosine{}, config);
    sda::train::load_weights(cpu_options.checkpoint, cpu_ema);
    sda::train::load_weights(torch_options.checkpoint, torch_ema);
    double ema_diff = 0, ema_moved = 0;
    for (std::size_t i = 0; i < cpu_ema.parameters().size(); ++i) {
        ema_diff = std::max(ema_diff, double(std::abs(cpu_ema.parameters().data()[i] - torch_ema.parameters().data()[i])));
        ema_moved = std::max(ema_moved, double(std::abs(cpu_ema.parameters().data()[i] - cpu.parameters().data()[i])));
    }
    CHECK(ema_diff / scale < 1e-4);
    CHECK(ema_moved > 100 * ema_diff);  // the EMA is not the weights

    // an interrupted torch run resumes from its checkpoint, and the CPU trainer resumes it too
    options.checkpoint = scratch("run.safetensors");
    fs::remove(options.checkpoint);
    auto first = sda::torch_nn::load(start, sda::VPCosine{});
    struct Interrupt {
        void on_epoch(const sda::train::EpochStats& stats) const {
            if (stats.epoch == 2) throw std::runtime_error("interrupted");
        }
    };
    sda::Generator g1(102);
    CHECK_THROWS_AS(sda::torch_nn::fit(*first, sda::VPCosine{}, train, valid, options, g1, cpu32, Interrupt{}),
                    std::runtime_error);
    sda::Generator g2(102);
    const auto resumed = sda::torch_nn::fit(*first, sda::VPCosine{}, train, valid, options, g2, cpu32);
    CHECK(resumed.resumed_from == 2);
    CHECK(resumed.history[2].train_loss == doctest::Approx(torch_result.history[2].train_loss).epsilon(1e-6));
    CHECK(resumed.history[2].valid_loss == doctest::Approx(torch_result.history[2].valid_loss).epsilon(1e-6));
    sda::nn::ScoreNet<sda::VPCosine> cpu_resumed(sda::VPCosine{}, config);
    options.epochs = 4;
    sda::Generator g3(102);
    const auto on_cpu = sda::train::fit(cpu_resumed, train, valid, options, g3);
    CHECK(on_cpu.resumed_from == 3);
    CHECK(on_cpu.history.size() == 4);
    sda::Generator other_seed(7);
    CHECK_THROWS_AS(sda::torch_nn::fit(*first, sda::VPCosine{}, train, valid, options, other_seed, cpu32), sda::error);
}

TEST_CASE("torch on CUDA: sampling with a network and the Markov composition equal the CPU device") {
    if (!torch::cuda::is_available()) {
        std::printf("skipped: no CUDA device (torch::cuda::is_available() is false); the same code ran on the CPU device\n");
        return;
    }
    const TorchBackend cuda{.device = torch::kCUDA, .dtype = torch::kFloat32, .noise = TorchBackend::Noise::host};
    sda::Generator gen(110);
    const sda::nn::ScoreNetConfig config{.event = {5, 3}, .embedding = 16, .width = 64, .depth = 3};
    const sda::nn::ScoreNet<sda::VPCosine> cpu(sda::VPCosine{}, config, gen);
    const fs::path path = scratch("cuda.safetensors");
    sda::train::save_weights(path, cpu);
    const sda::TorchScoreModel on_gpu(sda::torch_nn::load(path, sda::VPCosine{}), sda::VPCosine{}, config.event, cuda);
    const sda::MarkovComposedScore<decltype(on_gpu), 2> prior(on_gpu, 17);
    const sda::MarkovComposedScore<decltype(cpu), 2> cpu_prior(cpu, 17);
    const sda::PredictorCorrector sampler{.steps = 8};
    sda::Generator a(111), b(111);
    const torch::Tensor x = sda::sample(sampler, prior, 32, a);
    CHECK(x.device().is_cuda());
    CHECK(relative_error(sda::from_torch<float>(x), sda::sample(sampler, cpu_prior, 32, b)) < 1e-3);
}

}  // TEST_SUITE
