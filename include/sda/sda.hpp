// sda/sda.hpp: the umbrella header of sda, score-based data assimilation
// (Rozet & Louppe, "Score-based Data Assimilation", NeurIPS 2023).
//
// Includes every policy kind: schedules, score models (analytic Gaussian,
// Markov composition), observation operators, likelihood guidance, samplers,
// and the linear-Gaussian reference problem with its Kalman/RTS oracle, plus
// xtensor's views for working with the samples. Inside the library, include
// what you use instead.
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

#include "sda/baselines/kalman.hpp"
#include "sda/systems/linear_gaussian.hpp"
