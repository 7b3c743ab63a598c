"""The login cookie (igny8/accounts/sessions.py): one signing serializer per secret key, and a
changed key (a rotation) takes effect at once — old cookies are refused unless the old key is
listed in SECRET_KEY_FALLBACKS."""

from __future__ import annotations


def test_a_login_holds_and_the_serializer_is_made_once(app, writer):
    assert writer.login().status_code == 302
    assert writer.client.get("/writer/images").status_code == 200
    interface = app.session_interface
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)


def test_a_new_secret_key_refuses_old_cookies_unless_the_old_key_is_a_fallback(app, writer):
    writer.login()
    old = app.secret_key
    app.secret_key = "rotated-" + old
    assert writer.client.get("/writer/images").status_code == 302  # to the login page
    writer.login()
    app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = "rotated-twice-" + old, ["rotated-" + old]
    assert writer.client.get("/writer/images").status_code == 200
