"""``sparecast overrides set | list | delete | history | fva`` on a store with hand-made runs:
the commands, their errors, and the forecast value added computed by hand."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner
from utils.runs import make_meta

from sparecast.cli import app
from sparecast.store import ForecastStore, default_store_url

runner = CliRunner()
F0 = date(2027, 1, 1)  # first forecast date, after today: overrides set now apply to it
H = 4
LATER = (date.today() + timedelta(days=400)).isoformat()


def _forecasts(start: date) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": [i for i in ("i0", "i1", "i2") for _ in range(H)],
            "ds": [start + timedelta(k) for k in range(H)] * 3,
            "forecast": [1.0] * (3 * H),
            "method": ["sba"] * (3 * H),
        }
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    store = ForecastStore(default_store_url(tmp_path))
    store.migrate()
    store.write_run(make_meta(H, 3, data_end=F0 - timedelta(1)), _forecasts(F0))
    store.dispose()
    return tmp_path


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["overrides", *args])
    return result.exit_code, result.output


def test_set_list_delete_history(data: Path) -> None:
    d = ["--data", str(data)]
    code, out = _invoke("set", "i0", *d, "--multiplier", "1.2", "--by", "alice")
    assert code == 2 and "--reason" in out  # required option
    code, out = _invoke(
        "set", "i0", *d, "--multiplier", "1.2", "--by", "alice", "--reason", "recall"
    )
    assert code == 2 and "--expires" in out
    base = ["--by", "alice", "--reason", "recall", "--expires", LATER]
    code, out = _invoke("set", "i0", *d, "--multiplier", "1.2", *base)
    assert code == 0, out
    assert "override of i0 set (x1.2) by alice" in out
    code, out = _invoke("set", "i1", *d, "--reorder-point", "3", "--order-up-to", "9", *base)
    assert code == 0 and "ROP 3, up to 9" in out
    code, out = _invoke("set", "i2", *d, "--do-not-order", "--phase-out", "2027-06-01", *base)
    assert code == 0 and "do not order, phase out 2027-06-01" in out
    code, out = _invoke("set", "nope", *d, "--do-not-order", *base)
    assert code == 2 and "unknown item 'nope'" in out
    code, out = _invoke("set", "i0", *d, "--multiplier", "-1", *base)
    assert code == 2 and "must be > 0" in out
    code, out = _invoke("set", "i1", *d, "--reorder-point", "9", "--order-up-to", "3", *base)
    assert code == 2 and "must be <= the order-up-to level" in out
    past = ["--by", "a", "--reason", "r", "--expires", date.today().isoformat()]
    code, out = _invoke("set", "i0", *d, "--level", "2", *past)
    assert code == 2 and "not in the future" in out
    code, out = _invoke("set", "i0", *d, "--level", "2", "--by", "a", "--reason", "r")
    assert code == 2
    code, out = _invoke("set", "i0", *d, "--level", "2", *base[:4], "--expires", "soon")
    assert code == 2 and "is not a date" in out

    code, out = _invoke("list", *d, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [o["item_id"] for o in listed] == ["i0", "i1", "i2"]
    assert listed[1]["kinds"] == ["reorder_point", "order_up_to"]
    code, out = _invoke("list", *d)
    assert code == 0 and "i2" in out and "alice" in out

    code, out = _invoke("delete", "i1", *d, "--by", "bob", "--reason", "back to normal")
    assert code == 0 and "deleted by bob" in out
    code, out = _invoke("delete", "i1", *d, "--by", "bob")
    assert code == 2 and "has no override to delete" in out
    code, out = _invoke("history", "i1", *d, "--json")
    events = json.loads(out)
    assert [(e["action"], e["recorded_by"]) for e in events] == [
        ("set", "alice"),
        ("deleted", "bob"),
    ]
    code, out = _invoke("history", *d)
    assert code == 0 and "deleted" in out and "i2" in out

    code, out = _invoke("list", "--data", str(data / "empty"))
    assert code == 2 and "no forecast store in" in out


def test_fva_report_from_the_store(data: Path) -> None:
    d = ["--data", str(data)]
    base = ["--by", "alice", "--reason", "campaign", "--expires", LATER]
    code, out = _invoke("fva", *d)
    assert code == 0 and "no overridden forecast has known actuals yet" in out
    assert _invoke("set", "i0", *d, "--multiplier", "2", *base)[0] == 0
    assert _invoke("set", "i1", *d, "--level", "5", *base)[0] == 0
    assert _invoke("set", "i2", *d, "--do-not-order", *base)[0] == 0  # no forecast change
    # a later run stores the actual demand: 6 days before F0 (for the RMSSE scale) and F0..F0+3
    days = [F0 + timedelta(k) for k in range(-6, H)]
    actuals = pl.DataFrame(
        {
            "unique_id": [i for i in ("i0", "i1", "i2") for _ in days],
            "ds": days * 3,
            # i0: 0, 2, 0, 2... before (scale 4), then 2: the x2 override is exact
            # i1: 1 throughout (scale 0: no RMSSE), level 5 is 4 off, the model 0 off
            "y": [0.0, 2.0] * 3 + [2.0] * H + [1.0] * len(days) + [0.0] * len(days),
        }
    )
    store = ForecastStore(default_store_url(data))
    later = F0 + timedelta(H)
    store.write_run(
        make_meta(H, 3, data_end=later - timedelta(1)), _forecasts(later), actuals=actuals
    )
    store.dispose()
    code, out = _invoke("fva", *d, "--json")
    assert code == 0, out
    report = json.loads(out)
    items = {r["unique_id"]: r for r in report["items"]}
    assert set(items) == {"i0", "i1"}
    assert (items["i0"]["mae_model"], items["i0"]["mae_override"]) == (1.0, 0.0)
    assert items["i0"]["rmsse_model"] == pytest.approx(0.5) and items["i0"]["helped"] is True
    assert (items["i1"]["mae_model"], items["i1"]["mae_override"]) == (0.0, 4.0)
    assert items["i1"]["rmsse_model"] is None and items["i1"]["helped"] is False
    s = report["summary"]
    assert (s["n_items"], s["n_periods"]) == (2, 2 * H)
    assert s["mae_fva"] == pytest.approx(0.5 - 2.0)
    assert s["share_helped"] == 0.5 and s["share_hurt"] == 0.5
    code, out = _invoke("fva", *d, "--run", "1")
    assert code == 0 and "helped 50%, hurt 50%" in out
