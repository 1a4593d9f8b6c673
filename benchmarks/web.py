"""Server time and weight of every page of the planner's web app, at 2,016 and 100,000 items.

    python benchmarks/web.py [--items 2016 100000] [--repeat 30] [--base DIR]

Makes a demo run directory (``sparecast demo --items 2016 --days 365``, or ``--base DIR``) and,
for every larger size, a scaled copy of it: the plan files (policy, backtest, classification,
selection, open orders) and the forecast store's run tiled to N items (ids ``<id>~k``), so every
page reads N items. Each page is then measured three ways (in-process, Starlette's TestClient:
the server's own time, no network): its first request on a server just started (a new server
per page; the background warm-up runs meanwhile and the request waits for the tables it needs,
computed once), its first request right after a new policy.parquet was moved in (the warm-up
has not noticed it yet), and p50/p95 of ``--repeat`` requests once the warm-up is done; with
the HTML weight, the warm-up's duration at start and after a plan change (no request
meanwhile), and the static assets' weight (loaded once).

Goal (issue 15): p95 under 300 ms per page at 100,000 items.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fastapi.testclient import TestClient  # noqa: E402

from sparecast.config import Settings  # noqa: E402
from sparecast.service import create_app  # noqa: E402
from sparecast.service.web import STATIC_DIR  # noqa: E402
from sparecast.service.web.auth import hash_password  # noqa: E402
from sparecast.store import ForecastStore, RunMeta  # noqa: E402

PLAN_FILES = ("policy", "backtest", "classification", "selection", "backtest_summary")


def demo(out: Path, items: int) -> None:
    """``sparecast demo`` into ``out`` (2,016 items x 365 days, the classical methods)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sparecast.cli",
            "demo",
            "--output",
            str(out),
            "--items",
            str(items),
            "--days",
            "365",
            "--quiet",
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def _tile(frame: pl.DataFrame, copies: int, n: int, col: str = "unique_id") -> pl.DataFrame:
    parts = [frame] + [
        frame.with_columns((pl.col(col).cast(pl.String) + f"~{k}").alias(col))
        for k in range(1, copies)
    ]
    out = pl.concat(parts)
    keep = out.select(pl.col(col).unique(maintain_order=True).head(n))
    return out.join(keep, on=col, how="semi")


