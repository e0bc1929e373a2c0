"""Benchmarks (``make bench``): print figures, assert nothing.

``python -m anderson_mpi.bench`` runs the engine, observables, small-size and sweep sections;
``mpirun -n P python -m anderson_mpi.bench.petsc`` the transfer matrix against PETSc/MUMPS.
Shared pieces (timing, memory, job files): `anderson_mpi.bench.common`.
"""
