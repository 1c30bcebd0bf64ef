// sda/mpi.hpp: sda across the ranks of an MPI job (the optional target sda::mpi; docs/mpi.md):
// time- and ensemble-parallel trajectory scores, their backend, exact reductions, and the
// decompositions that say which rank holds what.
#pragma once

#include "sda/mpi/backend.hpp"
#include "sda/mpi/decomposition.hpp"
#include "sda/mpi/environment.hpp"
#include "sda/mpi/markov.hpp"
#include "sda/mpi/reduce.hpp"
