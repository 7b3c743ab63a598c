"""The webhook paths of the OpenAPI document: the setting and its deliveries."""

from __future__ import annotations

from typing import Any

from ..models import DELIVERY_STATES
from ..webhooks.deliveries import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from ..webhooks.settings import MAX_URL, SECRET_PATTERN
from .openapi_parts import API, json_body, json_response, nullable, obj, ok, operation, ref


def webhook_schemas() -> dict[str, Any]:
    moment = nullable({"type": "string", "format": "date-time"})
    return {
        "Webhook": ok({"configured": {"type": "boolean", "description": "A URL and a secret are saved"},
                       "url": nullable({"type": "string"})}),
        "WebhookUpdate": obj({
            "url": nullable({"type": "string", "maxLength": MAX_URL, "pattern": "^[!-~]*$",
                             "description": "https (plain http only to ALLOWED_HTTP_HOSTS), never a private "
                                            "address after DNS resolution; null or \"\" removes the webhook"}),
            "secret": {"type": "string", "pattern": SECRET_PATTERN,
                       "description": "Write-only: signs every delivery (X-Igny8-Signature); omitted keeps it"},
        }, required=(), description="Setting a URL the first time needs a secret."),
        "WebhookDelivery": obj({
            "id": {"type": "integer", "minimum": 1}, "delivery": {"type": "string", "format": "uuid"},
            "event": {"type": "string"}, "state": {"enum": list(DELIVERY_STATES)},
            "attempts": {"type": "integer", "minimum": 0}, "status_code": nullable({"type": "integer"}),
            "error": nullable({"type": "string"}), "created_at": {"type": "string", "format": "date-time"},
            "delivered_at": moment,
        }),
    }


def _page_parameter(name: str, high: int, default: int) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": f"Default {default}.",
            "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": high}, {"const": ""}]}}


def webhook_paths() -> dict[str, Any]:
    hook = f"{API}/system/integrations/webhook"
    answer = {"200": json_response("The webhook: never its secret", ref("Webhook"))}
    listing = ok({"deliveries": {"type": "array", "items": ref("WebhookDelivery")},
                  "page": {"type": "integer", "minimum": 1}, "per_page": {"type": "integer", "minimum": 1},
                  "total": {"type": "integer", "minimum": 0}})
    return {
        f"{hook}/": {
            "get": operation("Get the webhook", answer),
            "put": operation("Update the webhook", answer, body=json_body(ref("WebhookUpdate"))),
        },
        f"{hook}/deliveries": {"get": operation("List webhook deliveries", {
            "200": json_response("The account's deliveries, newest first", listing),
            "400": {"$ref": "#/components/responses/BadRequest"}}, parameters=[
            _page_parameter("page", MAX_PAGE, 1), _page_parameter("per_page", MAX_PER_PAGE, DEFAULT_PER_PAGE)])},
    }
