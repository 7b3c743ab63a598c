"""igny8 Images: turns an article's image prompts into finished images.

``create_app`` reads like a table of contents: configuration, extensions, blueprints, error
handlers, CLI commands, logging.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .config import INSTANCE, ROOT, Config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, then ``config`` overrides (tests pass theirs)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=str(INSTANCE))
    app.config.update(Config.from_env())
    app.config.update(config or {})
    register_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errors(app)
    register_cli(app)
    return app


def register_logging(app: Flask) -> None:
    from .logs import configure_logging

    configure_logging(app)


def register_extensions(app: Flask) -> None:
    from .accounts import auth
    from .extensions import db, migrate
    from .ops.proxy import register_proxy
    from .redis_client import init_redis
    from .security import register_security
    from .streaming.admission import register_admission

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    register_admission(app)  # before the credential check: a waiting stream opening holds nothing
    auth.register_auth(app)
    init_redis(app)
    register_security(app)
    register_proxy(app)


def register_blueprints(app: Flask) -> None:
    from .ops.dashboard import register_dashboard
    from .views import register_views

    register_views(app)
    register_dashboard(app)


def register_errors(app: Flask) -> None:
    from .errors import register_error_handlers

    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
