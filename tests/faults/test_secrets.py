"""Secrets never leak: ``run``, ``plan`` and a retrain with URLs carrying secrets (as
user:password@ and as ?password= / &token= / &secret= query parameters, and
``service.retrain_source`` set to such a URL through the environment); the secrets must appear
in no output file (binary-safe, SQLite included), no store row (SQLite and PostgreSQL), no
console line and no HTTP answer."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from utils.servers import PG_SERVER_URL, cli_env, pg_server, served

from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import write_tables
from sparecast.urls import redact_text, redact_values

from .conftest import API_KEY_HASH, AUTH, METHODS, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration]

USER_PW = "Usr?Pw5ecretX1"  # a "?" in the password: SQLAlchemy takes it unencoded
QUERY_PW = "QryPw5ecretX2"
TOKEN = "Tok5ecretX3"
SECRET = "Sec5ecretX4"
RETRAIN_PW = "RtPw5ecretX5"
SECRETS = (USER_PW, QUERY_PW, TOKEN, SECRET, RETRAIN_PW)


@pytest.fixture(scope="module")
def pg_dbs() -> Iterator[tuple[str, str]]:
    """Two scratch PostgreSQL databases (trust auth: any password is accepted): an ERP with the
    small demo tables and an empty forecast store."""
    server = pg_server()
    names = [f"sparecast_sec_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("erp", "store")]
    with server.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    tables = generate_demo_erp(n_items=60, n_days=120, seed=1, end_date=date(2026, 10, 31))
    write_tables(tables, f"{PG_SERVER_URL}/{names[0]}")
    try:
        yield names[0], names[1]
    finally:
        with server.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _with_secrets(url: str) -> str:
    """``url`` (postgresql+psycopg://postgres@host:port/db) with a password and ?password=."""
    head, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{head}://{user}:{USER_PW}@{host}?password={QUERY_PW}"


def _assert_no_secret(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret} found in {where}"


def _search_dir(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            _assert_no_secret(str(path), path.read_bytes())


def _search_database(url: str) -> None:
    """Every row of every table of the database, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    _assert_no_secret(f"{url.rsplit('/', 1)[-1]}.{table}", repr(tuple(row)))
    finally:
        engine.dispose()


def test_one_redaction_covers_texts_and_settings() -> None:
    url = f"postgresql://app:{USER_PW}@db/fc?password={QUERY_PW}&token={TOKEN}&secret={SECRET}"
    text = redact_text(f"cannot connect to {url}: refused")
    assert text == (
        "cannot connect to postgresql://app:***@db/fc?password=***&token=***&secret=***: refused"
    )
    settings = {"service": {"retrain_source": url, "port": 1}, "methods": ["sba"]}
    redacted = redact_values(settings)
    _assert_no_secret("redacted settings", json.dumps(redacted))
    assert redacted["service"]["port"] == 1 and redacted["methods"] == ["sba"]
    assert redact_text("no url here: a/b.csv") == "no url here: a/b.csv"


def test_run_and_plan_with_secret_urls_leak_nothing(
    pg_dbs: tuple[str, str], small_erp: Path, tmp_path: Path
) -> None:
    erp_db, store_db = pg_dbs
    erp_url = _with_secrets(f"{PG_SERVER_URL}/{erp_db}")
    store_url = _with_secrets(f"{PG_SERVER_URL}/{store_db}")
    env = cli_env(SPARECAST_STORE__URL=store_url)
    ran = run_cli("run", "-s", erp_url, "-o", str(tmp_path / "run"), "-m", METHODS, env=env)
    assert ran.returncode == 0, ran.stderr
    sqlite_url = f"sqlite:///{small_erp}?token={TOKEN}&secret={SECRET}&password={QUERY_PW}"
    planned = run_cli("plan", "-s", sqlite_url, "-o", str(tmp_path / "plan"), "-m", METHODS)
    assert planned.returncode == 0, planned.stderr
    # a failure names the source too: its message is redacted
    failed = run_cli(
        "run", "-s", erp_url.replace(erp_db, "no_such_db"), "-o", str(tmp_path / "x"), env=env
    )
    assert failed.returncode == 2
    for done in (ran, planned, failed):
        _assert_no_secret("the CLI's output", done.stdout + done.stderr)
    _search_dir(tmp_path)
    _search_database(f"{PG_SERVER_URL}/{store_db}")
    run = json.loads((tmp_path / "plan" / "run.json").read_text())
    assert "token=***" in run["source"]


def test_a_retrain_with_a_secret_source_leaks_nothing(small_erp: Path, tmp_path: Path) -> None:
    out = tmp_path / "served"
    planned = run_cli("plan", "-s", str(small_erp), "-o", str(out), "-m", METHODS, "-q")
    assert planned.returncode == 0, planned.stderr
    source = f"sqlite:///{small_erp}?password={RETRAIN_PW}&token={TOKEN}&secret={SECRET}"
    env = {
        "SPARECAST_SERVICE__API_KEY_HASHES": json.dumps([API_KEY_HASH]),
        "SPARECAST_SERVICE__RETRAIN_SOURCE": source,
        "SPARECAST_METHODS": json.dumps(METHODS.split(",")),
    }
    answers: list[str] = []
    with served(out, env=env, capture=True) as app:
        base = app.base
        started = httpx.post(f"{base}/retrain", headers=AUTH, timeout=10)
        assert started.status_code == 202, started.text
        answers.append(started.text)
        job = started.json()["job_id"]
        deadline = time.monotonic() + 90
        while True:
            state = httpx.get(f"{base}/jobs/{job}", timeout=5)
            answers.append(state.text)
            if state.json()["state"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert state.json()["state"] == "succeeded", state.text
        assert state.json()["command"] == "plan"
        answers.append(httpx.get(f"{base}/health", timeout=5).text)
        answers.append(httpx.get(f"{base}/health", headers=AUTH, timeout=5).text)
    logs = app.output
    for answer in answers:
        _assert_no_secret("an HTTP answer", answer)
    _assert_no_secret("the server's log", logs)
    _search_dir(out)  # run.json, the store history.sqlite, the job records, the report
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["service"]["retrain_source"].endswith("secret=***")
    assert (out / "policy.parquet").is_file()
