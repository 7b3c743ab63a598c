"""Per-account settings that shape provider calls: ``partial_images`` (validated, shown in
Settings, used by the runner) and the ``safety_identifier`` OpenAI receives for each account."""

from __future__ import annotations

import pytest

from igny8.integrations.settings import safety_identifier
from tests.support.accounts import csrf_token_from
from tests.support.writer import SETTINGS

OPENAI_KEY = "sk-test-0123456789"


@pytest.mark.parametrize("value", [-1, 4, "2", True, 1.5, None])
def test_bad_partial_images_answer_400_for_that_field(client, acme, value):
    response = client.put(SETTINGS, json={"partial_images": value}, headers=acme["headers"])
    assert response.status_code == 400 and set(response.json["errors"]) == {"partial_images"}


@pytest.mark.parametrize("value", [0, 1, 2, 3])
def test_partial_images_from_0_to_3_are_saved(client, acme, value):
    assert client.get(SETTINGS, headers=acme["headers"]).json["config"]["partial_images"] == 1, "the default"
    response = client.put(SETTINGS, json={"partial_images": value}, headers=acme["headers"])
    assert response.status_code == 200 and response.json["config"]["partial_images"] == value


def test_the_settings_page_shows_and_saves_partial_images(client, auth, acme):
    auth.login(acme["email"])
    page = client.get("/settings/integrations")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="partial_images"' in html and 'max="3"' in html
    form = {"csrf_token": csrf_token_from(html), "provider": "openai", "model": "gpt-image-2",
            "image_type": "realistic", "image_format": "webp", "max_in_article_images": "2", "concurrency": "1",
            "partial_images": "9", "desktop_enabled": "on", "mobile_enabled": "on"}
    refused = client.post("/settings/integrations/image_generation", data=form)
    assert refused.status_code == 400 and "from 0 to 3" in refused.get_data(as_text=True)
    saved = client.post("/settings/integrations/image_generation", data={**form, "partial_images": "0"})
    assert saved.status_code == 302
    assert client.get(SETTINGS, headers=acme["headers"]).json["config"]["partial_images"] == 0


def test_safety_identifier_is_a_stable_keyed_hash(app, acme, globex):
    with app.app_context():
        first, again, other = (safety_identifier(acme["account_id"]), safety_identifier(acme["account_id"]),
                               safety_identifier(globex["account_id"]))
        app.config["SECRET_KEY"] = "another-secret"
        rekeyed = safety_identifier(acme["account_id"])
    assert first == again and first != other and first != rekeyed
    assert len(first) == 32 and int(first, 16) >= 0


def test_the_runner_sends_each_accounts_identifier_and_partial_images(writer_for, acme, globex, fake_openai,
                                                                     start_worker, app):
    """Two accounts' batches through a real worker: every call of one account carries the same
    identifier, the accounts differ, neither reveals the id or e-mail; each call asks for the
    account's own number of previews (0 means no stream at all)."""
    for who, partials in ((acme, 3), (globex, 0)):
        writer_for(who).save_api_key("openai", OPENAI_KEY)
        writer_for(who).configure(provider="openai", max_in_article_images=1, partial_images=partials)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    for writer in map(writer_for, (acme, globex)):
        content = writer.article(in_article=1, title=f"Bread of {writer.email}")
        assert writer.finished(writer.generate(content))["meta"]["completed"] == 2
    calls = fake_openai.calls
    assert len(calls) == 4
    mine, theirs = calls[:2], calls[2:]
    assert all(call["stream"] is True and call["partial_images"] == 3 for call in mine)
    assert all("stream" not in call and "partial_images" not in call for call in theirs)
    identifiers = {call["safety_identifier"] for call in mine}, {call["safety_identifier"] for call in theirs}
    assert len(identifiers[0]) == 1 and len(identifiers[1]) == 1 and identifiers[0] != identifiers[1]
    with app.app_context():
        assert identifiers[0] == {safety_identifier(acme["account_id"])}
    for who, (identifier,) in zip((acme, globex), identifiers, strict=True):
        assert who["email"] not in identifier and who["email"].split("@")[0] not in identifier
        assert identifier != str(who["account_id"]) and "@" not in identifier and "account" not in identifier
