// sda/systems/kolmogorov.hpp: 2-D Kolmogorov flow, the high-dimensional system of
// Rozet & Louppe, "Score-based Data Assimilation" (NeurIPS 2023), which they
// simulate with jax-cfd (Kochkov et al., PNAS 2021); here a pseudo-spectral solver.
//
// Incompressible Navier-Stokes in vorticity form on the periodic square [0, 2 pi)^2:
//   d omega/dt + u . grad omega = nu lap omega - drag omega + curl f,   nu = 1 / Re,
//   lap psi = -omega,  u = d psi/dy,  v = -d psi/dx,
// with the forcing f = (A sin(k y), 0), so curl f = -A k cos(k y). The laminar state
// is u = A sin(k y) / (nu k^2 + drag). Fields are row-major [N, N], index (i, j) at
// x = 2 pi i / N (axis 0), y = 2 pi j / N (axis 1); velocities are [2, N, N] (u, v).
//
// Fourier-Galerkin in space with the 2/3 rule (the state keeps the modes with
// 3 |k_x| < N and 3 |k_y| < N, so the truncated advection conserves energy and
// enstrophy exactly); in time the low-storage IMEX RK3 / Crank-Nicolson scheme of
// Spalart, Moser & Rogers (J. Comput. Phys. 96, 1991): RK3 for advection and
// forcing, Crank-Nicolson for -nu |k|^2 - drag; second order; the step is
// dt = min(max_dt, cfl dx / max |u|).
//
// Opt-in, like sda/io/hdf5.hpp: not included by sda/sda.hpp; include this header and
// link FFTW (the CMake target `sda::fftw`). A KolmogorovFlow owns its FFTW plans and
// buffers: one instance is not thread-safe, distinct instances run in parallel
// (planning goes through one mutex, as FFTW's planner is not thread-safe; code
// elsewhere in the process that plans with FFTW concurrently must not bypass it).
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <numbers>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fftw3.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include "sda/core/check.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/tensor.hpp"

namespace sda::systems {

/// The flow and its discretisation. Defaults: the Kolmogorov flow of Rozet & Louppe
/// (jax-cfd's): Re = 1000, drag 0.1, forcing sin(4 y).
struct KolmogorovConfig {
    std::size_t grid = 128;      ///< N, points per axis (even, >= 8, 3 k < N)
    double reynolds = 1000;      ///< Re = 1 / nu
    double drag = 0.1;           ///< linear drag, >= 0
    int forcing_wavenumber = 4;  ///< k of f = (A sin(k y), 0)
    double forcing_amplitude = 1;
    /// dt <= cfl dx / max |u|, in (0, 1.5]. RK3 is stable for |lambda dt| <= sqrt 3 and the
    /// fastest advective rate is max|u| sqrt 2 N / 3, so cfl <= 0.58 is safe whatever the field.
    double cfl = 0.5;
    double max_dt = 0.05;        ///< dt <= max_dt

