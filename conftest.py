"""Root pytest hooks. Under CI=true a skipped integration test is a failure: CI must prove the
code against the real MariaDB/PostgreSQL/Redis, not skip it."""

from __future__ import annotations

import os

import pytest

_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() == "true" and _skipped_integration:
        print(
            "\nCI=true but integration tests were skipped (servers unreachable?):\n  "
            + "\n  ".join(_skipped_integration)
        )
        session.exitstatus = 1
