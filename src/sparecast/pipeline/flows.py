"""Prefect 3 flows of the production loop: ``daily`` (incremental extraction, monitoring,
rollback on degradation) and ``weekly`` (train a challenger, evaluate it and the champion on
the same windows, promote or keep). Each step is a task with retries (``[pipeline] retries``,
``retry_delay_s``) and a failure hook that logs the step and its error; the steps are the plain
functions of ``pipeline/loop.py``, which the CLI calls directly without Prefect.

``serve_schedules`` serves both flows on the cron strings of ``[pipeline]`` (``prefect serve``);
Prefect needs a writable ``PREFECT_HOME``. Prefect is the ``[ops]`` extra.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from sparecast.pipeline import loop
from sparecast.pipeline.loop import LoopContext, LoopError, StepReport

__all__ = ["daily", "weekly", "deployments", "serve_schedules", "failed_steps"]

log = logging.getLogger("sparecast.pipeline")

failed_steps: list[str] = []
"""Names of the steps whose failure hook ran in this process (newest last)."""


def _on_failure(tsk: Any, task_run: Any, state: Any) -> None:
    """Failure hook of every step: log which step failed and why (after its last retry)."""
    failed_steps.append(tsk.name)
    log.error("pipeline step %s failed: %s", tsk.name, state.message)


def _step(fn: Any, name: str, ctx: LoopContext) -> Any:
    return task(
        fn,
        name=name,
        retries=ctx.settings.pipeline.retries,
        retry_delay_seconds=ctx.settings.pipeline.retry_delay_s,
        on_failure=[_on_failure],
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def _context(
    data_dir: str, as_of: str | None, config: str | None, challenger_config: str | None
) -> LoopContext:
    return loop.loop_context(
        Path(data_dir),
        config=Path(config) if config else None,
        as_of=date.fromisoformat(as_of) if as_of else None,
        challenger_config=Path(challenger_config) if challenger_config else None,
    )


@flow(name="sparecast-daily", log_prints=False)
def daily(
    data_dir: str,
    as_of: str | None = None,
    config: str | None = None,
    challenger_config: str | None = None,
) -> list[str]:
    """Extract (incremental), monitor the champion, roll back on degradation."""
    ctx = _context(data_dir, as_of, config, challenger_config)
    loaded, rep = _step(loop.extract, "extract", ctx)(ctx)
    lines = [rep.message]
    _step(loop.ensure_champion, "champion", ctx)(ctx)
    lines.append(_step(loop.record_observed, "actuals", ctx)(ctx, loaded).message)
    result = _step(loop.monitor_step, "monitor", ctx)(ctx)
    lines.append(f"monitor: {'degraded' if result.degraded else 'ok'}: {result.reason}")
    lines.append(result.override_fva_text())
    if result.degraded:
        try:
            done: StepReport = _step(loop.rollback, "rollback", ctx)(
                ctx, f"monitoring: {result.reason}", loaded
            )
        except LoopError as exc:
            lines.append(f"rollback: not possible ({exc})")
        else:  # a failed re-plan is its own error, not a rollback that could not happen
            lines.append(done.message)
            lines.append(_step(loop.replan_if_planned, "replan", ctx)(ctx).message)
    return lines


@flow(name="sparecast-weekly", log_prints=False)
def weekly(
    data_dir: str,
    as_of: str | None = None,
    config: str | None = None,
    challenger_config: str | None = None,
) -> list[str]:
    """Extract, train a challenger, evaluate it against the champion, promote it (or hold it
    in shadow) or keep (and refresh) the champion; a challenger of the champion's own
    configuration is a refresh; while a challenger is in shadow, score and decide it instead;
    the directory's plan follows the champion (``loop.run_weekly``)."""
    ctx = _context(data_dir, as_of, config, challenger_config)
    loaded, rep = _step(loop.extract, "extract", ctx)(ctx)
    lines = [rep.message]
    replan = _step(loop.replan_if_planned, "replan", ctx)
    if ctx.settings.pipeline.shadow_periods > 0 and loop.shadow_challenger(ctx) is not None:
        # the challenger in shadow keeps its slot until decided (loop.run_weekly)
        lines.append(_step(loop.record_observed, "actuals", ctx)(ctx, loaded).message)
        lines.append(_step(loop.shadow_step, "shadow", ctx)(ctx).message)
        lines.append(_step(loop.refresh, "refresh", ctx)(ctx, loaded).message)
        return [*lines, replan(ctx).message]
    trained = _step(loop.train, "train", ctx)(ctx, loaded)
    lines.append(
        f"train: challenger {trained.model_version}" + (" (reused)" if trained.reused else "")
    )
    if loop.same_model(ctx):  # the champion's own configuration on newer data
        lines.append(_step(loop.refresh, "refresh", ctx)(ctx, loaded, trained).message)
        return [*lines, replan(ctx).message]
    evaluation = _step(loop.evaluate, "evaluate", ctx)(ctx, loaded)
    if evaluation is None:
        return [*lines, "evaluate: the challenger is the champion"]
    lines.append(f"evaluate: {evaluation.decision.reasons[0]}")
    done = _step(loop.promote, "promote", ctx)(ctx, evaluation)
    lines.append(done.message)
    if not done.details.get("promoted", False):
        lines.append(_step(loop.refresh, "refresh", ctx)(ctx, loaded).message)
        lines.append(replan(ctx).message)
    return lines


def deployments(data_dir: Path, settings: Any, *, config: Path | None = None) -> list[Any]:
    """The two flows as Prefect deployments on the cron strings of ``[pipeline]``."""
    from prefect.schedules import Cron

    p = settings.pipeline
    params = {"data_dir": str(data_dir.resolve()), "config": str(config) if config else None}
    return [
        daily.to_deployment(
            name=f"sparecast-daily-{data_dir.resolve().name}",
            schedules=[Cron(p.daily_cron, timezone=p.timezone)],
            parameters=params,
        ),
        weekly.to_deployment(
            name=f"sparecast-weekly-{data_dir.resolve().name}",
            schedules=[Cron(p.weekly_cron, timezone=p.timezone)],
            parameters=params,
        ),
    ]


def serve_schedules(data_dir: Path, settings: Any, *, config: Path | None = None) -> None:
    """Serve both flows on their schedules until interrupted (``prefect.serve``)."""
    from prefect import serve

    serve(*deployments(data_dir, settings, config=config))