    void validate() const {
        constexpr const char* who = "sda::systems::KolmogorovConfig: ";
        sda::detail::require(grid >= 8 && grid % 2 == 0, who, "grid must be even and >= 8, got ", grid);
        sda::detail::require(grid <= 65536, who, "grid ", grid, " is too large");
        sda::detail::check_positive(reynolds, std::string(who) + "reynolds");
        sda::detail::check_non_negative(drag, std::string(who) + "drag");
        sda::detail::require(forcing_wavenumber >= 1 && 3 * static_cast<std::size_t>(forcing_wavenumber) < grid, who,
                             "forcing_wavenumber must be >= 1 and below grid / 3 (the 2/3 rule keeps it), got ",
                             forcing_wavenumber, " for grid ", grid);
        sda::detail::require(std::isfinite(forcing_amplitude), who, "forcing_amplitude must be finite, got ",
                             forcing_amplitude);
        sda::detail::require(std::isfinite(cfl) && cfl > 0 && cfl <= 1.5, who, "cfl must be in (0, 1.5], got ", cfl);
        sda::detail::check_positive(max_dt, std::string(who) + "max_dt");
    }
};

namespace detail {

using sda::detail::require;

/// Only FFTW's execute functions are thread-safe: planning, destroying plans and (to be
/// safe; they wrap the system allocator) fftw_malloc / fftw_free go through this mutex.
inline std::mutex& fftw_planner_mutex() {
    static std::mutex mutex;
    return mutex;
}

struct FftwFree {
    void operator()(void* p) const noexcept {
        std::lock_guard lock(fftw_planner_mutex());
        fftw_free(p);
    }
};
struct FftwPlanDestroy {
    void operator()(fftw_plan plan) const noexcept {
        std::lock_guard lock(fftw_planner_mutex());
        fftw_destroy_plan(plan);
    }
};
using FftwReal = std::unique_ptr<double[], FftwFree>;
using FftwComplex = std::unique_ptr<std::complex<double>[], FftwFree>;
using FftwPlan = std::unique_ptr<std::remove_pointer_t<fftw_plan>, FftwPlanDestroy>;

/// SIMD-aligned buffers from fftw_malloc (the new-array execute functions need the
/// planned arrays' alignment).
inline FftwReal fftw_real(std::size_t size) {
    FftwReal p;
    {
        std::lock_guard lock(fftw_planner_mutex());
        p.reset(fftw_alloc_real(size));
    }
    require(p != nullptr, "sda::systems: fftw_alloc_real(", size, ") failed");
    return p;
}
inline FftwComplex fftw_complex_buffer(std::size_t size) {
    // std::complex<double> is layout-compatible with fftw_complex (FFTW manual, 4.1.1)
    FftwComplex p;
    {
        std::lock_guard lock(fftw_planner_mutex());
        p.reset(reinterpret_cast<std::complex<double>*>(fftw_alloc_complex(size)));
    }
    require(p != nullptr, "sda::systems: fftw_alloc_complex(", size, ") failed");
    return p;
}
inline fftw_complex* as_fftw(std::complex<double>* p) { return reinterpret_cast<fftw_complex*>(p); }

/// i k z without a full complex product.
inline std::complex<double> times_ik(double k, std::complex<double> z) { return {-k * z.imag(), k * z.real()}; }

/// The signed wavenumber of FFT index p on n points.
inline double wavenumber(std::size_t p, std::size_t n) {
    return p <= n / 2 ? static_cast<double>(p) : static_cast<double>(p) - static_cast<double>(n);
}
/// The same for a first derivative: the Nyquist mode's derivative is dropped (it is
/// not real).
inline double derivative_wavenumber(std::size_t p, std::size_t n) { return p == n / 2 ? 0.0 : wavenumber(p, n); }

/// The real 2-D FFT of n x n fields. Coefficients are normalised so that
/// f(x) = sum_k c_k e^{i k.x}, laid out [n, n/2 + 1] (k_x full, k_y >= 0).
class Fft2 {
public:
    explicit Fft2(std::size_t n)
        : n_(n), half_(n / 2 + 1), real_(fftw_real(n * n)), complex_(fftw_complex_buffer(n * half_)) {
        const int size = static_cast<int>(n);
        std::lock_guard lock(fftw_planner_mutex());
        // FFTW_ESTIMATE: the plan does not depend on timings, so results are the same in every run
        forward_.reset(fftw_plan_dft_r2c_2d(size, size, real_.get(), as_fftw(complex_.get()),
                                            FFTW_ESTIMATE | FFTW_PRESERVE_INPUT));
        backward_.reset(fftw_plan_dft_c2r_2d(size, size, as_fftw(complex_.get()), real_.get(),
                                             FFTW_ESTIMATE | FFTW_DESTROY_INPUT));
        require(forward_ && backward_, "sda::systems: FFTW could not plan a ", n, " x ", n, " transform");
    }
    Fft2(const Fft2&) = delete;
    Fft2& operator=(const Fft2&) = delete;
    Fft2(Fft2&&) noexcept = default;
    Fft2& operator=(Fft2&&) noexcept = default;

    std::size_t n() const { return n_; }
    std::size_t half() const { return half_; }
    std::size_t modes() const { return n_ * half_; }
    std::size_t points() const { return n_ * n_; }

