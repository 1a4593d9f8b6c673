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

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast.classify import classify
from sparecast.config import Settings, load_settings
from sparecast.errors import ConfigError, SourceError, SparecastError
from sparecast.evaluate.backtest import REFERENCES, BacktestResult
from sparecast.evaluate.metrics import mae as mae_metric
from sparecast.evaluate.metrics import mase as mase_metric
from sparecast.evaluate.metrics import rmsse as rmsse_metric
from sparecast.methods import forecast_panel
from sparecast.pipeline.core import run_core
from sparecast.pipeline.engine import LOCAL, Engine
from sparecast.pipeline.load import LoadedData, load_panel
from sparecast.pipeline.monitor import (
    MonitorReport,
    monitor,
    period_end,
    record_actuals,
    run_items_frame,
    score_run,
)
from sparecast.pipeline.outputs import FORECASTS_DIR, FORECASTS_FILE, POLICY_FILE
from sparecast.pipeline.plan import RUN_FILES, recorded_items_file, run_plan
from sparecast.pipeline.staging import write_json_atomic
from sparecast.pipeline.steps import stage_run
from sparecast.pipeline.store_step import store_run, store_url_for
from sparecast.store.aliases import (
    CHALLENGER,
    CHAMPION,
    AliasEvent,
    champion_stack,
    served_lineage,
)
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
    "ShadowScores",
    "shadow_challenger",
    "shadow_scores",
    "shadow_step",
    "replan_if_planned",
    "planned_version",
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
                _keep_run_files(ctx.data_dir, folder)  # a re-plan on it after a rollback
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
        pending = _pending_shadow(store) if ctx.settings.pipeline.shadow_periods > 0 else None
        if pending is not None and pending != version.store_version:
            log.info(
                "challenger %s stays in shadow until decided: %s is registered, not aliased",
                pending,
                version.store_version,
            )
        elif current is None or current.model_version != version.store_version:
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


