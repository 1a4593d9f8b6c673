"""The Prefect 3 flows (sparecast.pipeline.flows) under Prefect's test harness (a real
temporary Prefect API): the weekly and daily flows run the loop's steps, a failing step is
retried and its failure hook runs, and the schedules carry the [pipeline] cron strings."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("prefect")
    pytest.importorskip("mlflow")

from sparecast.cli import app as cli_app  # noqa: E402
from sparecast.pipeline import loop  # noqa: E402

NAIVE = 'methods = ["naive"]\n[router]\ndefault = "naive"\nfallback = "naive"\n'


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's test harness (its own temporary database) with a writable PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("PREFECT_HOME", str(home))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    patch.undo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flows") / "run"
    result = CliRunner().invoke(
        cli_app,
        ["demo", "--output", str(out), "--items", "30", "--days", "150"]
        + ["--methods", "sba,tsb,ma", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    loop.ensure_champion(loop.loop_context(out))
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    """A private copy of the demo directory whose run.json names the copy's own ERP."""
    target = tmp_path / "data"
    shutil.copytree(src, target)
    record = json.loads((target / "run.json").read_text())
    record["source"] = f"sqlite:///{target / 'erp.sqlite'}"
    (target / "run.json").write_text(json.dumps(record))
    return target


def test_weekly_and_daily_flows_run_the_steps(harness: None, demo: Path, tmp_path: Path) -> None:
    from sparecast.pipeline import flows

    data = _copy(demo, tmp_path)
    naive = tmp_path / "naive.toml"
    naive.write_text(NAIVE)
    lines = flows.weekly(data_dir=str(data), challenger_config=str(naive))
    assert lines[0].startswith("extract:") and lines[1].startswith("train: challenger")
    assert lines[-3].startswith("promote: kept") and lines[-2].startswith("refresh: ")
    assert lines[-1].startswith("replan: the plan is on the champion")
    daily = flows.daily(data_dir=str(data))
    assert daily[0].startswith("extract:") and daily[1].startswith("actuals:")
    assert daily[2].startswith("monitor: ok")
    assert daily[3].startswith("overrides: no overridden forecast period")  # the FVA line


def test_a_failing_step_is_retried_and_its_hook_runs(
    harness: None, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparecast.pipeline import flows

    data = _copy(demo, tmp_path)
    config = tmp_path / "loop.toml"
    config.write_text("[pipeline]\nretries = 1\nretry_delay_s = 0\n")
    calls: list[int] = []

    def broken_train(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise RuntimeError("the training crashed")

    monkeypatch.setattr(loop, "train", broken_train)
    ctx = loop.loop_context(data)
    before = loop.models_status(ctx)
    with pytest.raises(RuntimeError, match="the training crashed"):
        flows.weekly(data_dir=str(data), config=str(config))
    assert len(calls) == 2  # the first try and one retry
    assert flows.failed_steps[-1] == "train"
    assert loop.models_status(ctx) == before  # registry and served model as they were


def test_deployments_carry_the_cron_strings(harness: None, demo: Path, tmp_path: Path) -> None:
    from sparecast.pipeline import flows

    config = tmp_path / "loop.toml"
    config.write_text('[pipeline]\ndaily_cron = "15 4 * * *"\nweekly_cron = "0 3 * * 0"\n')
    ctx = loop.loop_context(demo, config=config)
    daily, weekly = flows.deployments(demo, ctx.settings, config=config)
    assert daily.schedules[0].schedule.cron == "15 4 * * *"
    assert weekly.schedules[0].schedule.cron == "0 3 * * 0"
    assert weekly.parameters["data_dir"] == str(demo.resolve())
