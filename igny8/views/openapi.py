"""The OpenAPI 3.1 document of the JSON API, served at ``/api/v1/openapi.json``.

It is built from the same constants the validators use (lengths, choices, models), so the limits
it states are the limits the server enforces; ``tests/test_fuzz_api.py`` fuzzes the API against it.
"""

from __future__ import annotations

from typing import Any

from ..content.articles import CONTENT_STATUSES, MAX_HTML, MAX_IN_ARTICLE_PROMPTS, MAX_PROMPT, MAX_TITLE
from ..integrations.settings import IMAGE_FORMATS, MAX_CONCURRENCY, MAX_IN_ARTICLE_LIMIT, MAX_PARTIAL_IMAGES
from ..integrations.settings import IMAGE_TYPES as STYLES
from ..models import IMAGE_STATUSES, IMAGE_TYPES, MAX_DB_ID, TASK_STATES
from ..progress.schema import ItemStatus, Outcome
from ..providers import MODELS, PROVIDERS
from ..providers.catalog import backgrounds, openai_catalogue
from ..tasks.requests import MAX_IDS
from .openapi_articles import article_paths, article_request_schemas, article_schemas, image_fields, path_id
from .openapi_parts import (
    AIR_ID,
    API,
    TASK_ID,
    error,
    json_body,
    json_response,
    nullable,
    obj,
    ok,
    operation,
    path_task_id,
    ref,
    text,
)
from .openapi_runs import run_paths, run_schemas
from .openapi_spend import MONTHLY_BUDGET, generate_responses, spend_paths, spend_schemas
from .openapi_webhooks import webhook_paths, webhook_schemas

# ---------------------------------------------------------------- components

def schemas() -> dict[str, Any]:
    int_id = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
    url = nullable({"type": "string"})
    return {
        "Error": obj({"success": {"const": False}, "error": {"type": "string"},
                      "errors": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "One message per invalid field."}},
                     required=("success", "error")),
        "ImageGenerationConfig": obj({
            "provider": {"enum": list(PROVIDERS)},
            "model": {"type": "string"},
            "image_type": {"enum": list(STYLES)},
            "max_in_article_images": {"type": "integer", "minimum": 0, "maximum": MAX_IN_ARTICLE_LIMIT},
            "image_format": {"enum": list(IMAGE_FORMATS)},
            "desktop_enabled": {"type": "boolean"},
            "mobile_enabled": {"type": "boolean"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
            "quality": {"enum": list(openai_catalogue()["qualities"])},
            "background": {"enum": list(backgrounds())},
            "partial_images": {"type": "integer", "minimum": 0, "maximum": MAX_PARTIAL_IMAGES},
            "monthly_budget": MONTHLY_BUDGET,
        }),
        "Credentials": ok({"configured": {"type": "boolean"},
                           "key_hint": nullable({"type": "string", "maxLength": 8}),
                           "model": {"type": "string"}}),
        "Image": obj({
            "id": int_id, "content_id": int_id, "type": {"enum": list(IMAGE_TYPES)},
            "position": {"type": "integer", "minimum": 0}, "prompt": {"type": "string"},
            "status": {"enum": list(IMAGE_STATUSES)}, "image_url": url, "mobile_url": url,
            "error": nullable({"type": "string"}), "provider": nullable({"type": "string"}),
            "model": nullable({"type": "string"}), "placeholder": {"type": "boolean"},
            "attempts": {"type": "integer", "minimum": 0}, "cost": {"type": "number", "minimum": 0},
            "width": nullable({"type": "integer"}), "height": nullable({"type": "integer"}),
            "format": nullable({"type": "string"}), **image_fields(),
        }),
        "Article": obj({"id": int_id, "title": {"type": "string"}, "status": {"enum": list(CONTENT_STATUSES)},
                        "images": {"type": "array", "items": ref("Image")}}),
        "ImageQueueItem": obj({
            "image_id": int_id, "index": {"type": "integer", "minimum": 1}, "label": {"type": "string"},
            "type": {"enum": list(IMAGE_TYPES)}, "position": {"type": "integer", "minimum": 0},
            "content_title": {"type": "string"},
            "status": {"enum": list(ItemStatus)},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "image_url": url, "error": nullable({"type": "string"}),
        }, extra=True, description="Also carries display hints (phase, thumb_url, placeholder, timestamps)."),
        "GenerateAnswer": ok({
            "task_id": {"type": "string", "pattern": TASK_ID}, "existing": {"type": "boolean"},
            "queue": {"type": "array", "items": ref("ImageQueueItem")},
            "note": nullable({"type": "string", "description": "Why images were left out (the cap)"})}),
        "ImageResult": obj({"image_id": int_id, "status": {"enum": list(ItemStatus)},
                            "image_url": url,
                            "error": nullable({"type": "string"})}),
        "TaskProgress": obj({
            "task_id": {"type": "string"},
            "state": {"enum": list(TASK_STATES)},
            "meta": obj({
                "current_image": {"type": "integer", "minimum": 0},
                "total_images": {"type": "integer", "minimum": 0},
                "completed": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0},
                "results": {"type": "array", "items": ref("ImageResult")},
                "outcome": nullable({"enum": list(Outcome), "description": "Set once the task has ended"}),
            }, extra=True),
            "result": nullable(obj({"state": {"enum": list(TASK_STATES)}, "outcome": {"enum": list(Outcome)},
                                    "results": {"type": "array", "items": ref("ImageResult")}}, extra=True)),
        }, extra=True),
    }


