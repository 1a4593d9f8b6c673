"""The production loop's steps as plain, idempotent functions: ``extract`` (incremental),
``train`` (a challenger), ``evaluate`` (challenger and champion on the same recent windows),
``promote`` (margin, per-tier/category tolerance, baseline guard) and ``rollback``.

The source of truth of what is served is the forecast store's served-model pointer
(``store/aliases.py``: alias ``champion`` -> a stored run's model version); the API follows it
within ``service.version_refresh_s``. MLflow (``store/registry.py``) keeps every training run and
registered version; its ``champion``/``challenger`` aliases mirror the store's and are re-synced
at the start of every step. Crash safety: a training writes its store run and registry version
before any alias moves (an unaliased run is never served); a promotion or rollback is one store
transaction (the commit point), the registry mirror follows; a rerun continues.

The CLI (``sparecast pipeline run``) calls ``run_daily``/``run_weekly`` here directly; the
Prefect flows (``pipeline/flows.py``) wrap the same steps for scheduled runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast.classify import classify
from sparecast.config import Settings, load_settings
from sparecast.errors import ConfigError, SourceError, SparecastError
from sparecast.evaluate.metrics import mae as mae_metric
from sparecast.evaluate.metrics import mase as mase_metric
from sparecast.evaluate.metrics import rmsse as rmsse_metric
from sparecast.methods import forecast_panel
from sparecast.pipeline.core import run_core
from sparecast.pipeline.load import LoadedData, load_panel
from sparecast.pipeline.monitor import (
    MonitorReport,
    monitor,
    record_actuals,
    run_items_frame,
)
from sparecast.pipeline.staging import write_json_atomic
from sparecast.pipeline.steps import stage_run
from sparecast.pipeline.store_step import store_run, store_url_for
from sparecast.store.aliases import CHALLENGER, CHAMPION, champion_stack, served_lineage
from sparecast.store.history import ForecastStore
from sparecast.store.models import RunInfo
from sparecast.store.registry import (
    TRAIN_KEY_TAG,
    ModelRegistry,
    ModelVersionInfo,
    summary_metrics,
)

__all__ = [
    "LoopContext",
    "TrainReport",
    "Evaluation",
    "Decision",
    "StepReport",
    "loop_context",
    "extract",
    "train",
    "evaluate",
    "decide",
    "promote",
    "rollback",
    "refresh",
    "ensure_champion",
    "sync_registry",
    "run_daily",
    "run_weekly",
    "models_status",
    "models_history",
]

log = logging.getLogger("sparecast.pipeline")

MODELS_DIR = "models"
EVAL_FILE = "evaluation.json"
_ARTEFACTS = ("run.json", "selection.parquet", "backtest_summary.parquet", "classification.parquet")


def _iso_day(value: Any) -> str:
    """A numpy/Python date as ``YYYY-MM-DD``."""
    return str(np.asarray(value).astype("datetime64[D]"))


class LoopError(SparecastError):
    """A step of the production loop cannot run (no served run, no previous champion...)."""


# ------------------------------------------------------------------------------ context


@dataclass
class LoopContext:
    """What every step needs: the data directory, its source, the served settings (from
    ``DIR/run.json``) with the loop's own sections, the challenger's settings and ``as_of``."""

    data_dir: Path
    source: str
    settings: Settings
    challenger_settings: Settings
    as_of: date | None = None

    @property
    def store_url(self) -> str:
        """The forecast store of the directory."""
        return store_url_for(self.settings, self.data_dir)

    def store(self) -> ForecastStore:
        """A connection to the forecast store (migrated); dispose it after use."""
        store = ForecastStore(self.store_url)
        store.migrate()
        return store

    def registry(self) -> ModelRegistry:
        """The MLflow registry ``[registry]`` names (default ``DIR/mlflow.db``)."""
        return ModelRegistry.for_data_dir(self.data_dir, self.settings)


def _clean_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored run's config as Settings input (the store's bookkeeping keys dropped)."""
    out = {k: v for k, v in config.items()}
    store = dict(out.get("store") or {})
    store.pop("staging_token", None)
    out["store"] = store
    return out


def _with_as_of(settings: Settings, as_of: date | None, store_url: str) -> Settings:
    """``settings`` reading the data up to ``as_of`` and writing into ``store_url``."""
    data = settings.data
    if as_of is not None:
        data = data.model_copy(update={"end_date": as_of, "today": as_of})
    store = settings.store.model_copy(update={"url": store_url})
    return settings.model_copy(update={"data": data, "store": store})


