"""Property-based test of the whole API from its OpenAPI schema (schemathesis): no generated
request, valid or not, gets a 5xx. Examples per operation are bounded so it runs in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.schemas  # noqa: F401  (imported before the app's threads start)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from sparecast.config import Settings
from sparecast.service import create_app

from .conftest import AUTH, service_settings, write_policy

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 150
# operations with typed inputs that can be invalid (a free string path can not)
WITH_INPUT = {
    "GET /forecast/item/{item_id}",
    "POST /forecast/items",
    "PUT /items/{item_id}/override",
    "DELETE /items/{item_id}/override",
}


def test_no_generated_request_gets_a_server_error(data_dir: Path) -> None:
    write_policy(data_dir, ["P000001", "P000002"])
    (data_dir / "inventory_report.html").write_text("<h1>report</h1>")
    # no retraining source: POST /retrain answers 409 instead of starting pipeline processes
    (data_dir / "run.json").write_text("{}")
    app = create_app(Settings(**service_settings(max_batch_items=50)), data_dir)
    with TestClient(app):  # lifespan: store and cache open
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        labels = sorted(op.label for op in operations)
        assert labels == sorted(
            [
                "GET /forecast/item/{item_id}",
                "POST /forecast/items",
                "GET /items/{item_id}/policy",
                "GET /items/{item_id}/override",
                "PUT /items/{item_id}/override",
                "DELETE /items/{item_id}/override",
                "GET /reports/inventory",
                "GET /health",
                "POST /retrain",
                "GET /jobs/{job_id}",
                "GET /metrics",
            ]
        )
        statuses: dict[str, set[int]] = {}
        runs: list[tuple[schemathesis.APIOperation, dict[str, Any]]] = []
        for operation in operations:
            runs.append((operation, {}))
            if operation.label in WITH_INPUT:  # invalid inputs (nothing to break elsewhere)
                runs.append((operation, {"generation_mode": schemathesis.GenerationMode.NEGATIVE}))
            if "{item_id}" in operation.path:  # a known item: the query reaches the store
                runs.append((operation, {"path_parameters": {"item_id": "P000001"}}))
        for operation, options in runs:

            @given(case=operation.as_strategy(**options))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case: schemathesis.Case) -> None:
                response = case.call(headers=AUTH)
                statuses.setdefault(case.operation.label, set()).add(response.status_code)
                case.validate_response(response, checks=[not_a_server_error])

            check()
        # the generated requests reached the handlers, not only the validation layer
        assert {200, 404, 422} <= statuses["GET /forecast/item/{item_id}"]
        assert {200, 404} <= statuses["GET /items/{item_id}/policy"]
        assert statuses["POST /forecast/items"] & {200, 404, 422}
        assert 409 in statuses["POST /retrain"]
