"""Analysis of anderson_mpi result files: QSSEP theory, estimators, fits, figures."""