def loop_context(
    data_dir: Path,
    *,
    config: Path | None = None,
    as_of: date | None = None,
    challenger_config: Path | None = None,
) -> LoopContext:
    """The loop's context for ``data_dir`` (an output directory of ``run``/``plan``): its
    run.json names the source and the configuration; ``config`` (TOML) adds the ``[pipeline]``,
    ``[registry]``, ``[store]`` and ``[service]`` sections; the challenger's settings are
    ``challenger_config`` or ``[pipeline] challenger_config``, else the served configuration."""
    run_json = data_dir / "run.json"
    if not run_json.is_file():
        raise SourceError(
            f"{data_dir} has no run.json: give --data an output directory of `sparecast run` "
            "or `sparecast plan` (or `sparecast demo`)"
        )
    record = json.loads(run_json.read_text())
    source = str(record.get("source") or "")
    if not source or "***" in source:
        raise SourceError(
            f"{run_json} names no usable source ({source!r}; a password is redacted there): "
            "re-run `sparecast run --source URL --output DIR` with a source without a password "
            "in the URL (e.g. a SQLite file) or keep the password in the [data] mapping"
        )
    base = dict(record.get("config") or {})
    extra = load_settings(config) if config is not None else None
    values = _clean_config(base)
    if extra is not None:
        for section in ("pipeline", "registry", "service", "monitoring"):
            values[section] = extra.model_dump(mode="python")[section]
        if extra.store.url is not None:
            values["store"] = extra.store.model_dump(mode="python")
    try:
        served = Settings(**values)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, named
        raise ConfigError(f"the configuration in {run_json} is not valid any more: {exc}") from None
    store_url = store_url_for(served, data_dir)
    served = _with_as_of(served, as_of, store_url)
    chall_file = challenger_config or (
        Path(served.pipeline.challenger_config) if served.pipeline.challenger_config else None
    )
    if chall_file is not None:
        chall = load_settings(chall_file)
        chall = chall.model_copy(
            update={
                "data": served.data,
                "store": served.store,
                "pipeline": served.pipeline,
                "registry": served.registry,
                "service": served.service,
            }
        )
    else:
        chall = served
    return LoopContext(data_dir, source, served, chall, as_of)


# ------------------------------------------------------------------------------ reports


@dataclass
class StepReport:
    """What a step did, in one line, plus its details (for the console and the flows)."""

    step: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class TrainReport:
    """A trained challenger: its store model version, registry version, and whether an
    earlier identical training was reused (idempotence)."""

    model_version: str
    registry_version: str
    reused: bool
    seconds: float


# ------------------------------------------------------------------------------ extract


def extract(ctx: LoopContext) -> tuple[LoadedData, StepReport]:
    """Incremental extraction of the source into ``DIR/extract`` and the validated panel."""
    t0 = time.perf_counter()
    loaded = load_panel(ctx.source, ctx.settings, ctx.data_dir)
    info = loaded.extract_info
    new = info.get("new_rows", {}) if isinstance(info, dict) else {}
    panel = loaded.panel
    end = str(_iso_day(panel.end)) if panel.n_periods else "-"
    msg = f"extract: {panel.n_items} items x {panel.n_periods} periods up to {end}; new rows: " + (
        ", ".join(f"{k} {v}" for k, v in new.items()) or "none (a file source)"
    )
    return loaded, StepReport("extract", msg, {"new_rows": new}, time.perf_counter() - t0)


# ------------------------------------------------------------------------------ registry sync


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value, default=str) if isinstance(value, list) else value


