"""Compare the Parquet outputs of two run directories, frame by frame.

Used to prove that a refactor left `sparecast demo` outputs unchanged:

    python scripts/compare_outputs.py BEFORE_DIR AFTER_DIR

Columns that hold wall-clock timings are reported apart (they differ between any two runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

TIMING_COLUMNS = {"seconds", "fit_seconds", "time_s", "elapsed_s"}


def compare_dirs(before: Path, after: Path) -> list[str]:
    """Differences between the Parquet files of two directories, one line each (empty: same)."""
    problems: list[str] = []
    names = sorted(
        {str(p.relative_to(before)) for p in before.rglob("*.parquet")}
        | {str(p.relative_to(after)) for p in after.rglob("*.parquet")}
    )
    for name in names:
        a, b = before / name, after / name
        if not a.exists() or not b.exists():
            problems.append(f"{name}: only in {'after' if not a.exists() else 'before'}")
            continue
        fa, fb = pl.read_parquet(a), pl.read_parquet(b)
        timing = [c for c in fa.columns if c in TIMING_COLUMNS]
        fa, fb = fa.drop(timing, strict=False), fb.drop(timing, strict=False)
        if fa.schema != fb.schema:
            problems.append(f"{name}: schema differs {fa.schema} vs {fb.schema}")
        elif not fa.equals(fb):
            problems.append(f"{name}: contents differ ({fa.height} vs {fb.height} rows)")
        else:
            note = f" (timing columns left out: {timing})" if timing else ""
            print(f"{name}: identical, {fa.height} rows{note}")
    return problems


if __name__ == "__main__":
    found = compare_dirs(Path(sys.argv[1]), Path(sys.argv[2]))
    for line in found:
        print("DIFF", line)
    sys.exit(1 if found else 0)