    /// The coefficients of `field` (n * n values, left unchanged) into `out`, an
    /// fftw-allocated buffer of modes() values.
    void forward(const double* field, std::complex<double>* out) {
        // r2c planned with FFTW_PRESERVE_INPUT: the input is only read
        double* in = const_cast<double*>(field);
        if (fftw_alignment_of(in) != fftw_alignment_of(real_.get())) {
            std::memcpy(real_.get(), field, points() * sizeof(double));
            in = real_.get();
        }
        fftw_execute_dft_r2c(forward_.get(), in, as_fftw(out));
        const double scale = 1.0 / static_cast<double>(points());
        for (std::size_t m = 0; m < modes(); ++m) out[m] *= scale;
    }

    /// The field of the coefficients `in` (an fftw-allocated buffer, destroyed) into
    /// `out` (n * n values).
    void backward(std::complex<double>* in, double* out) {
        if (fftw_alignment_of(out) == fftw_alignment_of(real_.get())) {
            fftw_execute_dft_c2r(backward_.get(), as_fftw(in), out);
        } else {
            fftw_execute_dft_c2r(backward_.get(), as_fftw(in), real_.get());
            std::memcpy(out, real_.get(), points() * sizeof(double));
        }
    }

private:
    std::size_t n_, half_;
    FftwReal real_;
    FftwComplex complex_;
    FftwPlan forward_, backward_;
};

/// Parseval weight of column q of a half spectrum: the columns 0 < q < n/2 stand
/// for themselves and their conjugates.
inline double parseval_weight(std::size_t q, std::size_t n) { return q == 0 || q == n / 2 ? 1.0 : 2.0; }

inline void check_velocity(std::span<const double> velocity, std::size_t n, const char* who) {
    require(velocity.size() == 2 * n * n, who, ": velocity must hold [2, ", n, ", ", n, "] = ", 2 * n * n,
            " values, got ", velocity.size());
}

/// Spectral curl dv/dx - du/dy of a velocity [2, n, n].
inline std::vector<double> spectral_curl(Fft2& fft, std::span<const double> velocity) {
    const std::size_t n = fft.n(), half = fft.half();
    FftwComplex u = fftw_complex_buffer(fft.modes()), v = fftw_complex_buffer(fft.modes());
    fft.forward(velocity.data(), u.get());
    fft.forward(velocity.data() + n * n, v.get());
    for (std::size_t p = 0; p < n; ++p) {
        const double kx = derivative_wavenumber(p, n);
        for (std::size_t q = 0; q < half; ++q) {
            const std::size_t m = p * half + q;
            u[m] = times_ik(kx, v[m]) - times_ik(derivative_wavenumber(q, n), u[m]);
        }
    }
    std::vector<double> out(n * n);
    fft.backward(u.get(), out.data());
    return out;
}

}  // namespace detail

/// The pseudo-spectral solver (see the top of this file). Vorticity fields are
/// std::vector<double> of N * N values; every method checks sizes and throws
/// sda::error. Not thread-safe (it owns FFTW work buffers); use one per thread.
class KolmogorovFlow {
public:
    explicit KolmogorovFlow(KolmogorovConfig config)
        : config_((config.validate(), config)),
          n_(config.grid),
          half_(n_ / 2 + 1),
          modes_(n_ * half_),
          fft_(n_),
          w_(detail::fftw_complex_buffer(modes_)),
          n0_(detail::fftw_complex_buffer(modes_)),
          n1_(detail::fftw_complex_buffer(modes_)),
          scratch_(detail::fftw_complex_buffer(modes_)),
          u_(detail::fftw_real(n_ * n_)),
          v_(detail::fftw_real(n_ * n_)),
          wx_(detail::fftw_real(n_ * n_)),
          wy_(detail::fftw_real(n_ * n_)) {
        const double nu = 1.0 / config_.reynolds;
        kx_.resize(modes_), ky_.resize(modes_), inv_k2_.resize(modes_), linear_.resize(modes_);
        keep_.resize(modes_), weight_.resize(modes_);
        for (std::size_t p = 0; p < n_; ++p) {
            for (std::size_t q = 0; q < half_; ++q) {
                const std::size_t m = p * half_ + q;
                const double kx = detail::wavenumber(p, n_), ky = detail::wavenumber(q, n_);
                const double k2 = kx * kx + ky * ky;
                kx_[m] = detail::derivative_wavenumber(p, n_);
                ky_[m] = detail::derivative_wavenumber(q, n_);
                inv_k2_[m] = m == 0 ? 0.0 : 1.0 / k2;
                linear_[m] = -nu * k2 - config_.drag;
                // 2/3 rule: keep 3 |k| < N on both axes; the mean vorticity is not advected
                keep_[m] = m != 0 && 3 * std::abs(kx) < static_cast<double>(n_) && 3 * ky < static_cast<double>(n_)
                               ? 1.0
                               : 0.0;
                weight_[m] = detail::parseval_weight(q, n_);
            }
        }
        // curl f = -A k cos(k y): the coefficient -A k / 2 at (k_x, k_y) = (0, k) and its conjugate
        forcing_mode_ = static_cast<std::size_t>(config_.forcing_wavenumber);
        forcing_value_ = -0.5 * config_.forcing_amplitude * config_.forcing_wavenumber;
    }

