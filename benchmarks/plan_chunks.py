"""The client's peak memory of `sparecast plan --items` on a 2-worker LocalCluster (issue 13).

    python benchmarks/plan_chunks.py gen DIR        # 20,000 items x 1,000 days, sorted by id
    python benchmarks/plan_chunks.py run plan -s DIR/demand.parquet --items DIR/items.parquet \\
        -o OUT -c CFG --methods croston,sba --workers 2 -q

``gen`` writes ``demand.parquet`` (intermittent Poisson demand, 2-30 % of days), ``items.parquet``
(lead time, unit cost, on hand) and ``items_cat.parquet`` (the same with a category: the file is
then loaded in one piece on the client, the baseline). ``run`` runs the CLI in this process (the
client; the workers are processes of their own) and prints its peak RSS.
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl


def gen(out: Path, n: int = 20_000, days: int = 1_000) -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.3, n)
    i, t = np.nonzero(rng.random((n, days)) < p[:, None])
    y = rng.poisson(3.0, i.size) + 1
    ids = np.array([f"I{k:06d}" for k in range(n)])
    ds = np.datetime64(date(2024, 2, 6)) + t.astype("timedelta64[D]")
    demand = pl.DataFrame({"unique_id": ids[i], "ds": ds, "y": y.astype(np.float64)})
    demand = demand.with_columns(pl.col("ds").cast(pl.Date)).sort("unique_id")
    demand.write_parquet(out / "demand.parquet", row_group_size=200_000)
    items = pl.DataFrame(
        {
            "unique_id": ids,
            "lead_time_days": rng.integers(5, 40, n).astype(float),
            "unit_cost": rng.uniform(1, 50, n),
            "on_hand": rng.integers(0, 20, n).astype(float),
        }
    )
    items.write_parquet(out / "items.parquet")
    items.with_columns(pl.lit("c").alias("category")).write_parquet(out / "items_cat.parquet")
    print(demand.height, "rows")


def run(args: list[str]) -> None:
    from typer.testing import CliRunner

    from sparecast.cli import app

    t0 = time.time()
    result = CliRunner().invoke(app, args)
    print("exit", result.exit_code, result.output.strip()[-3000:] if result.exit_code else "")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak RSS {peak:.0f} MiB, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(Path(sys.argv[2]))
    else:
        run(sys.argv[2:])