class _SharedEngine:
    """The local engine for the core runs of several configurations on one panel (evaluate
    runs the challenger's and the champion's on each window's panel): what a configuration
    computes like one before it is taken from that one, not computed again. Shared: the
    classification (same tier thresholds), each method's backtest scores (same horizon,
    windows, step, seasonality, parameters of that method, stockout weight and percentage
    items) and each method's forecasts (same horizon and parameters). A method's scores and
    forecasts do not depend on the other methods of the call, so the results are the ones
    ``LocalEngine`` computes, in the order the call asks (tested)."""

    _SAME = ("h", "n_windows", "step", "seasonality", "stockout_weight")

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self._classes: dict[str, pl.DataFrame] = {}
        self._backtests: list[tuple[dict[str, Any], BacktestResult]] = []
        self._forecasts: dict[tuple[str, int, str], np.ndarray] = {}
        self._failed: dict[tuple[str, int, str], str] = {}

    def classify(self, panel: Any, thresholds: Any) -> pl.DataFrame:
        assert panel is self.panel
        key = repr(thresholds)
        if key not in self._classes:
            self._classes[key] = LOCAL.classify(panel, thresholds)
        return self._classes[key]

    def _subset(
        self, cached: dict[str, Any], result: BacktestResult, kwargs: dict[str, Any]
    ) -> BacktestResult | None:
        """The cached ``result`` cut to the methods ``kwargs`` asks for, or None when it was
        computed differently or lacks one of them."""
        if any(cached.get(k) != kwargs.get(k) for k in self._SAME):
            return None
        if kwargs.get("keep_errors") and result.errors is None:
            return None
        a, b = cached.get("percentage_items"), kwargs.get("percentage_items")
        if (a is None) != (b is None) or (
            a is not None and b is not None and not np.array_equal(a, b)
        ):
            return None
        if "references" in cached or "references" in kwargs:
            return None
        methods = list(kwargs["methods"])
        old_params, params = cached.get("params") or {}, kwargs.get("params") or {}
        refs = tuple(r for r in REFERENCES if r not in methods)
        keep = [*methods, *refs]
        if any(m not in result.methods or old_params.get(m) != params.get(m) for m in keep):
            return None
        order = pl.DataFrame({"method": keep, "_o": range(len(keep))})
        scores = (
            result.scores.join(order, on="method", how="inner")
            .sort("_o", maintain_order=True)
            .drop("_o")
        )
        errors = None
        if kwargs.get("keep_errors") and result.errors is not None:
            errors = {m: result.errors[m] for m in keep if m in result.errors}
        return dataclasses.replace(
            result,
            scores=scores,
            methods=keep,
            references=refs,
            labels={m: result.labels[m] for m in keep if m in result.labels},
            errors=errors,
            timings=dict(result.timings),
        )

    def backtest(self, panel: Any, **kwargs: Any) -> BacktestResult:
        assert panel is self.panel
        for cached, result in self._backtests:
            found = self._subset(cached, result, kwargs)
            if found is not None:
                return found
        result = LOCAL.backtest(panel, **kwargs)
        self._backtests.append((kwargs, result))
        return result

    def forecast_all(
        self,
        panel: Any,
        h: int,
        names: list[str],
        params: dict[str, dict[str, Any]],
        step: Any,
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        assert panel is self.panel

        def key(name: str) -> tuple[str, int, str]:
            return (name, h, json.dumps(params.get(name), sort_keys=True, default=str))

        todo = [n for n in names if key(n) not in self._forecasts and key(n) not in self._failed]
        if todo:
            values, failed = LOCAL.forecast_all(panel, h, todo, params, step)
            self._forecasts.update({key(n): v for n, v in values.items()})
            self._failed.update({key(n): why for n, why in failed.items()})
        out = {n: self._forecasts[key(n)] for n in names if key(n) in self._forecasts}
        return out, {n: self._failed[key(n)] for n in names if key(n) in self._failed}

    def forecast_quantiles(self, panel: Any, point: np.ndarray, levels: list[float]) -> np.ndarray:
        return LOCAL.forecast_quantiles(panel, point, levels)

    def plan_items(self, *args: Any, **kwargs: Any) -> Any:
        return LOCAL.plan_items(*args, **kwargs)


def _model_matrix(
    settings: Settings, train_panel: Any, h: int, engine: Engine = LOCAL
) -> np.ndarray:
    """A configuration's forecasts ``[items, h]`` for ``train_panel`` (the whole run: classify,
    backtest, route, forecast), rows in panel order. ``engine``: a ``_SharedEngine`` of the
    panel when several configurations run on it."""
    settings = settings.model_copy(update={"horizon": h, "quantiles": []})
    result = run_core(train_panel, settings, with_forecast=True, engine=engine)
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
        shared = _SharedEngine(train_panel)  # the champion takes what the challenger computed
        preds = {name: _model_matrix(s, train_panel, h, shared) for name, s in models.items()}
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
    commit point: the API serves it within its refresh interval), then MLflow's, and the
    directory's plan follows (``replan_if_planned``); otherwise a ``keep`` event records why.
    With ``[pipeline] shadow_periods`` > 0 a challenger that passes is held in shadow instead
    (a ``shadow`` event; ``shadow_step`` decides on its stored forecasts later). Idempotent: a
    promoted challenger is not promoted again, a shadowed one not shadowed again."""
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
        shadowed = _shadow_events(store.alias_events(), evaluation.challenger)
        if evaluation.decision.promote and ctx.settings.pipeline.shadow_periods > 0:
            msg = _start_shadow(ctx, store, registry, evaluation, shadowed)
            promoted = False
        elif evaluation.decision.promote:
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
            promoted = True
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
            promoted = False
    finally:
        store.dispose()
    details: dict[str, Any] = {"promoted": promoted}
    if evaluation.decision.promote and ctx.settings.pipeline.shadow_periods > 0:
        details["shadow"] = True
    if promoted:  # the plan follows the served model
        details["replan"] = replan_if_planned(ctx).message
    return StepReport("promote", msg, details, time.perf_counter() - t0)


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


# ------------------------------------------------------------------------------ shadow mode

SHADOW = "shadow"
"""The ``alias_events`` action of a challenger held in shadow (``[pipeline] shadow_periods``)."""
SHADOW_FILE = "shadow.json"


def _shadow_events(events: list[AliasEvent], model_version: str) -> list[AliasEvent]:
    """The shadow of ``model_version``: its ``shadow`` event and the decisions after it."""
    out: list[AliasEvent] = []
    for event in events:
        if event.model_version != model_version:
            continue
        if event.action == SHADOW or (out and event.action in ("promote", "keep")):
            out.append(event)
    return out


def _pending_shadow(store: ForecastStore) -> str | None:
    """The challenger held in shadow and not decided yet (it must still be the challenger)."""
    pending: str | None = None
    for event in store.alias_events():
        if event.action == SHADOW:
            pending = event.model_version
        elif pending == event.model_version and event.action in ("promote", "keep"):
            pending = None
    current = store.aliases().get(CHALLENGER)
    return pending if current is not None and current.model_version == pending else None


def shadow_challenger(ctx: LoopContext) -> str | None:
    """The model version held in shadow (passed the backtest test, not decided yet), or None."""
    store = ctx.store()
    try:
        return _pending_shadow(store)
    finally:
        store.dispose()


def _start_shadow(
    ctx: LoopContext,
    store: ForecastStore,
    registry: ModelRegistry,
    evaluation: Evaluation,
    shadowed: list[AliasEvent],
) -> str:
    """Hold a challenger that passed the backtest test in shadow (``shadow`` event, registry
    tag); a challenger whose shadow was decided already is not shadowed again."""
    n = ctx.settings.pipeline.shadow_periods
    if shadowed:
        last = shadowed[-1]
        if last.action == SHADOW:
            return f"promote: {evaluation.challenger} is in shadow since {last.at:%Y-%m-%d}"
        return f"promote: the shadow of {evaluation.challenger} was decided: {last.reason}"
    run = store.run_by_version(evaluation.challenger)
    if run is not None and n > len(run.forecast_dates):
        raise ConfigError(
            f"[pipeline] shadow_periods = {n} exceeds the challenger's horizon of "
            f"{len(run.forecast_dates)} periods: its stored forecasts cannot be scored on {n} "
            "periods; lower shadow_periods or raise the horizon"
        )
    store.record_event(
        SHADOW,
        CHALLENGER,
        evaluation.challenger,
        f"passed the backtest test ({evaluation.decision.text()}); held in shadow: promoted "
        f"only if its forecasts beat the champion's on {n} period(s) of actuals",
        previous=evaluation.champion,
    )
    version = registry.by_store_version(evaluation.challenger)
    if version is not None:
        registry.set_version_tag(version.version, "sparecast.decision", SHADOW)
    return (
        f"promote: {evaluation.challenger} passed ({evaluation.decision.reasons[1]}); in shadow "
        f"for {n} period(s) of actuals before promotion, {evaluation.champion} serves"
    )


@dataclass
class ShadowScores:
    """The shadowed challenger's and the champion's stored forecasts scored on the same items
    and periods of actuals: ``scores`` as ``evaluate``'s (model challenger/champion, grouping,
    group, n_items, mae, mase, rmsse, rel_bias) over the ``periods`` scored so far, through
    ``last``; ``champion_run``: the champion's run compared (its configuration trained on the
    challenger's data)."""

    challenger: str
    champion_run: str
    periods: int
    last: date | None
    scores: pl.DataFrame


