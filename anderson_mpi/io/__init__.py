"""The file formats: the result file's schema, its parallel store, the progress records, the
output locks. Imports the observables' field catalogue (never the kernels' internals)."""
