"""sparecast as a library on real data: the carparts dataset (2,674 monthly series of car-part
sales, 51 months, most of them intermittent) in statsforecast's long format.

    python examples/carparts.py [path/to/carparts.csv]

Classifies the series, backtests a few methods on rolling origins, picks one per demand class
and forecasts the next 6 months. The dataset lives in ../shared/data/carparts (GPL-3, see its
SOURCE.md); it is not copied into this repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from sparecast import DemandPanel, backtest, classify, forecast
from sparecast.selection import select

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "carparts" / "carparts.csv"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    df = pl.read_csv(path, try_parse_dates=True)  # unique_id, ds, y
    panel = DemandPanel.from_long(df)  # monthly is inferred from the dates; gaps are zeros
    print(panel)

    classes = classify(panel)
    print(classes.group_by("sb_class").len().sort("len", descending=True))

    methods = ["naive", "ma", "ses", "sba", "tsb", "adida", "imapa"]
    result = backtest(panel, h=6, n_windows=3, methods=methods)
    summary = result.summary(classes)
    print(
        summary.select("sb_class", "label", "n_items", "mase", "rmsse", "rmsse_vs_ma_pct", "chosen")
    )

    choice = select(result, classes)  # one method per class, by mean RMSSE, with the reason
    fc = forecast(panel, h=6, methods=methods, output="polars")
    fc = fc.join(choice.select("unique_id", "method"), on="unique_id")
    fc = fc.with_columns(
        forecast=pl.coalesce([pl.when(pl.col("method") == m).then(pl.col(m)) for m in methods])
    )
    print(fc.select("unique_id", "ds", "method", "forecast").head(12))


if __name__ == "__main__":
    main()
