"""The OpenAPI description of one article and one image: reading, editing and deleting them,
adding an in-article image, regenerating an image and its versions (``api_content``,
``api_images``). Built from the validators' constants, as the rest of the document."""

from __future__ import annotations

from typing import Any

from ..content.articles import CONTENT_STATUSES, MAX_HTML, MAX_PROMPT, MAX_TITLE
from ..content.images import MAX_ALT_TEXT, MAX_CAPTION, MAX_POSITION
from ..models import MAX_DB_ID
from .openapi_parts import API, error, json_body, json_response, nullable, obj, ok, operation, ref, text

NOT_BLANK = {"allOf": [{"pattern": "\\S"}]}


def path_id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}}


def image_fields() -> dict[str, Any]:
    """What every image dict carries besides its generation fields."""
    return {
        "alt_text": {"type": "string", "minLength": 1,
                     "description": "The writer's alt text, or one drafted from the prompt and the title"},
        "alt_text_drafted": {"type": "boolean", "description": "True when alt_text is the draft"},
        "caption": nullable({"type": "string"}),
        "version_count": {"type": "integer", "minimum": 0},
        "active_version_id": nullable({"type": "integer", "minimum": 1}),
    }


def article_schemas(base: dict[str, Any]) -> dict[str, Any]:
    """The version, and the single image and article (``base``: the list items' schemas)."""
    int_id = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
    return {
        "ImageVersion": obj({
            "id": int_id, "image_url": nullable({"type": "string"}), "mobile_url": nullable({"type": "string"}),
            "width": nullable({"type": "integer"}), "height": nullable({"type": "integer"}),
            "prompt": {"type": "string", "description": "The image prompt it was made from"},
            "provider": nullable({"type": "string"}), "model": nullable({"type": "string"}),
            "cost": {"type": "number", "minimum": 0}, "created_at": {"type": "string", "format": "date-time"},
            "active": {"type": "boolean", "description": "The version the image shows"},
        }),
        "ImageDetail": obj({**base["Image"]["properties"], "versions": {
            "type": "array", "items": ref("ImageVersion"), "description": "Oldest first"}}),
        "ArticleDetail": obj({**base["Article"]["properties"], "html": {"type": "string"}}),
    }


def article_request_schemas() -> dict[str, Any]:
    prompt = text(MAX_PROMPT, **NOT_BLANK)
    return {
        "ArticleUpdate": obj({
            "title": text(MAX_TITLE, **NOT_BLANK), "html": nullable(text(MAX_HTML)),
            "status": {"enum": list(CONTENT_STATUSES)},
        }, required=(), description="Any of the fields; the others keep their value."),
        "ImageAdd": obj({
            "prompt": prompt,
            "position": nullable({"type": "integer", "minimum": 1, "maximum": MAX_POSITION,
                                  "description": "A free position; default after the last"}),
            "alt_text": nullable(text(MAX_ALT_TEXT)), "caption": nullable(text(MAX_CAPTION)),
        }, required=("prompt",)),
        "ImageUpdate": obj({
            "prompt": prompt,
            "alt_text": nullable(text(MAX_ALT_TEXT, description="\"\" or null: drafted again")),
            "caption": nullable(text(MAX_CAPTION)),
        }, required=(), description="A new prompt keeps every version (a generated or failed image goes "
                                    "back to pending, for Generate); refused (409) while a task holds the image."),
        "Regenerate": obj({"prompt": prompt}, required=()),
    }


def article_paths(components: dict[str, Any]) -> dict[str, Any]:
    """The paths (``components``: every schema of the document, for the success bodies)."""
    content, image = [path_id("content_id", "article")], [path_id("image_id", "image")]
    version = [*image, path_id("version_id", "version")]
    image_body = ok(components["ImageDetail"]["properties"])
    article = json_response("The article, its source html and its images",
                            ok(components["ArticleDetail"]["properties"]))
    detail = {"200": json_response("The image with its versions", image_body), "404": error("NotFound")}
    deleted = ok({"deleted": {"type": "integer"}})
    held = {"404": error("NotFound"), "409": error("Conflict")}
    regenerate_body = {"required": False, "content": {"application/json": {"schema": ref("Regenerate")}}}
    regenerate = operation("Regenerate an image", {
        "202": json_response("A one-image task (or, with existing: true, the running task that holds it)",
                             ref("GenerateAnswer")), **held, "503": error("Unavailable")})
    regenerate.update(requestBody=regenerate_body)
    regenerate["responses"].update({"400": error("BadRequest"), "413": error("TooLarge")})
    writer = f"{API}/writer"
    return {
        f"{writer}/content/{{content_id}}/": {
            "get": operation("Get an article", {"200": article, "404": error("NotFound")}, parameters=content),
            "patch": operation("Update an article", {"200": article, "404": error("NotFound")},
                               body=json_body(ref("ArticleUpdate")), parameters=content),
            "delete": operation("Delete an article", {
                "200": json_response("Deleted, with its images, their versions and files", deleted), **held},
                parameters=content),
        },
        f"{writer}/content/{{content_id}}/images/": {"post": operation("Add an in-article image", {
            "201": json_response("The new image", image_body),
            **held}, body=json_body(ref("ImageAdd")), parameters=content)},
        f"{writer}/images/{{image_id}}/": {
            "get": operation("Get an image", detail, parameters=image),
            "patch": operation("Update an image", {**detail, "409": error("Conflict")},
                               body=json_body(ref("ImageUpdate")), parameters=image),
            "delete": operation("Delete an image", {
                "200": json_response("Deleted, with the files of all its versions", deleted),
                "404": error("NotFound"),
                "409": json_response("The featured image (never deleted), or a task holds the image",
                                     ref("Error"))}, parameters=image),
        },
        f"{writer}/images/{{image_id}}/regenerate": {"post": {**regenerate, "parameters": image}},
        f"{writer}/images/{{image_id}}/versions/{{version_id}}/activate": {"post": operation(
            "Activate a version", detail, parameters=version)},
        f"{writer}/images/{{image_id}}/versions/{{version_id}}": {"delete": operation("Delete a version", {
            **detail, "409": json_response("The active version (activate another one first)", ref("Error"))},
            parameters=version)},
    }
