// sda/schedule/rectified.hpp: the rectified-flow (flow-matching) schedule.
//
// Liu et al., "Flow straight and fast" (ICLR 2023); Lipman et al., "Flow matching"
// (ICLR 2023): the straight path mu(t) = 1 - t, sigma(t) = t. Both ends are
// clamped by eta so that mu(1) and sigma(0) stay positive (the samplers divide
// by mu): mu(t) = 1 - (1 - eta) t, sigma(t) = eta + (1 - eta) t.
#pragma once

#include <cmath>
#include <string>

#include "sda/core/error.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda {

class Rectified {
public:
    explicit Rectified(double eta = 1e-3) : eta_(eta) {
        detail::require(std::isfinite(eta) && eta > 0.0 && eta < 1.0,
                        "sda::Rectified schedule: eta must lie in (0, 1), got ", eta);
    }
    double mu(double t) const { return 1.0 - (1.0 - eta_) * t; }
    double sigma(double t) const { return eta_ + (1.0 - eta_) * t; }
    double eta() const { return eta_; }
    std::string description() const { return "Rectified(eta=" + schedule_number(eta_) + ")"; }

private:
    double eta_;
};

static_assert(NoiseSchedule<Rectified>);

}  // namespace sda
