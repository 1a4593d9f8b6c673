"""Wall time and peak memory of ``sparecast plan`` (forecasts + lead times + policy + report).

A demo ERP of ``--items`` x ``--days`` is written as SQLite, then, each a separate process under
``/usr/bin/time -v``:

1. ``sparecast plan`` (extraction, backtest and forecast of ``--methods``, then the plan);
2. ``sparecast plan --reuse-forecasts`` (the plan alone on the forecasts of 1.).

It also times ``lead_time_stats`` in process on the same purchase orders and receipts.

    python benchmarks/plan.py                        # 20,000 items x 730 days
    python benchmarks/plan.py --items 100000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BIN = Path(sys.executable).parent
END = date(2026, 10, 31)


def measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` under /usr/bin/time -v: (wall seconds, peak RSS GiB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert match is not None
    return wall, int(match.group(1)) / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--methods", default="ma,sba,tsb")
    args = ap.parse_args()

    from sparecast.data.demo import generate_demo_erp
    from sparecast.data.sources import write_tables
    from sparecast.inventory.leadtime import lead_time_stats

    tables = generate_demo_erp(n_items=args.items, n_days=args.days, seed=0, end_date=END)
    t0 = time.perf_counter()
    lt = lead_time_stats(
        tables["purchase_orders"],
        tables["receipts"],
        suppliers=tables["suppliers"],
        items=tables["items"],
        today=END,
    )
    lt_s = time.perf_counter() - t0
    n_po, n_rc = tables["purchase_orders"].height, tables["receipts"].height
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "erp.sqlite"
        write_tables(tables, f"sqlite:///{db}")
        del tables
        cfg = work / "plan.toml"
        cfg.write_text(f'[data]\ntoday = "{END.isoformat()}"\n')
        base = [str(BIN / "sparecast"), "plan", "--source", str(db), "--output", str(work / "o")]
        base += ["--config", str(cfg), "--methods", args.methods, "--quiet"]
        wall, rss = measured(base)
        plan = json.loads((work / "o" / "run.json").read_text())["plan"]
        rows.append((f"sparecast plan (forecast {args.methods} + plan)", wall, rss))
        wall, rss = measured([*base, "--reuse-forecasts"])
        rows.append(("sparecast plan --reuse-forecasts", wall, rss))
    size = f"{args.items:,} items x {args.days} days, {n_po:,} PO lines, {n_rc:,} receipts"
    print(f"\n{size}")
    print(f"lead_time_stats in process: {lt_s:.2f} s ({lt.per_item.height:,} items)")
    print(f"plan step timings (run.json): {plan['timings_s']}")
    print("\n| command | wall s | peak memory GiB |\n|---|---:|---:|")
    for name, wall, rss in rows:
        print(f"| {name} | {wall:.1f} | {rss:.2f} |")


if __name__ == "__main__":
    main()
