"""Articles and their image prompts: validation, create/update, account-scoped lookups."""

from __future__ import annotations

import re
from typing import Any

from flask import abort
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..logs import event
from ..models import IMAGE_STATUSES, AccountTotals, Content, GenerationTask, Image
from ..progress.schema import HELD_STATUSES, RUNNING_STATES
from .errors import ConflictError
from .prompt_change import change_prompt, prompt_held
from .versions import file_keys, remove_files

MAX_TITLE = 300
MAX_HTML = 200_000
MAX_PROMPT = 4000
MAX_IN_ARTICLE_PROMPTS = 20
CONTENT_STATUSES = ("draft", "published")
# Control characters other than tab/LF/CR, and lone surrogates (JSON "\ud800" decodes to one, and
# no database can store it as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class ContentError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def text_field(value: Any, field: str, limit: int, errors: dict[str, str], *, required: bool = False) -> str:
    """``value`` as clean text (stripped), or "" with a message in ``errors[field]``: not text, over
    ``limit`` characters as sent, control characters, or blank when ``required``."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = "Must be text."
        return ""
    # Limits apply to the text as sent (what the OpenAPI document states), then it is stripped.
    if len(value) > limit:
        errors[field] = f"At most {limit} characters (got {len(value)})."
    elif _CONTROL.search(value):
        errors[field] = "Contains control characters or invalid Unicode."
    value = value.strip()
    if required and not value:
        errors[field] = "Required."
    return value


def validate_article(data: Any) -> dict[str, Any]:
    """Return clean fields or raise ContentError with per-field messages."""
    if not isinstance(data, dict):
        raise ContentError({"body": "Send a JSON object with title, html, featured_prompt, in_article_prompts."})
    errors: dict[str, str] = {}
    clean = {
        "title": text_field(data.get("title"), "title", MAX_TITLE, errors, required=True),
        "html": text_field(data.get("html"), "html", MAX_HTML, errors),
        "featured_prompt": text_field(data.get("featured_prompt"), "featured_prompt", MAX_PROMPT, errors),
    }
    prompts = data.get("in_article_prompts")
    if prompts is None:  # only null means "none": {}, "" or false is a wrong type, not an empty list
        prompts = []
    if not isinstance(prompts, list) or len(prompts) > MAX_IN_ARTICLE_PROMPTS:
        errors["in_article_prompts"] = f"A list of at most {MAX_IN_ARTICLE_PROMPTS} prompts."
        prompts = []
    clean["in_article_prompts"] = [
        text_field(p, f"in_article_prompts[{i}]", MAX_PROMPT, errors) for i, p in enumerate(prompts)
    ]
    status = data.get("status")
    if status is not None:  # omitted or null: a new article is a draft, an edited one keeps its status
        if status not in CONTENT_STATUSES:
            errors["status"] = f"Must be one of: {', '.join(CONTENT_STATUSES)}."
        else:
            clean["status"] = status
    unknown = set(data) - {"title", "html", "featured_prompt", "in_article_prompts", "status"}
    errors.update({k: "Unknown field." for k in sorted(unknown)})
    if errors:
        raise ContentError(errors)
    return clean


def create_article(account_id: int, clean: dict[str, Any]) -> Content:
    """Add the article and its image rows (in-article positions start at 1); caller commits."""
    content = Content(account_id=account_id, title=clean["title"], html=clean["html"],
                      status=clean.get("status", "draft"))
    if clean["featured_prompt"]:
        content.images.append(Image(account_id=account_id, type="featured", position=0,
                                    prompt=clean["featured_prompt"]))
    for position, prompt in enumerate(clean["in_article_prompts"], start=1):
        if prompt:
            content.images.append(Image(account_id=account_id, type="in_article", position=position,
                                        prompt=prompt))
    db.session.add(content)
    db.session.flush()
    return content


def update_article(content: Content, clean: dict[str, Any]) -> None:
    """Apply edited fields and prompts. Prompts of images being generated are left alone;
    a changed prompt of a finished image makes it pending again (the old file no longer fits)."""
    content.title, content.html = clean["title"], clean["html"]
    content.status = clean.get("status", content.status)
    wanted = {("featured", 0): clean["featured_prompt"]}
    wanted.update({("in_article", i): p for i, p in enumerate(clean["in_article_prompts"], start=1)})
    existing = {(img.type, img.position): img for img in content.images}
    for key, prompt in wanted.items():
        image = existing.get(key)
        if image is None:
            if prompt:
                content.images.append(Image(account_id=content.account_id, type=key[0],
                                            position=key[1], prompt=prompt))
        elif not prompt_held(image, prompt):
            change_prompt(image, prompt)
    for key, image in existing.items():
        if key not in wanted and image.status not in HELD_STATUSES:
            content.images.remove(image)


def validate_article_patch(data: Any) -> dict[str, Any]:
    """The fields a PATCH may change (``title``, ``html``, ``status``), cleaned; ContentError per
    field. Image prompts are changed per image (``/api/v1/writer/images/<id>/``)."""
    if not isinstance(data, dict):
        raise ContentError({"body": "Send a JSON object with any of: title, html, status."})
    errors: dict[str, str] = {}
    for key in sorted(set(data) - {"title", "html", "status"}):
        errors[key] = ("Change image prompts at /api/v1/writer/images/<id>/." if "prompt" in key
                       else "Unknown field.")
    clean: dict[str, Any] = {}
    if "title" in data:
        clean["title"] = text_field(data["title"], "title", MAX_TITLE, errors, required=True)
    if "html" in data:
        clean["html"] = text_field(data["html"], "html", MAX_HTML, errors)
    if "status" in data:
        if data["status"] not in CONTENT_STATUSES:
            errors["status"] = f"Must be one of: {', '.join(CONTENT_STATUSES)}."
        else:
            clean["status"] = data["status"]
    if errors:
        raise ContentError(errors)
    return clean


def delete_article(content: Content) -> None:
    """Delete the article, its images and their versions, then all their files from the media store.
    Refused (ConflictError) while a task holds any of its images. Its past tasks stay (the account's
    history and spend) without the article. Commits."""
    held = db.session.scalars(select(Image.id).where(Image.content_id == content.id,
                                                     Image.status.in_(HELD_STATUSES)).with_for_update()).all()
    if held:
        db.session.rollback()
        raise ConflictError("Images of this article are being generated; wait until the batch finishes "
                            "(or cancel it) before deleting the article.")
    keys, account_id, content_id = file_keys(content.images), content.account_id, content.id
    db.session.execute(update(GenerationTask).where(GenerationTask.content_id == content_id)
                       .values(content_id=None).execution_options(synchronize_session=False))
    db.session.delete(content)
    db.session.commit()
    remove_files(keys, account_id=account_id)
    event("content_deleted", account=account_id, content=content_id, files=len(keys))


def article_dict(content: Content) -> dict[str, Any]:
    return {
        "id": content.id,
        "title": content.title,
        "status": content.status,
        "images": [img.to_dict() for img in content.images],
    }


def get_content(account_id: int, content_id: int) -> Content:
    """The caller's article, or 404 (also for another account's id: nothing is revealed)."""
    content = db.session.scalar(select(Content).filter_by(id=content_id, account_id=account_id))
    if content is None:
        abort(404, description=f"No article with id {content_id}.")
    return content


def list_content(account_id: int) -> list[Content]:
    return list(db.session.scalars(
        select(Content).filter_by(account_id=account_id)
        .options(selectinload(Content.images).selectinload(Image.versions)).order_by(Content.id.desc())
    ))


def list_images(account_id: int, *, content_id: int | None = None, status: str | None = None) -> list[Image]:
    query = (select(Image).filter_by(account_id=account_id)
             .options(selectinload(Image.versions), selectinload(Image.content))
             .order_by(Image.content_id, Image.type, Image.position))
    if content_id is not None:
        query = query.filter_by(content_id=content_id)
    if status is not None:
        query = query.filter_by(status=status)
    return list(db.session.scalars(query))


def page_of_articles(account_id: int, *, search: str = "", status: str = "", page: int = 1,
                     per_page: int = 20) -> tuple[list[Content], int, int]:
    """One page of articles for the Images page, with images loaded in one extra query.
    Returns (articles, total, page): a page number past the last (or below 1) is the nearest
    page there is, so no offset overflows a database integer."""
    query = select(Content).filter_by(account_id=account_id)
    if search:
        query = query.where(Content.title.icontains(search, autoescape=True))
    if status in IMAGE_STATUSES:
        # Walks the articles newest first and stops at a page: each is probed by (content_id, status).
        query = query.where(select(Image.id).where(Image.content_id == Content.id, Image.status == status).exists())
    if search:
        total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    elif status in IMAGE_STATUSES:  # read from the index alone (account_id, status, content_id)
        total = db.session.scalar(select(func.count(Image.content_id.distinct()))
                                  .filter_by(account_id=account_id, status=status)) or 0
    else:  # the whole library: its count is kept with the rows
        total = account_totals(account_id)["articles"]
    page = min(max(page, 1), max(-(-total // per_page), 1))
    rows = db.session.scalars(
        query.options(selectinload(Content.images)).order_by(Content.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    return list(rows), total, page


def running_tasks(account_id: int, articles: list[Content]) -> dict[int, str]:
    """{content_id: task_id} of the running batches of these articles (one query)."""
    ids = [a.id for a in articles]
    if not ids:
        return {}
    rows = db.session.execute(
        select(GenerationTask.content_id, GenerationTask.id)
        .where(GenerationTask.account_id == account_id, GenerationTask.content_id.in_(ids),
               GenerationTask.state.in_(RUNNING_STATES))
        .order_by(GenerationTask.created_at)
    ).all()
    return {content_id: task_id for content_id, task_id in rows}


def account_totals(account_id: int) -> dict[str, float | int]:
    """Articles, images generated and failed, and the provider cost recorded, for the whole
    account: one row kept by the database (``content/totals.py``)."""
    row = db.session.get(AccountTotals, account_id)
    if row is None:  # the account never had an article
        return {"articles": 0, "generated": 0, "failed": 0, "cost": 0.0}
    return {"articles": row.articles, "generated": row.generated, "failed": row.failed,
            "cost": max(float(row.cost), 0.0)}  # a float sum may end a hair below 0 after deletes


def recent_tasks(account_id: int, limit: int = 5) -> list[GenerationTask]:
    return list(db.session.scalars(
        select(GenerationTask).filter_by(account_id=account_id).options(selectinload(GenerationTask.content))
        .order_by(GenerationTask.created_at.desc()).limit(limit)
    ))
