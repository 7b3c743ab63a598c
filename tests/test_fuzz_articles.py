"""The article, image and version endpoints against the OpenAPI document with real rows: the
fuzzer (``test_fuzz_api.py``) only ever sends ids that do not exist, so the success answers about
a real article, image and its versions are checked here, in order."""

from __future__ import annotations

import pytest

from tests.support.writer import finished
from tests.test_fuzz_api import CONTENT, IMAGES, SETTINGS, schema


@pytest.fixture
def article(client, acme) -> dict:  # noqa: ANN001
    body = {"title": "Article 1", "featured_prompt": "A cat", "in_article_prompts": ["One", "Two", "Three"]}
    created = client.post(CONTENT, json=body, headers=acme["headers"])
    assert created.status_code == 201
    return created.json


def test_article_and_image_responses_match_the_document(client, acme, article, worker):
    """Fuzzed ids never exist; these are the answers about a real article, image and versions."""
    h, content = acme["headers"], article
    one, image_url = f"{CONTENT}{{content_id}}/", f"{IMAGES}{{image_id}}/"
    versions = f"{IMAGES}{{image_id}}/versions/{{version_id}}"

    def check(method: str, template: str, status: int, body: object = None, **ids: int) -> dict:
        response = client.open(template.format(**ids), method=method, json=body, headers=h)
        assert response.status_code == status, response.get_data(as_text=True)
        schema[template][method].validate_response(response)
        return response.json

    client.put(SETTINGS, json={"provider": "local", "model": "placeholder"}, headers=h)
    check("GET", one, 200, content_id=content["id"])
    check("PATCH", one, 200, {"title": "Renamed"}, content_id=content["id"])
    added = check("POST", one + "images/", 201, {"prompt": "Crumb"}, content_id=content["id"])
    check("PATCH", image_url, 200, {"alt_text": "Crumb", "caption": "Open crumb"}, image_id=added["id"])
    featured = content["images"][0]["id"]
    check("DELETE", image_url, 409, image_id=featured)
    for _ in range(2):
        task = check("POST", image_url + "regenerate", 202, image_id=featured)
        assert finished(client, acme, task["task_id"])["meta"]["completed"] == 1
    old, new = check("GET", image_url, 200, image_id=featured)["versions"]
    check("DELETE", versions, 409, image_id=featured, version_id=new["id"])
    check("POST", versions + "/activate", 200, image_id=featured, version_id=old["id"])
    check("DELETE", versions, 200, image_id=featured, version_id=new["id"])
    assert "<figure>" in check("GET", one + "html", 200, content_id=content["id"])["html"]
    check("DELETE", image_url, 200, image_id=added["id"])
    check("DELETE", one, 200, content_id=content["id"])
