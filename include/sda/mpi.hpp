// sda/mpi.hpp: sda across the ranks of an MPI job (the optional target sda::mpi; docs/mpi.md):
// time- and ensemble-parallel trajectory scores, their backend, exact reductions, the
// decompositions that say which rank holds what, and data-parallel training.
#pragma once

#include "sda/mpi/backend.hpp"
#include "sda/mpi/decomposition.hpp"
#include "sda/mpi/environment.hpp"
#include "sda/mpi/markov.hpp"
#include "sda/mpi/reduce.hpp"
#include "sda/mpi/train.hpp"
