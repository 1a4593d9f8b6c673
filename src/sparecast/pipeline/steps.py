"""The core pipeline as plain functions: load -> validate -> panel -> classify -> backtest ->
select -> forecast -> write. The CLI calls these directly; scheduled flows wrap the same steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from sparecast import __version__
from sparecast.classify import TierThresholds, classify
from sparecast.config import Settings
from sparecast.core import forecast_arrays, forecasts_to_frame
from sparecast.data.erp import ErpMapping, extract_incremental, read_extract
from sparecast.data.panel import DemandPanel
from sparecast.data.schema import ValidationReport, validate_demand, validate_table
from sparecast.data.sources import load_source, sqlite_url
from sparecast.errors import DataValidationError, MethodError, OutputError, SourceError
from sparecast.evaluate.backtest import (
    SCORE_METRICS,
    BacktestResult,
    backtest,
    format_summary_lines,
)
from sparecast.methods import get_method
from sparecast.methods.quantiles import forecast_quantiles
from sparecast.pipeline.store_step import store_run
from sparecast.selection.router import HybridRouter

__all__ = [
    "Progress",
    "LoadedData",
    "CoreResult",
    "load_panel",
    "run_core",
    "make_router",
    "write_outputs",
    "run_pipeline",
]

Progress = Callable[[str, int, int], None]
"""progress(label, done, total): called as long steps advance (the CLI draws a Rich bar)."""


def _no_progress(label: str, done: int, total: int) -> None:
    return None


@dataclass
class LoadedData:
    """What the source gave, after validation: the tables, the panel, the validation report and
    the rejected rows per table (items, demand)."""

    panel: DemandPanel
    tables: dict[str, pl.DataFrame]
    reports: dict[str, ValidationReport]
    rejected: dict[str, pl.DataFrame]
    source_kind: str
    extract_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CoreResult:
    """Everything the forecasting core computed for one panel."""

    classification: pl.DataFrame
    backtest: BacktestResult | None
    selection: pl.DataFrame
    forecasts: pl.DataFrame | None
    summary: pl.DataFrame | None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fitting_windows(n_periods: int, h: int, settings: Settings) -> int:
    """How many of the configured backtest windows fit in ``n_periods`` (0: none)."""
    step = settings.backtest.step or h
    spare = n_periods - h - settings.backtest.seasonality - 1
    if spare < 0:
        return 0
    return min(settings.backtest.n_windows, spare // step + 1)


_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
# The canonical tables the forecasting core reads; the others (suppliers, purchase orders,
# receipts, stock) are not needed to forecast and may be absent from the source.
_CORE_TABLES = ("items", "demand")


def _database_url(source: str) -> str | None:
    """The SQLAlchemy URL of a database source (a URL, or a path to a SQLite file), else None."""
    if "://" in source:
        return source
    path = Path(source).expanduser()
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        if not path.is_file():
            raise SourceError(f"SQLite file {path} does not exist; check the path")
        return sqlite_url(path)
    return None


def load_panel(
    source: str,
    settings: Settings,
    output_dir: Path | None = None,
    *,
    full_extract: bool = False,
    progress: Progress | None = None,
    extra_tables: tuple[str, ...] = (),
) -> LoadedData:
    """Read a source (SQLAlchemy URL, SQLite/CSV/Parquet path), validate the items and demand
    rows and build the DemandPanel.

    A database is extracted incrementally into ``output_dir/extract`` (``full_extract`` re-reads
    everything). With ``data.window_days`` the window ends at ``data.end_date`` or else at the
    last valid demand date (future-dated rows cannot move it). ``extra_tables``: canonical tables
    read besides items and demand (the plan step adds the purchasing tables), returned as read
    (not validated) in ``LoadedData.tables``.
    """
    mapping = ErpMapping.from_dict(settings.data.erp_mapping)
    today = settings.data.today or date.today()
    names = _CORE_TABLES + tuple(t for t in extra_tables if t not in _CORE_TABLES)
    url = _database_url(source)
    extract_info: dict[str, Any] = {}
    if url is not None and output_dir is not None:
        result = extract_incremental(
            url,
            output_dir,
            mapping=mapping,
            full=full_extract,
            tables=names,
            today=today,
            progress=(lambda t, done, total: progress(f"extract {t}", done, total))
            if progress is not None
            else None,
        )
        tables, kind = read_extract(output_dir, tables=names), "database"
        extract_info = result.to_dict()
    else:
        data = load_source(url or source, mapping=mapping, validate=False, tables=names)
        tables, kind = data.tables, data.kind
    reports: dict[str, ValidationReport] = {}
    rejected: dict[str, pl.DataFrame] = {}
    known: list[str] | None = None
    attributes = None
    if kind != "long_file" and "items" in tables:
        items_checked = validate_table("items", tables["items"])
        reports["items"], rejected["items"] = items_checked.report, items_checked.rejected
        items = items_checked.valid
        known = items["item_id"].to_list()
        attr_cols = [c for c in ("category", "unit_cost", "unit") if c in items.columns]
        attributes = items.select(pl.col("item_id").alias("unique_id"), *attr_cols)

    demand = tables["demand"]
    end = settings.data.end_date
    start = None
    if settings.data.window_days is not None:
        last = end
        if last is None:
            probe = validate_demand(demand, known_items=known, today=today).valid
            last = cast(date | None, probe["date"].max()) if probe.height else None
        if last is not None:
            start = last - timedelta(days=settings.data.window_days - 1)  # type: ignore[operator]
    checked = validate_demand(
        demand, known_items=known, window_start=start, window_end=end, today=today
    )
    reports["demand"] = checked.report
    rejected["demand"] = checked.rejected
    if kind == "long_file":  # give rejected rows back under the names they came with
        rejected["demand"] = checked.rejected.rename(
            {"item_id": "unique_id", "date": "ds", "quantity": "y"}, strict=False
        )
    if settings.data.strict:
        for report in reports.values():
            report.raise_if_rejected()
    valid = checked.valid
    if valid.height == 0:
        raise DataValidationError(
            f"no valid demand rows in {source}: " + "; ".join(checked.report.summary_lines())
        )
    # ERP consumption is daily: bucket it to complete weeks/months when asked. A long file is
    # read at its own frequency (inferred, or data.freq).
    daily_source = kind != "long_file"
    panel = DemandPanel.from_long(
        valid.rename({"item_id": "unique_id", "date": "ds", "quantity": "y"}),
        freq="D" if daily_source else settings.data.freq,
        start=start,
        end=end,
        item_ids=known,
        attributes=attributes,
    )
    if daily_source and settings.data.freq not in (None, "D"):
        daily = panel
        panel = daily.bucket(settings.data.freq, complete_only=True)
        first = int((panel.start - daily.start).astype(int))
        kept = int((panel.future_dates(1)[0] - panel.start).astype(int))
        extract_info["bucketing"] = {
            "freq": panel.freq,
            "partial_days_dropped_at_start": first,
            "partial_days_dropped_at_end": daily.n_periods - first - kept,
            "demand_in_dropped_days": float(
                daily.y[:, :first].sum() + daily.y[:, first + kept :].sum()
            ),
        }
    return LoadedData(panel, tables, reports, rejected, kind, extract_info)


def make_router(settings: Settings) -> HybridRouter:
    """The HybridRouter the settings describe ([router], [backtest], [tiers], method_params);
    the top-level ``methods`` (or ``--methods``) are the auto mode's candidates when
    ``router.candidates`` is not set."""
    r = settings.router
    return HybridRouter(
        r.mode,
        candidates=r.candidates if r.candidates is not None else settings.methods,
        rules=r.rules,
        metric=r.metric,
        select_by=r.select_by,
        min_history=r.min_history,
        top_k=r.top_k,
        fallback=r.fallback,
        n_windows=settings.backtest.n_windows,
        step=settings.backtest.step,
        seasonality=settings.backtest.seasonality,
        params=settings.method_params,
        tiers=TierThresholds(
            high_volume=settings.tiers.high_volume,
            regular=settings.tiers.regular,
            intermittent=settings.tiers.intermittent,
        ),
        stockout_weight=settings.backtest.stockout_weight,
    )


def _reported_methods(router: HybridRouter) -> list[str]:
    """Methods the pipeline backtests and forecasts (one column each): the auto mode's
    candidates and fallback; in rules mode the rules' methods, the fallback and the naive and
    moving-average baselines the summary compares with."""
    if router.mode == "auto":
        return router.backtest_methods()
    names = [*router.rule_map().values(), router.fallback, "naive", "ma"]
    return [get_method(n).name for n in dict.fromkeys(names)]


def run_core(
    panel: DemandPanel,
    settings: Settings,
    *,
    with_forecast: bool = True,
    progress: Progress = _no_progress,
) -> CoreResult:
    """Classify, backtest, route every item to a method (the hybrid router: rules or the best
    backtest score per class/item) and forecast the horizon."""
    timings: dict[str, float] = {}
    h = settings.horizon
    router = make_router(settings)
    router.validate_params()
    names = _reported_methods(router)
    t0 = time.perf_counter()
    classification = classify(panel, thresholds=router.tiers)
    timings["classify_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    notes: list[str] = []
    n_windows = fitting_windows(panel.n_periods, h, settings)
    bt: BacktestResult | None = None
    summary: pl.DataFrame | None = None
    fallback = settings.router.fallback
    metric = settings.router.metric
    if n_windows == 0:
        if not with_forecast:  # a backtest was asked for: say why there is none
            backtest(
                panel, h=h, methods=names, n_windows=1, seasonality=settings.backtest.seasonality
            )
        if router.mode == "auto":
            notes.append(
                f"backtest skipped: fallback {fallback}: history of {panel.n_periods} periods "
                f"too short to backtest a horizon of {h}; every item uses {fallback}"
            )
        else:
            notes.append(
                f"backtest skipped: history of {panel.n_periods} periods too short to backtest "
                f"a horizon of {h}; the rules choose without it"
            )
        router.fit(panel, h, classification=classification)
        router.notes_.clear()  # said above
    else:
        if n_windows < settings.backtest.n_windows:
            notes.append(
                f"backtest on {n_windows} window(s) instead of {settings.backtest.n_windows}: "
                f"the history has {panel.n_periods} periods"
            )
        bt = backtest(
            panel,
            h=h,
            methods=names,
            n_windows=n_windows,
            step=settings.backtest.step,
            params={k: v for k, v in settings.method_params.items() if k in names},
            seasonality=settings.backtest.seasonality,
            progress=lambda done, total, label: progress(f"backtest {label}", done, total),
            percentage_items=classification["tier"].is_in(["high_volume", "regular"]).to_numpy(),
            keep_errors=settings.router.top_k > 1,
            stockout_weight=settings.backtest.stockout_weight,
        )
        router.fit(panel, h, classification=classification, backtest_result=bt)
        # combinations (top_k > 1) are scored like methods, so that the outputs show them
        bt = bt.with_combinations(router.selection_["method"].unique(maintain_order=True))
        bt.errors = None  # not needed any more; they are the largest part of the result
        summary_metric = metric if metric in SCORE_METRICS else "mase"
        summary = pl.concat(
            [
                bt.summary(classification, metric=summary_metric)
                .rename({"sb_class": "group"})
                .with_columns(pl.lit("class").alias("grouping")),
                bt.summary(classification, metric=summary_metric, by="tier")
                .rename({"tier": "group"})
                .filter(pl.col("group") != "all")
                .with_columns(pl.lit("tier").alias("grouping")),
            ]
        ).select("grouping", pl.exclude("grouping"))
    notes += router.notes_
    selection = router.selection_.join(
        classification.select("unique_id", "sb_class", "tier"), on="unique_id", how="left"
    ).select("unique_id", "method", "reason", "sb_class", "tier")
    timings["backtest_s"] = time.perf_counter() - t0

    forecasts = None
    if with_forecast:
        t0 = time.perf_counter()
        done = [0]

        def step(name: str) -> None:
            done[0] += 1
            progress(f"forecast {name}", done[0], len(names))

        # a method that cannot run on this panel (e.g. LightGBM on a single period) is left
        # out of the columns with a note, and the items it would serve get the fallback
        values: dict[str, np.ndarray] = {}
        failed: dict[str, str] = {}
        for name in names:
            try:
                values.update(
                    forecast_arrays(panel, h, [name], settings.method_params, progress=step)
                )
            except MethodError as exc:
                failed[name] = str(exc)
                notes.append(f"{name} not forecast: {exc}")
        if failed and router.reroute(failed):
            notes.append(router.notes_[-1])
            selection = router.selection_.join(
                classification.select("unique_id", "sb_class", "tier"),
                on="unique_id",
                how="left",
                maintain_order="left",
            ).select("unique_id", "method", "reason", "sb_class", "tier")
        chosen = router.predict(panel, h, forecasts=values)
        forecasts = forecasts_to_frame(panel, values, h)
        forecasts = forecasts.with_columns(
            pl.Series("forecast", chosen.reshape(-1)),
            pl.Series("method", np.repeat(_selection_array(panel, selection), h)),
        )
        timings["forecast_s"] = time.perf_counter() - t0
    return CoreResult(classification, bt, selection, forecasts, summary, timings, notes)


def quantile_column(level: float) -> str:
    """Name of the forecast column of quantile ``level``: 0.9 -> ``q90``, 0.975 -> ``q97.5``."""
    return f"q{round(level * 100, 6):g}"


def with_forecast_quantiles(
    panel: DemandPanel, forecasts: pl.DataFrame, levels: list[float]
) -> pl.DataFrame:
    """``forecasts`` with one column per quantile level of each period's demand around the
    chosen ``forecast`` (sparecast.methods.distributions.forecast_quantiles: compound
    Bernoulli-size from the item's history, integer for integer demand)."""
    h = forecasts.height // max(panel.n_items, 1)
    point = forecasts["forecast"].to_numpy().reshape(panel.n_items, h)
    values = forecast_quantiles(panel.y, point, levels)
    return forecasts.with_columns(
        pl.Series(quantile_column(q), values[:, :, k].reshape(-1)) for k, q in enumerate(levels)
    )


def _selection_array(panel: DemandPanel, selection: pl.DataFrame) -> np.ndarray:
    order = pl.DataFrame({"unique_id": panel.item_ids.astype(str)})
    return order.join(selection, on="unique_id", how="left", maintain_order="left")[
        "method"
    ].to_numpy()


def write_outputs(
    output_dir: Path,
    loaded: LoadedData,
    result: CoreResult,
    settings: Settings,
    *,
    source: str,
    timings: dict[str, float],
) -> dict[str, str]:
    """Write classification, backtest, forecasts, rejected rows and run.json into ``output_dir``."""
    paths: dict[str, str] = {}
    result.classification.write_parquet(output_dir / "classification.parquet")
    paths["classification"] = str(output_dir / "classification.parquet")
    if result.backtest is not None:
        scores = result.backtest.scores.join(
            result.selection.select("unique_id", pl.col("method").alias("chosen_method"), "reason"),
            on="unique_id",
            how="left",
        ).with_columns((pl.col("method") == pl.col("chosen_method")).alias("chosen"))
        scores.write_parquet(output_dir / "backtest.parquet")
        paths["backtest"] = str(output_dir / "backtest.parquet")
    result.selection.write_parquet(output_dir / "selection.parquet")
    paths["selection"] = str(output_dir / "selection.parquet")
    if result.summary is not None:
        result.summary.write_parquet(output_dir / "backtest_summary.parquet")
        paths["backtest_summary"] = str(output_dir / "backtest_summary.parquet")
    if result.forecasts is not None:
        result.forecasts.write_parquet(output_dir / "forecasts.parquet")
        paths["forecasts"] = str(output_dir / "forecasts.parquet")
    for table, rows in loaded.rejected.items():
        if rows.height:
            name = "rejected_rows.parquet" if table == "demand" else f"rejected_{table}.parquet"
            rows.write_parquet(output_dir / name)
            paths[f"rejected_{table}"] = str(output_dir / name)
    panel = loaded.panel
    run = {
        "sparecast_version": __version__,
        "source": _redact(source),
        "source_kind": loaded.source_kind,
        "config": settings.to_dict(),
        "data_window": {
            "start": str(panel.dates[0]),
            "end": str(panel.end),
            "freq": panel.freq,
            "n_items": panel.n_items,
            "n_periods": panel.n_periods,
        },
        "validation": {t: r.to_dict() for t, r in loaded.reports.items()},
        "extract": loaded.extract_info,
        "notes": result.notes,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "outputs": paths,
    }
    (output_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    paths["run"] = str(output_dir / "run.json")
    return paths


def _redact(source: str) -> str:
    """Hide a password in a database URL before writing it anywhere."""
    if "://" not in source or "@" not in source:
        return source
    scheme, rest = source.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else source


def selection_score(bt: BacktestResult, selection: pl.DataFrame) -> dict[str, float | None]:
    """Mean backtest MASE/RMSSE of the selected method per item, and of naive and ma."""
    chosen = bt.scores.join(
        selection.select("unique_id", pl.col("method").alias("_chosen")), on="unique_id"
    ).filter(pl.col("method") == pl.col("_chosen"))
    out: dict[str, float | None] = {
        f"selected_{m}": cast(float | None, chosen[m].mean()) for m in ("mase", "rmsse")
    }
    for ref in ("naive", "ma"):
        ref_rows = bt.scores.filter(pl.col("method") == ref)
        for m in ("mase", "rmsse"):
            out[f"{ref}_{m}"] = cast(float | None, ref_rows[m].mean()) if ref_rows.height else None
    return out


def summary_lines(
    summary: pl.DataFrame,
    settings: Settings,
    overall: dict[str, float | None] | None = None,
    selection: pl.DataFrame | None = None,
) -> list[str]:
    """Human lines: per demand class, per frequency tier, the router's choice (items per method
    and why) and the served forecasts' score over all items."""
    metric = settings.router.metric
    shown = metric if metric in ("mase", "rmsse") else "mase"
    lines = []
    for grouping, title in (("class", "per demand class"), ("tier", "per frequency tier")):
        part = summary.filter((pl.col("grouping") == grouping) & (pl.col("group") != "all"))
        lines.append(f"{title} (best method of the group):")
        lines += [
            "  " + line
            for line in format_summary_lines(
                part.drop("grouping").rename({"group": "sb_class"}), metric=shown
            )
        ]
    if selection is not None:
        lines += router_lines(selection, settings)
    if overall:
        value = overall.get(f"selected_{shown}")
        how = (
            "methods by tier rules"
            if settings.router.mode == "rules"
            else f"method chosen per {settings.router.select_by}"
        )
        text = f"all items, {how}: {shown.upper()} "
        text += f"{value:.3f}" if value is not None else "n/a"
        for ref, label in (("ma", "MA"), ("naive", "naive")):
            ref_value = overall.get(f"{ref}_{shown}")
            if value is not None and ref_value:
                gain = (ref_value - value) / ref_value * 100
                text += f", {abs(gain):.1f}% {'better' if gain >= 0 else 'worse'} than {label}"
        lines.append(text)
    return lines


def router_lines(selection: pl.DataFrame, settings: Settings, top: int = 8) -> list[str]:
    """What the hybrid router chose: the mode, then per served method the number of items and
    the most common reason (largest first, at most ``top`` lines)."""
    r = settings.router
    head = (
        "router rules (tier -> method): " + ", ".join(f"{t} -> {m}" for t, m in r.rules.items())
        if r.mode == "rules"
        else f"router auto: lowest backtest {r.metric} per {r.select_by}"
        + (f" (own choice from {r.min_history} demand periods)" if r.select_by == "item" else "")
        + (f", mean of the best {r.top_k}" if r.top_k > 1 else "")
    )
    counts = (
        selection.group_by("method")
        .agg(pl.len().alias("n"), pl.col("reason").mode().first().alias("reason"))
        .sort(["n", "method"], descending=[True, False])
    )
    lines = [head + "; items per method (selection.parquet has every item's reason):"]
    for row in counts.head(top).iter_rows(named=True):
        lines.append(f"  {row['method']}: {row['n']:,} items (e.g. {row['reason']})")
    if counts.height > top:
        rest = int(counts["n"].slice(top).sum())
        lines.append(f"  {counts.height - top} more method(s): {rest:,} items")
    return lines


@dataclass
class RunOutcome:
    """What a pipeline run produced: the loaded data, the core result, files and summary lines."""

    loaded: LoadedData
    result: CoreResult
    paths: dict[str, str]
    summary_lines: list[str]
    timings: dict[str, float]


# Files a run writes; a new run removes the old ones first, so that no stale result survives.
OUTPUT_FILES = (
    "classification.parquet",
    "backtest.parquet",
    "backtest_summary.parquet",
    "selection.parquet",
    "forecasts.parquet",
    "rejected_rows.parquet",
    "rejected_items.parquet",
    "run.json",
    "policy.parquet",  # the plan step's (sparecast.pipeline.plan)
    "inventory_report.html",
    "rejected_purchasing.parquet",
)


def prepare_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` (checking it is writable) and remove the results of an earlier run;
    the extraction state in ``output_dir/extract`` is kept."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".sparecast_write_test"
        probe.write_text("ok")
        probe.unlink()
        for name in OUTPUT_FILES:
            (output_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output directory {output_dir}: {exc.strerror or exc}; "
            "give a writable directory with --output"
        ) from None


def run_pipeline(
    source: str,
    output_dir: Path,
    settings: Settings,
    *,
    with_forecast: bool = True,
    full_extract: bool = False,
    progress: Progress = _no_progress,
    extra_tables: tuple[str, ...] = (),
) -> RunOutcome:
    """Load, validate, classify, backtest, forecast and write everything into ``output_dir``."""
    timings: dict[str, float] = {}
    prepare_output_dir(output_dir)
    t0 = time.perf_counter()
    loaded = load_panel(
        source,
        settings,
        output_dir,
        full_extract=full_extract,
        progress=progress,
        extra_tables=extra_tables,
    )
    timings["load_s"] = time.perf_counter() - t0
    result = run_core(loaded.panel, settings, with_forecast=with_forecast, progress=progress)
    if result.forecasts is not None and settings.quantiles:
        t0 = time.perf_counter()
        result.forecasts = with_forecast_quantiles(
            loaded.panel, result.forecasts, settings.quantiles
        )
        result.timings["quantiles_s"] = time.perf_counter() - t0
    timings.update(result.timings)
    t0 = time.perf_counter()
    paths = write_outputs(output_dir, loaded, result, settings, source=source, timings=timings)
    timings["write_s"] = time.perf_counter() - t0
    stored = store_run(
        output_dir,
        loaded.panel,
        result.forecasts,
        result.summary,
        settings,
        source=source,
        notes=result.notes,
        progress=progress,
    )
    if stored is not None:  # the forecast history store (history.sqlite or store.url)
        paths["store"] = stored.url
        timings["store_s"] = stored.seconds
    lines = []
    if result.summary is not None and result.backtest is not None:
        overall = selection_score(result.backtest, result.selection)
        lines = summary_lines(result.summary, settings, overall, result.selection)
    elif result.selection.height:
        lines = router_lines(result.selection, settings)
    return RunOutcome(loaded, result, paths, lines, timings)