    KolmogorovFlow(const KolmogorovFlow&) = delete;
    KolmogorovFlow& operator=(const KolmogorovFlow&) = delete;
    KolmogorovFlow(KolmogorovFlow&&) noexcept = default;
    KolmogorovFlow& operator=(KolmogorovFlow&&) noexcept = default;

    const KolmogorovConfig& config() const { return config_; }
    std::size_t grid() const { return n_; }
    /// Grid spacing 2 pi / N.
    double dx() const { return 2.0 * std::numbers::pi / static_cast<double>(n_); }

    /// A random smooth vorticity field: Fourier modes with random phases (those of
    /// the FFT of white noise, one fill of `gen`), |omega_k|^2 proportional to
    /// |k| E(|k|) with E(k) = k^4 exp(-2 (k / peak)^2) (energy spectrum peaked at
    /// `peak_wavenumber`), within the 2/3 band, zero mean, scaled to
    /// sqrt(<|u|^2>) = velocity_rms.
    std::vector<double> random_vorticity(Generator& gen, double peak_wavenumber = 4, double velocity_rms = 1) {
        sda::detail::check_positive(peak_wavenumber, "sda::systems::KolmogorovFlow::random_vorticity: peak_wavenumber");
        sda::detail::check_positive(velocity_rms, "sda::systems::KolmogorovFlow::random_vorticity: velocity_rms");
        fill_normal(u_.get(), 1, n_ * n_, gen);
        fft_.forward(u_.get(), w_.get());
        double energy = 0;
        for (std::size_t m = 0; m < modes_; ++m) {
            const double size = std::abs(w_[m]);
            if (keep_[m] == 0.0 || size == 0.0) {
                w_[m] = 0.0;
                continue;
            }
            const double k = std::sqrt(1.0 / inv_k2_[m]), r = k / peak_wavenumber;
            const double spectrum = k * k * k * k * std::exp(-2.0 * r * r);
            w_[m] *= std::sqrt(k * spectrum) / size;
            energy += 0.5 * weight_[m] * std::norm(w_[m]) * inv_k2_[m];
        }
        sda::detail::require(energy > 0, "sda::systems::KolmogorovFlow::random_vorticity: no mode in the band");
        const double scale = velocity_rms / std::sqrt(2.0 * energy);
        for (std::size_t m = 0; m < modes_; ++m) w_[m] *= scale;
        std::vector<double> omega(n_ * n_);
        fft_.backward(w_.get(), omega.data());
        return omega;
    }

    /// One step of exactly `dt` from `omega`, in place. Modes outside the 2/3 band
    /// and the mean (zero for the curl of any periodic velocity) are dropped first.
    void step(std::vector<double>& omega, double dt) {
        check_field(omega, "step");
        sda::detail::check_positive(dt, "sda::systems::KolmogorovFlow::step: dt");
        load_state(omega);
        const double speed2 = tendency(w_.get(), n1_.get());
        check_speed(speed2, 0.0);
        rk3(dt);
        store_state(omega);
    }