def _comparison_run(
    ctx: LoopContext, store: ForecastStore, champion: RunInfo, data_end: date
) -> RunInfo | None:
    """The champion's configuration trained on the data up to ``data_end`` (the refresh of
    the cycle the challenger was trained in: the same forecast periods), None when there is
    no such training."""
    if champion.data_end == data_end:
        return champion
    try:
        key = train_key(_settings_of(champion, ctx.settings), data_end)
    except Exception:  # noqa: BLE001 - a config this version cannot read: no key
        return None
    found = ctx.registry().by_train_key(key)
    return store.run_by_version(found.store_version) if found is not None else None


def shadow_scores(ctx: LoopContext, challenger: str) -> ShadowScores | None:
    """Score the challenger's stored forecasts and the champion's on the actuals stored so far
    (``observed_demand``, recorded by the daily steps), with the monitoring's scoring
    (``sparecast.pipeline.monitor.score_run``, cumulative over the scored periods): the same
    items and periods for both, the periods of the challenger's forecasts that ended by
    ``as_of`` (default today). None when the champion's configuration has no forecasts of
    those periods (the champion changed during the shadow)."""
    as_of = ctx.as_of or datetime.now(UTC).date()
    store = ctx.store()
    try:
        ch_run = store.run_by_version(challenger)
        champion = store.aliases()[CHAMPION].model_version
        cp_now = store.run_by_version(champion)
        if ch_run is None or cp_now is None:
            raise LoopError(
                f"the store lost the run of {challenger if ch_run is None else champion}"
            )
        cp_run = _comparison_run(ctx, store, cp_now, ch_run.data_end)
        if cp_run is None or cp_run.freq != ch_run.freq:
            return None
        common = [
            d for d, e in zip(ch_run.forecast_dates, cp_run.forecast_dates, strict=False) if d == e
        ]
        if not common:
            return None
        until = min(as_of, period_end(common[-1], ch_run.freq))
        cfg = ctx.settings.monitoring.model_copy(update={"window": None})
        parts = []
        for name, run in (("challenger", ch_run), ("champion", cp_run)):
            scores, _, _ = score_run(store, run, until, cfg)
            if scores.height == 0:
                return ShadowScores(challenger, cp_run.model_version, 0, None, pl.DataFrame())
            last = scores.filter(pl.col("period") == pl.col("period").max())
            parts.append(
                last.select(
                    pl.lit(name).alias("model"),
                    "grouping",
                    "group",
                    "n_items",
                    "mae",
                    "mase",
                    "rmsse",
                    "rel_bias",
                    "period",
                    "ds",
                )
            )
    finally:
        store.dispose()
    periods = min(int(p["period"][0]) for p in parts)
    last_day = min(p["ds"][0] for p in parts)
    scores = pl.concat(parts).drop("period", "ds").sort("grouping", "group", "model")
    return ShadowScores(challenger, cp_run.model_version, periods, last_day, scores)


