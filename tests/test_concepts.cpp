// Compile-time tests of the concepts: every shipped policy satisfies its
// concept, and types that miss one requirement do not. (The diagnostics that
// name the concept are checked by the compile_fail/ tests.)
#include <doctest/doctest.h>

#include <utility>

#include "sda/backend/cpu.hpp"
#include "sda/guidance/concepts.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"
#include "sda/observe/compose.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
#include "sda/observe/pool.hpp"
#include "sda/observe/saturation.hpp"
#include "sda/sample/concepts.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/schedule/rectified.hpp"
#include "sda/schedule/ve.hpp"
#include "sda/schedule/vp.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"

namespace {

using Tensor = sda::Tensor<double>;
using Gaussian = sda::GaussianScore<sda::VPCosine>;
using Composed = sda::MarkovComposedScore<Gaussian, 2>;
using Cpu = sda::CpuBackend<double>;
using Observation = sda::GaussianObservation<sda::observe::Select>;
using Bound = decltype(std::declval<const Observation&>().bind(sda::Shape{}));  // what guidance sees

// --- schedules --------------------------------------------------------------------
static_assert(sda::NoiseSchedule<sda::VPCosine> && sda::NoiseSchedule<sda::VE> && sda::NoiseSchedule<sda::Rectified> &&
              sda::NoiseSchedule<sda::SubSubVP<sda::LinearAlpha>>);
struct NoSigma {
    double mu(double) const { return 1.0; }
};
static_assert(!sda::NoiseSchedule<NoSigma>);

// --- models -----------------------------------------------------------------------
static_assert(sda::ScoreModel<Gaussian> && sda::ScoreModel<Composed>);
static_assert(sda::ScoreModel<sda::MarkovComposedScore<Composed, 1>>);  // compositions compose
static_assert(sda::Backend<sda::backend_t<Gaussian>>);

/// A model of the right shape, from which each broken variant removes one member.
struct Model {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::VPCosine schedule() const { return sda::VPCosine{}; }
    sda::Shape event_shape() const { return {3}; }
    Tensor eps(const Tensor& x, double) const { return x; }
    Tensor vjp(const Tensor&, double, const Tensor& v) const { return v; }
};
struct NoVjp {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::VPCosine schedule() const { return sda::VPCosine{}; }
    sda::Shape event_shape() const { return {3}; }
    Tensor eps(const Tensor& x, double) const { return x; }
};
struct EpsReturnsFloat {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::VPCosine schedule() const { return sda::VPCosine{}; }
    sda::Shape event_shape() const { return {3}; }
    sda::Tensor<float> eps(const Tensor&, double) const { return {}; }
};
struct NoSchedule {
    sda::CpuBackend<double> backend() const { return {}; }
    sda::Shape event_shape() const { return {3}; }
    Tensor eps(const Tensor& x, double) const { return x; }
};
static_assert(sda::ScoreModel<Model>);
static_assert(sda::EpsModel<NoVjp> && !sda::ScoreModel<NoVjp>);
static_assert(!sda::EpsModel<EpsReturnsFloat>);
static_assert(!sda::EpsModel<NoSchedule>);

// --- observation operators --------------------------------------------------------------
static_assert(sda::ObservationOperator<sda::observe::Identity, Cpu>);
static_assert(sda::ObservationOperator<sda::observe::Compose<sda::observe::Saturation, sda::observe::Subsample>, Cpu>);
static_assert(sda::ObservationOperator<sda::observe::AvgPool, sda::CpuBackend<float>>);
static_assert(sda::Observation<Observation, Cpu> && sda::BoundObservation<Bound, Tensor>);
// a bound selection has apply, vjp and jvp but no output_shape: it is bound, not bindable again
static_assert(sda::BoundOperator<sda::bound_operator_t<sda::observe::Select, Cpu>, Tensor> &&
              !sda::ObservationOperator<sda::bound_operator_t<sda::observe::Select, Cpu>, Cpu>);
struct NoJvp {
    sda::Shape output_shape(const sda::Shape& e) const { return e; }
    Tensor apply(const Tensor& x) const { return x; }
    Tensor vjp(const Tensor&, const Tensor& v) const { return v; }
};
static_assert(!sda::ObservationOperator<NoJvp, Cpu>);
struct NoOutputShape {
    Tensor apply(const Tensor& x) const { return x; }
    Tensor vjp(const Tensor&, const Tensor& v) const { return v; }
    Tensor jvp(const Tensor&, const Tensor& v) const { return v; }
};
static_assert(!sda::ObservationOperator<NoOutputShape, Cpu> && sda::BoundOperator<NoOutputShape, Tensor>);

// --- guidance ---------------------------------------------------------------------
static_assert(sda::Guidance<sda::SDA, Composed, Bound> && sda::Guidance<sda::MMPS, Composed, Bound> &&
              sda::Guidance<sda::DPS, Gaussian, Bound> && sda::Guidance<sda::DetachedSDA, Gaussian, Bound>);
// without an input VJP only the detached likelihood is available
static_assert(sda::Guidance<sda::DetachedSDA, NoVjp, Bound>);
static_assert(!sda::Guidance<sda::SDA, NoVjp, Bound> && !sda::Guidance<sda::MMPS, NoVjp, Bound> &&
              !sda::Guidance<sda::DPS, NoVjp, Bound>);
using Posterior = sda::Guided<Composed, Observation, sda::SDA>;
static_assert(sda::EpsModel<Posterior> && !sda::ScoreModel<Posterior>);

// --- samplers ---------------------------------------------------------------------
static_assert(sda::Sampler<sda::PredictorCorrector, Gaussian> && sda::Sampler<sda::DDPM, Posterior> &&
              sda::Sampler<sda::DDIM, Composed> && sda::Sampler<sda::Heun, NoVjp>);
static_assert(sda::Predictor<sda::predictors::Heun, Gaussian> && sda::Corrector<sda::correctors::Langevin, Gaussian>);
struct NotAPredictor {
    Tensor step(const Tensor& x) const { return x; }
};
static_assert(!sda::Predictor<NotAPredictor, Gaussian>);
static_assert(!sda::Sampler<sda::ReverseDiffusion<NotAPredictor>, Gaussian>);

}  // namespace

TEST_CASE("concepts: shipped policies satisfy them, broken ones do not (checked at compile time)") {
    CHECK(sda::ScoreModel<Composed>);
}