    /// Integrates `omega` over exactly `duration`, in place, with CFL-controlled steps
    /// (the last one shortened to land on `duration`); returns the number of steps.
    /// Modes outside the 2/3 band and the mean are dropped first. Throws sda::error
    /// if the velocity becomes non-finite (omega is then left unchanged).
    std::size_t advance(std::vector<double>& omega, double duration) {
        check_field(omega, "advance");
        sda::detail::check_non_negative(duration, "sda::systems::KolmogorovFlow::advance: duration");
        if (duration == 0) return 0;
        load_state(omega);
        double t = 0;
        std::size_t steps = 0;
        for (bool last = false; !last; ++steps) {
            const double speed2 = tendency(w_.get(), n1_.get());
            check_speed(speed2, t);
            double dt = config_.max_dt;
            if (speed2 > 0) dt = std::min(dt, config_.cfl * dx() / std::sqrt(speed2));
            const double remaining = duration - t;
            if (remaining <= dt * (1 + 1e-10)) dt = remaining, last = true;
            rk3(dt);
            t += dt;
        }
        store_state(omega);
        return steps;
    }

    /// The step that advance() would take now: min(max_dt, cfl dx / max |u|).
    double time_step(std::span<const double> omega) {
        const std::vector<double> velocity = this->velocity(omega);
        double speed2 = 0;
        for (std::size_t i = 0; i < n_ * n_; ++i)
            speed2 = std::max(speed2, velocity[i] * velocity[i] + velocity[n_ * n_ + i] * velocity[n_ * n_ + i]);
        return speed2 > 0 ? std::min(config_.max_dt, config_.cfl * dx() / std::sqrt(speed2)) : config_.max_dt;
    }

    /// The velocity [2, N, N] of `omega`: u = d psi/dy, v = -d psi/dx, lap psi = -omega,
    /// with zero mean (the mean of omega and its Nyquist modes, whose first derivatives
    /// are not real, do not enter).
    std::vector<double> velocity(std::span<const double> omega) {
        check_field(omega, "velocity");
        fft_.forward(omega.data(), w_.get());
        std::vector<double> out(2 * n_ * n_);
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(ky_[m], w_[m] * inv_k2_[m]);
        fft_.backward(scratch_.get(), out.data());
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(-kx_[m], w_[m] * inv_k2_[m]);
        fft_.backward(scratch_.get(), out.data() + n_ * n_);
        return out;
    }

    /// The vorticity dv/dx - du/dy of a velocity [2, N, N], spectrally.
    std::vector<double> vorticity(std::span<const double> velocity) {
        detail_check_velocity(velocity, "vorticity");
        return detail::spectral_curl(fft_, velocity);
    }

    /// The divergence du/dx + dv/dy of a velocity [2, N, N], spectrally.
    std::vector<double> divergence(std::span<const double> velocity) {
        detail_check_velocity(velocity, "divergence");
        fft_.forward(velocity.data(), w_.get());
        fft_.forward(velocity.data() + n_ * n_, n0_.get());
        for (std::size_t m = 0; m < modes_; ++m)
            scratch_[m] = detail::times_ik(kx_[m], w_[m]) + detail::times_ik(ky_[m], n0_[m]);
        std::vector<double> out(n_ * n_);
        fft_.backward(scratch_.get(), out.data());
        return out;
    }

    /// The advection term u . grad omega as the solver computes it: products on the
    /// grid, then only the modes of the 2/3 band kept, without the mean (`omega` is
    /// taken as given; the solver's state is already inside the band).
    std::vector<double> advection(std::span<const double> omega) {
        check_field(omega, "advection");
        fft_.forward(omega.data(), w_.get());
        tendency(w_.get(), n0_.get());
        // tendency() is -(u . grad omega) plus the forcing
        n0_[forcing_mode_] -= forcing_value_;
        for (std::size_t m = 0; m < modes_; ++m) n0_[m] = -n0_[m];
        std::vector<double> out(n_ * n_);
        fft_.backward(n0_.get(), out.data());
        return out;
    }