def shadow_step(ctx: LoopContext) -> StepReport:
    """Decide on the challenger in shadow once its stored forecasts and the champion's have
    ``[pipeline] shadow_periods`` periods of actuals: promote it (champion alias moved, action
    ``promote``, the plan follows) only if it beats the champion by ``margin`` on ``metric``
    with no tier or category worse than ``tolerance`` (``decide``; the baseline guard was
    applied by the backtest test), otherwise a ``keep`` event; the reason names the shadow's
    scores. Before that, reports the periods scored so far. The scores are kept in
    ``DIR/models/<challenger>/shadow.json`` and logged on its MLflow run (``shadow/...``)."""
    t0 = time.perf_counter()
    p = ctx.settings.pipeline
    challenger = shadow_challenger(ctx)
    if challenger is None:
        return StepReport("shadow", "shadow: no challenger in shadow", {"pending": False})
    result = shadow_scores(ctx, challenger)
    if result is not None and result.periods < p.shadow_periods:
        return StepReport(
            "shadow",
            f"shadow: {challenger} scored on {result.periods} of {p.shadow_periods} period(s) "
            "of actuals; the decision waits for the rest",
            {"pending": True, "periods": result.periods},
            time.perf_counter() - t0,
        )
    if result is None:
        decision = Decision(
            False,
            [
                "keep the champion",
                "shadow: the champion's configuration has no forecasts of the shadow's periods "
                "(the champion changed during the shadow)",
            ],
        )
        scores = pl.DataFrame()
    else:
        decision = decide(
            result.scores,
            p.metric,
            p.margin,
            p.tolerance,
            (),
            p.baseline_tolerance,
            p.min_group_items,
        )
        decision.reasons.insert(
            1,
            f"shadow over {result.periods} period(s) of actuals up to {result.last} against "
            f"{result.champion_run}",
        )
        scores = result.scores
    store = ctx.store()
    registry = ctx.registry()
    try:
        champion = store.aliases()[CHAMPION].model_version
        reason = "shadow: " + decision.text()
        if decision.promote:
            store.move_alias(
                CHAMPION,
                challenger,
                action="promote",
                reason=reason,
                expect=champion,
                check_expected=True,
            )
        else:
            store.record_event("keep", CHALLENGER, challenger, reason, previous=champion)
        version = registry.by_store_version(challenger)
        if version is not None:
            registry.set_version_tag(
                version.version,
                "sparecast.decision",
                "promoted" if decision.promote else "rejected",
            )
            if scores.height:
                registry.log_metrics(
                    version.run_id, _score_metrics(scores, "challenger"), "shadow/"
                )
        sync_registry(ctx, store, registry)
    finally:
        store.dispose()
    folder = _model_dir(ctx, challenger)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        folder / SHADOW_FILE,
        {
            "challenger": challenger,
            "champion": champion,
            "compared_run": result.champion_run if result else None,
            "periods": result.periods if result else 0,
            "last": result.last if result else None,
            "promote": decision.promote,
            "reasons": decision.reasons,
            "scores": scores.to_dicts(),
        },
    )
    details: dict[str, Any] = {"pending": False, "promoted": decision.promote}
    if decision.promote:
        details["replan"] = replan_if_planned(ctx).message
        msg = f"shadow: {challenger} is the champion ({decision.text()})"
    else:
        msg = f"shadow: kept {champion} ({decision.text()})"
    return StepReport("shadow", msg, details, time.perf_counter() - t0)


# ------------------------------------------------------------------------------ re-plan


def _has_forecasts(folder: Path) -> bool:
    return (folder / FORECASTS_FILE).is_file() or (folder / FORECASTS_DIR).is_dir()


