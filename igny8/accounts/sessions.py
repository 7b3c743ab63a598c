"""The login cookie: Flask's signed-cookie session, with its signing serializer made once per
secret key instead of on every request (Flask builds a new one for each request that opens the
session: ~5 % of opening an event stream, py-spy at 2,000 openings)."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CookieSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._made: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        made = self._made
        if made is None or made[0] != keys:  # a new key (tests, a rotation) makes a new one
            made = self._made = (keys, super().get_signing_serializer(app))
        return made[1]