    /// Kinetic energy 0.5 <|u|^2> (domain mean), spectrally.
    double energy(std::span<const double> omega) {
        load_field(omega, "energy");
        return energy_of(w_.get());
    }
    /// Enstrophy 0.5 <omega^2>.
    double enstrophy(std::span<const double> omega) {
        load_field(omega, "enstrophy");
        return enstrophy_of(w_.get());
    }
    /// Energy injection <u . f> by the forcing.
    double injection(std::span<const double> omega) {
        load_field(omega, "injection");
        return injection_of(w_.get());
    }
    /// Energy dissipation nu <omega^2> + 2 drag E; dE/dt = injection - dissipation.
    double dissipation(std::span<const double> omega) {
        load_field(omega, "dissipation");
        return 2.0 * enstrophy_of(w_.get()) / config_.reynolds + 2.0 * config_.drag * energy_of(w_.get());
    }

private:
    // Spalart, Moser & Rogers (1991), appendix A: substep r advances by
    //   (1 - beta_r dt L) w_r = (1 + alpha_r dt L) w_{r-1} + dt (gamma_r N(w_{r-1}) + zeta_r N(w_{r-2})).
    static constexpr double gamma_[3] = {8.0 / 15.0, 5.0 / 12.0, 3.0 / 4.0};
    static constexpr double zeta_[3] = {0.0, -17.0 / 60.0, -5.0 / 12.0};
    static constexpr double alpha_[3] = {4.0 / 15.0, 1.0 / 15.0, 1.0 / 6.0};
    static constexpr double beta_[3] = {4.0 / 15.0, 1.0 / 15.0, 1.0 / 6.0};

    void check_field(std::span<const double> omega, const char* what) const {
        sda::detail::require(omega.size() == n_ * n_, "sda::systems::KolmogorovFlow::", what, ": vorticity must hold [",
                             n_, ", ", n_, "] = ", n_ * n_, " values, got ", omega.size());
    }
    void detail_check_velocity(std::span<const double> velocity, const char* what) const {
        sda::detail::require(velocity.size() == 2 * n_ * n_, "sda::systems::KolmogorovFlow::", what,
                             ": velocity must hold [2, ", n_, ", ", n_, "] = ", 2 * n_ * n_, " values, got ",
                             velocity.size());
    }
    void check_speed(double speed2, double t) const {
        sda::detail::require(std::isfinite(speed2), "sda::systems::KolmogorovFlow: the velocity became non-finite at t = ",
                             t, " (blow-up; lower cfl or max_dt)");
    }

    void load_field(std::span<const double> omega, const char* what) {
        check_field(omega, what);
        fft_.forward(omega.data(), w_.get());
    }
    /// The state w_: omega's coefficients inside the 2/3 band.
    void load_state(std::span<const double> omega) {
        fft_.forward(omega.data(), w_.get());
        for (std::size_t m = 0; m < modes_; ++m) w_[m] *= keep_[m];
    }
    void store_state(std::vector<double>& omega) {
        std::copy(w_.get(), w_.get() + modes_, scratch_.get());
        fft_.backward(scratch_.get(), omega.data());
    }

    double energy_of(const std::complex<double>* w) const {
        double sum = 0;
        for (std::size_t m = 0; m < modes_; ++m) sum += weight_[m] * std::norm(w[m]) * inv_k2_[m];
        return 0.5 * sum;
    }
    double enstrophy_of(const std::complex<double>* w) const {
        double sum = 0;
        for (std::size_t m = 0; m < modes_; ++m) sum += weight_[m] * std::norm(w[m]);
        return 0.5 * sum;
    }
    double injection_of(const std::complex<double>* w) const {
        // <u f_x> = 2 Re(u_(0,k) conj(f_(0,k))), f_(0,k) = -i A / 2, u_(0,k) = i omega_(0,k) / k
        return -config_.forcing_amplitude * w[forcing_mode_].real() / config_.forcing_wavenumber;
    }

