"""Analysis of anderson_mpi result files: QSSEP theory, estimators, fits, figures.

Modules: `qssep` (g_n^Q for any n), `io` (reading result directories), `estimators`
(connected cumulants with the block jackknife), `windows` (which points a fit counts),
`fits` (the OLS protocol: dn per order, N -> infinity, exponents), `transport` (Ohm's law,
mean free path), `report` (summary.json and the table), `comparison` (comparison.md),
`figures` (matplotlib, with the data of every figure; imported on demand).
Command line: ``python -m analysis RESULTS_DIR`` (``make figures``).
"""
from . import comparison, estimators, fits, io, qssep, report, transport, windows  # noqa: F401

__all__ = ["qssep", "io", "estimators", "windows", "fits", "transport", "report", "comparison"]
