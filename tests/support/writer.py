"""A writer of one account, as the tests act one: ``Writer`` (in the style of flaskr's
``AuthActions``) logs in, writes articles, sets the generation settings, clicks Generate, waits for
the task and reads its progress and the article's images, at the Flask test client::

    writer.login()
    content = writer.article(in_article=2)
    task = writer.generate(content)
    assert writer.finished(task)["state"] == "SUCCESS"

The API calls carry the account's Bearer token (``who["headers"]``), so they work with or without
a login; ``login`` is for pages and forms. The plain functions (``article(client, who)`` …) are the
same steps for a test that holds a client and an account dict.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.accounts import PASSWORD, AuthActions
from tests.support.waiting import wait_for

SETTINGS = "/api/v1/system/integrations/image_generation/"
GENERATE = "/api/v1/writer/images/generate_images/"
CONTENT = "/api/v1/writer/content/"


def article(client, who, in_article: int = 4, title: str = "Sourdough at home") -> dict:  # noqa: ANN001
    body = {"title": title, "featured_prompt": "A loaf on a board",
            "in_article_prompts": [f"Step {i}" for i in range(1, in_article + 1)]}
    response = client.post(CONTENT, json=body, headers=who["headers"])
    assert response.status_code == 201
    return response.json


def configure(client, who, **config) -> None:  # noqa: ANN001
    response = client.put(SETTINGS, json=config, headers=who["headers"])
    assert response.status_code == 200, response.json


def progress(client, who, task_id: str) -> dict:  # noqa: ANN001
    response = client.get(f"/api/v1/system/settings/task_progress/{task_id}/", headers=who["headers"])
    assert response.status_code == 200
    return response.json


def finished(client, who, task_id: str, timeout: float = 60) -> dict:  # noqa: ANN001
    return wait_for(lambda: (body := progress(client, who, task_id))["state"] in ("SUCCESS", "FAILURE") and body,
                    timeout=timeout, message=f"task {task_id} to finish")


def images(client, who, content_id: int) -> list[dict]:  # noqa: ANN001
    return client.get(f"/api/v1/writer/images/?content_id={content_id}", headers=who["headers"]).json["images"]


def _content_id(content: dict | int) -> int:
    return content["id"] if isinstance(content, dict) else content


class Writer:
    """One account's writer at the test client: ``who`` is an account from ``Accounts.create``."""

    def __init__(self, client: FlaskClient, who: dict) -> None:
        self.client, self.who = client, who
        self.auth = AuthActions(client)

    @property
    def email(self) -> str:
        return self.who["email"]

    @property
    def headers(self) -> dict[str, str]:
        """The Bearer header of the account's API token."""
        return self.who["headers"]

    @property
    def csrf(self) -> str:
        """The CSRF token of the last page read after ``login`` (for forms)."""
        return self.auth.csrf

    # ---------------------------------------------------------------- session

    def login(self, password: str = PASSWORD):  # noqa: ANN201
        """Log in through the form (CSRF token and all); the login's response (302 when it worked)."""
        return self.auth.login(self.email, password)

    def logout(self):  # noqa: ANN201
        return self.client.post("/logout", data={"csrf_token": self.csrf})

    # ---------------------------------------------------------------- settings and articles

    def save_api_key(self, integration: str, api_key: str):  # noqa: ANN201
        """Save the account's key for ``integration`` (``openai``, ``runware``); the response."""
        response = self.client.put(f"/api/v1/system/integrations/{integration}/", json={"api_key": api_key},
                                   headers=self.headers)
        assert response.status_code == 200, response.json
        return response

    def configure(self, **config) -> None:  # noqa: ANN003
        """Set the generation settings (``provider=``, ``model=``, ``max_in_article_images=`` …)."""
        configure(self.client, self.who, **config)

    def article(self, in_article: int = 4, title: str = "Sourdough at home") -> dict:
        """An article with a featured prompt and ``in_article`` in-article prompts ("Step 1" …)."""
        return article(self.client, self.who, in_article=in_article, title=title)

    def write(self, title: str, featured_prompt: str | None = None, in_article_prompts: list[str] | None = None,
              **fields) -> dict:  # noqa: ANN003
        """An article with exactly these prompts (say, one carrying a ``[provider-fail:…]`` trigger)."""
        body = {"title": title, **fields}
        if featured_prompt is not None:
            body["featured_prompt"] = featured_prompt
        if in_article_prompts is not None:
            body["in_article_prompts"] = in_article_prompts
        response = self.client.post(CONTENT, json=body, headers=self.headers)
        assert response.status_code == 201, response.json
        return response.json

    # ---------------------------------------------------------------- generating

    def click_generate(self, content: dict | int | None = None, *, ids: list[int] | None = None,
                       body: object = None):  # noqa: ANN201
        """POST the Generate request, for an article (its dict or id), chosen image ``ids``, or a raw
        ``body``; the response as it came (202 queued, 409 nothing to generate, 400/404 …)."""
        if body is None:
            body = {"ids": ids} if ids is not None else {"content_id": _content_id(content)}
        return self.client.post(GENERATE, json=body, headers=self.headers)

    def generate(self, content: dict | int | None = None, *, ids: list[int] | None = None) -> str:
        """Click Generate and expect a batch (202): its task id."""
        response = self.click_generate(content, ids=ids)
        assert response.status_code == 202, response.json
        return response.json["task_id"]

    def cancel(self, task_id: str):  # noqa: ANN201
        return self.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=self.headers)

    # ---------------------------------------------------------------- reading

    def progress(self, task_id: str) -> dict:
        """The task's progress body (``state``, ``meta``, ``result``)."""
        return progress(self.client, self.who, task_id)

    def finished(self, task_id: str, timeout: float = 60) -> dict:
        """Wait until the task is SUCCESS or FAILURE; its progress body then."""
        return finished(self.client, self.who, task_id, timeout=timeout)

    def images(self, content: dict | int) -> list[dict]:
        """The article's image rows, in order (featured first)."""
        return images(self.client, self.who, _content_id(content))
