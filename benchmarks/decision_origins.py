"""Decision backtests at several origins: does the per-item plan's calibration hold when the
history ends earlier?

``benchmarks/inventory.py`` replays one origin per data set (policies set on the first two
thirds, simulated on the last third). Here the history is first cut at each of ``--ends``
periods, then ``sparecast.inventory.decisions.evaluate_plan`` (``aggregate=False``: the per-item
plan, the textbook and the empirical rule) runs on what is left, so a calibration that only fits
one test window shows. Printed per origin and target: the plan's fill rate on items with
history, the textbook's, the plan's stock value against the textbook's at the same fill and the
plan's average stock value. Data sets and assumed lead times as in ``benchmarks/inventory.py``.

Usage: ``python benchmarks/decision_origins.py --data carparts --ends 51,45,39
[--set calibration_mode=group] [--set level=history] [--targets 0.9,0.95,0.98]``; each
``--set key=value`` overrides one ``[inventory]`` setting (value read as a Python literal, else
as a string).
"""

from __future__ import annotations

import argparse
import ast
import time

from inventory import CARPARTS, OIL, backtest, carparts_dataset, oil_dataset

from sparecast.config import load_settings


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["carparts", "oil"], default="carparts")
    ap.add_argument("--ends", default="51,45,39", help="history lengths (periods) to cut at")
    ap.add_argument("--targets", default="0.90,0.95,0.98")
    ap.add_argument("--set", action="append", default=[], help="inventory setting key=value")
    args = ap.parse_args()
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    ds = oil_dataset(OIL, 0) if args.data == "oil" else carparts_dataset(CARPARTS, 0)
    targets = [float(t) for t in args.targets.split(",")]
    settings = load_settings(inventory=overrides)
    print(f"{ds['name']}, inventory overrides {overrides or 'none'}\n")
    print(
        "| history | policies set on | target | plan fill | textbook fill "
        "| stock value vs textbook at the same fill | plan stock value | seconds |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for end in (int(e) for e in args.ends.split(",")):
        t0 = time.perf_counter()
        bt = backtest(ds, targets, settings, aggregate=False, end=end)
        secs = time.perf_counter() - t0
        for g in bt.goals.iter_rows(named=True):
            vs = g["value_vs_textbook_same_fill"]
            print(
                f"| {end} | {bt.split} | {g['target']:.0%} "
                f"| {g['sparecast_fill_with_history']:.2%} | {g['textbook_fill_with_history']:.2%} "
                f"| {'textbook never reaches it' if vs != vs else f'{vs:+.1%}'} "
                f"| {g['sparecast_stock_value']:,.0f} | {secs:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
