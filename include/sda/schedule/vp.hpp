// sda/schedule/vp.hpp: variance-preserving schedules and their sub-VP variants.
//
// Song et al., "Score-based generative modeling through SDEs" (ICLR 2021), in the
// parametrisation of Rozet & Louppe (2023): mu(t) = alpha(t) with
//   cos: alpha = cos(acos(sqrt(eta)) t)^2,  lin: alpha = 1 - (1 - eta) t,
//   exp: alpha = exp(log(eta) t^2),
// and   VP: sigma = sqrt(1 - alpha^2 + eta^2),  sub-VP: sigma = 1 - alpha^2 + eta,
//   sub-sub-VP: sigma = 1 - alpha + eta.
// eta (default 1e-3) keeps mu(1) and sigma(0) away from zero.
#pragma once

#include <cmath>
#include <string>

#include "sda/core/error.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda {

/// alpha(t) = cos(acos(sqrt(eta)) t)^2
struct CosineAlpha {
    static constexpr const char* name = "cos";
    static double alpha(double t, double eta) {
        const double c = std::cos(std::acos(std::sqrt(eta)) * t);
        return c * c;
    }
};
/// alpha(t) = 1 - (1 - eta) t
struct LinearAlpha {
    static constexpr const char* name = "lin";
    static double alpha(double t, double eta) { return 1.0 - (1.0 - eta) * t; }
};
/// alpha(t) = exp(log(eta) t^2)
struct ExponentialAlpha {
    static constexpr const char* name = "exp";
    static double alpha(double t, double eta) { return std::exp(std::log(eta) * t * t); }
};

/// sigma = sqrt(1 - alpha^2 + eta^2)
struct VPSigma {
    static constexpr const char* name = "VP";
    static double sigma(double alpha, double eta) { return std::sqrt(1.0 - alpha * alpha + eta * eta); }
};
/// sigma = 1 - alpha^2 + eta
struct SubVPSigma {
    static constexpr const char* name = "SubVP";
    static double sigma(double alpha, double eta) { return 1.0 - alpha * alpha + eta; }
};
/// sigma = 1 - alpha + eta
struct SubSubVPSigma {
    static constexpr const char* name = "SubSubVP";
    static double sigma(double alpha, double eta) { return 1.0 - alpha + eta; }
};

/// mu(t) = alpha(t), sigma(t) = Sigma::sigma(alpha(t), eta).
template <class Alpha, class Sigma>
class AlphaSchedule {
public:
    explicit AlphaSchedule(double eta = 1e-3) : eta_(eta) {
        detail::require(std::isfinite(eta) && eta > 0.0 && eta < 1.0, "sda::", Sigma::name,
                        " schedule: eta must lie in (0, 1), got ", eta);
    }
    double mu(double t) const { return Alpha::alpha(t, eta_); }
    double sigma(double t) const { return Sigma::sigma(Alpha::alpha(t, eta_), eta_); }
    double eta() const { return eta_; }
    std::string description() const {
        return std::string(Sigma::name) + "(" + Alpha::name + ", eta=" + schedule_number(eta_) + ")";
    }

private:
    double eta_;
};

template <class Alpha = CosineAlpha>
using VP = AlphaSchedule<Alpha, VPSigma>;
template <class Alpha = CosineAlpha>
using SubVP = AlphaSchedule<Alpha, SubVPSigma>;
template <class Alpha = CosineAlpha>
using SubSubVP = AlphaSchedule<Alpha, SubSubVPSigma>;

using VPCosine = VP<CosineAlpha>;  ///< the paper's default
using VPLinear = VP<LinearAlpha>;
using VPExponential = VP<ExponentialAlpha>;

static_assert(NoiseSchedule<VPCosine>);

}  // namespace sda
