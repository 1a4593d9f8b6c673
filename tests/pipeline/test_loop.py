"""The production loop's steps (sparecast.pipeline.loop) on a real small demo, with real MLflow
(SQLite, and PostgreSQL in the integration test) and the API following the served-model pointer.

The demo directory is bootstrapped once (its run registered as champion: MLflow creates its
SQLite schema, about 20 s) and copied for every test."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("mlflow")

from fastapi.testclient import TestClient  # noqa: E402

from sparecast.cli import app as cli_app  # noqa: E402
from sparecast.config import Settings  # noqa: E402
from sparecast.errors import SparecastError  # noqa: E402
from sparecast.pipeline import loop  # noqa: E402
from sparecast.service import create_app  # noqa: E402
from sparecast.store import ForecastStore, default_store_url  # noqa: E402
from sparecast.store.registry import (  # noqa: E402
    ModelRegistry,
    OpsExtraMissing,
    require_ops,
)

KEY = b"loop-test-key"
AUTH = {"X-API-Key": KEY.decode()}
NAIVE = 'methods = ["naive"]\n[router]\ndefault = "naive"\nfallback = "naive"\n'
ROUTER = 'methods = ["sba", "tsb", "ma"]\n'
# the served-pointer test is about what the API serves: the tier tests are relaxed there
RELAXED = "[pipeline]\ntolerance = 1.0\nbaseline_tolerance = 1.0\n"


def _demo(tmp_path_factory: pytest.TempPathFactory, methods: str) -> Path:
    out = tmp_path_factory.mktemp("loop") / "run"
    result = CliRunner().invoke(
        cli_app,
        ["demo", "--output", str(out), "--items", "30", "--days", "150"]
        + ["--methods", methods, "--quiet"],
    )
    assert result.exit_code == 0, result.output
    loop.ensure_champion(loop.loop_context(out))  # the MLflow schema, made once
    return out


@pytest.fixture(scope="module")
def good_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo served by a sound router (sba, tsb, ma), registered as champion."""
    return _demo(tmp_path_factory, "sba,tsb,ma")


@pytest.fixture(scope="module")
def sba_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo served by SBA alone: a champion the sba/tsb/ma router beats on this data."""
    return _demo(tmp_path_factory, "sba")


def _copy(src: Path, tmp_path: Path) -> Path:
    """A private copy of a demo directory whose run.json names the copy's own ERP."""
    target = tmp_path / "data"
    shutil.copytree(src, target)
    record = json.loads((target / "run.json").read_text())
    record["source"] = f"sqlite:///{target / 'erp.sqlite'}"
    (target / "run.json").write_text(json.dumps(record))
    return target


