// sda/io/progress.hpp: `Progress`, a progress display on stderr for long runs,
// usable as a sampler callback (training's is sda/train/progress.hpp).
//
// On a terminal it redraws one line at most ten times a second:
//   "MMPS, K = 2  [##########----------]  50%  128/256  t = 0.500  2.1 s, ETA 2.1 s"
// When stderr is not a terminal (CI logs, pipes) it prints a plain line at every
// tenth of the run instead, so logs stay readable.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include <unistd.h>

namespace sda {

class Progress {
public:
    /// Draws on `out` (stderr by default); `enabled = false` draws nothing.
    explicit Progress(std::string label, bool enabled = true, std::FILE* out = stderr)
        : label_(std::move(label)), enabled_(enabled), out_(out), terminal_(isatty(fileno(out)) == 1),
          start_(Clock::now()), last_draw_(start_) {}

    /// Sampler callback: step k of `steps` is done, at diffusion time t.
    void on_step(std::size_t k, std::size_t steps, double t) { update(k, steps, "t = " + fixed(t, 3)); }

    /// Whether `update(done, total, ...)` would draw now: callers whose detail costs
    /// something (a value read back from a device) compute it only then.
    bool due(std::size_t done, std::size_t total) const {
        if (!enabled_ || total == 0) return false;
        if (done >= total) return true;
        if (terminal_) return Clock::now() - last_draw_ >= std::chrono::milliseconds(100);
        return done * 10 / total != last_decile_;
    }

    /// Generic form: `done` of `total` units, with a free-form detail.
    void update(std::size_t done, std::size_t total, const std::string& detail = "") {
        if (!due(done, total)) return;
        const auto now = Clock::now();
        const bool last = done >= total;
        if (terminal_) {
            draw(done, total, detail, now, "\r");
            if (last) std::fputc('\n', out_);
        } else {
            last_decile_ = done * 10 / total;
            draw(done, total, detail, now, "");
            std::fputc('\n', out_);
        }
        std::fflush(out_);
        last_draw_ = now;
    }

    /// Seconds since construction.
    double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

private:
    using Clock = std::chrono::steady_clock;

    static std::string fixed(double value, int digits) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
        return buffer;
    }

    void draw(std::size_t done, std::size_t total, const std::string& detail, Clock::time_point now, const char* prefix) {
        constexpr std::size_t width = 20;
        const double fraction = static_cast<double>(done) / static_cast<double>(total);
        const double seconds = std::chrono::duration<double>(now - start_).count();
        const std::size_t filled = static_cast<std::size_t>(fraction * width + 0.5);
        const std::string bar = std::string(filled, '#') + std::string(width - filled, '-');
        std::string line = label_ + "  [" + bar + "] " + fixed(100.0 * fraction, 0) + "%  " + std::to_string(done) +
                           "/" + std::to_string(total);
        if (!detail.empty()) line += "  " + detail;
        line += "  " + fixed(seconds, 1) + " s";
        if (done > 0 && done < total) line += ", ETA " + fixed(seconds * (1.0 - fraction) / fraction, 1) + " s";
        if (terminal_) std::fprintf(out_, "%s%-100s", prefix, line.c_str());
        else std::fprintf(out_, "%s", line.c_str());
    }

    std::string label_;
    bool enabled_;
    std::FILE* out_;
    bool terminal_;
    Clock::time_point start_, last_draw_;
    std::size_t last_decile_ = 0;
};

}  // namespace sda