def request_schemas() -> dict[str, Any]:
    models = sorted({m for names in MODELS.values() for m in names})
    prompt = nullable(text(MAX_PROMPT))
    return {
        "ImageGenerationUpdate": obj({
            "provider": {"enum": list(PROVIDERS)},
            "model": {"type": "string", "minLength": 1,
                      "description": f"Must be a model of the provider: {models}, or a Runware AIR id."},
            "image_type": {"enum": list(STYLES)},
            "max_in_article_images": {"type": "integer", "minimum": 0, "maximum": MAX_IN_ARTICLE_LIMIT},
            "image_format": {"enum": list(IMAGE_FORMATS)},
            "desktop_enabled": {"type": "boolean"},
            "mobile_enabled": {"type": "boolean"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
            "quality": {"enum": list(openai_catalogue()["qualities"]),
                        "description": "xhigh and max only on gpt-image-2.5-sunburst/flare"},
            "background": {"enum": list(backgrounds())},
            "partial_images": {"type": "integer", "minimum": 0, "maximum": MAX_PARTIAL_IMAGES,
                               "description": "Previews streamed per image (OpenAI bills each)"},
            "monthly_budget": MONTHLY_BUDGET,
        }, required=(), description="Any subset of the settings; the others keep their value."),
        "OpenAICredentialsUpdate": credentials_update({"enum": list(MODELS["openai"])}),
        "RunwareCredentialsUpdate": credentials_update(
            {"anyOf": [{"enum": list(MODELS["runware"])}, {"type": "string", "pattern": AIR_ID}]}),
        "ArticleCreate": obj({
            "title": text(MAX_TITLE, allOf=[{"pattern": "\\S"}]),  # not only whitespace
            "html": nullable(text(MAX_HTML)),
            "featured_prompt": prompt,
            "in_article_prompts": nullable({"type": "array", "maxItems": MAX_IN_ARTICLE_PROMPTS, "items": prompt}),
            "status": nullable({"enum": list(CONTENT_STATUSES), "description": "Default: draft."}),
        }, required=("title",), description="Limits count the text as sent; it is stored stripped. "
                                            "Control characters other than tab/LF/CR are refused. "
                                            "Empty prompts make no image."),
        "GenerateImages": obj({
            "ids": nullable({"type": "array", "minItems": 1, "maxItems": MAX_IDS,
                             "items": {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}}),
            "content_id": nullable({"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}),
            "dry_run": {"type": "boolean", "description": "true: answer the queue and its estimate, queue nothing"},
        }, required=(), anyOf=[{"required": ["ids"], "properties": {"ids": {"type": "array"}}},
                   {"required": ["content_id"], "properties": {"content_id": {"type": "integer"}}}],
                   description="ids alone, content_id alone (the queue is built by the rule), or both."),
    }


def credentials_update(model: dict[str, Any]) -> dict[str, Any]:
    return obj({
        "api_key": nullable({"type": "string", "pattern": "^([!-~]{8,400})?$",
                             "description": "8 to 400 printable characters; \"\" or null removes the key."}),
        "model": model,
    }, required=())


def responses() -> dict[str, Any]:
    err = ref("Error")
    return {
        "BadRequest": json_response("Malformed JSON, wrong types or values (errors per field), or a missing "
                                    "CSRF token on a cookie request", err),
        "Unauthorized": json_response("No session and no valid Bearer token", err),
        "NotFound": json_response("Not found, or not the caller's", err),
        "Conflict": json_response("Nothing to do in this state", err),
        "TooLarge": json_response("The body is larger than MAX_CONTENT_LENGTH (1 MiB)", err),
        "Unavailable": json_response("The job queue (Redis) is unavailable; nothing was queued", err),
        "StoreUnavailable": json_response("An image file could not be read from the media store", err),
    }


# ---------------------------------------------------------------- paths

def paths() -> dict[str, Any]:
    config = ok({"config": ref("ImageGenerationConfig")})
    credentials = {"200": json_response("What may leave the server: never the key", ref("Credentials"))}
    generate = ref("GenerateAnswer")
    by_id = [path_task_id()]
    integrations = f"{API}/system/integrations"
    return {
        f"{API}/openapi.json": {"get": operation("OpenAPI document", {
            "200": json_response("This document", {"type": "object"})}, public=True)},
        f"{integrations}/image_generation/": {
            "get": operation("Get image generation settings", {
                "200": json_response("The settings, defaults filled in", config)}),
            "put": operation("Update image generation settings", {
                "200": json_response("The saved settings", config)},
                body=json_body(ref("ImageGenerationUpdate"))),
        },
        **{f"{integrations}/{name}/": {
            "get": operation(f"Get {name} credentials", credentials),
            "put": operation(f"Update {name} credentials", credentials,
                             body=json_body(ref(f"{label}CredentialsUpdate"))),
        } for name, label in (("openai", "OpenAI"), ("runware", "Runware"))},
        f"{API}/writer/content/": {
            "get": operation("List articles", {
                "200": json_response("The account's articles, newest first",
                                     ok({"content": {"type": "array", "items": ref("Article")}}))}),
            "post": operation("Create an article", {
                "201": json_response("The article with its image rows",
                                     ok(schemas()["Article"]["properties"]))},
                body=json_body(ref("ArticleCreate"))),
        },
        **output_paths(),
        **spend_paths(),
        f"{API}/writer/images/": {"get": operation("List images", {
            "200": json_response("The account's images", ok({"images": {"type": "array", "items": ref("Image")}})),
            "400": error("BadRequest")}, parameters=[
            {"name": "content_id", "in": "query", "required": False, "description": "Empty: any article.",
             "schema": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_DB_ID}, {"const": ""}]}},
            {"name": "status", "in": "query", "required": False, "description": "Empty: any status.",
             "schema": {"enum": [*IMAGE_STATUSES, ""]}},
        ])},
        f"{API}/writer/images/generate_images/": {"post": operation("Generate images", {
            "202": json_response("Queued (or, with existing: true, already held by the running task named)",
                                 generate),
            "404": error("NotFound"), "409": error("Conflict"), "503": error("Unavailable"), **generate_responses()},
            body=json_body(ref("GenerateImages")))},
        f"{API}/system/settings/task_progress/{{task_id}}/": {"get": operation("Task progress", {
            "200": json_response("The task's state", ref("TaskProgress")), "404": error("NotFound")},
            parameters=by_id)},
        f"{API}/tasks/{{task_id}}/events": {"get": operation("Task events", {
            "200": {"description": "Server-sent events: snapshot, then image and task, then done",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "404": error("NotFound")}, parameters=by_id)},
        f"{API}/events": {"get": operation("Account events", {
            "200": {"description": "Server-sent events of every task of the caller's account: a snapshot of its "
                                   "unfinished tasks ({tasks: [task progress], unfinished, server_time}), then "
                                   "task and image events, each with task_id (and run_id when the task belongs "
                                   "to a run). Send Last-Event-ID to resume; a keepalive comment at least every "
                                   "15 s; the stream does not end on its own.",
                    "content": {"text/event-stream": {"schema": obj({
                        "event": {"enum": ["snapshot", "task", "image"]},
                        "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    }, required=("event", "id", "data"), extra=True)}}}})},
        f"{API}/tasks/{{task_id}}/cancel": {"post": operation("Cancel a task", {
            "202": json_response("Cancel requested", ok({"task_id": {"type": "string"}, "state": {
                "enum": list(TASK_STATES)}, "cancelled": {"const": True}})),
            "400": error("BadRequest"), "404": error("NotFound"), "409": error("Conflict")}, parameters=by_id)},
    }


def output_paths() -> dict[str, Any]:
    """The finished article: its HTML, and the ZIP for any CMS."""
    by_content = [path_id("content_id", "article")]
    return {
        f"{API}/writer/content/{{content_id}}/html": {"get": operation("Article HTML", {
            "200": json_response("The sanitized body with each stored image in a <figure>, placed by the "
                                 "markers and h2 sections; image URLs under PUBLIC_MEDIA_URL when set",
                                 ok({"html": {"type": "string"}})),
            "404": error("NotFound")}, parameters=by_content)},
        f"{API}/writer/content/{{content_id}}/export.zip": {"get": operation("Article export", {
            "200": {"description": "article.html (a static page) and the image files under images/",
                    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
            "404": error("NotFound"), "503": error("StoreUnavailable")}, parameters=by_content)},
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI document (a fresh dict each call)."""
    base = schemas()
    components = {**base, **article_schemas(base), **request_schemas(), **article_request_schemas(),
                  **webhook_schemas(), **spend_schemas(), **run_schemas()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "igny8 Images API", "version": "1",
                 "description": "JSON API of igny8 Images. Authenticate with `Authorization: Bearer <token>` "
                                "(Settings → API token), or with the session cookie plus the `X-CSRFToken` "
                                "header. Errors are `{success: false, error, errors?}`. Bodies are limited "
                                "to 1 MiB."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {**paths(), **article_paths(components), **webhook_paths(), **run_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
            "responses": responses(),
        },
    }
