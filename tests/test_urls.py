"""redact_url: every secret form is hidden, everything else is kept as written."""

from __future__ import annotations

import pytest

from sparecast.urls import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # user:password@ -> user:***@ (the user stays)
        ("postgresql+psycopg://u:p@h:5432/d", "postgresql+psycopg://u:***@h:5432/d"),
        ("mysql+pymysql://root:secret@127.0.0.1:1/x", "mysql+pymysql://root:***@127.0.0.1:1/x"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("mysql+pymysql://erp:p@ss@db:3306/erp", "mysql+pymysql://erp:***@db:3306/erp"),
        # a password with "?", "/", "#" or ":" in it (SQLAlchemy takes them unencoded)
        ("postgresql://pg:ab?cd5ecret@h:5432/db", "postgresql://pg:***@h:5432/db"),
        ("mysql://u:pa/ss#w:x@h/db?password=q", "mysql://u:***@h/db?password=***"),
        # more secret query keys (ODBC's PWD, apikey, access_key)
        (
            "mssql+pyodbc://h/db?driver=d&PWD=s&apikey=k",
            "mssql+pyodbc://h/db?driver=d&PWD=***&apikey=***",
        ),
        ("https://h/p?aws_access_key=k&region=eu", "https://h/p?aws_access_key=***&region=eu"),
        # secret query parameters, case-insensitive, first or later, other parameters kept
        ("postgresql://h/d?password=pw", "postgresql://h/d?password=***"),
        ("mysql://h/d?charset=utf8&passwd=pw", "mysql://h/d?charset=utf8&passwd=***"),
        ("https://h/p?client_secret=s&x=1", "https://h/p?client_secret=***&x=1"),
        ("https://h/p?access_token=t#frag", "https://h/p?access_token=***#frag"),
        ("https://h/p?API_KEY=k;token=t", "https://h/p?API_KEY=***;token=***"),
        (
            "postgresql://u:p@h/d?sslmode=require&secret=s",
            "postgresql://u:***@h/d?sslmode=require&secret=***",
        ),
        # nothing secret: unchanged
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
        ("sqlite:////tmp/a:b@c.sqlite", "sqlite:////tmp/a:b@c.sqlite"),
        (
            "postgresql://h/d?sslmode=require&tokens_used=3x",
            "postgresql://h/d?sslmode=require&tokens_used=3x",
        ),
        ("/data/erp.sqlite", "/data/erp.sqlite"),
        ("demand.csv", "demand.csv"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_store_and_cache_urls() -> None:
    assert redact_url("postgresql+psycopg://u:p@h:5432/d") == "postgresql+psycopg://u:***@h:5432/d"
    assert redact_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"