def _keep_run_files(data_dir: Path, folder: Path) -> None:
    """Copy the directory's run files (forecasts, classification, backtest, selection) into a
    model's folder that lacks them: the run they belong to can be planned on again later."""
    if _has_forecasts(folder) or not _has_forecasts(data_dir):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*RUN_FILES, "run.json"):
        src, dst = data_dir / name, folder / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, dst)


def planned_version(data_dir: Path) -> str | None:
    """The model version the directory's forecasts and plan were made with (run.json:
    ``plan.model_version``, else ``store.model_version``); None when unknown."""
    try:
        record = json.loads((data_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    plan = record.get("plan") or {}
    version = plan.get("model_version") or (record.get("store") or {}).get("model_version")
    return str(version) if version else None


def replan_if_planned(ctx: LoopContext) -> StepReport:
    """Re-plan the directory on the champion's forecasts when it holds a plan (made by
    ``sparecast plan`` or ``demo``: ``policy.parquet``) made with another model version, so
    that the policy, the report and the web workbench follow a promotion, a refresh or a
    rollback. The plan's own code path (``run_plan`` with ``forecasts_from`` the champion's
    folder ``DIR/models/<version>``): staged and committed atomically like every output, the
    champion's run files replace the directory's. Its settings are the champion's
    configuration (data window of the loop). Idempotent: a plan already on the champion is
    kept. Called after every move of the champion alias (``promote``, ``run_weekly``; a
    rollback calls it too)."""
    t0 = time.perf_counter()
    if not (ctx.data_dir / POLICY_FILE).is_file():
        return StepReport("replan", "replan: the directory holds no plan", {"replanned": False})
    store = ctx.store()
    try:
        aliases = store.aliases()
        champion = aliases[CHAMPION].model_version if CHAMPION in aliases else None
        run = store.run_by_version(champion) if champion else None
    finally:
        store.dispose()
    if champion is None or run is None:
        return StepReport("replan", "replan: no champion to plan on", {"replanned": False})
    before = planned_version(ctx.data_dir)
    if before == champion:
        return StepReport(
            "replan", f"replan: the plan is on the champion {champion}", {"replanned": False}
        )
    if before is not None:  # the run planned on so far stays plannable (a later rollback)
        _keep_run_files(ctx.data_dir, _model_dir(ctx, before))
    folder = _model_dir(ctx, champion)
    if not _has_forecasts(folder):
        raise LoopError(
            f"the forecasts of the champion {champion} are not kept in {folder}: re-plan with "
            f"`sparecast plan --reuse-forecasts` after `sparecast pipeline run weekly`"
        )
    try:
        settings = _settings_of(run, ctx.settings)
    except Exception:  # noqa: BLE001 - a config this version cannot read: the served one
        settings = ctx.settings
    outcome = run_plan(
        ctx.source,
        ctx.data_dir,
        settings,
        forecasts_from=folder,
        items_file=recorded_items_file(ctx.data_dir),
    )
    summary = outcome.plan.summary
    return StepReport(
        "replan",
        f"replan: the plan follows the champion {champion} (was {before}): "
        f"{summary.get('n_to_order', 0)} item(s) to order",
        {"replanned": True, "from": before, "to": champion},
        time.perf_counter() - t0,
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
    monitoring of the champion, and a rollback when the monitor reports a degradation (the
    directory's plan then follows the champion)."""
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
        else:  # a failed re-plan is its own error, not a rollback that could not happen
            reports.append(replan_if_planned(ctx))
    return reports


def run_weekly(ctx: LoopContext) -> list[StepReport]:
    """The weekly flow without Prefect: extract, train a challenger; when its configuration is
    the champion's, serve it (``refresh``); otherwise evaluate it against the champion on the
    same windows and promote it (or, in shadow mode, hold it in shadow), or keep the champion
    and refresh it on the newest data; the directory's plan follows the champion. While a
    challenger is in shadow the week scores it instead (``shadow_step``: the newest actuals
    recorded, promoted or rejected after ``shadow_periods``) and refreshes the champion."""
    loaded, rep = extract(ctx)
    reports = [rep]
    if ctx.settings.pipeline.shadow_periods > 0 and shadow_challenger(ctx) is not None:
        # the challenger in shadow keeps its slot until decided: no new one is trained
        reports.append(record_observed(ctx, loaded))
        reports.append(shadow_step(ctx))
        reports.append(refresh(ctx, loaded))  # the champion (kept or just promoted), newest data
        reports.append(replan_if_planned(ctx))
        return reports
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
        reports.append(replan_if_planned(ctx))
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
        reports.append(replan_if_planned(ctx))
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
