// sda/train/progress.hpp: `TrainingProgress`, the training loop's progress display
// on stderr, passed to `train::fit` (or `torch_nn::fit`) as its callback.
//
// Per epoch a bar with the running loss and the step rate (sda::Progress: redrawn
// at most ten times a second on a terminal, a line per tenth in logs), then one
// line with the epoch's losses, learning rate, time and the ETA of the run. The
// running loss is read only when the bar is drawn, so on a device the loop
// waits for the device at most at those moments.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "sda/io/progress.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"

namespace sda::train {

class TrainingProgress {
public:
    /// Draws on `out` (stderr by default) under `label`; `enabled = false` draws nothing.
    explicit TrainingProgress(std::string label, bool enabled = true, std::FILE* out = stderr)
        : label_(std::move(label)), enabled_(enabled), out_(out) {}

    void on_batch(const BatchStats& s) {
        if (!enabled_) return;
        epochs_ = s.epochs;
        if (!bar_ || s.batch == 1)
            bar_ = std::make_unique<Progress>(label_ + " epoch " + std::to_string(s.epoch) + "/" + std::to_string(s.epochs),
                                              true, out_);
        if (!bar_->due(s.batch, s.batches)) return;
        char detail[64];
        std::snprintf(detail, sizeof detail, "loss %.5f, %.0f steps/s", s.loss(),
                      double(s.batch) / std::max(s.seconds, 1e-9));
        bar_->update(s.batch, s.batches, detail);
    }

    void on_epoch(const EpochStats& s) {
        if (!enabled_) return;
        spent_ += s.seconds, ++seen_;  // this process's epochs only: a resumed run did not time the others
        const double eta = spent_ / double(seen_) * double(epochs_ > s.epoch ? epochs_ - s.epoch : 0);
        std::fprintf(out_, "%s epoch %zu/%zu: train %.5f, valid %.5f, lr %.2e, %.1f s, ETA %.0f s\n", label_.c_str(),
                     s.epoch, epochs_, s.train_loss, s.valid_loss, s.lr, s.seconds, eta);
        std::fflush(out_);
        bar_.reset();
    }

private:
    std::string label_;
    bool enabled_;
    std::FILE* out_;
    std::unique_ptr<Progress> bar_;
    std::size_t epochs_ = 0, seen_ = 0;
    double spent_ = 0;
};

}  // namespace sda::train