    /// N(w) = -(u . grad omega) + curl f in the 2/3 band, into `out`; returns max |u|^2 on the grid.
    double tendency(const std::complex<double>* w, std::complex<double>* out) {
        const std::size_t points = n_ * n_;
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(ky_[m], w[m] * inv_k2_[m]);
        fft_.backward(scratch_.get(), u_.get());
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(-kx_[m], w[m] * inv_k2_[m]);
        fft_.backward(scratch_.get(), v_.get());
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(kx_[m], w[m]);
        fft_.backward(scratch_.get(), wx_.get());
        for (std::size_t m = 0; m < modes_; ++m) scratch_[m] = detail::times_ik(ky_[m], w[m]);
        fft_.backward(scratch_.get(), wy_.get());
        double* u = u_.get();
        const double *v = v_.get(), *wx = wx_.get(), *wy = wy_.get();
        double speed2 = 0;
        for (std::size_t i = 0; i < points; ++i) {
            speed2 = std::max(speed2, u[i] * u[i] + v[i] * v[i]);
            u[i] = u[i] * wx[i] + v[i] * wy[i];
        }
        fft_.forward(u, out);
        for (std::size_t m = 0; m < modes_; ++m) out[m] *= -keep_[m];
        out[forcing_mode_] += forcing_value_;
        return speed2;
    }

    /// One IMEX RK3/CN step of dt on w_, with N(w_) already in n1_.
    void rk3(double dt) {
        for (int r = 0; r < 3; ++r) {
            if (r > 0) {
                std::swap(n0_, n1_);  // n0_ = N(w_{r-2})
                tendency(w_.get(), n1_.get());
            }
            const double a = alpha_[r] * dt, b = beta_[r] * dt, g = gamma_[r] * dt, z = zeta_[r] * dt;
            std::complex<double>* w = w_.get();
            const std::complex<double>*now = n1_.get(), *before = n0_.get();
            if (r == 0) {
                for (std::size_t m = 0; m < modes_; ++m)
                    w[m] = ((1.0 + a * linear_[m]) * w[m] + g * now[m]) / (1.0 - b * linear_[m]);
            } else {
                for (std::size_t m = 0; m < modes_; ++m)
                    w[m] = ((1.0 + a * linear_[m]) * w[m] + g * now[m] + z * before[m]) / (1.0 - b * linear_[m]);
            }
        }
    }

    KolmogorovConfig config_;
    std::size_t n_, half_, modes_;
    detail::Fft2 fft_;
    // per mode [N, N/2 + 1]: derivative wavenumbers, 1/|k|^2, -nu |k|^2 - drag, 2/3-band mask, Parseval weight
    std::vector<double> kx_, ky_, inv_k2_, linear_, keep_, weight_;
    std::size_t forcing_mode_ = 0;
    double forcing_value_ = 0;
    detail::FftwComplex w_, n0_, n1_, scratch_;
    detail::FftwReal u_, v_, wx_, wy_;
};

/// Average pooling of `fields` [channels, n, n] to [channels, n / factor, n / factor].
inline std::vector<double> coarsen(std::span<const double> fields, std::size_t channels, std::size_t n,
                                   std::size_t factor) {
    sda::detail::require(factor >= 1 && n >= 1 && n % factor == 0, "sda::systems::coarsen: factor ", factor,
                         " must be >= 1 and divide the grid ", n);
    sda::detail::require(fields.size() == channels * n * n, "sda::systems::coarsen: fields must hold [", channels, ", ",
                         n, ", ", n, "] = ", channels * n * n, " values, got ", fields.size());
    const std::size_t m = n / factor;
    std::vector<double> out(channels * m * m, 0.0);
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < n; ++j) out[(c * m + i / factor) * m + j / factor] += fields[(c * n + i) * n + j];
    const double scale = 1.0 / static_cast<double>(factor * factor);
    for (double& value : out) value *= scale;
    return out;
}

