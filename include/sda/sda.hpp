// sda/sda.hpp: the umbrella header of sda, score-based data assimilation
// (Rozet & Louppe, "Score-based Data Assimilation", NeurIPS 2023).
//
// Includes every policy kind: schedules, score models (analytic Gaussian,
// Markov composition, the trainable score networks: MLP and U-Net), observation operators,
// likelihood guidance, samplers; training and checkpoints; the reference
// systems (linear-Gaussian chain, Lorenz-63, Lorenz-96) with their baselines (Kalman/RTS,
// particle and ensemble Kalman smoothers, ETKF/LETKF) and metrics; plus xtensor's views for
// working with the samples. Not HDF5 (sda/io/hdf5.hpp, target sda::hdf5) nor
// the Kolmogorov-flow solver (sda/systems/kolmogorov.hpp, target sda::fftw).
// Inside the library, include what you use instead.
#pragma once

#include <xtensor/xview.hpp>

#include "sda/fwd.hpp"

#include "sda/core/check.hpp"
#include "sda/core/eigen.hpp"
#include "sda/core/error.hpp"
#include "sda/core/random.hpp"
#include "sda/core/shape.hpp"
#include "sda/core/tensor.hpp"

#include "sda/backend/concepts.hpp"
#include "sda/backend/cpu.hpp"

#include "sda/schedule/concepts.hpp"
#include "sda/schedule/rectified.hpp"
#include "sda/schedule/ve.hpp"
#include "sda/schedule/vp.hpp"

#include "sda/score/concepts.hpp"
#include "sda/score/gaussian.hpp"
#include "sda/score/markov.hpp"

#include "sda/observe/compose.hpp"
#include "sda/observe/concepts.hpp"
#include "sda/observe/dense.hpp"
#include "sda/observe/gather.hpp"
#include "sda/observe/gaussian.hpp"
#include "sda/observe/linear.hpp"
#include "sda/observe/pool.hpp"
#include "sda/observe/saturation.hpp"

#include "sda/guidance/concepts.hpp"
#include "sda/guidance/dps.hpp"
#include "sda/guidance/guided.hpp"
#include "sda/guidance/mmps.hpp"
#include "sda/guidance/sda.hpp"

#include "sda/sample/concepts.hpp"
#include "sda/sample/correctors.hpp"
#include "sda/sample/predictors.hpp"
#include "sda/sample/reverse.hpp"
#include "sda/sample/sample.hpp"

#include "sda/io/atomic_file.hpp"
#include "sda/io/progress.hpp"
#include "sda/io/safetensors.hpp"

#include "sda/nn/config.hpp"
#include "sda/nn/score_net.hpp"
#include "sda/nn/score_unet.hpp"
#include "sda/nn/shell.hpp"
#include "sda/train/adamw.hpp"
#include "sda/train/checkpoint.hpp"
#include "sda/train/fit.hpp"
#include "sda/train/loss.hpp"
#include "sda/train/lr_schedule.hpp"
#include "sda/train/progress.hpp"
#include "sda/train/windows.hpp"

#include "sda/systems/linear_gaussian.hpp"
#include "sda/systems/lorenz63.hpp"
#include "sda/systems/lorenz96.hpp"

#include "sda/baselines/enks.hpp"
#include "sda/baselines/etkf.hpp"
#include "sda/baselines/fourdvar.hpp"
#include "sda/baselines/kalman.hpp"
#include "sda/baselines/particle_filter.hpp"

#include "sda/metrics/assignment.hpp"
#include "sda/metrics/ensemble.hpp"
#include "sda/metrics/likelihood.hpp"
#include "sda/metrics/mmd.hpp"
#include "sda/metrics/moments.hpp"
#include "sda/metrics/wasserstein1d.hpp"
