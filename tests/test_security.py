"""The usual defences: security headers and CSP, session cookie flags, login rate limit on Redis,
password hashing."""

from __future__ import annotations

from igny8.accounts.auth import find_user_by_email
from igny8.extensions import db
from tests.support.accounts import PASSWORD


def test_pages_and_api_carry_a_strict_csp_and_security_headers(client, acme):
    for path in ("/login", "/healthz", "/api/v1/writer/content/"):
        response = client.get(path, headers=acme["headers"] if path.startswith("/api") else {})
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(client, acme, auth):
    auth.login(acme)
    for path in ("/writer/images", "/writer/content/new", "/settings/integrations", "/settings/api-token"):
        html = client.get(path).get_data(as_text=True)
        assert " style=" not in html, path
        assert all("src=" in tag.split(">")[0] for tag in html.split("<script")[1:]), f"inline script on {path}"


def test_session_cookie_is_http_only_and_same_site(auth, acme):
    response = auth.login(acme["email"])
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secure_cookie_flag_follows_configuration(app_config):
    from igny8 import create_app

    app = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_login_is_rate_limited_per_email_on_redis(client, auth, acme, redis):
    auth.login("nobody@example.test", "warm-up")  # fetches a CSRF token
    wrong = {"email": acme["email"], "password": "not the password", "csrf_token": auth.csrf}
    codes = [client.post("/login", data=wrong).status_code for _ in range(10)]
    assert codes == [401] * 10
    limited = client.post("/login", data=wrong)
    assert limited.status_code == 429 and "Too many login attempts" in limited.get_data(as_text=True)
    # even the right password waits: the guesser must not learn that it was right
    right = client.post("/login", data=dict(wrong, password=PASSWORD))
    assert right.status_code == 429
    assert any("LIMIT" in key.upper() for key in redis.keys("*")), "the counters live in Redis"
    # another email from the same address is not blocked by this one; the form always shows
    assert client.post("/login", data=dict(wrong, email="someone@example.test")).status_code == 401
    assert client.get("/login").status_code == 200


def test_passwords_are_hashed_with_scrypt(app, acme):
    with app.app_context():
        user = find_user_by_email(acme["email"])
        assert user.password_hash.startswith("scrypt:") and "correct horse battery" not in user.password_hash
        db.session.remove()
