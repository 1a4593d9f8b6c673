"""Wall time and peak memory of the whole pipeline, as a user runs it.

1. ``sparecast demo`` with the defaults (2,016 items x 365 days, backtest included): goal < 20 s.
2. ``sparecast run`` on 100,000 items x 730 days (a demo ERP written as a long Parquet file and
   as a SQLite ERP): goal < 6 GiB peak memory.

Each run is a separate process measured with ``/usr/bin/time -v`` (maximum resident set size).

    python benchmarks/scale.py                       # both
    python benchmarks/scale.py --items 20000 --skip-demo
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BIN = Path(sys.executable).parent


def measured(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` under /usr/bin/time -v: (wall seconds, peak RSS GiB, stderr tail)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, rss_kb / 1024**2, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--skip-parquet", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_demo:
            wall, rss, _ = measured(
                [str(BIN / "sparecast"), "demo", "--output", str(work / "demo"), "--quiet"]
            )
            rows.append(
                ("sparecast demo (2,016 x 365, all 11 methods, 3-window backtest)", wall, rss)
            )

        from sparecast.data.demo import generate_demo_erp
        from sparecast.data.sources import write_tables

        t0 = time.perf_counter()
        tables = generate_demo_erp(
            n_items=args.items, n_days=args.days, seed=1, end_date=date(2026, 10, 31)
        )
        long = tables["demand"].rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
        long.write_parquet(work / "demand.parquet")
        print(
            f"generated {args.items:,} x {args.days} demo ({long.height:,} demand rows) "
            f"in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        size = f"{args.items:,} x {args.days}"
        if not args.skip_parquet:
            wall, rss, _ = measured(
                [
                    str(BIN / "sparecast"),
                    "run",
                    "--source",
                    str(work / "demand.parquet"),
                    "--output",
                    str(work / "out_parquet"),
                    "--quiet",
                ]
            )
            rows.append((f"sparecast run, long Parquet, {size}", wall, rss))
        if not args.skip_sqlite:
            write_tables(tables, f"sqlite:///{work / 'erp.sqlite'}")
            del tables, long
            wall, rss, _ = measured(
                [
                    str(BIN / "sparecast"),
                    "run",
                    "--source",
                    f"sqlite:///{work / 'erp.sqlite'}",
                    "--output",
                    str(work / "out_sqlite"),
                    "--quiet",
                ]
            )
            rows.append((f"sparecast run, SQLite ERP (extraction included), {size}", wall, rss))
    print()
    print(f"| {'command':<70} | wall s | peak GiB |")
    print(f"|{'-' * 72}|--------|----------|")
    for name, wall, rss in rows:
        print(f"| {name:<70} | {wall:6.1f} | {rss:8.2f} |")


if __name__ == "__main__":
    main()
