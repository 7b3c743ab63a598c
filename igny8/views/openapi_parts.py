"""The building blocks of the OpenAPI document (``openapi.py``): schema and operation helpers
shared by the modules that describe the API's areas."""

from __future__ import annotations

from typing import Any

API = "/api/v1"
NO_CONTROL = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"  # tab, LF and CR are text; other controls are not
AIR_ID = "^[a-z0-9_-]{1,40}:[0-9]{1,12}@[0-9]{1,12}$"
TASK_ID = "^[A-Za-z0-9_-]{1,64}$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Any], *, required: tuple[str, ...] | None = None, extra: bool = False,
        **more: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required),
            "additionalProperties": extra, **more}


def ok(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A success body: ``{"success": true, ...}``."""
    return obj({"success": {"const": True}, **properties}, **more)


def text(limit: int, **more: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit, "pattern": NO_CONTROL, **more}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{description}"}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def operation(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
              parameters: list[dict[str, Any]] | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": summary.lower().replace(" ", "_").replace("'", ""),
                          "responses": {**responses, "401": error("Unauthorized")}}
    if body is not None:
        # A body request without a Bearer token is a cookie request, which the CSRF check answers 400.
        op["requestBody"] = body
        op["responses"].update({"400": error("BadRequest"), "413": error("TooLarge")})
    if parameters:
        op["parameters"] = parameters
    if public:
        op["security"] = []  # an invalid Bearer token is still refused (401), as everywhere
    return op


def path_task_id() -> dict[str, Any]:
    return {"name": "task_id", "in": "path", "required": True,
            "description": "The task id from generate_images (an RQ job id).",
            "schema": {"type": "string", "pattern": TASK_ID}}
