"""Blueprints, one per area."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from ..models import MAX_DB_ID


class IdConverter(IntegerConverter):
    """``<id:name>``: a database id, 1 to MAX_DB_ID. A larger number is no row (404), never a
    query that overflows the column (a 500 on PostgreSQL and SQLite alike)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_DB_ID)


def register_views(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    from . import (
        account_events,
        api_content,
        api_docs,
        api_images,
        api_output,
        api_runs,
        api_settings,
        api_tasks,
        api_usage,
        api_webhooks,
        api_writer,
        article_page,
        auth,
        batches,
        events,
        health,
        metrics,
        modal,
        pages,
        run_page,
        settings_pages,
        usage_page,
    )

    for module in (auth, pages, article_page, batches, settings_pages, api_settings, api_webhooks, api_writer,
                   api_content, api_images, api_output, api_runs, api_tasks, events, account_events, modal, run_page,
                   health, api_docs, metrics, api_usage, usage_page):
        app.register_blueprint(module.bp)
    register_template_globals(app)


def register_template_globals(app: Flask) -> None:
    from ..tasks.rule import queue_preview
    from .pager import page_window
    from .vendor import HTMX_JS, HTMX_SSE_JS

    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True  # lean fragments on the wire
    app.jinja_env.globals.update(queue_preview=queue_preview, page_window=page_window, HTMX_JS=HTMX_JS,
                                 HTMX_SSE_JS=HTMX_SSE_JS)
