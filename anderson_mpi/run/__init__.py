"""Orchestration of a job: job files -> validated runs (`config`), the cost model (`cost`), who
computes which block (`scheduler`), the job executor (`executor`), MPI helpers (`mpi`), the memory
preflight (`memory`) and fault injection for the tests (`faults`)."""
