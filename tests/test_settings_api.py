"""Image generation settings and provider credentials over the JSON API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from igny8.extensions import db
from igny8.models import IntegrationSettings

URL = "/api/v1/system/integrations/image_generation/"


def test_image_generation_defaults_are_filled_in(client, acme):
    response = client.get(URL, headers=acme["headers"])
    assert response.status_code == 200
    assert response.json == {"success": True, "config": {
        "provider": "openai", "model": "gpt-image-2", "image_type": "realistic", "max_in_article_images": 2,
        "image_format": "webp", "desktop_enabled": True, "mobile_enabled": True, "concurrency": 1,
        "quality": "medium", "background": "auto", "partial_images": 1, "monthly_budget": None}}


def test_put_updates_only_the_given_fields(client, acme):
    response = client.put(URL, json={"max_in_article_images": 4, "image_format": "png"}, headers=acme["headers"])
    assert response.status_code == 200
    config = client.get(URL, headers=acme["headers"]).json["config"]
    assert config["max_in_article_images"] == 4 and config["image_format"] == "png"
    assert config["provider"] == "openai"


def test_changing_provider_picks_its_default_model(client, acme):
    response = client.put(URL, json={"provider": "runware"}, headers=acme["headers"])
    assert response.json["config"]["model"] == "runware:100@1"


@pytest.mark.parametrize("body, field", [
    ({"provider": "midjourney"}, "provider"),
    ({"model": "dall-e-3"}, "model"),
    ({"model": "runware:100@1"}, "model"),
    ({"max_in_article_images": -1}, "max_in_article_images"),
    ({"max_in_article_images": "3"}, "max_in_article_images"),
    ({"max_in_article_images": True}, "max_in_article_images"),
    ({"image_format": "gif"}, "image_format"),
    ({"desktop_enabled": "yes"}, "desktop_enabled"),
    ({"concurrency": 99}, "concurrency"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_values_answer_400_with_per_field_errors(client, acme, app, body, field):
    response = client.put(URL, json=body, headers=acme["headers"])
    assert response.status_code == 400
    assert response.json["success"] is False
    assert field in response.json["errors"]
    with app.app_context():
        assert db.session.scalar(select(IntegrationSettings)) is None, "nothing written"


def test_retired_model_message_names_the_replacement(client, acme):
    response = client.put(URL, json={"model": "dall-e-3"}, headers=acme["headers"])
    assert "gpt-image-2" in response.json["errors"]["model"]


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{"])
def test_malformed_body_is_refused(client, acme, body):
    response = client.put(URL, data=body, content_type="application/json", headers=acme["headers"])
    assert response.status_code == 400
    assert response.json["error"]


def test_credentials_are_never_returned_and_encrypted_at_rest(client, acme, app):
    key = "sk-test-SECRET-1234567890abcd"
    response = client.put("/api/v1/system/integrations/openai/", json={"api_key": key, "model": "gpt-image-2"},
                          headers=acme["headers"])
    assert response.status_code == 200
    assert response.json == {"success": True, "configured": True, "key_hint": "••••abcd", "model": "gpt-image-2"}
    got = client.get("/api/v1/system/integrations/openai/", headers=acme["headers"])
    assert key not in got.get_data(as_text=True) and got.json["configured"] is True
    with app.app_context():
        row = db.session.scalar(select(IntegrationSettings).filter_by(integration_type="openai"))
        assert key not in row.api_key_encrypted and "SECRET" not in row.api_key_encrypted
        from igny8.integrations.settings import provider_api_key

        assert provider_api_key(acme["account_id"], "openai") == key


def test_credentials_key_can_be_removed(client, acme):
    client.put("/api/v1/system/integrations/runware/", json={"api_key": "rw-key-12345678"}, headers=acme["headers"])
    response = client.put("/api/v1/system/integrations/runware/", json={"api_key": ""}, headers=acme["headers"])
    assert response.json["configured"] is False and response.json["key_hint"] is None


@pytest.mark.parametrize("body", [{"api_key": "short"}, {"api_key": "has space in it"}, {"api_key": 12345678},
                                  {"model": "gpt-image-2"}, {"secret": "x"}])
def test_bad_credentials_answer_400(client, acme, body):
    response = client.put("/api/v1/system/integrations/runware/", json=body, headers=acme["headers"])
    assert response.status_code == 400 and response.json["errors"]


def test_unknown_integration_is_404(client, acme):
    assert client.get("/api/v1/system/integrations/stability/", headers=acme["headers"]).status_code == 404