def _params(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration flattened to MLflow params (``router.mode``, ``backtest.n_windows``)."""
    out: dict[str, Any] = {}
    _flat("", {k: v for k, v in config.items() if k not in ("service",)}, out)
    return out


def _model_dir(ctx: LoopContext, model_version: str) -> Path:
    return ctx.data_dir / MODELS_DIR / model_version.replace("/", "_")


def _extra_metrics(run_json: Path) -> dict[str, float]:
    """The plan's and the decision backtest's figures of a run directory, when present."""
    out: dict[str, float] = {}
    if run_json.is_file():
        record = json.loads(run_json.read_text())
        for k, v in (record.get("timings_s") or {}).items():
            if isinstance(v, int | float):
                out[f"time/{k}"] = float(v)
        plan = record.get("plan") or {}
        for k in ("stock_value", "order_value", "expected_aggregate_fill_rate"):
            v = plan.get(k)
            if isinstance(v, int | float):
                out[f"plan/{k}"] = float(v)
    decisions = run_json.parent / "decisions_summary.parquet"
    if decisions.is_file():
        frame = pl.read_parquet(decisions)
        for row in frame.to_dicts():
            label = "/".join(str(row[c]) for c in frame.columns if frame[c].dtype == pl.String)
            for c in ("fill_rate", "stock_value", "achieved_fill_rate", "mean_stock_value"):
                if isinstance(row.get(c), int | float):
                    out[f"decisions/{label}/{c}"] = float(row[c])
    return out


def _register_run(
    ctx: LoopContext,
    registry: ModelRegistry,
    run: RunInfo,
    summary: pl.DataFrame | None,
    files_dir: Path | None,
    *,
    train_key: str | None,
    timings: dict[str, float] | None = None,
) -> ModelVersionInfo:
    """Register a stored run in MLflow (params, metrics, artefacts); its files go into
    ``DIR/models/<model_version>``."""
    artefacts: list[Path] = []
    if files_dir is not None:
        artefacts = [files_dir / n for n in _ARTEFACTS if (files_dir / n).is_file()]
    metrics = summary_metrics(summary)
    if files_dir is not None:
        metrics.update(_extra_metrics(files_dir / "run.json"))
    for k, v in (timings or {}).items():
        metrics[f"time/{k}"] = v
    tags = {
        "sparecast.data_end": run.data_end.isoformat(),
        "sparecast.store_run_id": str(run.run_id),
    }
    if train_key is not None:
        tags[TRAIN_KEY_TAG] = train_key
    return registry.log_version(
        store_version=run.model_version,
        params=_params(run.config),
        metrics=metrics,
        artifacts=artefacts,
        tags=tags,
    )


def ensure_champion(ctx: LoopContext) -> str:
    """The champion's model version; the first time, the directory's served run (the newest
    in the store) becomes champion, registered in MLflow (``bootstrap``)."""
    store = ctx.store()
    try:
        aliases = store.aliases()
        if CHAMPION in aliases:
            return aliases[CHAMPION].model_version
        run = store.latest_run()
        if run is None:
            raise LoopError(
                f"the forecast store of {ctx.data_dir} holds no run: run `sparecast run "
                "--output DIR` (or `sparecast plan`, `sparecast demo`) into it first"
            )
        registry = ctx.registry()
        if registry.by_store_version(run.model_version) is None:
            folder = _model_dir(ctx, run.model_version)
            folder.mkdir(parents=True, exist_ok=True)
            record = ctx.data_dir / "run.json"
            same = (
                record.is_file()
                and (json.loads(record.read_text()).get("store") or {}).get("model_version")
                == run.model_version
            )
            if same:
                for name in _ARTEFACTS:
                    if (ctx.data_dir / name).is_file():
                        shutil.copy2(ctx.data_dir / name, folder / name)
            try:  # a refresh of this configuration on the same data reuses the version
                key: str | None = train_key(_settings_of(run, ctx.settings), run.data_end)
            except Exception:  # noqa: BLE001 - a config this version cannot read: no key
                key = None
            _register_run(ctx, registry, run, store.run_accuracy(run.run_id), folder, train_key=key)
        store.move_alias(
            CHAMPION,
            run.model_version,
            action="bootstrap",
            reason="the directory's served run becomes the first champion",
        )
        sync_registry(ctx, store, registry)
        return run.model_version
    finally:
        store.dispose()


def sync_registry(
    ctx: LoopContext, store: ForecastStore | None = None, registry: ModelRegistry | None = None
) -> list[str]:
    """Make MLflow's aliases name the versions the store's aliases name (the store is the
    commit point; a crash between the two is repaired here). Returns the aliases it moved."""
    own = store is None
    store = store or ctx.store()
    try:
        registry = registry or ctx.registry()
        moved = []
        for alias, row in store.aliases().items():
            version = registry.by_store_version(row.model_version)
            if version is None:
                continue
            current = registry.alias_version(alias)
            if current is None or current.version != version.version:
                registry.set_alias(alias, version.version)
                moved.append(alias)
        return moved
    finally:
        if own:
            store.dispose()


# ------------------------------------------------------------------------------ train


def config_key(settings: Settings) -> str:
    """What identifies a configuration (a model of the registry): a hash of the settings that
    shape forecasts."""
    return train_key(settings, None).split(".", 1)[0]


def train_key(settings: Settings, panel_end: Any) -> str:
    """What identifies a training: the shaping configuration and the data's last date."""
    config = {
        k: v
        for k, v in settings.to_dict().items()
        if k not in ("store", "service", "monitoring", "pipeline", "registry")
    }
    config["data"] = {k: v for k, v in config["data"].items() if k not in ("today", "end_date")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return f"{digest[:12]}.{_iso_day(panel_end) if panel_end is not None else ''}"


def train(
    ctx: LoopContext,
    loaded: LoadedData | None = None,
    *,
    settings: Settings | None = None,
    as_challenger: bool = True,
) -> TrainReport:
    """Train a challenger on the newest data: the whole forecasting run (classify, backtest,
    route, forecast) with the challenger's settings, its files in ``DIR/models/<version>``, its
    run in the forecast store (not served), a registered MLflow version, then the
    ``challenger`` alias. Idempotent: the same configuration on the same data reuses the
    registered version. A crash leaves the champion, the served run and the aliases as they
    were (an unaliased store run or an unregistered MLflow run at most)."""
    t0 = time.perf_counter()
    ensure_champion(ctx)
    settings = settings or ctx.challenger_settings
    if loaded is None:
        loaded, _ = extract(ctx)
    key = train_key(settings, loaded.panel.end)
    registry = ctx.registry()
    found = registry.by_train_key(key)
    if found is not None:
        if as_challenger:
            _set_challenger(ctx, registry, found, "an identical earlier training (config, data)")
        return TrainReport(found.store_version, found.version, True, time.perf_counter() - t0)
    models = ctx.data_dir / MODELS_DIR
    models.mkdir(exist_ok=True)
    for old in models.glob(".tmp-*"):  # what a crashed training left
        shutil.rmtree(old, ignore_errors=True)
    work = models / f".tmp-{uuid.uuid4().hex}"
    work.mkdir()
    try:
        outcome = stage_run(
            ctx.source,
            ctx.data_dir,
            work,
            settings,
            command="train",
            after_load=None,
        )
        stored = store_run(
            ctx.data_dir,
            outcome.loaded.panel,
            outcome.result.forecasts,
            outcome.result.summary,
            settings,
            source=ctx.source,
            notes=outcome.result.notes,
            items=run_items_frame(
                outcome.loaded.panel,
                outcome.result.classification,
                outcome.result.selection,
                outcome.result.backtest,
                seasonality=settings.backtest.seasonality,
            ),
        )
        if stored is None:
            raise LoopError("store.write_runs is off: the loop needs the forecast store")
        store = ForecastStore(ctx.store_url)
        try:
            run = store.run_by_version(stored.model_version)
        finally:
            store.dispose()
        assert run is not None
        record = json.loads((work / "run.json").read_text())
        record["store"] = stored.to_dict()
        write_json_atomic(work / "run.json", record)
        version = _register_run(
            ctx,
            registry,
            run,
            outcome.result.summary,
            work,
            train_key=key,
            timings={k: float(v) for k, v in outcome.timings.items()},
        )
        target = _model_dir(ctx, stored.model_version)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if as_challenger:
        _set_challenger(ctx, registry, version, f"trained on data up to {run.data_end}")
    return TrainReport(stored.model_version, version.version, False, time.perf_counter() - t0)


def _set_challenger(
    ctx: LoopContext, registry: ModelRegistry, version: ModelVersionInfo, reason: str
) -> None:
    store = ctx.store()
    try:
        current = store.aliases().get(CHALLENGER)
        if current is None or current.model_version != version.store_version:
            store.move_alias(CHALLENGER, version.store_version, action="train", reason=reason)
        sync_registry(ctx, store, registry)
    finally:
        store.dispose()


# ------------------------------------------------------------------------------ evaluate


@dataclass
class Decision:
    """The champion/challenger test's verdict and every reason behind it."""

    promote: bool
    reasons: list[str]

    def text(self) -> str:
        """The reasons in one line."""
        return "; ".join(self.reasons)


@dataclass
class Evaluation:
    """Challenger, champion and the baselines scored on the same recent windows: ``scores``
    has model, grouping (all, class, tier, category), group, n_items, mae, mase, rmsse,
    rel_bias."""

    challenger: str
    champion: str
    scores: pl.DataFrame
    decision: Decision
    windows: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (scores as rows)."""
        return {
            "challenger": self.challenger,
            "champion": self.champion,
            "windows": self.windows,
            "promote": self.decision.promote,
            "reasons": self.decision.reasons,
            "scores": self.scores.to_dicts(),
            "seconds": self.seconds,
        }


def _settings_of(run: RunInfo, like: Settings) -> Settings:
    """A stored run's configuration as Settings (data window and store of ``like``)."""
    values = _clean_config(run.config)
    values.pop("pipeline", None)
    values.pop("registry", None)
    settings = Settings(**values)
    return settings.model_copy(
        update={
            "data": like.data,
            "store": like.store,
            "pipeline": like.pipeline,
            "registry": like.registry,
        }
    )


def _model_matrix(settings: Settings, train_panel: Any, h: int) -> np.ndarray:
    """A configuration's forecasts ``[items, h]`` for ``train_panel`` (the whole run: classify,
    backtest, route, forecast), rows in panel order."""
    settings = settings.model_copy(update={"horizon": h, "quantiles": []})
    result = run_core(train_panel, settings, with_forecast=True)
    assert result.forecasts is not None
    frame = result.forecasts.sort("unique_id", "ds")
    ids = [str(i) for i in train_panel.item_ids]
    wide = frame.select("unique_id", "forecast").with_columns(pl.col("unique_id").cast(pl.String))
    values = wide["forecast"].to_numpy().reshape(-1, h)
    order = {u: k for k, u in enumerate(dict.fromkeys(wide["unique_id"].to_list()))}
    out = np.full((len(ids), h), np.nan)
    for row, uid in enumerate(ids):
        if uid in order:
            out[row] = values[order[uid]]
    return out


def _groups(panel: Any, settings: Settings) -> pl.DataFrame:
    """unique_id, class, tier, category of every item (category '-' when unknown)."""
    cls = classify(panel, thresholds=settings.tiers.thresholds()).select(
        pl.col("unique_id").cast(pl.String), pl.col("sb_class").alias("class"), "tier"
    )
    ids = pl.DataFrame({"unique_id": [str(i) for i in panel.item_ids]})
    out = ids.join(cls, on="unique_id", how="left", maintain_order="left")
    category = ["-"] * panel.n_items
    attrs = panel.attributes
    if attrs is not None and "category" in attrs.columns:
        category = [str(c) if c is not None else "-" for c in attrs["category"].to_list()]
    return out.with_columns(pl.Series("category", category))


def evaluate(ctx: LoopContext, loaded: LoadedData | None = None) -> Evaluation | None:
    """Score the challenger's and the champion's configurations (and the baselines of the
    guard) on the same ``pipeline.eval_windows`` recent windows of the newest data: each is
    trained on the data before a window's origin (its own backtest and routing included) and
    forecasts the window. None when there is no challenger other than the champion. The result
    is kept in ``DIR/models/<challenger>/evaluation.json`` (reused by a rerun) and logged on
    the challenger's MLflow run (``eval/...`` metrics)."""
    t0 = time.perf_counter()
    champion = ensure_champion(ctx)
    store = ctx.store()
    try:
        aliases = store.aliases()
        challenger = aliases[CHALLENGER].model_version if CHALLENGER in aliases else None
        if challenger is None or challenger == champion:
            return None
        ch_run = store.run_by_version(challenger)
        cp_run = store.run_by_version(champion)
    finally:
        store.dispose()
    if ch_run is None or cp_run is None:
        raise LoopError(
            f"the store lost the run of {challenger if ch_run is None else champion}: "
            "train a new challenger (`sparecast pipeline run weekly`)"
        )
    if loaded is None:
        loaded, _ = extract(ctx)
    panel = loaded.panel
    folder = _model_dir(ctx, challenger)
    folder.mkdir(parents=True, exist_ok=True)
    cached = folder / EVAL_FILE
    end = str(_iso_day(panel.end))
    if cached.is_file():
        old = json.loads(cached.read_text())
        if old.get("champion") == champion and old.get("data_end") == end:
            decision = Decision(bool(old["promote"]), list(old["reasons"]))
            scores = pl.DataFrame(old["scores"])
            return Evaluation(challenger, champion, scores, decision, old["windows"], 0.0)
    p = ctx.settings.pipeline
    s_ch = _settings_of(ch_run, ctx.settings)
    s_cp = _settings_of(cp_run, ctx.settings)
    h = ctx.settings.horizon_for(panel)
    n = panel.n_periods
    origins = [n - h * k for k in range(p.eval_windows, 0, -1)]
    if origins[0] < max(2 * h, 14):
        raise LoopError(
            f"{n} periods are too few to evaluate on {p.eval_windows} windows of {h} periods; "
            "lower [pipeline] eval_windows or the horizon"
        )
    rows: list[pl.DataFrame] = []
    ids = [str(i) for i in panel.item_ids]
    models = {"challenger": s_ch, "champion": s_cp}
    windows = []
    for origin in origins:
        train_panel = panel.slice_periods(origin)
        y_true = panel.y[:, origin : origin + h].astype(np.float64)
        y_train = train_panel.y.astype(np.float64)
        windows.append(str(_iso_day(panel.dates[origin])))
        preds = {name: _model_matrix(s, train_panel, h) for name, s in models.items()}
        for base in p.baselines:
            preds[base] = forecast_panel(train_panel, h, base)
        for name, pred in preds.items():
            pred = np.where(np.isfinite(pred), pred, 0.0)
            season = s_cp.backtest.seasonality
            rows.append(
                pl.DataFrame(
                    {
                        "model": name,
                        "origin": windows[-1],
                        "unique_id": ids,
                        "mae": mae_metric(y_true, pred),
                        "mase": mase_metric(y_true, pred, y_train, seasonality=season),
                        "rmsse": rmsse_metric(y_true, pred, y_train, seasonality=season),
                        "err": (pred - y_true).sum(axis=1),
                        "y": y_true.sum(axis=1),
                    }
                )
            )
    per_item = pl.concat(rows).with_columns(pl.col("mae", "mase", "rmsse").fill_nan(None))
    per_item = per_item.group_by("model", "unique_id").agg(
        pl.col("mae", "mase", "rmsse").mean(), pl.col("err", "y").sum()
    )
    per_item = per_item.join(_groups(panel, ctx.settings), on="unique_id", how="left")
    parts = []
    for grouping in ("all", "class", "tier", "category"):
        key = pl.lit("all") if grouping == "all" else pl.col(grouping)
        parts.append(
            per_item.with_columns(key.cast(pl.String).alias("group"))
            .group_by("model", "group")
            .agg(
                pl.len().alias("n_items"),
                pl.col("mae", "mase", "rmsse").mean(),
                (pl.col("err").sum() / pl.col("y").sum()).alias("rel_bias"),
            )
            .with_columns(pl.lit(grouping).alias("grouping"))
        )
    scores = (
        pl.concat(parts)
        .select("model", "grouping", "group", "n_items", "mae", "mase", "rmsse", "rel_bias")
        .sort("grouping", "group", "model")
    )
    decision = decide(
        scores,
        p.metric,
        p.margin,
        p.tolerance,
        p.baselines,
        p.baseline_tolerance,
        p.min_group_items,
    )
    evaluation = Evaluation(
        challenger, champion, scores, decision, windows, time.perf_counter() - t0
    )
    write_json_atomic(cached, {**evaluation.to_dict(), "data_end": end})
    registry = ctx.registry()
    version = registry.by_store_version(challenger)
    if version is not None:
        registry.log_metrics(version.run_id, _score_metrics(scores, "challenger"), "eval/")
        registry.log_metrics(version.run_id, _score_metrics(scores, "champion"), "eval_champion/")
    return evaluation


def _score_metrics(scores: pl.DataFrame, model: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in scores.filter(pl.col("model") == model).to_dicts():
        for metric in ("rmsse", "mase", "mae", "rel_bias"):
            v = row[metric]
            if v is not None and math.isfinite(v):
                out[f"{metric}/{row['grouping']}/{row['group']}"] = float(v)
    return out


def decide(
    scores: pl.DataFrame,
    metric: str = "rmsse",
    margin: float = 0.01,
    tolerance: float = 0.05,
    baselines: list[str] | tuple[str, ...] = ("sba", "robust"),
    baseline_tolerance: float = 0.02,
    min_group_items: int = 3,
) -> Decision:
    """The champion/challenger test on ``evaluate``'s scores (lower ``metric`` is better):
    promote only if the challenger beats the champion by ``margin`` over all items, no tier or
    category is worse than the champion's by more than ``tolerance``, and no tier is worse than
    any baseline by more than ``baseline_tolerance`` (the baseline guard)."""

    def value(model: str, grouping: str, group: str) -> float | None:
        row = scores.filter(
            (pl.col("model") == model)
            & (pl.col("grouping") == grouping)
            & (pl.col("group") == group)
        )
        if row.is_empty():
            return None
        v = row[metric][0]
        return None if v is None or not math.isfinite(v) else float(v)

    reasons: list[str] = []
    ok = True
    ch, cp = value("challenger", "all", "all"), value("champion", "all", "all")
    if ch is None or cp is None:
        return Decision(False, [f"no {metric} score over all items: kept the champion"])
    if ch <= cp * (1 - margin):
        reasons.append(f"{metric} {ch:.4f} beats the champion's {cp:.4f} by more than {margin:.0%}")
    else:
        ok = False
        reasons.append(f"{metric} {ch:.4f} does not beat the champion's {cp:.4f} by {margin:.0%}")
    for grouping in ("tier", "category"):
        rows = scores.filter(
            (pl.col("model") == "challenger")
            & (pl.col("grouping") == grouping)
            & (pl.col("n_items") >= min_group_items)
        )
        for group in rows["group"].to_list():
            a, b = value("challenger", grouping, group), value("champion", grouping, group)
            if a is not None and b is not None and a > b * (1 + tolerance):
                ok = False
                reasons.append(
                    f"{grouping} {group}: {metric} {a:.4f} worse than the champion's {b:.4f} "
                    f"by more than {tolerance:.0%}"
                )
            if grouping != "tier":
                continue
            for base in baselines:
                c = value(base, grouping, group)
                if a is not None and c is not None and a > c * (1 + baseline_tolerance):
                    ok = False
                    reasons.append(
                        f"baseline guard: tier {group} {metric} {a:.4f} worse than {base}'s {c:.4f}"
                    )
    reasons.insert(0, "promote" if ok else "keep the champion")
    return Decision(ok, reasons)


# ------------------------------------------------------------------------------ promote, rollback


def promote(ctx: LoopContext, evaluation: Evaluation | None = None) -> StepReport:
    """Promote the challenger when the test passes: the store's champion alias moves (the
    commit point: the API serves it within its refresh interval), then MLflow's; otherwise a
    ``keep`` event records why. Idempotent: a promoted challenger is not promoted again."""
    t0 = time.perf_counter()
    if evaluation is None:
        evaluation = evaluate(ctx)
    if evaluation is None:
        return StepReport("promote", "promote: no challenger to test", {}, 0.0)
    store = ctx.store()
    registry = ctx.registry()
    try:
        current = store.aliases()[CHAMPION].model_version
        version = registry.by_store_version(evaluation.challenger)
        if current == evaluation.challenger:
            sync_registry(ctx, store, registry)
            return StepReport("promote", f"promote: {current} is the champion already", {}, 0.0)
        if evaluation.decision.promote:
            store.move_alias(
                CHAMPION,
                evaluation.challenger,
                action="promote",
                reason=evaluation.decision.text(),
                expect=evaluation.champion,
                check_expected=True,
            )
            if version is not None:
                registry.set_version_tag(version.version, "sparecast.decision", "promoted")
            sync_registry(ctx, store, registry)
            msg = f"promote: {evaluation.challenger} is the champion ({evaluation.decision.text()})"
        else:
            events = store.alias_events(limit=20)
            seen = any(
                e.action == "keep" and e.model_version == evaluation.challenger for e in events
            )
            if not seen:
                store.record_event(
                    "keep",
                    CHALLENGER,
                    evaluation.challenger,
                    evaluation.decision.text(),
                    previous=evaluation.champion,
                )
            if version is not None:
                registry.set_version_tag(version.version, "sparecast.decision", "rejected")
            msg = f"promote: kept {evaluation.champion} ({evaluation.decision.text()})"
    finally:
        store.dispose()
    return StepReport(
        "promote", msg, {"promoted": evaluation.decision.promote}, time.perf_counter() - t0
    )


def rollback(ctx: LoopContext, reason: str, loaded: LoadedData | None = None) -> StepReport:
    """Serve the previous champion configuration again (the one promoted before the current
    one: ``champion_stack``), retrained on the newest data (``train``, reused when that
    configuration was already trained on it), never one of its old runs: a rollback after
    months would otherwise serve months-old forecasts. The champion alias moves with action
    ``rollback`` and the reason; the alerts of the rolled-back lineage close; the API serves
    it within its refresh interval. LoopError when there is no previous configuration (the
    champion keeps serving and the alerts stay open) or it cannot be retrained."""
    t0 = time.perf_counter()
    store = ctx.store()
    try:
        events = store.alias_events()
        stack = champion_stack(events)
        if len(stack) < 2:
            raise LoopError(
                "no previous champion configuration to roll back to (none was served before "
                "the champion's configuration, or the loop rolled back to it already): the "
                "champion keeps serving, the alert stays open"
            )
        current, previous = stack[-1], stack[-2]
        prev_run = store.run_by_version(previous)
        lineage = served_lineage(events, current)
    finally:
        store.dispose()
    if prev_run is None:
        raise LoopError(f"the store lost the previous champion's run {previous}")
    try:
        trained = train(
            ctx, loaded, settings=_settings_of(prev_run, ctx.settings), as_challenger=False
        )
    except SparecastError as exc:
        raise LoopError(
            f"the previous champion configuration ({previous}) could not be retrained on the "
            f"newest data: {exc}; the champion keeps serving"
        ) from exc
    target = trained.model_version
    store = ctx.store()
    try:
        run = store.run_by_version(target)
        data_end = run.data_end if run is not None else None
        why = (
            f"{reason}; back to the previous champion configuration (that of {previous}, "
            f"served before {current}'s), "
            + (
                f"retrained on data up to {data_end}"
                if target != previous
                else f"its run on data up to {data_end}"
            )
        )
        store.move_alias(
            CHAMPION, target, action="rollback", reason=why, expect=current, check_expected=True
        )
        for version in lineage:
            store.close_alerts(version, f"closed: rolled back, {target} serves instead")
        sync_registry(ctx, store)
    finally:
        store.dispose()
    return StepReport(
        "rollback",
        f"rollback: {target} (the configuration of {previous} on data up to {data_end}) "
        f"serves again instead of {current} ({reason})",
        {"from": current, "to": target, "configuration_of": previous},
        time.perf_counter() - t0,
    )


def refresh(
    ctx: LoopContext, loaded: LoadedData | None = None, trained: TrainReport | None = None
) -> StepReport:
    """Serve the champion's configuration retrained on the newest data (the same model, newer
    forecasts; a champion's run would otherwise grow stale while no challenger wins): train it
    (or take ``trained``, a training of that same configuration) and move the champion alias
    with action ``refresh``. A rollback goes back past refreshes to the previous model."""
    t0 = time.perf_counter()
    champion = ensure_champion(ctx)
    store = ctx.store()
    try:
        run = store.run_by_version(champion)
    finally:
        store.dispose()
    if run is None:
        raise LoopError(f"the store lost the champion's run {champion}")
    if trained is None:
        trained = train(ctx, loaded, settings=_settings_of(run, ctx.settings), as_challenger=False)
    if trained.model_version == champion:
        return StepReport("refresh", f"refresh: {champion} is up to date", {}, 0.0)
    store = ctx.store()
    try:
        store.move_alias(
            CHAMPION,
            trained.model_version,
            action="refresh",
            reason=f"the champion's configuration retrained on newer data (was {champion})",
            expect=champion,
            check_expected=True,
        )
        sync_registry(ctx, store)
    finally:
        store.dispose()
    return StepReport(
        "refresh",
        f"refresh: {trained.model_version} serves the champion's configuration on newer data",
        {"from": champion, "to": trained.model_version},
        time.perf_counter() - t0,
    )


def same_model(ctx: LoopContext) -> bool:
    """True when the challenger's configuration is the champion's (a refresh, no test)."""
    champion = ensure_champion(ctx)
    store = ctx.store()
    try:
        run = store.run_by_version(champion)
    finally:
        store.dispose()
    return run is not None and config_key(_settings_of(run, ctx.settings)) == config_key(
        ctx.challenger_settings
    )


# ------------------------------------------------------------------------------ the flows' bodies


def record_observed(ctx: LoopContext, loaded: LoadedData) -> StepReport:
    """The actuals the extraction brought, stored for monitoring (``observed_demand``)."""
    t0 = time.perf_counter()
    store = ctx.store()
    try:
        load = record_actuals(store, loaded.panel, ctx.as_of)
    finally:
        store.dispose()
    msg = f"actuals: {load.inserted} new, {load.updated} corrected, {load.unchanged} unchanged"
    return StepReport("actuals", msg, load.to_dict(), time.perf_counter() - t0)


def monitor_step(ctx: LoopContext) -> MonitorReport:
    """Monitor the champion's served forecasts on the stored actuals
    (``sparecast.pipeline.monitor.monitor``)."""
    store = ctx.store()
    try:
        aliases = store.aliases()
    finally:
        store.dispose()
    champion = aliases[CHAMPION].model_version if CHAMPION in aliases else None
    return monitor(ctx.settings, ctx.data_dir, model_version=champion, as_of=ctx.as_of)


def run_daily(ctx: LoopContext) -> list[StepReport]:
    """The daily flow without Prefect: incremental extraction, the new actuals stored,
    monitoring of the champion, and a rollback when the monitor reports a degradation."""
    loaded, rep = extract(ctx)
    reports = [rep]
    ensure_champion(ctx)
    reports.append(record_observed(ctx, loaded))
    t0 = time.perf_counter()
    result = monitor_step(ctx)
    reports.append(
        StepReport(
            "monitor",
            f"monitor: {'degraded' if result.degraded else 'ok'}: {result.reason}; "
            + result.override_fva_text(),
            {
                "degraded": bool(result.degraded),
                "override_fva": result.override_fva.summary if result.override_fva else None,
            },
            time.perf_counter() - t0,
        )
    )
    if result.degraded:
        try:
            reports.append(rollback(ctx, f"monitoring: {result.reason}", loaded))
        except LoopError as exc:
            reports.append(StepReport("rollback", f"rollback: not possible ({exc})", {}, 0.0))
    return reports


def run_weekly(ctx: LoopContext) -> list[StepReport]:
    """The weekly flow without Prefect: extract, train a challenger; when its configuration is
    the champion's, serve it (``refresh``); otherwise evaluate it against the champion on the
    same windows and promote it, or keep the champion and refresh it on the newest data."""
    loaded, rep = extract(ctx)
    reports = [rep]
    tr = train(ctx, loaded)
    reports.append(
        StepReport(
            "train",
            f"train: challenger {tr.model_version} (registry version {tr.registry_version}"
            + (", reused)" if tr.reused else ")"),
            {"model_version": tr.model_version, "reused": tr.reused},
            tr.seconds,
        )
    )
    if same_model(ctx):
        reports.append(refresh(ctx, loaded, tr))
        return reports
    ev = evaluate(ctx, loaded)
    if ev is None:
        reports.append(StepReport("evaluate", "evaluate: the challenger is the champion", {}, 0.0))
        return reports
    reports.append(
        StepReport(
            "evaluate",
            f"evaluate: {ev.decision.reasons[0]} on windows from {', '.join(ev.windows)}",
            {"promote": ev.decision.promote},
            ev.seconds,
        )
    )
    done = promote(ctx, ev)
    reports.append(done)
    if not done.details.get("promoted", False):
        reports.append(refresh(ctx, loaded))
    return reports


# ------------------------------------------------------------------------------ status


def models_status(ctx: LoopContext) -> dict[str, Any]:
    """Aliases (store and MLflow) and every registered version with its tags."""
    store = ctx.store()
    try:
        aliases = {k: v.to_dict() for k, v in store.aliases().items()}
        served = store.served_run()
    finally:
        store.dispose()
    registry = ctx.registry()
    versions = [v.to_dict() for v in registry.versions()]
    mlflow_aliases = {}
    for alias in (CHAMPION, CHALLENGER):
        v = registry.alias_version(alias)
        if v is not None:
            mlflow_aliases[alias] = v.version
    return {
        "served": served.model_version if served else None,
        "aliases": aliases,
        "registry_aliases": mlflow_aliases,
        "versions": versions,
    }


def models_history(ctx: LoopContext, limit: int | None = None) -> list[dict[str, Any]]:
    """Every alias move and decision (bootstrap, train, promote, keep, rollback), oldest first."""
    store = ctx.store()
    try:
        return [e.to_dict() for e in store.alias_events(limit)]
    finally:
        store.dispose()