/// The isotropic kinetic energy spectrum of a velocity [2, n, n]: E(k) sums
/// 0.5 |u_k|^2 over the modes with round(|k|) = k, for k = 0 .. round(n / sqrt 2)
/// (shells above n / 2 hold only the corners of the square), so that
/// sum_k E(k) = 0.5 <|u|^2>.
inline std::vector<double> energy_spectrum(std::span<const double> velocity, std::size_t n) {
    sda::detail::require(n >= 2 && n % 2 == 0, "sda::systems::energy_spectrum: n must be even and >= 2, got ", n);
    detail::check_velocity(velocity, n, "sda::systems::energy_spectrum");
    detail::Fft2 fft(n);
    const std::size_t half = fft.half();
    const auto shells = static_cast<std::size_t>(std::lround(std::sqrt(0.5) * static_cast<double>(n))) + 1;
    std::vector<double> spectrum(shells, 0.0);
    detail::FftwComplex c = detail::fftw_complex_buffer(fft.modes());
    for (std::size_t component = 0; component < 2; ++component) {
        fft.forward(velocity.data() + component * n * n, c.get());
        for (std::size_t p = 0; p < n; ++p) {
            const double kx = detail::wavenumber(p, n);
            for (std::size_t q = 0; q < half; ++q) {
                const double ky = static_cast<double>(q);
                const auto shell = static_cast<std::size_t>(std::lround(std::sqrt(kx * kx + ky * ky)));
                spectrum[shell] += 0.5 * detail::parseval_weight(q, n) * std::norm(c[p * half + q]);
            }
        }
    }
    return spectrum;
}

/// The vorticity dv/dx - du/dy of a velocity [2, n, n] (e.g. a coarsened one), spectrally.
inline std::vector<double> spectral_vorticity(std::span<const double> velocity, std::size_t n) {
    sda::detail::require(n >= 2 && n % 2 == 0, "sda::systems::spectral_vorticity: n must be even and >= 2, got ", n);
    detail::check_velocity(velocity, n, "sda::systems::spectral_vorticity");
    detail::Fft2 fft(n);
    return detail::spectral_curl(fft, velocity);
}

/// A Kolmogorov dataset: `trajectories` runs from random_vorticity() (peak 4,
/// velocity rms 1), `burn_in` time units discarded, then `states` velocity fields
/// `spacing` apart, each average-pooled by `coarsen`.
struct KolmogorovData {
    std::size_t trajectories = 64, states = 64, coarsen = 4;
    double spacing = 0.2, burn_in = 20;
    std::uint64_t seed = 0;
};

/// Simulates the dataset: float32 [trajectories, states, 2, N / c, N / c] coarsened
/// velocities. Trajectories run in parallel (oneTBB, one solver each); trajectory b
/// starts from random_vorticity(Generator(seed, b)), so the result does not depend
/// on the thread count. `progress`, if set, is called with the number of finished
/// trajectories (serialised, from the worker threads).
inline Tensor<float> kolmogorov_trajectories(const KolmogorovConfig& config, const KolmogorovData& data,
                                             const std::function<void(std::size_t)>& progress = {}) {
    config.validate();
    constexpr const char* who = "sda::systems::kolmogorov_trajectories: ";
    sda::detail::require(data.trajectories >= 1 && data.states >= 1, who, "trajectories and states must be >= 1, got ",
                         data.trajectories, " and ", data.states);
    sda::detail::require(data.coarsen >= 1 && config.grid % data.coarsen == 0, who, "coarsen ", data.coarsen,
                         " must be >= 1 and divide the grid ", config.grid);
    sda::detail::check_positive(data.spacing, std::string(who) + "spacing");
    sda::detail::check_non_negative(data.burn_in, std::string(who) + "burn_in");
    const std::size_t n = config.grid, m = n / data.coarsen, frame = 2 * m * m;
    Tensor<float> out = empty_tensor<float>({data.trajectories, data.states, 2, m, m});
    std::mutex progress_mutex;
    std::size_t done = 0;
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, data.trajectories, 1),
        [&](const tbb::blocked_range<std::size_t>& range) {
            KolmogorovFlow flow(config);
            for (std::size_t b = range.begin(); b < range.end(); ++b) {
                Generator gen(data.seed, b);
                std::vector<double> omega = flow.random_vorticity(gen);
                flow.advance(omega, data.burn_in);
                for (std::size_t s = 0; s < data.states; ++s) {
                    if (s > 0) flow.advance(omega, data.spacing);
                    const std::vector<double> coarse = coarsen(flow.velocity(omega), 2, n, data.coarsen);
                    float* target = out.data() + (b * data.states + s) * frame;
                    for (std::size_t i = 0; i < frame; ++i) target[i] = static_cast<float>(coarse[i]);
                }
                if (progress) {
                    std::lock_guard lock(progress_mutex);
                    progress(++done);
                }
            }
        },
        tbb::simple_partitioner());
    return out;
}

}  // namespace sda::systems
