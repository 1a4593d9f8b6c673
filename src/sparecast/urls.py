"""URL helpers shared by every layer: hiding secrets before a URL is written or shown.

One home for the redaction, so that run.json, log lines, error messages and the API all hide
the same things the same way.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_QUERY_KEYS", "redact_url", "redact_text", "redact_values"]

SECRET_QUERY_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "secret_key",
    "private_key",
)
"""Query parameters whose value ``redact_url`` hides; a key matches when it ends with one of
these, case-insensitive (``password``, ``PWD``, ``client_secret``, ``access_token``,
``API_KEY``)."""

_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;][\w.\-]*(?:" + "|".join(SECRET_QUERY_KEYS) + r")=)(?P<value>[^&;#]*)",
    re.IGNORECASE,
)
# user:password@: the user has no ":", "/", "@", "?" or "#"; the password may hold any of them
# (SQLAlchemy accepts "?", "#", "/" and ":" unencoded, and an unencoded "@" is a user's typo
# that must not leak either), so it runs to the last "@": a secret is never shown, at worst
# more than the password is hidden
_CREDENTIALS = re.compile(r"^(?P<user>[^:/@?#]*):(?P<password>.*)@")


def redact_url(url: str) -> str:
    """``url`` with its secrets replaced by ``***`` (for run.json, logs and messages).

    Hides the password of ``scheme://user:password@host`` (the user stays:
    ``postgresql://app:***@db/fc``; ``redis://:pw@h`` gives ``redis://:***@h``; a password
    with ``?`` or ``/`` in it, which SQLAlchemy accepts, is hidden whole) and the values of
    secret query parameters (``SECRET_QUERY_KEYS``). Anything that is not a URL (a file path)
    comes back unchanged.
    """
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds = _CREDENTIALS.match(rest)
    if creds:
        rest = f"{creds['user']}:***@" + rest[creds.end() :]
    head, sep, query = rest.partition("?")
    if sep:
        query = _SECRET_QUERY.sub(lambda m: f"{m['key']}***", sep + query)[1:]
    return f"{scheme}://{head}{sep}{query}"


_URL_IN_TEXT = re.compile(r"[A-Za-z][\w+.\-]*://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it passed through
    ``redact_url``."""

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        core = url.rstrip(".,:;)]")  # punctuation after the URL is the sentence's
        return redact_url(core) + url[len(core) :]

    return _URL_IN_TEXT.sub(one, text)


def redact_values(value: Any) -> Any:
    """A copy of ``value`` (nested dicts, lists, strings) with every URL-valued string redacted:
    the settings as written to run.json and the store (``service.retrain_source``,
    ``store.url``, ``store.cache_url``, any URL-valued setting)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v) for v in value]
    return value