def scaled(base: Path, out: Path, n: int) -> None:
    """A copy of run directory ``base`` with every item table and the store's run tiled to
    ``n`` items."""
    out.mkdir(parents=True)
    items = pl.read_parquet(base / "policy.parquet").height
    copies = -(-n // items)
    for name in PLAN_FILES:
        path = base / f"{name}.parquet"
        if not path.exists():
            continue
        frame = pl.read_parquet(path)
        if "unique_id" in frame.columns:
            frame = _tile(frame, copies, n)
        if name == "policy":  # one ranking over the whole tiled plan
            ranked = frame.filter(pl.col("order_rank").is_not_null()).sort(
                "order_rank", "unique_id"
            )
            ranks = ranked.select("unique_id").with_row_index("new_rank", offset=1)
            frame = (
                frame.join(ranks, on="unique_id", how="left")
                .with_columns(pl.col("new_rank").cast(pl.Int64).alias("order_rank"))
                .drop("new_rank")
            )
        frame.write_parquet(out / f"{name}.parquet")
    if (base / "open_orders.parquet").exists():
        _tile(pl.read_parquet(base / "open_orders.parquet"), copies, n, "item_id").write_parquet(
            out / "open_orders.parquet"
        )
    for name in ("suppliers.parquet", "run.json"):
        if (base / name).exists():
            shutil.copy(base / name, out / name)
    src = ForecastStore(f"sqlite:///{base / 'history.sqlite'}")
    run = src.latest_run()
    assert run is not None
    fc = _tile(src.run_forecasts(run.run_id), copies, n)
    dates = run.actuals_dates
    actuals = None
    if dates:
        base_ids = pl.read_parquet(base / "policy.parquet")["unique_id"].to_list()
        rows = []
        for item in base_ids:
            a = src.actuals(item)
            if a.height:
                rows.append(a.with_columns(pl.lit(item).alias("unique_id")))
        if rows:
            actuals = _tile(pl.concat(rows).select("unique_id", "ds", "y"), copies, n)
    dst = ForecastStore(f"sqlite:///{out / 'history.sqlite'}")
    dst.migrate()
    meta = RunMeta(
        sparecast_version=run.sparecast_version,
        config=run.config,
        data_start=run.data_start,
        data_end=run.data_end,
        freq=run.freq,
        n_items=n,
        n_periods=run.n_periods,
        horizon=run.horizon,
        source=run.source,
    )
    dst.write_run(replace(meta), fc, actuals=actuals, accuracy=src.run_accuracy(run.run_id))
    src.dispose()
    dst.dispose()


def _replace_plan(data: Path) -> None:
    """A new plan file as ``sparecast plan`` writes it: a new policy.parquet moved into place
    (same rows: the pages' tables are all derived again)."""
    tmp = data / "policy.parquet.new"
    pl.read_parquet(data / "policy.parquet").write_parquet(tmp)
    os.replace(tmp, data / "policy.parquet")


def _timed_get(client: TestClient, path: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    r = client.get(path)
    ms = 1000 * (time.perf_counter() - t0)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return ms, r.content


def _warmed(web: Any, passes: int) -> None:
    """Wait until the warm-up finished a pass started after pass ``passes``."""
    while web.warm_passes < passes + 2:
        time.sleep(0.01)


def measure(data: Path, repeat: int) -> tuple[list[dict[str, object]], dict[str, float]]:
    """Per page over ``data``: the server time of its first request right after the server
    started (the warm-up runs meanwhile) and right after a new policy.parquet was moved in,
    then p50/p95 of ``repeat`` requests, and the HTML bytes; with the warm-up's durations."""
    policy = pl.read_parquet(data / "policy.parquet")
    item = policy.sort("forecast_horizon_total", descending=True)["unique_id"][0]
    # the default warm-up interval (2 s), as served
    settings = Settings(web={"users": {"ann": hash_password("pw")}, "secret": "b" * 32})
    pages = {
        "overview": "/app",
        "orders": "/app/orders",
        "orders (sorted by value, filtered)": "/app/orders?sort=order_value&desc=1&risk_level=high",
        "orders (page 20)": "/app/orders?page=20",
        "items": "/app/items",
        "items (search)": "/app/items?q=bearing&sort=stockout_risk&desc=1",
        "item": f"/app/items/{item}",
        "accuracy": "/app/accuracy",
        "suppliers": "/app/suppliers",
        "models": "/app/models",
        "orders CSV export": "/app/orders?export=csv",
    }
    rows = []
    for name, path in pages.items():  # a new server per page: its first request at start
        app = create_app(settings, data)
        with TestClient(app) as client:
            at_start, _ = _timed_get(client, path)
            _warmed(app.state.sparecast_web, 0)
        rows.append({"page": name, "start_ms": at_start})
    app = create_app(settings, data)
    with TestClient(app) as client:
        web = app.state.sparecast_web
        _warmed(web, 0)  # no request meanwhile: the warm-up computes everything
        warm = {"warm_up_s": web.last_warm_s}
        passes = web.warm_passes
        _replace_plan(data)
        _warmed(web, passes)
        warm["rewarm_s"] = web.last_warm_s
        for row, path in zip(rows, pages.values(), strict=True):
            passes = web.warm_passes
            _replace_plan(data)
            row["change_ms"], _ = _timed_get(client, path)
            _warmed(web, passes)
            times = []
            for _ in range(repeat):
                ms, content = _timed_get(client, path)
                times.append(ms)
            times.sort()
            row.update(
                p50_ms=statistics.median(times),
                p95_ms=times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
                kib=len(content) / 1024,
            )
    return rows, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[2016, 100_000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--base", type=Path, help="a demo run directory to start from")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparecast-web-bench-"))
    try:
        base = args.base
        if base is None:
            base = work / "base"
            print(f"making the demo run ({min(args.items)} items)...", flush=True)
            demo(base, min(args.items))
        base_items = pl.read_parquet(base / "policy.parquet").height
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores {os.cpu_count()}")
        assets = sum(p.stat().st_size for p in STATIC_DIR.iterdir() if p.suffix in (".js", ".css"))
        print(
            f"static assets (uPlot + app.js + CSS, loaded once, cacheable): {assets / 1024:.1f} KiB"
        )
        results = {}
        warm = {}
        for n in args.items:
            data = base if n == base_items else work / f"n{n}"
            if data == base:  # the plan-change measure rewrites policy.parquet: use a copy
                data = work / f"n{n}"
                shutil.copytree(base, data)
            else:
                t0 = time.perf_counter()
                scaled(base, data, n)
                print(f"scaled copy with {n:,} items made in {time.perf_counter() - t0:.1f} s")
            results[n], warm[n] = measure(data, args.repeat)
            print(
                f"{n:,} items: warm-up at start {warm[n]['warm_up_s']:.1f} s, after a plan "
                f"change {warm[n]['rewarm_s']:.1f} s (without requests meanwhile)",
                flush=True,
            )
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        sizes = list(results)
        head = (
            "| page | "
            + " | ".join(
                f"{n:,} items at start / after a plan change / p50 / p95 ms | KiB" for n in sizes
            )
            + " |"
        )
        print()
        print(head)
        print("|---" * (1 + 2 * len(sizes)) + "|")
        for i, row in enumerate(results[sizes[0]]):
            cells = []
            for n in sizes:
                r = results[n][i]
                cells += [
                    f"{r['start_ms']:.0f} / {r['change_ms']:.0f} / {r['p50_ms']:.1f} / "
                    f"{r['p95_ms']:.1f}",
                    f"{r['kib']:.1f}",
                ]
            print(f"| {row['page']} | " + " | ".join(cells) + " |")
        print()
        print(json.dumps({str(n): {"pages": results[n], **warm[n]} for n in sizes}, default=float))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
