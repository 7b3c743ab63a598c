"""Running behind a reverse proxy (the site file is deploy/nginx/igny8.conf).

The proxy sets X-Forwarded-For/-Proto/-Host/-Port, replacing whatever the client sent; the app
believes them only when ``TRUSTED_PROXY_HOPS`` says how many proxies stand in front of it
(Werkzeug's ProxyFix), so the login rate limit sees the real client address and ``is_secure``
the real scheme. Local media files are handed to the proxy with X-Accel-Redirect once the view
has checked the login and the account (``MEDIA_ACCEL_PREFIX``): the bytes never pass through Python.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response, current_app
from werkzeug.middleware.proxy_fix import ProxyFix


def register_proxy(app: Flask) -> None:
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def accel_redirect(key: str) -> Response | None:
    """The answer that lets the proxy send the local media file ``key`` (already checked), or
    None when no proxy location is configured (the app sends the file itself)."""
    prefix = current_app.config.get("MEDIA_ACCEL_PREFIX") or ""
    if not prefix:
        return None
    response = current_app.response_class(status=200)
    response.headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(key)
    del response.headers["Content-Type"]  # the proxy's type for the file, not the app's text/html
    return response
