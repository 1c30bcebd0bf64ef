// The doctest runner of sda's MPI tests (run by mpiexec on 1 to 4 ranks, label `mpi`): every rank
// runs the same test cases, and the job exits non-zero on every rank when one rank failed. Rank 0
// prints doctest's summary; the others print only their failures (doctest's --minimal).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (provided < MPI_THREAD_FUNNELED) {
        std::fprintf(stderr, "MPI gives thread level %d, sda needs MPI_THREAD_FUNNELED\n", provided);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);

    doctest::Context context;
    if (rank != 0) context.setOption("minimal", true);  // before applyCommandLine: -m=false still wins
    context.applyCommandLine(argc, argv);
    const int failed = context.run() != 0 ? 1 : 0;

    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_failed && !failed && rank == 0) std::printf("[mpi] another rank failed and printed its failures\n");
    MPI_Finalize();
    return any_failed;
}
