"""Login, logout, API tokens and CSRF."""

from __future__ import annotations

import pytest

from tests.support.accounts import csrf_token_from


def test_login_page_renders_with_csrf(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert csrf_token_from(response.get_data(as_text=True))


def test_pages_require_login(client):
    response = client.get("/writer/images")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/api/v1/writer/content/", "/api/v1/writer/images/",
                                  "/api/v1/system/integrations/image_generation/"])
def test_api_requires_authentication(client, path):
    response = client.get(path)
    assert response.status_code == 401 and response.json["success"] is False


def test_login_and_logout(client, auth, acme):
    response = auth.login(acme["email"])
    assert response.status_code == 302
    assert client.get("/writer/images").status_code == 200
    client.post("/logout", data={"csrf_token": auth.csrf})
    assert client.get("/writer/images").status_code == 302


def test_wrong_password_is_refused(client, auth, acme):
    response = auth.login(acme["email"], "wrong password")
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, acme):
    response = client.post("/login", data={"email": acme["email"], "password": "x"})
    assert response.status_code == 400


def test_cookie_authenticated_api_write_needs_csrf_header(client, auth, acme):
    auth.login(acme["email"])
    url = "/api/v1/system/integrations/image_generation/"
    refused = client.put(url, json={"max_in_article_images": 3})
    assert refused.status_code == 400 and "CSRF" in refused.json["error"]
    accepted = client.put(url, json={"max_in_article_images": 3}, headers=auth.headers)
    assert accepted.status_code == 200


def test_bearer_token_needs_no_csrf(client, acme):
    response = client.put("/api/v1/system/integrations/image_generation/", json={"max_in_article_images": 1},
                          headers=acme["headers"])
    assert response.status_code == 200


def test_invalid_bearer_token_is_401(client, acme):
    response = client.get("/api/v1/writer/content/", headers={"Authorization": "Bearer igny8_nope"})
    assert response.status_code == 401 and "token" in response.json["error"]


def test_api_token_is_shown_once_then_only_its_hint(client, auth, acme):
    auth.login(acme["email"])
    page = client.post("/settings/api-token", data={"csrf_token": auth.csrf}).get_data(as_text=True)
    token = page.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("igny8_")
    assert client.get("/api/v1/writer/content/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    again = client.get("/settings/api-token").get_data(as_text=True)
    assert token not in again and token[-4:] in again
    assert client.get("/api/v1/writer/content/", headers=acme["headers"]).status_code == 401, "old token replaced"


def test_revoked_token_stops_working(client, auth, acme):
    auth.login(acme["email"])
    client.post("/settings/api-token/revoke", data={"csrf_token": auth.csrf})
    assert client.get("/api/v1/writer/content/", headers=acme["headers"]).status_code == 401


def test_next_parameter_cannot_leave_the_site(client, acme):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    form = {"email": acme["email"], "password": "correct horse battery", "csrf_token": token}
    response = client.post("/login?next=//evil.example/x", data=form)
    assert response.headers["Location"] == "/writer/images"
