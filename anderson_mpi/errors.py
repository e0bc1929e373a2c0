"""Every error the suite raises on purpose, in one place.

`OneLineError` is the base of the expected failures: its message says everything (what, which
file or field, what to do), so the command line and the MPI abort print it as one line without a
traceback. Bad input that the command line turns into exit status 2 is a `BadInput`.

A leaf module: it imports nothing of the package, and every room may import it.
"""
from __future__ import annotations

__all__ = ["OneLineError", "BadInput", "PlanError", "SchemaError", "LockError", "MemoryPlanError",
           "StoreError", "SampleError", "ResultsError", "WindowError"]


class OneLineError(Exception):
    """An expected failure whose message says everything: printed as one line, no traceback."""


class BadInput(OneLineError, ValueError):
    """Input the user can fix (job file, command line, existing outputs): exit status 2."""


class PlanError(BadInput):
    """Bad input in a job file or on the command line (the message names the field)."""


class SchemaError(BadInput):
    """A file that is not a result file of this schema version (the message names the file)."""


class LockError(BadInput):
    """An output file that another job is writing (the message names the file and that job)."""


class MemoryPlanError(BadInput):
    """A job whose runs need more memory per rank than a rank has (needed and available sizes)."""


class StoreError(OneLineError, RuntimeError):
    """A result file that cannot be written (the file and the cause)."""


class SampleError(OneLineError, RuntimeError):
    """A sample that must not be summed (non-finite numbers, unitarity violated)."""


class ResultsError(OneLineError, RuntimeError):
    """A results directory the analysis cannot use (missing, empty, incomplete runs)."""


class WindowError(BadInput):
    """A fit window that is not a pair of non-negative integers, or conflicting job files."""
