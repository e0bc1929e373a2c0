"""``python -m analysis RESULTS_DIR [RESULTS_DIR ...] [--out DIR]``: summary.json, comparison.md,
figures (with the data behind each) and the summary table.

Exit status 0 on success; 2 (and a message naming the missing or incomplete runs, no
traceback) when the directory is missing, holds no result files or holds incomplete runs
(unless ``--allow-incomplete``), or for a bad or conflicting fit window.
"""
from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"analysis: error: {message}\n")
        sys.exit(EXIT_BAD_INPUT)


def _count(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def main(argv=None):
    parser = _Parser(prog="python -m analysis",
                     description="Cumulants, QSSEP fits and figures of an anderson_mpi results directory.")
    parser.add_argument("results", nargs="+",
                        help="directories of result files (*.h5), e.g. results/demo; several are "
                             "analysed together (e.g. an Anderson job and a simulated QSSEP job)")
    parser.add_argument("--out", help="where summary.json, estimates.h5, comparison.md and figures/ "
                                      "go (default: the first results directory)")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="analyse the done blocks of incomplete runs (and skip unreadable files)")
    parser.add_argument("--drop-slices", type=_count, metavar="K",
                        help="fit window: leave out the K slices next to each lead (default: the "
                             "job file's [analysis] drop_slices, else 0)")
    parser.add_argument("--drop-diagonal", type=_count, metavar="D",
                        help="fit window: leave out g2 pairs |a - b| <= D and g3 points with two "
                             "indices within D (default: [analysis] drop_diagonal, else 0: every "
                             "pair a != b)")
    parser.add_argument("--no-figures", action="store_true",
                        help="summary.json, comparison.md and the table only")
    parser.add_argument("--figures", nargs="+", metavar="NAME",
                        help="only these figures (names as in analysis.figures.FIGURES)")
    args = parser.parse_args(argv)

    from .comparison import write_comparison
    from .io import ResultsError
    from .report import analyze, format_table, write_estimates, write_summary

    try:
        if args.out is not None:
            from pathlib import Path
            Path(args.out).mkdir(parents=True, exist_ok=True)
        an = analyze(args.results, allow_incomplete=args.allow_incomplete,
                     drop_slices=args.drop_slices, drop_diagonal=args.drop_diagonal, out=args.out)
    except ResultsError as err:
        sys.stderr.write(f"analysis: error: {err}\n")
        return EXIT_BAD_INPUT
    path = write_summary(an)
    estimates = write_estimates(an)
    comparison = write_comparison(an)
    written, failed = [], {}
    if not args.no_figures:
        from .figures import FIGURES, make_figures
        unknown = [n for n in (args.figures or []) if n not in FIGURES]
        if unknown:
            sys.stderr.write(f"analysis: error: unknown figure {unknown[0]!r} "
                             f"(known: {', '.join(FIGURES)})\n")
            return EXIT_BAD_INPUT
        written, _, failed = make_figures(an, names=args.figures)
    print(format_table(an.summary))
    print()
    print(f"summary: {path}")
    print(f"estimated arrays (values and jackknife errors per run): {estimates}")
    print(f"comparison with the paper: {comparison}")
    if written:
        pngs = sorted(p.name for p in written if p.suffix == ".png")
        print(f"figures: {len(pngs)} (PNG + PDF, data in CSV) in {written[0].parent}: "
              f"{', '.join(pngs)}")
    if failed:
        sys.stderr.write("analysis: error: figures failed: " + "; ".join(
            f"{name} ({why})" for name, why in failed.items()) + "\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
