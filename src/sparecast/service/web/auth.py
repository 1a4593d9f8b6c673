"""Sign-in for the web app: password hashes (stdlib scrypt), signed session cookies and CSRF
tokens (stdlib HMAC), no extra dependency.

A session cookie is ``base64(json{"u": user, "exp": unix time}).hmac``; a CSRF token is the
HMAC of the browser's random ``sparecast_csrf`` cookie, so every form (the sign-in form too)
carries a token an attacker's page cannot read or forge.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from sparecast.config import ServiceSettings, WebSettings

__all__ = [
    "SESSION_COOKIE",
    "CSRF_COOKIE",
    "hash_password",
    "verify_password",
    "Signer",
    "check_credentials",
]

SESSION_COOKIE = "sparecast_session"
CSRF_COOKIE = "sparecast_csrf"

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` (hex salt and hash; for ``[web] users``)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``scrypt$...`` hash ``stored`` (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_credentials(user: str, password: str, web: WebSettings, service: ServiceSettings) -> bool:
    """Whether ``user``/``password`` may sign in: a configured user with that password, or any
    user name with one of the API keys (``service.api_key_hashes``) as password."""
    stored = web.users.get(user)
    if stored is not None and verify_password(password, stored):
        return True
    if not user or not password or not service.api_key_hashes:
        return False
    digest = hashlib.sha256(password.encode()).hexdigest().encode()
    found = False
    for expected in service.api_key_hashes:
        found |= hmac.compare_digest(digest, expected.encode())
    return found


class Signer:
    """Signs and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str | None, max_age_s: int) -> None:
        self.key = (secret or secrets.token_hex(32)).encode()
        self.max_age_s = max_age_s

    def _mac(self, data: bytes) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def session(self, user: str, now: float | None = None) -> str:
        """A session cookie value for ``user``, valid ``max_age_s`` seconds."""
        exp = int((now if now is not None else time.time()) + self.max_age_s)
        body = base64.urlsafe_b64encode(json.dumps({"u": user, "exp": exp}).encode()).decode()
        return f"{body}.{self._mac(body.encode())}"

    def user_of(self, cookie: str | None, now: float | None = None) -> str | None:
        """The signed-in user of a session cookie value (None: absent, forged or expired)."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
            user, exp = str(data["u"]), int(data["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if exp < (now if now is not None else time.time()):
            return None
        return user

    def csrf_token(self, csrf_cookie: str) -> str:
        """The form token that goes with the browser's CSRF cookie."""
        return self._mac(b"csrf:" + csrf_cookie.encode())

    def csrf_ok(self, csrf_cookie: str | None, token: str | None) -> bool:
        """Whether a form's ``token`` matches the browser's CSRF cookie."""
        if not csrf_cookie or not token:
            return False
        return hmac.compare_digest(self.csrf_token(csrf_cookie), token)