def _toml(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _served(data: Path) -> str | None:
    store = ForecastStore(default_store_url(data))
    try:
        run = store.served_run()
        return run.model_version if run else None
    finally:
        store.dispose()


def _registry_state(ctx: loop.LoopContext) -> tuple[list[tuple[str, str]], dict[str, str]]:
    registry = ctx.registry()
    versions = [(v.version, v.store_version) for v in registry.versions()]
    aliases = {}
    for alias in ("champion", "challenger"):
        v = registry.alias_version(alias)
        if v is not None:
            aliases[alias] = v.version
    return versions, aliases


def test_a_degraded_challenger_is_not_promoted(good_demo: Path, tmp_path: Path) -> None:
    data = _copy(good_demo, tmp_path)
    ctx = loop.loop_context(data, challenger_config=_toml(tmp_path, "naive.toml", NAIVE))
    champion = _served(data)
    reports = loop.run_weekly(ctx)
    assert [r.step for r in reports] == [
        "extract",
        "train",
        "evaluate",
        "promote",
        "refresh",
        "replan",
    ]
    assert reports[3].details["promoted"] is False
    # the champion's configuration on the same data is the champion itself: nothing to refresh
    assert reports[4].message.endswith("is up to date")
    assert reports[5].details["replanned"] is False  # the plan is on the champion already
    assert _served(data) == champion  # the API keeps serving the champion
    status = loop.models_status(ctx)
    assert status["aliases"]["champion"]["model_version"] == champion
    challenger = status["aliases"]["challenger"]["model_version"]
    assert challenger != champion
    assert status["registry_aliases"] == {"champion": "1", "challenger": "2"}
    decision = {v["version"]: v["tags"].get("sparecast.decision") for v in status["versions"]}
    assert decision["2"] == "rejected"
    keep = [e for e in loop.models_history(ctx) if e["action"] == "keep"]
    assert len(keep) == 1 and "keep the champion" in keep[0]["reason"]
    evaluation = (data / "models" / challenger / "evaluation.json").read_text()
    assert '"promote": false' in evaluation
    # the run is in MLflow with per-tier metrics and its artefacts
    registry = ctx.registry()
    metrics = registry.run_metrics(registry.by_store_version(challenger).run_id)  # type: ignore[union-attr]
    assert any(k.startswith("rmsse/tier/") for k in metrics)
    assert any(k.startswith("eval/rmsse/tier/") for k in metrics)
    # a rerun is idempotent: the same training is reused, no second decision recorded
    again = loop.run_weekly(ctx)
    assert again[1].details["reused"] is True and again[4].message.endswith("is up to date")
    assert len(ctx.registry().versions()) == 2 and _served(data) == champion
    assert len([e for e in loop.models_history(ctx) if e["action"] == "keep"]) == 1
    # a week later the champion's configuration is retrained on the newer data (a refresh)
    later = loop.loop_context(
        data, challenger_config=_toml(tmp_path, "naive.toml", NAIVE), as_of=date(2026, 11, 7)
    )
    _shift_demand(data, date(2026, 11, 1), 7, 1.0)
    week = loop.run_weekly(later)
    assert week[-2].step == "refresh" and week[-2].details["from"] == champion
    assert _served(data) == week[-2].details["to"] != champion
    # the plan follows the refreshed champion
    assert week[-1].details["replanned"] is True
    assert loop.planned_version(data) == week[-2].details["to"]
    assert [e["action"] for e in loop.models_history(ctx)][-1] == "refresh"


def test_decide_margin_tolerance_and_baseline_guard() -> None:
    def scores(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
        return pl.DataFrame(
            [(m, g, grp, 5, v, v, v, 0.0) for m, g, grp, v in rows],
            schema=["model", "grouping", "group", "n_items", "mae", "mase", "rmsse", "rel_bias"],
            orient="row",
        )

    base = [
        ("champion", "all", "all", 1.0),
        ("champion", "tier", "regular", 1.0),
        ("sba", "tier", "regular", 0.95),
        ("robust", "tier", "regular", 0.97),
    ]
    good = scores(
        [*base, ("challenger", "all", "all", 0.9), ("challenger", "tier", "regular", 0.9)]
    )
    assert loop.decide(good).promote
    small = scores(
        [*base, ("challenger", "all", "all", 0.995), ("challenger", "tier", "regular", 0.9)]
    )
    assert not loop.decide(small, margin=0.01).promote  # inside the margin
    worse_tier = scores(
        [*base, ("challenger", "all", "all", 0.8), ("challenger", "tier", "regular", 1.1)]
    )
    d = loop.decide(worse_tier, tolerance=0.05)
    assert not d.promote and any("tier regular" in r for r in d.reasons)
    guard = scores(
        [*base, ("challenger", "all", "all", 0.8), ("challenger", "tier", "regular", 0.99)]
    )
    d = loop.decide(guard, baseline_tolerance=0.02)
    assert not d.promote and any("baseline guard" in r and "sba" in r for r in d.reasons)
    assert loop.decide(guard, baseline_tolerance=0.1).promote


def test_promote_and_rollback_move_what_the_api_serves(sba_demo: Path, tmp_path: Path) -> None:
    data = _copy(sba_demo, tmp_path)
    first = _served(data)
    first_policy = pl.read_parquet(data / "policy.parquet")
    first_forecasts = pl.read_parquet(data / "forecasts.parquet")
    settings = Settings(
        service={"version_refresh_s": 0.2, "api_key_hashes": [hashlib.sha256(KEY).hexdigest()]}
    )
    with TestClient(create_app(settings, data)) as client:
        health = client.get("/health", headers=AUTH).json()
        assert health["model_version"] == first
        store = ForecastStore(default_store_url(data))
        item = store.known_items()[0]
        store.dispose()
        none = client.get(f"/forecast/item/{item}", params={"model": "challenger"})
        assert none.status_code == 404 and "no challenger" in none.text
        ctx = loop.loop_context(
            data,
            config=_toml(tmp_path, "loop.toml", RELAXED),
            challenger_config=_toml(tmp_path, "router.toml", ROUTER),
        )
        reports = loop.run_weekly(ctx)
        assert reports[-1].details["promoted"] is True, reports[-1].message
        promoted = loop.models_status(ctx)["aliases"]["champion"]["model_version"]
        assert promoted != first and _served(data) == promoted
        assert _wait_served(client, promoted)
        body = client.get(f"/forecast/item/{item}").json()
        assert body["model_version"] == promoted
        # the plan followed the promotion: the promoted model's forecasts, a new policy
        assert reports[-1].details["replan"].startswith("replan: the plan follows")
        assert loop.planned_version(data) == promoted
        assert pl.read_parquet(data / "forecasts.parquet").equals(
            pl.read_parquet(data / "models" / promoted / "forecasts.parquet")
        )
        assert not pl.read_parquet(data / "policy.parquet").equals(first_policy)
        assert not list(data.glob(".staging-*"))
        # a retrain into the loop's directory would not be served: refused, pointing to the loop
        refused = client.post("/retrain", headers=AUTH)
        assert refused.status_code == 409 and "pipeline run weekly" in refused.text
        # rollback restores the previous champion; the API follows without a restart
        done = loop.rollback(ctx, "test: a planner saw wrong forecasts")
        assert done.details["from"] == promoted and done.details["to"] == first
        assert _wait_served(client, first)
        assert client.get(f"/forecast/item/{item}").json()["model_version"] == first
        # the plan follows the rollback: the first run's forecasts and the same plan again
        assert loop.replan_if_planned(ctx).details["replanned"] is True
        assert loop.planned_version(data) == first
        assert pl.read_parquet(data / "forecasts.parquet").equals(first_forecasts)
        assert pl.read_parquet(data / "policy.parquet").equals(first_policy)
        assert loop.replan_if_planned(ctx).details["replanned"] is False  # idempotent
        # the challenger alias still names the rolled-back model: its shadow forecasts
        shadow = client.get(f"/forecast/item/{item}", params={"model": "challenger"})
        assert shadow.status_code == 200 and shadow.json()["model_version"] == promoted
    history = loop.models_history(ctx)
    assert [e["action"] for e in history] == ["bootstrap", "train", "promote", "rollback"]
    assert history[-1]["reason"].startswith("test: a planner saw wrong forecasts; back to the")
    assert history[-1]["reason"].endswith("its run on data up to 2026-10-31")  # nothing newer
    assert ctx.registry().alias_version("champion").version == "1"  # type: ignore[union-attr]
    with pytest.raises(SparecastError, match="no previous champion"):
        loop.rollback(ctx, "again")


def _wait_served(client: TestClient, version: str, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health", headers=AUTH).json()["model_version"] == version:
            return True
        time.sleep(0.1)
    return False


def test_a_crash_mid_training_leaves_champion_and_registry_unchanged(
    good_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _copy(good_demo, tmp_path)
    ctx = loop.loop_context(data, challenger_config=_toml(tmp_path, "naive.toml", NAIVE))
    served = _served(data)
    before = _registry_state(ctx)
    store = ForecastStore(default_store_url(data))
    runs_before = [r.run_id for r in store.runs()]
    aliases_before = {k: v.model_version for k, v in store.aliases().items()}

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed inside training")

    monkeypatch.setattr("sparecast.pipeline.steps.run_core", crash)  # inside the computation
    with pytest.raises(RuntimeError, match="killed inside training"):
        loop.run_weekly(ctx)
    assert _served(data) == served and _registry_state(ctx) == before
    assert [r.run_id for r in store.runs()] == runs_before
    assert {k: v.model_version for k, v in store.aliases().items()} == aliases_before
    monkeypatch.undo()

    # a crash after the store write, before the registry: the new run is not served
    def fail_registry(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed before registering")

    monkeypatch.setattr(ModelRegistry, "log_version", fail_registry)
    with pytest.raises(RuntimeError, match="killed before registering"):
        loop.train(ctx)
    assert _served(data) == served and _registry_state(ctx) == before
    assert {k: v.model_version for k, v in store.aliases().items()} == aliases_before
    assert not list((data / "models").glob(".tmp-*"))
    monkeypatch.undo()

    # the rerun continues: the challenger is trained, tested and kept out
    reports = loop.run_weekly(ctx)
    assert reports[1].details["reused"] is False and reports[3].details["promoted"] is False
    assert _served(data) == served
    assert len(ctx.registry().versions()) == len(before[0]) + 1
    store.dispose()


def test_cli_pipeline_run_and_models_status_history(good_demo: Path, tmp_path: Path) -> None:
    data = _copy(good_demo, tmp_path)
    naive = _toml(tmp_path, "naive.toml", NAIVE)
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["pipeline", "run", "weekly", "--data", str(data), "--challenger-config", str(naive)]
        + ["--as-of", "2026-10-31"],
    )
    assert result.exit_code == 0, result.output
    assert "promote: kept" in result.output
    status = runner.invoke(cli_app, ["models", "status", "--data", str(data)])
    assert status.exit_code == 0 and "champion:" in status.output and "rejected" in status.output
    history = runner.invoke(cli_app, ["models", "history", "--data", str(data), "--json"])
    assert history.exit_code == 0 and '"keep"' in history.output
    # a plain run or plan into the loop's directory would not be served: refused
    source = f"sqlite:///{data / 'erp.sqlite'}"
    for command in (["run"], ["plan"], ["demo", "--items", "30"]):
        args = [*command, "--output", str(data), "--quiet"]
        if command[0] != "demo":
            args += ["--source", source]
        refused = runner.invoke(cli_app, args)
        assert refused.exit_code == 2 and "managed by the production loop" in refused.output
    replan = runner.invoke(
        cli_app, ["plan", "--source", source, "--output", str(data), "--reuse-forecasts"]
    )
    assert replan.exit_code == 0, replan.output  # planning on the served forecasts is fine
    daily = runner.invoke(cli_app, ["pipeline", "run", "daily", "--data", str(data)])
    assert daily.exit_code == 0, daily.output
    assert "extract:" in daily.output
    bad = runner.invoke(cli_app, ["pipeline", "run", "hourly", "--data", str(data)])
    assert bad.exit_code != 0
    missing = runner.invoke(cli_app, ["models", "status", "--data", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "run.json" in missing.output


def test_a_missing_extra_names_the_install_command() -> None:
    with pytest.raises(OpsExtraMissing, match=r"pip install 'sparecast\[ops\]'"):
        require_ops("sparecast_no_such_module")


@pytest.mark.integration
def test_registry_on_postgresql(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from utils.servers import pg_server

    server = pg_server()  # skips (fails under CI=true) when PostgreSQL is unreachable
    name = f"sparecast_mlflow_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        artefact = tmp_path / "selection.json"
        artefact.write_text("{}")
        registry = ModelRegistry(url, artifact_location=(tmp_path / "art").as_uri())
        v1 = registry.log_version(
            store_version="0.1.0+aaaa.20261031.r1",
            params={"router.mode": "auto"},
            metrics={"rmsse/tier/regular": 0.8},
            artifacts=[artefact],
        )
        v2 = registry.log_version(
            store_version="0.1.0+bbbb.20261031.r2", params={}, metrics={}, artifacts=[]
        )
        registry.set_alias("champion", v1.version)
        registry.set_alias("challenger", v2.version)
        again = ModelRegistry(url)  # a second process reads the same registry
        assert again.alias_version("champion").store_version == "0.1.0+aaaa.20261031.r1"  # type: ignore[union-attr]
        assert [v.version for v in again.versions()] == ["1", "2"]
        assert again.run_metrics(v1.run_id)["rmsse/tier/regular"] == 0.8
        assert (tmp_path / "art").rglob("selection.json")
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _shift_demand(data: Path, start: date, days: int, quantity: float) -> None:
    """Append demand rows to the demo ERP: every item issues ``quantity`` a day from ``start``
    (a regime change the served forecasts did not expect)."""
    with sqlite3.connect(data / "erp.sqlite") as conn:
        items = [r[0] for r in conn.execute("SELECT DISTINCT item_id FROM items")]
        rows = [
            (item, (start + timedelta(days=d)).isoformat(), quantity)
            for item in items
            for d in range(days)
        ]
        conn.executemany("INSERT INTO demand (item_id, date, quantity) VALUES (?, ?, ?)", rows)


def test_a_degraded_champion_is_rolled_back_by_the_daily_flow(
    sba_demo: Path, tmp_path: Path
) -> None:
    data = _copy(sba_demo, tmp_path)
    first = _served(data)
    ctx = loop.loop_context(
        data,
        config=_toml(tmp_path, "loop.toml", RELAXED),
        challenger_config=_toml(tmp_path, "router.toml", ROUTER),
    )
    assert loop.run_weekly(ctx)[-1].details["promoted"] is True
    promoted = _served(data)
    assert promoted != first
    healthy = loop.run_daily(ctx)  # no actuals after the run yet: nothing to roll back
    assert [r.step for r in healthy] == ["extract", "actuals", "monitor"]
    _shift_demand(data, date(2026, 11, 1), 10, 40.0)
    later = loop.loop_context(
        data, config=_toml(tmp_path, "loop.toml", RELAXED), as_of=date(2026, 11, 10)
    )
    reports = loop.run_daily(later)
    assert [r.step for r in reports] == ["extract", "actuals", "monitor", "rollback", "replan"], [
        r.message for r in reports
    ]
    assert reports[2].details["degraded"] is True
    assert reports[4].details["replanned"] is True  # the plan follows the rolled-back champion
    # the previous champion configuration serves again, retrained on the newest data: not
    # its old run (``first``, trained before the promotion)
    back = _served(data)
    assert back not in (first, promoted)
    store = ForecastStore(default_store_url(data))
    runs = {v: store.run_by_version(v) for v in (first, promoted, back)}
    store.dispose()
    key = {v: loop.config_key(loop._settings_of(r, ctx.settings)) for v, r in runs.items() if r}
    assert key[back] == key[first] != key[promoted]
    plan_record = json.loads((data / "run.json").read_text())["plan"]
    assert plan_record["model_version"] == back
    assert runs[back].data_end == date(2026, 11, 10) > runs[first].data_end  # type: ignore[union-attr]
    last = loop.models_history(ctx)[-1]
    assert last["action"] == "rollback" and last["reason"].startswith("monitoring:")
    assert (
        f"that of {first}" in last["reason"]
        and "retrained on data up to 2026-11-10" in (last["reason"])
    )


def test_champion_stack_replays_promotions_refreshes_and_rollbacks() -> None:
    from datetime import UTC, datetime

    from sparecast.store.aliases import AliasEvent, champion_stack

    def ev(action: str, version: str, alias: str = "champion") -> AliasEvent:
        return AliasEvent(0, datetime.now(UTC), action, alias, version, None, "")

    events = [ev("bootstrap", "A1"), ev("refresh", "A2"), ev("train", "B1", "challenger")]
    events += [ev("promote", "B1"), ev("refresh", "B2")]
    assert champion_stack(events) == ["A2", "B2"]  # a refresh replaces, a promotion pushes
    assert champion_stack([*events, ev("rollback", "A2")]) == ["A2"]


SHADOW = RELAXED + "shadow_periods = 3\n"


def _actuals_like(data: Path, model_version: str, days: list[date]) -> None:
    """Append demand rows to the demo ERP: every item issues what ``model_version`` forecast
    for each of ``days`` (actuals that model forecast exactly)."""
    store = ForecastStore(default_store_url(data))
    try:
        run = store.run_by_version(model_version)
        assert run is not None
        frame = store.run_forecasts(run.run_id).filter(pl.col("ds").is_in(days))
    finally:
        store.dispose()
    rows = [
        (r["unique_id"], r["ds"].isoformat(), float(r["forecast"]))
        for r in frame.iter_rows(named=True)
        if r["forecast"] > 0
    ]
    with sqlite3.connect(data / "erp.sqlite") as conn:
        conn.executemany("INSERT INTO demand (item_id, date, quantity) VALUES (?, ?, ?)", rows)


def _shadow_start(sba_demo: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A copy of the SBA demo whose challenger (sba/tsb/ma) passed the backtest test and is
    held in shadow for 3 days: (directory, champion, challenger)."""
    data = _copy(sba_demo, tmp_path)
    first = _served(data)
    assert first is not None
    ctx = loop.loop_context(
        data,
        config=_toml(tmp_path, "loop.toml", SHADOW),
        challenger_config=_toml(tmp_path, "router.toml", ROUTER),
    )
    reports = loop.run_weekly(ctx)
    promote = next(r for r in reports if r.step == "promote")
    assert promote.details == {"promoted": False, "shadow": True}, promote.message
    challenger = loop.shadow_challenger(ctx)
    assert challenger is not None and challenger != first
    assert _served(data) == first  # the champion serves during the shadow
    assert loop.models_history(ctx)[-1]["action"] in ("shadow", "refresh")
    return data, first, challenger


def _week(
    data: Path, tmp_path: Path, as_of: date
) -> tuple[loop.LoopContext, list[loop.StepReport]]:
    ctx = loop.loop_context(
        data,
        config=_toml(tmp_path, "loop.toml", SHADOW),
        challenger_config=_toml(tmp_path, "router.toml", ROUTER),
        as_of=as_of,
    )
    return ctx, loop.run_weekly(ctx)


def test_shadow_promotes_a_better_challenger_only_after_n_periods(
    sba_demo: Path, tmp_path: Path
) -> None:
    data, first, challenger = _shadow_start(sba_demo, tmp_path)
    days = [date(2026, 11, 1) + timedelta(days=k) for k in range(3)]
    _actuals_like(data, challenger, days[:2])  # the challenger forecast these two days exactly
    ctx, reports = _week(data, tmp_path, date(2026, 11, 2))
    assert [r.step for r in reports] == ["extract", "actuals", "shadow", "refresh", "replan"]
    assert reports[2].details == {"pending": True, "periods": 2}, reports[2].message
    assert _served(data) == reports[3].details["to"] != challenger  # the champion, refreshed
    assert loop.shadow_challenger(ctx) == challenger
    # a challenger trained meanwhile does not take the slot of the one in shadow
    newer = loop.train(ctx)
    assert newer.model_version != challenger
    assert loop.models_status(ctx)["aliases"]["challenger"]["model_version"] == challenger
    _actuals_like(data, challenger, days[2:])
    ctx, reports = _week(data, tmp_path, date(2026, 11, 3))
    shadow = reports[2]
    assert shadow.details["promoted"] is True, shadow.message
    history = loop.models_history(ctx)
    promote = next(e for e in history if e["action"] == "promote")
    assert promote["model_version"] == challenger
    assert promote["reason"].startswith("shadow: promote; shadow over 3 period(s)")
    # the promoted configuration serves, retrained on the newest data; the plan follows it
    assert reports[3].details["from"] == challenger
    assert _served(data) == reports[3].details["to"] == loop.planned_version(data)
    record = json.loads((data / "models" / challenger / "shadow.json").read_text())
    assert record["periods"] == 3 and record["promote"] is True
    assert loop.shadow_challenger(ctx) is None


def test_shadow_keeps_the_champion_when_the_challenger_scores_worse(
    sba_demo: Path, tmp_path: Path
) -> None:
    data, first, challenger = _shadow_start(sba_demo, tmp_path)
    days = [date(2026, 11, 1) + timedelta(days=k) for k in range(3)]
    _actuals_like(data, first, days)  # the champion forecast these days exactly
    ctx, reports = _week(data, tmp_path, date(2026, 11, 3))
    assert reports[2].details["promoted"] is False, reports[2].message
    keep = loop.models_history(ctx)[-2]  # then the champion's refresh
    assert keep["action"] == "keep" and keep["model_version"] == challenger
    assert "does not beat the champion" in keep["reason"] and keep["reason"].startswith("shadow:")
    assert _served(data) == reports[3].details["to"]
    assert reports[3].details["from"] == first  # the champion's configuration, refreshed
    status = loop.models_status(ctx)
    decision = {v["store_version"]: v["tags"].get("sparecast.decision") for v in status["versions"]}
    assert decision[challenger] == "rejected"
    assert loop.shadow_challenger(ctx) is None


def test_evaluate_shares_what_both_configurations_compute(good_demo: Path, tmp_path: Path) -> None:
    import numpy as np

    data = _copy(good_demo, tmp_path)
    loaded, _ = loop.extract(loop.loop_context(data))
    panel = loaded.panel.slice_periods(loaded.panel.n_periods - 28)
    champion = Settings(methods=["sba", "tsb", "ma"])
    challenger = Settings(methods=["sba", "tsb", "ma", "ses", "imapa", "robust"])
    alone = loop._model_matrix(champion, panel, 28)
    shared = loop._SharedEngine(panel)
    first = loop._model_matrix(challenger, panel, 28, shared)
    after = loop._model_matrix(champion, panel, 28, shared)
    assert np.array_equal(after, alone, equal_nan=True)  # the same forecasts as alone
    assert not np.array_equal(first, alone, equal_nan=True)
    assert len(shared._backtests) == 1  # the champion's backtest was cut from the challenger's
    # a configuration with other parameters of a method is computed, not taken
    other = Settings(methods=["sba", "tsb"], method_params={"tsb": {"alpha_d": 0.3}})
    assert np.array_equal(
        loop._model_matrix(other, panel, 28, shared),
        loop._model_matrix(other, panel, 28),
        equal_nan=True,
    )
    assert len(shared._backtests) == 2
