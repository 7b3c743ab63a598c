"""The OpenAI catalogue comes from the installed SDK (openai 3.54 here): this test pins what it
says, so an SDK upgrade that adds or retires a model fails here and gets looked at."""

from __future__ import annotations

import pytest

from igny8.providers import DEFAULT_MODELS, MODELS, RETIRED_MODELS, retired_model_message
from igny8.providers.catalog import backgrounds, deprecated_values, openai_catalogue, qualities_for
from tests.support.writer import SETTINGS


def test_openai_choices_are_the_sdks_current_gpt_image_models():
    assert MODELS["openai"] == (
        "gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-sunburst",
        "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-flare", "gpt-image-2.5-flare-2026-09-08",
        "gpt-image-2.6-sunburst", "gpt-image-2.6-flare", "gpt-image-1-mini", "chatgpt-image-latest")
    assert "gpt-image-2.5" not in MODELS["openai"], "no such model"
    assert sorted(RETIRED_MODELS) == ["dall-e-2", "dall-e-3", "gpt-image-1"]
    assert "October 23, 2026" in RETIRED_MODELS["gpt-image-1"] and "gpt-image-2.5-sunburst" in RETIRED_MODELS[
        "gpt-image-1"]
    assert DEFAULT_MODELS["openai"] in MODELS["openai"]


def test_qualities_and_backgrounds_come_from_the_sdk():
    catalogue = openai_catalogue()
    assert catalogue["qualities"] == ("low", "medium", "high", "xhigh", "max", "auto"), "standard/hd are DALL·E's"
    assert "`gpt-image-2.5-sunburst` and `gpt-image-2.5-flare`" in catalogue["quality_doc"]
    assert "also support `xhigh` and `max`" in catalogue["quality_doc"]
    assert qualities_for("gpt-image-2") == ("low", "medium", "high", "auto")
    assert qualities_for("gpt-image-2.5-flare-2026-09-08") == ("low", "medium", "high", "xhigh", "max", "auto")
    assert backgrounds() == ("transparent", "opaque", "auto")


def test_deprecation_notes_are_read_entry_by_entry():
    doc = 'Text.\n\nDeprecated values:\n\n- "a": A is gone. Use\n  b instead.\n- "c", "d": Both retired.\n'
    assert deprecated_values(doc) == {"a": "A is gone. Use b instead.", "c": "Both retired.", "d": "Both retired."}
    assert deprecated_values("No note.") == {}


@pytest.mark.parametrize("model", ["gpt-image-1.5", "gpt-image-1-mini", "gpt-image-2.6-flare", "chatgpt-image-latest"])
def test_supported_models_are_accepted(client, acme, model):
    response = client.put(SETTINGS, json={"provider": "openai", "model": model}, headers=acme["headers"])
    assert response.status_code == 200 and response.json["config"]["model"] == model


def test_retired_and_invented_models_are_refused_clearly(client, acme):
    for model in ("gpt-image-1", "dall-e-3"):
        response = client.put(SETTINGS, json={"provider": "openai", "model": model}, headers=acme["headers"])
        assert response.status_code == 400 and response.json["errors"]["model"] == retired_model_message(model)
    invented = client.put(SETTINGS, json={"provider": "openai", "model": "gpt-image-2.5"}, headers=acme["headers"])
    assert invented.status_code == 400 and "not a model of openai" in invented.json["errors"]["model"]


def test_quality_and_background_settings(client, acme):
    config = client.get(SETTINGS, headers=acme["headers"]).json["config"]
    assert config["quality"] == "medium" and config["background"] == "auto"
    ok = client.put(SETTINGS, json={"provider": "openai", "model": "gpt-image-2.5-sunburst", "quality": "max",
                                    "background": "transparent"}, headers=acme["headers"])
    assert ok.status_code == 200 and ok.json["config"]["quality"] == "max"
    refused = client.put(SETTINGS, json={"model": "gpt-image-2"}, headers=acme["headers"])
    assert refused.status_code == 400 and "gpt-image-2 supports the qualities" in refused.json["errors"]["quality"]
    for body in ({"quality": "hd"}, {"quality": 3}, {"background": "green"}):
        assert client.put(SETTINGS, json=body, headers=acme["headers"]).status_code == 400, body


def test_runware_models_are_air_ids_with_igny8s_own_suggested(client, acme):
    assert {"runware:97@1", "bria:10@1", "google:4@2"} <= set(MODELS["runware"])
    ok = client.put(SETTINGS, json={"provider": "runware", "model": "civitai:4384@130072"}, headers=acme["headers"])
    assert ok.status_code == 200
    for model in ("runware-100", "runware:abc@1", "RUNWARE:1@1 ", ""):
        bad = client.put(SETTINGS, json={"provider": "runware", "model": model}, headers=acme["headers"])
        assert bad.status_code == 400 and "model" in bad.json["errors"], model


def test_the_openai_request_carries_quality_and_background(writer, fake_openai, start_worker):
    writer.save_api_key("openai", "sk-test-0123456789")
    writer.configure(provider="openai", model="gpt-image-2", quality="high", background="opaque",
                     max_in_article_images=0, partial_images=0)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=0)
    body = writer.finished(writer.generate(content))
    assert body["result"]["outcome"] == "generated"
    assert fake_openai.calls[0]["quality"] == "high" and fake_openai.calls[0]["background"] == "opaque"
    assert body["result"]["cost"] == pytest.approx(0.25), "a featured 1536x1024 image at high (spend/prices.py)"
