// sda/schedule/ve.hpp: the variance-exploding schedule.
//
// Song et al. (ICLR 2021): mu(t) = 1, sigma(t) = exp((1 - t) log s_min + t log s_max),
// a geometric sweep of the noise scale. s_max should dominate the data's scale,
// since samplers start from N(0, sigma(1)^2 I).
#pragma once

#include <cmath>
#include <string>

#include "sda/core/error.hpp"
#include "sda/schedule/concepts.hpp"

namespace sda {

class VE {
public:
    explicit VE(double sigma_min = 1e-3, double sigma_max = 1e2)
        : sigma_min_(sigma_min), sigma_max_(sigma_max), log_min_(std::log(sigma_min)), log_max_(std::log(sigma_max)) {
        detail::require(std::isfinite(sigma_min) && std::isfinite(sigma_max) && sigma_min > 0.0 &&
                            sigma_max > sigma_min,
                        "sda::VE schedule: need 0 < sigma_min < sigma_max, got sigma_min = ", sigma_min,
                        ", sigma_max = ", sigma_max);
    }
    double mu(double) const { return 1.0; }
    double sigma(double t) const { return std::exp((1.0 - t) * log_min_ + t * log_max_); }
    std::string description() const {
        return "VE(sigma_min=" + schedule_number(sigma_min_) + ", sigma_max=" + schedule_number(sigma_max_) + ")";
    }

private:
    double sigma_min_, sigma_max_, log_min_, log_max_;
};

static_assert(NoiseSchedule<VE>);

}  // namespace sda
